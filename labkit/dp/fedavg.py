"""DP-FedAvg (McMahan et al., ICLR 2018): user-level DP as an aggregator for ``labkit.fl``.

Each sampled client's whole update is clipped to L2 norm ``l2_norm_clip``; the server sums the
clipped updates, adds Gaussian noise with std ``noise_multiplier * l2_norm_clip`` and divides by
the *expected* number of clients per round (a fixed denominator). Adding or removing one user
changes the noisy sum by at most ``l2_norm_clip``, whatever that user's data, so each round is a
Gaussian mechanism on users, and with client sampling at rate q = clients_per_round / num_clients
the rounds compose as a sampled Gaussian mechanism (accounted by dp-accounting).

Why equal weights and not FedAvg's example counts: user-level DP needs one user's influence on
the aggregate to be bounded by a constant. With weights n_k / sum(n), a user with many examples
moves the mean further, and the normalising sum itself depends on who took part, so the
sensitivity is not a fixed multiple of the clip. McMahan et al. also allow capped weights
min(n_k / w_hat, 1); equal weights are the special case used here and in TF Federated's
``DifferentiallyPrivateFactory``.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np

from labkit.aggregation import Aggregator, flatten_weights, unflatten_weights
from labkit.config import make_rng
from labkit.dp.accounting import check_delta, dpsgd_event, make_accountant

__all__ = [
    "clip_update",
    "dpfedavg_event",
    "dpfedavg_epsilon",
    "DPFedAvgAggregator",
]


def _check_clip(l2_norm_clip: float) -> float:
    if not (isinstance(l2_norm_clip, int | float) and math.isfinite(l2_norm_clip)):
        raise ValueError(f"l2_norm_clip must be a finite number > 0, got {l2_norm_clip!r}")
    if l2_norm_clip <= 0:
        raise ValueError(f"l2_norm_clip must be a finite number > 0, got {l2_norm_clip!r}")
    return float(l2_norm_clip)


def _check_noise(noise_multiplier: float) -> float:
    if not (
        isinstance(noise_multiplier, int | float)
        and math.isfinite(noise_multiplier)
        and noise_multiplier >= 0
    ):
        raise ValueError(f"noise_multiplier must be a finite number >= 0, got {noise_multiplier!r}")
    return float(noise_multiplier)


def _check_count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def clip_update(vector: np.ndarray, l2_norm_clip: float) -> tuple[np.ndarray, float]:
    """Return ``vector`` scaled to L2 norm <= ``l2_norm_clip``, and its norm before clipping."""
    l2_norm_clip = _check_clip(l2_norm_clip)
    v = np.asarray(vector, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("vector must be finite (no NaN or inf) to be clipped")
    norm = float(np.linalg.norm(v))
    return v * min(1.0, l2_norm_clip / norm) if norm > 0 else v.copy(), norm


def dpfedavg_event(
    noise_multiplier: float, clients_per_round: int, num_clients: int, num_rounds: int
) -> dp_accounting.DpEvent:
    """Return the dp-accounting event of ``num_rounds`` client-sampled Gaussian rounds."""
    num_clients = _check_count("num_clients", num_clients)
    clients_per_round = _check_count("clients_per_round", clients_per_round)
    if clients_per_round > num_clients:
        raise ValueError(
            f"clients_per_round must be in [1, num_clients={num_clients}], got {clients_per_round}"
        )
    num_rounds = _check_count("num_rounds", num_rounds)
    # A round is a DP-SGD step on users: same event, users in place of examples.
    return dpsgd_event(_check_noise(noise_multiplier), clients_per_round, num_clients, num_rounds)


def dpfedavg_epsilon(
    noise_multiplier: float,
    clients_per_round: int,
    num_clients: int,
    num_rounds: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """Return the user-level epsilon at ``delta`` after ``num_rounds`` rounds of DP-FedAvg.

    Accounts Poisson client sampling at rate q = clients_per_round / num_clients (as McMahan et
    al. 2018 do). ``labkit.fl.fedavg`` samples exactly m clients without replacement; the Poisson
    figure is the customary stand-in for it, as for shuffled batches in DP-SGD.
    """
    delta = check_delta(delta)
    event = dpfedavg_event(noise_multiplier, clients_per_round, num_clients, num_rounds)
    if noise_multiplier == 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


class DPFedAvgAggregator(Aggregator):
    """DP-FedAvg's server: clip each update to ``l2_norm_clip``, sum, add noise, divide by m.

    ``aggregate`` ignores the example counts (equal weights bound each user's influence; see the
    module docstring) and divides by ``clients_per_round`` (the expected number per round), not by
    the number received. The noise std on the returned mean is
    ``noise_multiplier * l2_norm_clip / clients_per_round`` per coordinate.

    ``sum_aggregator`` (default: plain NumPy) computes the unweighted mean of the clipped updates;
    pass ``labkit.he.SecureAggregator(..., weighted=False)`` so the server only ever sees the
    encrypted sum. ``noise_at='server'`` adds the noise to the decrypted sum (whoever decrypts
    sees the exact clipped sum); ``noise_at='clients'`` has each client add its share, std
    ``noise_multiplier * l2_norm_clip / sqrt(clients_per_round)``, before sending, so the sum
    of ``clients_per_round`` shares has the full std and nobody sees an un-noised sum (distributed
    DP; Kairouz et al. 2021 use discrete Gaussian shares for this, here they are continuous).

    ``history`` records per round: clients, how many were clipped, median norm before clipping.
    The noise comes from NumPy's generator (seedable, for tests); a deployment needs a
    cryptographically secure, float-safe sampler (see ``labkit.dp`` mechanisms).
    """

    NOISE_PLACES = ("server", "clients")

    def __init__(
        self,
        l2_norm_clip: float,
        noise_multiplier: float,
        clients_per_round: int,
        sum_aggregator: Aggregator | None = None,
        noise_at: str = "server",
        seed: int | np.random.Generator | None = 0,
    ):
        self.l2_norm_clip = _check_clip(l2_norm_clip)
        self.noise_multiplier = _check_noise(noise_multiplier)
        self.clients_per_round = _check_count("clients_per_round", clients_per_round)
        if noise_at not in self.NOISE_PLACES:
            raise ValueError(f"noise_at must be one of {self.NOISE_PLACES}, got {noise_at!r}")
        self.noise_at = noise_at
        self.sum_aggregator = sum_aggregator
        self.rng = make_rng(seed)
        self.history: list[dict] = []
        self.name = f"DP-FedAvg (z={self.noise_multiplier:g}, C={self.l2_norm_clip:g})"

    @property
    def num_rounds(self) -> int:
        """Return the number of rounds aggregated so far (what the accountant composes)."""
        return len(self.history)

    @property
    def noise_std(self) -> float:
        """Return the per-coordinate noise std on the returned mean update."""
        return self.noise_multiplier * self.l2_norm_clip / self.clients_per_round

    def epsilon(self, num_clients: int, delta: float, accountant: str = "rdp") -> float:
        """Return the user-level epsilon at ``delta`` for the rounds run so far."""
        if self.num_rounds == 0:
            return 0.0
        return dpfedavg_epsilon(
            self.noise_multiplier,
            self.clients_per_round,
            num_clients,
            self.num_rounds,
            delta,
            accountant,
        )

    def aggregate(self, updates: list, weights: np.ndarray) -> list:
        """Return (sum of clipped updates + N(0, (z C)^2 I)) / clients_per_round."""
        if len(updates) == 0:
            raise ValueError("updates must hold at least one client's update, got 0")
        vectors = [flatten_weights(u) for u in updates]
        dim = vectors[0].size
        for k, v in enumerate(vectors):
            if v.size != dim:
                raise ValueError(f"updates[{k}] has {v.size} values, expected {dim}")
        clipped, norms = zip(*(clip_update(v, self.l2_norm_clip) for v in vectors), strict=True)
        clipped = list(clipped)
        sigma = self.noise_multiplier * self.l2_norm_clip
        if self.noise_at == "clients" and sigma > 0:
            share = sigma / math.sqrt(self.clients_per_round)
            clipped = [c + self.rng.normal(0.0, share, size=dim) for c in clipped]
        k = len(clipped)
        if self.sum_aggregator is None:
            total = np.sum(clipped, axis=0)
        else:
            # Any aggregator returning the unweighted mean; times k gives the sum it protects.
            shaped = [unflatten_weights(c, updates[0]) for c in clipped]
            mean = self.sum_aggregator.aggregate(shaped, np.ones(k))
            total = flatten_weights(mean) * k
        if self.noise_at == "server" and sigma > 0:
            total = total + self.rng.normal(0.0, sigma, size=dim)
        self.history.append(
            {
                "clients": k,
                "clipped": int(sum(n > self.l2_norm_clip for n in norms)),
                "median_norm": float(np.median(norms)),
            }
        )
        # float64 result: unflatten casts back to each array's dtype.
        return unflatten_weights(total / self.clients_per_round, updates[0])

    def __repr__(self) -> str:
        return (
            f"DPFedAvgAggregator(l2_norm_clip={self.l2_norm_clip}, noise_multiplier="
            f"{self.noise_multiplier}, clients_per_round={self.clients_per_round}, "
            f"noise_at={self.noise_at!r})"
        )
