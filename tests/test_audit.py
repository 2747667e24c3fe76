"""The one-run canary audit and the held-out ROC bound: valid at their confidence, positive."""

import math

import numpy as np
import pytest
from scipy.stats import binom

import labkit as lk
from labkit.attacks import audit


def _randomised_response(included, epsilon, gen):
    """An epsilon-DP release of each canary's bit: kept with probability e^eps / (1 + e^eps)."""
    keep = gen.random(included.size) < 1 / (1 + math.exp(-epsilon))
    out = np.where(keep, included, ~included).astype(float)
    return out + gen.random(included.size) * 1e-3  # random tie-break, not information


def test_p_value_is_the_binomial_tail_without_delta():
    assert audit.one_run_p_value(100, 20, 15, 0.0) == pytest.approx(binom.sf(14, 20, 0.5))
    q = 1 / (1 + math.exp(-1.0))
    assert audit.one_run_p_value(100, 20, 15, 1.0) == pytest.approx(binom.sf(14, 20, q))
    # The delta term only adds, and grows with the number of canaries.
    assert audit.one_run_p_value(100, 20, 15, 1.0, 1e-3) > audit.one_run_p_value(100, 20, 15, 1.0)
    assert audit.one_run_p_value(1000, 20, 15, 1.0, 1e-3) > audit.one_run_p_value(
        100, 20, 15, 1.0, 1e-3
    )


def test_one_run_epsilon_inverts_the_p_value():
    eps = audit.one_run_epsilon(1000, 100, 90, delta=1e-5, confidence=0.95)
    assert audit.one_run_p_value(1000, 100, 90, eps - 1e-6, 1e-5) < 0.05
    assert audit.one_run_p_value(1000, 100, 90, eps + 1e-3, 1e-5) >= 0.05
    assert audit.one_run_epsilon(1000, 100, 50) == 0.0  # chance
    assert audit.one_run_epsilon(1000, 0, 0) == 0.0
    # All of r guesses right: q >= 0.05^(1/r) at 95%, eps = log(q / (1 - q)).
    q = 0.05 ** (1 / 100)
    assert audit.one_run_epsilon(1000, 100, 100) == pytest.approx(math.log(q / (1 - q)), abs=1e-6)


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_canary_audit_stays_below_epsilon_on_randomised_response(epsilon):
    # 300 independent audits of a known epsilon-DP mechanism: the 95% bound may exceed epsilon
    # in at most ~5% of them (binomial(300, 0.05) exceeds 27 with probability < 0.1%).
    gen = np.random.default_rng(0)
    above = 0
    for _ in range(300):
        included = gen.random(400) < 0.5
        scores = _randomised_response(included, epsilon, gen)
        above += audit.canary_audit(scores, included, 100).epsilon_lower_bound > epsilon
    assert above <= 27


def test_canary_audit_is_positive_on_a_leaking_mechanism():
    gen = np.random.default_rng(1)
    included = gen.random(400) < 0.5
    leak = audit.canary_audit(included + gen.random(400) * 1e-3, included, 100)  # output = bit
    assert leak.num_correct == 100 and leak.epsilon_lower_bound > 3.0
    weak = audit.canary_audit(_randomised_response(included, 2.0, gen), included, 100)
    assert 0.5 < weak.epsilon_lower_bound <= 2.0 + 0.5
    assert "of 100 guesses right" in leak.summary() and leak.auc == 1.0


def test_canary_audit_errors():
    with pytest.raises(ValueError, match="num_guesses"):
        audit.canary_audit([1.0, 0.0, 2.0], [1, 0, 1], 3)
    with pytest.raises(ValueError, match="included"):
        audit.canary_audit([1.0, 0.0], [1, 0, 1], 2)
    with pytest.raises(ValueError, match="num_correct"):
        audit.one_run_epsilon(10, 5, 6)
    with pytest.raises(ValueError, match="confidence"):
        audit.one_run_epsilon(10, 5, 5, confidence=1.0)


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_heldout_bound_stays_below_epsilon_on_randomised_response(epsilon):
    # Members and non-members each released once through epsilon-DP randomised response: the
    # held-out threshold's bound exceeds epsilon in at most ~5% of 200 trials.
    gen = np.random.default_rng(2)
    above = 0
    for _ in range(200):
        members = _randomised_response(np.ones(300, bool), epsilon, gen)
        nonmembers = _randomised_response(np.zeros(300, bool), epsilon, gen)
        above += lk.attacks.empirical_epsilon(members, nonmembers, confidence=0.95) > epsilon
    assert above <= 20


def test_heldout_bound_is_positive_on_a_leak_and_zero_without_one():
    gen = np.random.default_rng(3)
    assert lk.attacks.empirical_epsilon(gen.normal(3, 1, 2000), gen.normal(0, 1, 2000)) > 1.0
    assert lk.attacks.empirical_epsilon(gen.normal(0, 1, 2000), gen.normal(0, 1, 2000)) < 0.2


def test_plot_audit_bounds_puts_each_lower_bound_below_its_upper_bound_marker():
    rows = [
        {"epsilon": None, "epsilon_lower_bound": 3.5, "confidence": 0.95, "seed": 0},
        {"epsilon": 8.0, "epsilon_lower_bound": 0.7, "confidence": 0.95, "seed": 0},
        {"epsilon": 8.0, "epsilon_lower_bound": 0.5, "confidence": 0.95, "seed": 1},
        {"epsilon": 1.0, "epsilon_lower_bound": 0.0, "confidence": 0.95, "seed": 0},
    ]
    fig, ax = lk.plots.audit.plot_audit_bounds(rows)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["non-private", "ε = 8", "ε = 1"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([3.5, 0.6, 0.0])
    assert "95% confidence" in ax.get_ylabel()
    assert any("no upper bound" in t.get_text() for t in ax.texts)
