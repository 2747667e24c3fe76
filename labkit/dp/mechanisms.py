"""Noise calibrated to sensitivity, exact integer samplers, and the floating-point attack.

Neighbouring data sets differ by adding or removing one record. A mechanism M is
(epsilon, delta)-DP when P[M(D) in S] <= e^epsilon P[M(D') in S] + delta for *every* output set S
and *every* neighbouring pair D, D'.
"""

from __future__ import annotations

import math
import numbers
import random
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import dp_accounting
import numpy as np
from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_distribution as pld
from dp_accounting.pld import privacy_loss_mechanism

from labkit._checks import (
    ParameterError,
    check_delta,
    check_epsilon,
    check_finite_array,
    check_int,
    check_positive,
)
from labkit.config import make_rng

__all__ = [
    "check_sensitivity",
    "laplace_scale",
    "gaussian_sigma",
    "classic_gaussian_sigma",
    "laplace_mechanism",
    "gaussian_mechanism",
    "bernoulli_exp",
    "sample_discrete_laplace",
    "sample_discrete_gaussian",
    "discrete_laplace",
    "discrete_gaussian",
    "discrete_laplace_mechanism",
    "discrete_gaussian_sigma",
    "discrete_gaussian_mechanism",
    "composed_epsilon",
    "private_count",
    "private_sum",
    "private_mean",
    "private_histogram",
    "numpy_laplace_release",
    "FloatAttack",
    "float_attack",
]

Number = int | float | Fraction


def check_sensitivity(sensitivity: Number) -> Number:
    """Return ``sensitivity`` (a Fraction stays exact), or raise unless it is finite and > 0."""
    if isinstance(sensitivity, Fraction) and sensitivity > 0:
        return sensitivity
    return check_positive("sensitivity", sensitivity)


def _check_rational(name: str, value, low: float = 0.0, strict: bool = True) -> Fraction:
    """Return ``value`` as an exact Fraction > ``low`` (>= unless ``strict``), refusing NaN/inf."""
    # Fraction(inf) raises OverflowError and Fraction(nan) a bare ValueError: say what we need.
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    ok = ok and (isinstance(value, Fraction) or math.isfinite(value))
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        raise ParameterError(name, value, f"a finite number {'>' if strict else '>='} {low:g}")
    return Fraction(value) if not isinstance(value, np.generic) else Fraction(value.item())


# --- continuous mechanisms (NumPy floats) --------------------------------------------------
def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """Return the Laplace scale b = sensitivity / epsilon that gives epsilon-DP (delta = 0)."""
    sensitivity, epsilon = float(check_sensitivity(sensitivity)), check_epsilon(epsilon)
    return _finite_scale(sensitivity / epsilon, epsilon)


def _finite_scale(scale: float, epsilon: float) -> float:
    # sensitivity / epsilon can overflow (epsilon = 1e-320): inf noise would release inf
    if not math.isfinite(scale):
        raise ParameterError(
            "epsilon", epsilon, "large enough that sensitivity / epsilon is a finite float"
        )
    return scale


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Return the smallest Gaussian sigma giving (epsilon, delta)-DP, from dp-accounting's PLD.

    This is the exact ("analytic", Balle & Wang 2018) calibration; it is valid for every epsilon,
    unlike the textbook sqrt(2 ln(1.25/delta)) * sensitivity / epsilon, which needs epsilon < 1.
    """
    sensitivity = float(check_sensitivity(sensitivity))
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)
    # dp-accounting's closed-form Gaussian privacy loss (Balle & Wang's delta(epsilon, sigma)),
    # searched over sigma: exact and instant at any epsilon, where a discretised PLD search
    # took seconds to minutes and gigabytes for large epsilon (small sigma).
    try:
        loss = privacy_loss_mechanism.GaussianPrivacyLoss.from_privacy_guarantee(
            pld_common.DifferentialPrivacyParameters(epsilon, delta), sensitivity=sensitivity
        )
        sigma = float(loss.standard_deviation)
    except (OverflowError, ZeroDivisionError) as err:  # the search leaves float64
        name, value = ("epsilon", epsilon) if epsilon < 1 else ("sensitivity", sensitivity)
        raise ParameterError(
            name, value, "such that sigma, about sensitivity / epsilon, is a finite float",
            f"sensitivity={sensitivity:g}, epsilon={epsilon:g}",
        ) from err  # fmt: skip
    return _finite_scale(sigma, epsilon)


def classic_gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Return Dwork & Roth's sigma = sqrt(2 ln(1.25/delta)) * sensitivity / epsilon (eps < 1)."""
    sensitivity = float(check_sensitivity(sensitivity))
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)
    if epsilon >= 1:
        raise ParameterError("epsilon", epsilon, "< 1 for the classic Gaussian bound")
    return _finite_scale(math.sqrt(2 * math.log(1.25 / delta)) * sensitivity / epsilon, epsilon)


def laplace_mechanism(value, sensitivity: float, epsilon: float, seed=None) -> np.ndarray:
    """Return ``value`` + Laplace(sensitivity/epsilon) noise per coordinate (textbook, float).

    Fine for teaching; a deployment should prefer ``discrete_laplace_mechanism``, because float
    Laplace noise leaks through its low-order bits (Mironov 2012, see ``float_attack``).
    """
    b = laplace_scale(sensitivity, epsilon)
    value = check_finite_array("value", value)  # NaN + noise would release NaN
    return value + make_rng(seed).laplace(0.0, b, size=value.shape)


def gaussian_mechanism(value, sensitivity: float, epsilon: float, delta: float, seed=None):
    """Return ``value`` + Gaussian noise for L2 ``sensitivity`` at (epsilon, delta)-DP."""
    sigma = gaussian_sigma(sensitivity, epsilon, delta)
    value = check_finite_array("value", value)
    return value + make_rng(seed).normal(0.0, sigma, size=value.shape)


def composed_epsilon(epsilons: list[float], delta: float = 0.0) -> float:
    """Return the epsilon of running Laplace mechanisms with these epsilons on the same data.

    ``delta = 0``: basic composition, the sum. ``delta > 0``: dp-accounting's PLD accountant,
    which is tighter than the sum (and than the advanced composition theorem) for many queries.
    """
    eps = [check_epsilon(f"epsilons[{i}]", e) for i, e in enumerate(epsilons)]
    if not eps:
        raise ParameterError("epsilons", epsilons, "a non-empty list")
    if delta == 0:
        return float(sum(eps))
    delta = check_delta(delta)
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    # Equal epsilons as one self-composition: the PLD is raised to the k-th power by FFT, about
    # 30x faster than k one-by-one convolutions for k = 100, with the same epsilon to 1e-8.
    events = [
        dp_accounting.SelfComposedDpEvent(dp_accounting.LaplaceDpEvent(1 / e), k)
        for e, k in Counter(eps).items()
    ]
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return float(min(acc.get_epsilon(delta), sum(eps)))


# --- exact integer samplers (Canonne, Kamath & Steinke 2020) ------------------------------
# Hand-written because no package in this stack offers them (OpenDP does, as a compiled
# library); every step uses integer or rational arithmetic, so no float rounding can leak.
def _rng(rng: random.Random | None) -> random.Random:
    # Cryptographic randomness by default; a seeded random.Random only for reproducible tests.
    return random.SystemRandom() if rng is None else rng


def _bernoulli(p: Fraction, rng: random.Random) -> bool:
    return rng.randrange(p.denominator) < p.numerator


def bernoulli_exp(gamma: Number, rng: random.Random | None = None) -> bool:
    """Return True with probability exp(-gamma), exactly, for a rational gamma >= 0 (CKS Alg. 1)."""
    gamma = _check_rational("gamma", gamma, strict=False)
    rng = _rng(rng)
    while gamma > 1:  # exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma)))
        if not bernoulli_exp(1, rng):
            return False
        gamma -= 1
    k = 1
    while _bernoulli(gamma / k, rng):
        k += 1
    return k % 2 == 1


def sample_discrete_laplace(scale: Number, rng: random.Random | None = None) -> int:
    """Return one draw Z with P[Z = z] proportional to exp(-|z| / scale), exactly (CKS Alg. 2)."""
    scale = _check_rational("scale", scale)
    rng = _rng(rng)
    t, s = scale.numerator, scale.denominator  # scale = t / s
    while True:
        u = rng.randrange(t)
        if not bernoulli_exp(Fraction(u, t), rng):
            continue
        v = 0
        while bernoulli_exp(1, rng):
            v += 1
        y = (u + t * v) // s  # geometric with success probability 1 - exp(-s/t)
        b = rng.randrange(2)
        if b == 1 and y == 0:
            continue
        return -y if b else y


def sample_discrete_gaussian(sigma: Number, rng: random.Random | None = None) -> int:
    """Return one draw Z with P[Z = z] proportional to exp(-z^2 / (2 sigma^2)) (CKS Alg. 3).

    ``sigma`` is converted to an exact rational; sigma^2 is used exactly.
    """
    sigma = _check_rational("sigma", sigma)
    rng = _rng(rng)
    sigma2 = sigma * sigma
    t = math.isqrt(math.floor(sigma2)) + 1  # floor(sigma) + 1
    while True:
        y = sample_discrete_laplace(t, rng)
        if bernoulli_exp((abs(y) - sigma2 / t) ** 2 / (2 * sigma2), rng):
            return y


def discrete_laplace(scale: Number, size: int, rng: random.Random | None = None) -> np.ndarray:
    """Return ``size`` exact discrete Laplace draws as int64."""
    size, scale = check_int("size", size, 0), _check_rational("scale", scale)
    rng = _rng(rng)
    return np.array([sample_discrete_laplace(scale, rng) for _ in range(size)], dtype=np.int64)


def discrete_gaussian(sigma: Number, size: int, rng: random.Random | None = None) -> np.ndarray:
    """Return ``size`` exact discrete Gaussian draws as int64."""
    size, sigma = check_int("size", size, 0), _check_rational("sigma", sigma)
    rng = _rng(rng)
    return np.array([sample_discrete_gaussian(sigma, rng) for _ in range(size)], dtype=np.int64)


_INT64 = np.iinfo(np.int64)


def _check_int_values(value, name: str = "value") -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "O" and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in arr.ravel()
    ):
        pass  # Python ints beyond int64: range-checked below
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ParameterError(name, value, "integer-valued for an integer mechanism")
    # compare as Python ints: np.uint64(2**64 - 1).astype(int64) would wrap to -1
    if arr.size and (int(arr.max()) > _INT64.max or int(arr.min()) < _INT64.min):
        raise ParameterError(name, value, "integers within int64")
    return arr.astype(np.int64)


def _add_noise(arr: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Return arr + noise, refusing a sum that leaves int64 (it would wrap to -2^63)."""
    exact = np.asarray(arr.astype(object) + noise.reshape(arr.shape).astype(object), object)
    if exact.size and (max(exact.ravel()) > _INT64.max or min(exact.ravel()) < _INT64.min):
        raise ParameterError(
            "value", arr, "integers whose noisy release fits int64",
            "the noise would carry it past +-2^63; use values further from the int64 limits",
        )  # fmt: skip
    return exact.astype(np.int64)


def discrete_laplace_mechanism(
    value, sensitivity: int, epsilon: float, rng: random.Random | None = None
) -> np.ndarray:
    """Return integer ``value`` + exact discrete Laplace(sensitivity/epsilon) noise: epsilon-DP."""
    sensitivity = check_int("sensitivity", sensitivity, 1)
    scale = Fraction(sensitivity) / Fraction(check_epsilon(epsilon))  # exact, no rounding
    arr = _check_int_values(value)
    return _add_noise(arr, discrete_laplace(scale, arr.size, rng))


def discrete_gaussian_sigma(sensitivity: int, epsilon: float, delta: float) -> float:
    """Return the smallest discrete-Gaussian sigma (to 1e-4 relative) for (epsilon, delta)-DP.

    The privacy of a given sigma comes from dp-accounting's exact discrete-Gaussian PLD; only the
    one-dimensional search over sigma is done here (dp-accounting has no DpEvent for it).
    """
    sensitivity = check_int("sensitivity", sensitivity, 1)
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)

    def eps_of(sigma: float) -> float:
        dist = pld.from_discrete_gaussian_mechanism(
            sigma, sensitivity=sensitivity, value_discretization_interval=1e-4
        )
        return dist.get_epsilon_for_delta(delta)

    lo, hi = 0.5 * sensitivity / epsilon, gaussian_sigma(sensitivity, epsilon, delta) * 2 + 1
    while hi - lo > 1e-4 * hi:  # eps_of decreases with sigma
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if eps_of(mid) <= epsilon else (mid, hi)
    return hi


def discrete_gaussian_mechanism(
    value, sensitivity: int, epsilon: float, delta: float, rng: random.Random | None = None
) -> np.ndarray:
    """Return integer ``value`` + exact discrete Gaussian noise for (epsilon, delta)-DP."""
    sigma = discrete_gaussian_sigma(sensitivity, epsilon, delta)
    arr = _check_int_values(value)
    return _add_noise(arr, discrete_gaussian(sigma, arr.size, rng))


# --- queries on a real table ---------------------------------------------------------------
def private_count(mask, epsilon: float, rng: random.Random | None = None) -> int:
    """Return the number of True entries + discrete Laplace noise (sensitivity 1): epsilon-DP."""
    count = int(np.count_nonzero(np.asarray(mask, dtype=bool)))
    return int(discrete_laplace_mechanism(count, 1, epsilon, rng))


def private_sum(
    values, lower: int, upper: int, epsilon: float, rng: random.Random | None = None
) -> int:
    """Return the sum of integer ``values`` clamped to [lower, upper] + discrete Laplace noise.

    Adding or removing one record moves the clamped sum by at most max(|lower|, |upper|).
    """
    lower = check_int("lower", lower)
    upper = check_int("upper", upper)
    if upper <= lower:
        raise ParameterError("upper", upper, f"an integer > lower={lower}")
    clamped = np.clip(_check_int_values(values, "values"), lower, upper)
    sensitivity = max(abs(lower), abs(upper))
    return int(discrete_laplace_mechanism(int(clamped.sum()), sensitivity, epsilon, rng))


def private_mean(
    values, lower: int, upper: int, epsilon: float, rng: random.Random | None = None
) -> float:
    """Return a noisy sum over a noisy count, each with epsilon/2 (composition: epsilon-DP)."""
    epsilon = check_epsilon(epsilon)
    total = private_sum(values, lower, upper, epsilon / 2, rng)
    count = private_count(np.ones(np.size(values), bool), epsilon / 2, rng)
    return total / max(count, 1)  # post-processing: costs no privacy


def private_histogram(
    labels, categories, epsilon: float, rng: random.Random | None = None
) -> np.ndarray:
    """Return per-category counts + discrete Laplace noise (one record, one bin): epsilon-DP."""
    labels = np.asarray(labels)
    counts = np.array([np.count_nonzero(labels == c) for c in categories], dtype=np.int64)
    return discrete_laplace_mechanism(counts, 1, epsilon, rng)


# --- Mironov's floating-point attack ------------------------------------------------------
def numpy_laplace_release(value: float, scale: float, size: int, seed=None) -> np.ndarray:
    """Return ``size`` releases ``value + rng.laplace(0, scale)``: the textbook float mechanism."""
    value = float(check_finite_array("value", value))
    scale, size = check_positive("scale", scale), check_int("size", size, 0)
    return value + make_rng(seed).laplace(0.0, scale, size=size)


def _numpy_noise(k: int, scale: float) -> float:
    # NumPy's random_laplace with U = k / 2^53 (its next_double), same operations in the same order.
    u = k / 9007199254740992.0
    if u >= 0.5:
        return 0.0 - scale * math.log(2.0 - u - u)
    return 0.0 + scale * math.log(u + u)


def _reachable(output: float, value: float, scale: float, max_window: int) -> bool:
    """Return True if some 53-bit draw makes NumPy's sampler release ``output`` from ``value``."""
    noise = output - value
    arg = math.exp(-abs(noise) / scale)  # the argument of the log in NumPy's sampler
    if arg == 0.0:
        return False
    u = 1.0 - arg / 2 if noise >= 0 else arg / 2
    k0 = round(u * 9007199254740992.0)
    # k-step of the noise near k0 versus the float spacing of the output: how many k to try.
    step = scale / (arg * 2.0**52)
    window = math.ceil(np.spacing(abs(output)) / step) + 2
    if window > max_window:
        return True  # dense region: many draws land on every output, cannot rule value out
    for k in range(max(1, k0 - window), min(2**53 - 1, k0 + window) + 1):
        if value + _numpy_noise(k, scale) == output:
            return True
    return False


@dataclass(frozen=True)
class FloatAttack:
    """Outcome of testing releases against two candidate true values."""

    num_releases: int
    only_a: int  # releases reachable from value_a but impossible from value_b
    only_b: int
    both: int
    neither: int

    def summary(self) -> str:
        """Return a fixed-precision one-line summary."""
        n = self.num_releases
        return (
            f"{n} releases: {self.only_a / n:.1%} reveal the true value with certainty, "
            f"{self.both / n:.1%} are ambiguous, {self.only_b / n:.1%} point to the other value"
        )


def float_attack(
    outputs, value_a: float, value_b: float, scale: float, max_window: int = 64
) -> FloatAttack:
    """Decide per release whether it can come from ``value_a`` and/or ``value_b`` (Mironov 2012).

    The attacker knows the mechanism (NumPy's Laplace sampler and the scale) and tests whether
    the released float is in the image of ``value + noise`` over all 2^53 uniform draws near it.
    """
    scale = check_positive("scale", scale)
    value_a = float(check_finite_array("value_a", value_a))
    value_b = float(check_finite_array("value_b", value_b))
    counts = {"a": 0, "b": 0, "both": 0, "neither": 0}
    outputs = np.asarray(outputs, dtype=np.float64).ravel()
    for o in outputs:
        ra = _reachable(float(o), value_a, scale, max_window)
        rb = _reachable(float(o), value_b, scale, max_window)
        key = "both" if ra and rb else "a" if ra else "b" if rb else "neither"
        counts[key] += 1
    return FloatAttack(outputs.size, counts["a"], counts["b"], counts["both"], counts["neither"])
