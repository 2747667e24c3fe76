"""Privacy accounting for DP-SGD through dp-accounting (RDP and PLD): no hand-made epsilon."""

from __future__ import annotations

import math

import dp_accounting

__all__ = [
    "UnreachableEpsilonError",
    "check_epsilon",
    "check_delta",
    "dpsgd_event",
    "make_accountant",
    "dpsgd_epsilon",
    "dpsgd_noise_multiplier",
    "sampling_probability",
    "num_steps",
]

ACCOUNTANTS = ("rdp", "pld")
SAMPLINGS = ("poisson", "shuffle")


class UnreachableEpsilonError(ValueError):
    """The target epsilon cannot be met by any noise multiplier within the allowed range."""


def check_epsilon(epsilon: float, name: str = "epsilon") -> float:
    """Return ``epsilon`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {epsilon!r}")
    return float(epsilon)


def check_delta(delta: float, name: str = "delta") -> float:
    """Return ``delta`` as a float, or raise ``ValueError`` unless 0 < delta < 1."""
    if not (isinstance(delta, int | float) and 0.0 < delta < 1.0):
        raise ValueError(f"{name} must be in the open interval (0, 1), got {delta!r}")
    return float(delta)


def _check_noise(noise_multiplier: float) -> float:
    if not (isinstance(noise_multiplier, int | float) and noise_multiplier >= 0):
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}")
    return float(noise_multiplier)


def sampling_probability(batch_size: int, num_examples: int) -> float:
    """Return the Poisson sampling rate q = batch_size / num_examples, checking both."""
    if not (isinstance(num_examples, int) and num_examples >= 1):
        raise ValueError(f"num_examples must be an integer >= 1, got {num_examples!r}")
    if not (isinstance(batch_size, int) and 1 <= batch_size <= num_examples):
        raise ValueError(
            f"batch_size must be an integer in [1, num_examples={num_examples}], got {batch_size!r}"
        )
    return batch_size / num_examples


def num_steps(epochs: float, batch_size: int, num_examples: int) -> int:
    """Return the number of DP-SGD steps in ``epochs`` passes: ceil(epochs * N / batch_size)."""
    sampling_probability(batch_size, num_examples)
    if not (isinstance(epochs, int | float) and epochs > 0):
        raise ValueError(f"epochs must be > 0, got {epochs!r}")
    return max(1, math.ceil(epochs * num_examples / batch_size))


def dpsgd_event(
    noise_multiplier: float, batch_size: int, num_examples: int, steps: int
) -> dp_accounting.DpEvent:
    """Return the dp-accounting event of ``steps`` Poisson-sampled Gaussian DP-SGD steps."""
    q = sampling_probability(batch_size, num_examples)
    noise_multiplier = _check_noise(noise_multiplier)
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier))
    return dp_accounting.SelfComposedDpEvent(step, steps)


def make_accountant(accountant: str = "rdp") -> dp_accounting.PrivacyAccountant:
    """Return a fresh dp-accounting accountant: ``'rdp'`` (Mironov 2017) or ``'pld'`` (tighter)."""
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if accountant == "pld":
        # 1e-3 discretisation: well under 1% error in epsilon for the settings used here.
        return dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def _check_sampling(sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")


def dpsgd_epsilon(
    noise_multiplier: float,
    batch_size: int,
    num_examples: int,
    epochs: float,
    delta: float,
    accountant: str = "rdp",
    sampling: str = "poisson",
    steps: int | None = None,
) -> float:
    """Return epsilon at ``delta`` for DP-SGD with Poisson sampling at rate batch_size/num_examples.

    ``sampling='shuffle'`` returns the same number (what most papers report), but it is only a
    heuristic for shuffled fixed-size batches: no proof covers it and it can under-state the
    real epsilon (Chua et al. 2024). labkit's trainer samples Poisson batches by default.
    ``steps``, when given, overrides the count derived from ``epochs`` (the steps actually taken).
    """
    _check_sampling(sampling)
    delta = check_delta(delta)
    if steps is None:
        steps = num_steps(epochs, batch_size, num_examples)
    if _check_noise(noise_multiplier) == 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.compose(dpsgd_event(noise_multiplier, batch_size, num_examples, steps))
    return float(acc.get_epsilon(delta))


def dpsgd_noise_multiplier(
    epsilon: float,
    batch_size: int,
    num_examples: int,
    epochs: float,
    delta: float,
    accountant: str = "rdp",
    max_noise_multiplier: float = 100.0,
    tol: float = 1e-3,
) -> float:
    """Return the smallest noise multiplier (to ``tol``) whose DP-SGD run meets ``epsilon``.

    Raises ``UnreachableEpsilonError`` when even ``max_noise_multiplier`` spends more than
    ``epsilon`` (for example a tiny epsilon with many steps at a high sampling rate).
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    steps = num_steps(epochs, batch_size, num_examples)
    if not max_noise_multiplier > 0:
        raise ValueError(f"max_noise_multiplier must be > 0, got {max_noise_multiplier!r}")

    def event(sigma: float) -> dp_accounting.DpEvent:
        return dpsgd_event(sigma, batch_size, num_examples, steps)

    lowest = 1e-2
    if dpsgd_epsilon(lowest, batch_size, num_examples, epochs, delta, accountant) <= epsilon:
        return lowest  # a generous budget: almost no noise already meets it

    best = dpsgd_epsilon(max_noise_multiplier, batch_size, num_examples, epochs, delta, accountant)
    if best > epsilon:
        raise UnreachableEpsilonError(
            f"epsilon={epsilon} at delta={delta} is unreachable: even noise_multiplier="
            f"{max_noise_multiplier} spends epsilon={best:.4g} over {steps} steps; "
            "raise max_noise_multiplier, train fewer epochs or use a smaller batch"
        )
    sigma = dp_accounting.calibrate_dp_mechanism(
        lambda: make_accountant(accountant),
        event,
        epsilon,
        delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(lowest, max_noise_multiplier),
        tol=tol,
    )
    return float(sigma)
