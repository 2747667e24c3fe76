"""Releasing popular items of a log whose domain is unknown: central and local DP.

Central DP, thresholded partition selection (Korolova et al. 2009; Gopi et al. 2020;
Desfontaines et al. 2022, as Google's and PipelineDP's libraries release a GROUP BY): each user
keeps at most ``max_partitions`` distinct items, each kept item's count gets Laplace (or
Gaussian) noise, and only items whose noisy count passes a threshold are published. Without the
threshold the output would reveal an item that one user alone holds (its mere presence in the
output is the leak), which no amount of noise on the count hides.

Accounting. Changing one user changes at most ``max_partitions`` counts by 1 each.
* The noise on counts present in both neighbours: dp-accounting's privacy-loss distributions
  (``from_laplace_mechanism`` / ``from_gaussian_mechanism`` at L1 sensitivity m / L2 sqrt(m)).
* The items only one user holds: each is published with probability P(1 + noise > threshold);
  over its m items that is <= m * tail, which must stay below delta's share. dp-accounting has no
  partition-selection event, so this tail bound is written here (one line of SciPy). The total is
  (epsilon, delta_noise + delta_threshold) by the union of the two bad events.

Local DP, optimised local hashing (OLH, Wang et al. 2017): each user sends one of its items
through a random hash into g = round(e^eps) + 1 buckets and randomised response over the buckets;
the server counts, for each candidate, the reports whose hash matches. The server must enumerate
candidates itself: with an unknown domain it can only find what is in its candidate list
(``candidates``, e.g. the phrases of public text). Written by hand: no maintained LDP library is
in the stack (the maths is ten lines).
"""

from __future__ import annotations

import functools
import math
import zlib
from collections import Counter

import numpy as np

from labkit._checks import ParameterError, check_choice, check_delta, check_epsilon, check_int
from labkit.dp._random import noise_rng

__all__ = [
    "PARTITION_NOISES",
    "bound_contributions",
    "partition_threshold",
    "partition_selection_epsilon_delta",
    "private_partition_selection",
    "olh_perturb",
    "olh_estimate",
    "local_top_k",
    "top_k_recall",
]

PARTITION_NOISES = ("laplace", "gaussian")


def _check_users(users) -> list[list]:
    if not isinstance(users, list | tuple) or not users:
        raise ParameterError("users", users, "a non-empty list of per-user item lists")
    return [list(u) for u in users]


def bound_contributions(users, max_partitions: int, seed=None) -> list[list]:
    """Return each user's distinct items, at most ``max_partitions`` of them (a random choice)."""
    users = _check_users(users)
    m = check_int("max_partitions", max_partitions, 1)
    rng = noise_rng(seed)
    out = []
    for u in users:
        items = list(dict.fromkeys(u))
        if len(items) > m:
            items = [items[i] for i in sorted(rng.choice(len(items), m, replace=False))]
        out.append(items)
    return out


def _tail(noise: str, scale: float, x: float) -> float:
    """P(noise > x) for Laplace(scale) or N(0, scale^2), x >= 0."""
    if noise == "laplace":
        return 0.5 * math.exp(-x / scale)
    from scipy.stats import norm

    return float(norm.sf(x / scale))


def _noise_scale(noise: str, epsilon: float, delta: float, m: int) -> float:
    """Laplace scale m/eps, or the smallest Gaussian sigma meeting (eps, delta/2) at L2 sqrt(m)."""
    if noise == "laplace":
        return m / epsilon
    from labkit.dp.mechanisms import gaussian_sigma  # analytic Gaussian (Balle & Wang 2018)

    return gaussian_sigma(math.sqrt(m), epsilon, delta / 2.0)


def partition_threshold(
    epsilon: float, delta: float, max_partitions: int, noise: str = "laplace"
) -> tuple[float, float]:
    """Return ``(scale, threshold)``: the noise scale and the count an item must pass.

    Laplace: scale m/eps for the counts (pure eps) and all of delta for the threshold;
    Gaussian: half of delta for the counts, half for the threshold.
    threshold = 1 + the noise's upper quantile at (delta share) / m.
    """
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)
    m = check_int("max_partitions", max_partitions, 1)
    noise = check_choice("noise", noise, PARTITION_NOISES)
    scale = _noise_scale(noise, epsilon, delta, m)
    share = delta if noise == "laplace" else delta / 2.0
    if noise == "laplace":
        x = scale * math.log(m / (2.0 * share)) if m / (2.0 * share) > 1 else 0.0
    else:
        from scipy.stats import norm

        x = scale * float(norm.isf(share / m))
    return scale, 1.0 + max(x, 0.0)


@functools.lru_cache(maxsize=256)  # a PLD takes ~0.3 s; releases repeat the same parameters
def partition_selection_epsilon_delta(
    scale: float, threshold: float, max_partitions: int, noise: str, epsilon: float
) -> float:
    """Return the delta of the release at ``epsilon``, accounted (see the module docstring).

    The counts' part comes from dp-accounting's privacy-loss distribution; the threshold's part
    is ``m * P(1 + noise > threshold)``.
    """
    from dp_accounting.pld import privacy_loss_distribution as pld

    m = check_int("max_partitions", max_partitions, 1)
    noise = check_choice("noise", noise, PARTITION_NOISES)
    if noise == "laplace":
        dist = pld.from_laplace_mechanism(scale, sensitivity=m, value_discretization_interval=1e-4)
    else:
        dist = pld.from_gaussian_mechanism(
            scale, sensitivity=math.sqrt(m), value_discretization_interval=1e-4
        )
    return float(dist.get_delta_for_epsilon(epsilon)) + m * _tail(noise, scale, threshold - 1.0)


def private_partition_selection(
    users,
    epsilon: float,
    delta: float,
    max_partitions: int = 1,
    noise: str = "laplace",
    seed=None,
) -> dict:
    """Release the items of ``users`` with noisy counts, keeping only those above the threshold.

    Args:
        users: one list of items (hashable) per user; the unit of privacy is a user.
        epsilon, delta: the release's guarantee (delta > 0 is needed: the domain is unknown).
        max_partitions: m, the most distinct items a user may contribute (more are dropped at
            random; a larger m counts more of each user but needs more noise).
        noise: ``'laplace'`` or ``'gaussian'``.
        seed: None (default) draws the noise from a cryptographically seeded source; an int
            makes it reproducible (teaching and tests only).

    Returns:
        ``{"counts": {item: noisy count} for the released items, "threshold", "scale",
        "epsilon", "delta"}`` (delta as accounted; at most the ``delta`` asked for).
    """
    scale, threshold = partition_threshold(epsilon, delta, max_partitions, noise)
    rng = noise_rng(seed)
    bounded = bound_contributions(users, max_partitions, rng)
    counts = Counter(item for u in bounded for item in u)
    items = sorted(counts, key=str)  # a fixed order: the noise does not depend on dict order
    true = np.array([counts[i] for i in items], dtype=np.float64)
    if noise == "laplace":
        noisy = true + rng.laplace(0.0, scale, size=len(items))
    else:
        noisy = true + rng.normal(0.0, scale, size=len(items))
    keep = noisy > threshold
    released = {items[i]: float(noisy[i]) for i in np.flatnonzero(keep)}
    spent = partition_selection_epsilon_delta(scale, threshold, max_partitions, noise, epsilon)
    return {
        "counts": released,
        "threshold": threshold,
        "scale": scale,
        "epsilon": float(epsilon),
        "delta": spent,
    }


# --- local DP: optimised local hashing ---------------------------------------------------------

_PRIME = (1 << 31) - 1


def _item_code(item) -> int:
    return zlib.crc32(str(item).encode("utf-8"))


def _buckets(epsilon: float) -> int:
    return int(round(math.exp(epsilon))) + 1


def _hash(a, b, codes, g):
    return ((a * codes + b) % _PRIME) % g


def olh_perturb(items, epsilon: float, seed=None) -> dict:
    """Return the reports of OLH: each user's item (one per user) hashed and randomised.

    Each user draws its own hash (a, b) of the universal family ((a x + b) mod p) mod g and
    reports the bucket of its item with probability e^eps / (e^eps + g - 1), any other bucket
    otherwise: epsilon-LDP per user (Wang et al. 2017).
    """
    epsilon = check_epsilon(epsilon)
    if not isinstance(items, list | tuple) or not items:
        raise ParameterError("items", items, "a non-empty list (one item per user)")
    rng = noise_rng(seed)
    n, g = len(items), _buckets(epsilon)
    a = rng.integers(1, _PRIME, size=n, dtype=np.int64)
    b = rng.integers(0, _PRIME, size=n, dtype=np.int64)
    codes = np.array([_item_code(i) for i in items], dtype=np.int64) % _PRIME
    true = _hash(a, b, codes, g)
    p = math.exp(epsilon) / (math.exp(epsilon) + g - 1)
    other = (true + rng.integers(1, g, size=n)) % g  # uniform over the other g - 1 buckets
    report = np.where(rng.random(n) < p, true, other)
    return {"a": a, "b": b, "report": report, "epsilon": epsilon, "g": g}


def olh_estimate(reports: dict, candidates) -> np.ndarray:
    """Return the unbiased frequency estimate of every candidate from OLH ``reports``."""
    candidates = list(candidates)
    if not candidates:
        raise ParameterError("candidates", candidates, "a non-empty list of items")
    eps, g = reports["epsilon"], reports["g"]
    a, b, rep = reports["a"], reports["b"], reports["report"]
    n = len(rep)
    p = math.exp(eps) / (math.exp(eps) + g - 1)
    codes = np.array([_item_code(c) for c in candidates], dtype=np.int64) % _PRIME
    support = np.zeros(len(codes))
    step = max(1, 4_000_000 // n)  # (users x candidates) in slices, to bound memory
    for s in range(0, len(codes), step):
        c = codes[s : s + step]
        hit = _hash(a[:, None], b[:, None], c[None, :], g) == rep[:, None]
        support[s : s + len(c)] = hit.sum(axis=0)
    return (support - n / g) / (p - 1.0 / g)


def local_top_k(users, candidates, k: int, epsilon: float, seed=None) -> list:
    """Each user reports one of its items (at random) with OLH; return the top ``k`` candidates."""
    users = _check_users(users)
    k = check_int("k", k, 1)
    rng = noise_rng(seed)
    items = [u[int(rng.integers(len(u)))] if u else "" for u in users]
    est = olh_estimate(olh_perturb(items, epsilon, rng), candidates)
    candidates = list(candidates)
    return [candidates[i] for i in np.argsort(-est, kind="stable")[:k]]


def top_k_recall(released, users, k: int) -> float:
    """Return the share of the true top ``k`` items (by number of users holding them) that are
    among the released items' top ``k`` (``released``: a ranked list or an item -> count dict)."""
    users = _check_users(users)
    k = check_int("k", k, 1)
    counts = Counter(item for u in users for item in set(u))
    true = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]]
    if isinstance(released, dict):
        released = [i for i, _ in sorted(released.items(), key=lambda kv: -kv[1])]
    return len(set(true) & set(list(released)[:k])) / len(true)
