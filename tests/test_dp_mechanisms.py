"""Mechanisms: calibration vs independent formulas, exact samplers' laws, the float attack."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

import labkit as lk


def analytic_gaussian_delta(sigma, sensitivity, epsilon):
    """Balle & Wang (2018), Thm 8: the exact delta of the Gaussian mechanism."""
    a = sensitivity / (2 * sigma)
    b = epsilon * sigma / sensitivity
    return stats.norm.cdf(a - b) - math.exp(epsilon) * stats.norm.cdf(-a - b)


@pytest.mark.parametrize("epsilon,delta", [(0.5, 1e-5), (1.0, 1e-6), (4.0, 1e-5)])
def test_gaussian_sigma_matches_analytic_gaussian(epsilon, delta):
    sigma = lk.dp.gaussian_sigma(2.0, epsilon, delta)
    ref = brentq(lambda s: analytic_gaussian_delta(s, 2.0, epsilon) - delta, 1e-3, 1e3)
    assert sigma == pytest.approx(ref, rel=2e-3)


def test_classic_gaussian_is_looser_than_exact():
    assert lk.dp.classic_gaussian_sigma(1.0, 0.5, 1e-5) > lk.dp.gaussian_sigma(1.0, 0.5, 1e-5)
    with pytest.raises(ValueError, match="epsilon must be < 1"):
        lk.dp.classic_gaussian_sigma(1.0, 2.0, 1e-5)


def test_laplace_and_gaussian_noise_have_the_calibrated_spread():
    laplace = lk.dp.laplace_mechanism(np.zeros(40_000), sensitivity=2.0, epsilon=0.5, seed=1)
    assert laplace.std() == pytest.approx(math.sqrt(2) * 4.0, rel=0.03)
    assert stats.kstest(laplace, stats.laplace(scale=4.0).cdf).pvalue > 1e-3
    gauss = lk.dp.gaussian_mechanism(np.full(40_000, 5.0), 1.0, 1.0, 1e-5, seed=2)
    assert gauss.mean() == pytest.approx(5.0, abs=0.1)
    assert gauss.std() == pytest.approx(lk.dp.gaussian_sigma(1.0, 1.0, 1e-5), rel=0.02)


@pytest.mark.parametrize(
    "call",
    [
        lambda: lk.dp.laplace_mechanism(1.0, sensitivity=0, epsilon=1.0),
        lambda: lk.dp.laplace_mechanism(1.0, sensitivity=1.0, epsilon=0),
        lambda: lk.dp.laplace_mechanism(1.0, sensitivity=-1.0, epsilon=1.0),
        lambda: lk.dp.gaussian_mechanism(1.0, 1.0, 1.0, delta=0.0),
        lambda: lk.dp.gaussian_mechanism(1.0, 1.0, 1.0, delta=1.0),
        lambda: lk.dp.gaussian_sigma(1.0, -1.0, 1e-5),
        lambda: lk.dp.discrete_laplace_mechanism(3, sensitivity=0, epsilon=1.0),
        lambda: lk.dp.discrete_laplace_mechanism(3.5, sensitivity=1, epsilon=1.0),
        lambda: lk.dp.private_sum([1, 2], lower=5, upper=5, epsilon=1.0),
    ],
)
def test_bad_input_raises_named_errors(call):
    with pytest.raises(ValueError, match="sensitivity|epsilon|delta|value|lower"):
        call()


@pytest.mark.parametrize("gamma", [Fraction(3, 10), Fraction(17, 10), 0, 3])
def test_bernoulli_exp_frequency(gamma):
    rng = random.Random(0)
    n = 20_000
    hits = sum(lk.dp.bernoulli_exp(gamma, rng) for _ in range(n))
    p = math.exp(-float(gamma))
    assert stats.binomtest(hits, n, p).pvalue > 1e-3


def _chi_square_pvalue(samples, pmf, support):
    observed = np.array([np.count_nonzero(samples == z) for z in support], float)
    expected = pmf(support) * len(samples)
    # Pool both tails so every expected count is large enough for the chi-square approximation.
    observed = np.r_[observed, len(samples) - observed.sum()]
    expected = np.r_[expected, len(samples) - expected.sum()]
    keep = expected > 5
    stat = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    return stats.chi2.sf(stat, keep.sum() - 1)


@pytest.mark.parametrize("scale", [Fraction(1, 2), 3, 2.5])
def test_discrete_laplace_distribution(scale):
    samples = lk.dp.discrete_laplace(scale, 20_000, random.Random(1))
    b = float(scale)
    norm = (1 - math.exp(-1 / b)) / (1 + math.exp(-1 / b))
    support = np.arange(-int(8 * b) - 2, int(8 * b) + 3)
    assert _chi_square_pvalue(samples, lambda z: norm * np.exp(-np.abs(z) / b), support) > 1e-3
    var = 2 * math.exp(-1 / b) / (1 - math.exp(-1 / b)) ** 2
    assert samples.var() == pytest.approx(var, rel=0.05)


@pytest.mark.parametrize("sigma", [Fraction(1, 2), 2, 3.7])
def test_discrete_gaussian_distribution(sigma):
    samples = lk.dp.discrete_gaussian(sigma, 20_000, random.Random(2))
    s = float(sigma)
    grid = np.arange(-int(12 * s) - 2, int(12 * s) + 3)
    weights = np.exp(-(grid**2) / (2 * s * s))
    support = np.arange(-int(5 * s) - 1, int(5 * s) + 2)
    pmf = lambda z: np.exp(-(z**2) / (2 * s * s)) / weights.sum()  # noqa: E731
    assert _chi_square_pvalue(samples, pmf, support) > 1e-3
    assert abs(samples.mean()) < 4 * s / math.sqrt(len(samples))


def test_discrete_samplers_are_integers_and_default_to_system_random():
    out = lk.dp.discrete_laplace_mechanism(np.array([10, 20, 30]), 1, 1.0)
    assert out.dtype == np.int64 and out.shape == (3,)
    assert isinstance(lk.dp.sample_discrete_gaussian(1.5), int)


def test_discrete_gaussian_sigma_is_calibrated_with_dp_accounting():
    from dp_accounting.pld import privacy_loss_distribution as pld

    sigma = lk.dp.discrete_gaussian_sigma(1, 1.0, 1e-5)
    eps = lambda s: pld.from_discrete_gaussian_mechanism(s).get_epsilon_for_delta(1e-5)  # noqa: E731
    assert eps(sigma) <= 1.0 + 1e-3
    assert eps(sigma * 0.99) > 1.0


def test_composition_numbers():
    assert lk.dp.composed_epsilon([0.1] * 10) == pytest.approx(1.0)
    tight = lk.dp.composed_epsilon([0.1] * 100, delta=1e-6)
    assert tight < 10.0  # PLD beats the sum for many small queries
    # Advanced composition (Dwork, Rothblum & Vadhan 2010) is valid too; the PLD beats it.
    k, e, d = 100, 0.1, 1e-6
    advanced = math.sqrt(2 * k * math.log(1 / d)) * e + k * e * (math.exp(e) - 1)
    assert tight < advanced


def test_private_queries_on_adult_are_close_and_exact_without_noise_spread():
    adult = lk.load_adult()
    assert len(adult["age"]) == 32_561
    rng = random.Random(3)
    rich = adult["income"] == ">50K"
    assert abs(lk.dp.private_count(rich, 1.0, rng) - rich.sum()) < 30
    mean = lk.dp.private_mean(adult["age"], 0, 100, 1.0, rng)
    assert mean == pytest.approx(adult["age"].mean(), abs=0.05)
    hist = lk.dp.private_histogram(adult["sex"], ["Female", "Male"], 1.0, rng)
    assert np.all(np.abs(hist - [np.sum(adult["sex"] == s) for s in ["Female", "Male"]]) < 30)


def test_float_attack_distinguishes_numpy_laplace_and_never_rules_out_the_truth():
    out = lk.dp.numpy_laplace_release(0.0, 1.0, 500, seed=0)
    res = lk.dp.float_attack(out, 0.0, 1.0, 1.0)
    assert res.neither == 0 and res.only_b == 0  # the true value is always found possible
    assert res.only_a > 0.5 * res.num_releases  # most releases reveal it with certainty
    # Integer releases of the discrete mechanism: every integer is reachable from both values.
    released = lk.dp.discrete_laplace_mechanism(np.zeros(200, np.int64), 1, 1.0, random.Random(0))
    assert set(np.unique(released)) <= set(range(-100, 101))
