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

from labkit._checks import (
    FLOAT32_MAX,
    ParameterError,
    check_choice,
    check_delta,
    check_finite_array,
    check_int,
    check_l2_norm_clip,
    check_noise_multiplier,
)
from labkit.aggregation import Aggregator, check_updates, flatten_weights, unflatten_weights
from labkit.dp._random import noise_rng
from labkit.dp.accounting import dpsgd_event, make_accountant

__all__ = [
    "clip_update",
    "dpfedavg_event",
    "dpfedavg_epsilon",
    "DPFedAvgAggregator",
]


def clip_update(vector: np.ndarray, l2_norm_clip: float) -> tuple[np.ndarray, float]:
    """Return ``vector`` scaled to L2 norm <= ``l2_norm_clip``, and its norm before clipping."""
    l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
    v = check_finite_array("vector", vector)
    peak = float(np.abs(v).max()) if v.size else 0.0
    if peak == 0.0:
        return v.copy(), 0.0
    unit = v / peak  # ||v|| = peak ||v / peak||: squares of 1e300 would overflow to inf
    r = float(np.linalg.norm(unit))
    norm = peak * r
    return (v.copy() if norm <= l2_norm_clip else unit * (l2_norm_clip / r)), norm


def dpfedavg_event(
    noise_multiplier: float, clients_per_round: int, num_clients: int, num_rounds: int
) -> dp_accounting.DpEvent:
    """Return the dp-accounting event of ``num_rounds`` client-sampled Gaussian rounds."""
    num_clients = check_int("num_clients", num_clients, 1)
    clients_per_round = check_int("clients_per_round", clients_per_round, 1, num_clients)
    num_rounds = check_int("num_rounds", num_rounds, 1)
    # A round is a DP-SGD step on users: same event, users in place of examples.
    return dpsgd_event(
        check_noise_multiplier(noise_multiplier), clients_per_round, num_clients, num_rounds
    )


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
    check_choice("accountant", accountant, ("rdp", "pld"))
    if noise_multiplier == 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


class DPFedAvgAggregator(Aggregator):
    """DP-FedAvg's server: clip each update to ``l2_norm_clip``, sum, add noise, divide by m.

    ``aggregate`` ignores the example counts (equal weights bound each user's influence; see the
    module docstring) and divides by ``clients_per_round`` (m, the expected number per round),
    not by the number received. The noise std on the returned mean is at least
    ``noise_multiplier * l2_norm_clip / clients_per_round`` per coordinate (``noise_std``).

    ``sum_aggregator`` (default: plain NumPy) computes the unweighted mean of the clipped updates;
    pass ``labkit.he.SecureAggregator(..., weighted=False)`` so the server only ever sees the
    encrypted sum. ``noise_at='server'`` adds the noise to the decrypted sum (whoever decrypts
    sees the exact clipped sum); ``noise_at='clients'`` has each client add a share before
    sending, so nobody sees an un-noised sum (distributed DP; Kairouz et al. 2021 use discrete
    Gaussian shares for this, here they are continuous).

    Dropout (clients that never send), and why it is refused rather than accounted: client
    shares are sized in advance, std ``noise_multiplier * l2_norm_clip / sqrt(min_clients)``,
    so that any k >= ``min_clients`` arriving shares sum to at least the noise the accountant
    assumes. If fewer arrive, the sum carries only ``sqrt(k / min_clients)`` of it - 2 of 10:
    0.45 of the noise - and the round is refused before anything is released or counted.
    Accounting for "what was actually added" instead is not sound here: under add/remove
    neighbours the run without a user also lacks that user's share, so a round is no longer a
    Gaussian mechanism with a fixed std that dp-accounting can compose, and a budget fixed in
    advance would silently be overspent. ``min_clients`` < m is the standard remedy: every
    client over-noises by ``sqrt(m / min_clients)`` so that up to m - min_clients may drop out.
    More than ``clients_per_round`` updates is refused whenever there is noise: the accountant's
    sampling rate m / num_clients would under-state how often each user takes part.

    ``history`` records per round: clients, how many were clipped, median norm before clipping.

    Args:
        l2_norm_clip: L2 bound C on each client's whole update (> 0, at most float32's max).
        noise_multiplier: z, finite >= 0; the noise on the sum has std z * C (0: no privacy).
        clients_per_round: m, the expected number of clients per round; the denominator and
            the numerator of the sampling rate the accountant uses.
        sum_aggregator: an ``Aggregator`` returning the unweighted mean of the clipped updates
            (for example ``labkit.he.SecureAggregator(..., weighted=False)``); None sums in NumPy.
        noise_at: ``'server'`` (central DP) or ``'clients'`` (distributed: each adds a share).
        seed: None (default) draws the noise from a generator seeded by the OS's cryptographic
            source, so it is unpredictable; an int (or a Generator) makes it reproducible, for
            teaching and tests only (compare Opacus's ``secure_mode``). NumPy's generator is
            not itself a CSPRNG: a deployment needs a cryptographic, float-safe sampler.
        min_clients: with ``noise_at='clients'``, the fewest arriving clients whose shares
            still carry the full noise (default m, no dropout tolerated); in [1, m].

    Returns:
        ``aggregate(updates, num_examples)`` returns the noisy mean update, shaped like one
        update; ``epsilon(num_clients, delta)`` the user-level epsilon of the rounds so far.

    Raises:
        ParameterError: bad parameters; from ``aggregate``, non-finite or mis-shaped updates,
        more updates than m (with noise), or fewer than ``min_clients`` with client noise.
    """

    NOISE_PLACES = ("server", "clients")

    def __init__(
        self,
        l2_norm_clip: float,
        noise_multiplier: float,
        clients_per_round: int,
        sum_aggregator: Aggregator | None = None,
        noise_at: str = "server",
        seed: int | np.random.Generator | None = None,
        min_clients: int | None = None,
    ):
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier)
        if self.noise_multiplier * self.l2_norm_clip > FLOAT32_MAX:  # the noise's std: inf
            raise ParameterError(
                "noise_multiplier", self.noise_multiplier,
                f"small enough that noise_multiplier * l2_norm_clip <= {FLOAT32_MAX:.3g}",
            )  # fmt: skip
        self.clients_per_round = check_int("clients_per_round", clients_per_round, 1)
        self.noise_at = check_choice("noise_at", noise_at, self.NOISE_PLACES)
        m = self.clients_per_round
        self.min_clients = m if min_clients is None else check_int("min_clients", min_clients, 1, m)
        if min_clients is not None and noise_at != "clients":
            raise ParameterError("min_clients", min_clients, "None unless noise_at='clients'")
        self.sum_aggregator = sum_aggregator
        self.rng = noise_rng(seed)
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

    def _check_arrivals(self, k: int) -> None:
        if self.noise_multiplier == 0:
            return  # no privacy claimed, nothing to protect
        m = self.clients_per_round
        if k > m:
            raise ParameterError(
                "updates",
                f"{k} client updates",
                f"at most clients_per_round={m} updates",
                "the accountant's sampling rate m / num_clients would under-state each user's "
                "participation; declare the real clients_per_round",
            )
        if self.noise_at == "clients" and k < self.min_clients:
            raise ParameterError(
                "updates",
                f"{k} client updates",
                f"at least min_clients={self.min_clients} updates with noise_at='clients'",
                f"dropout: {k} noise shares carry only {math.sqrt(k / self.min_clients):.2f} of "
                "the noise the accountant assumes; set min_clients to the fewest clients "
                "expected to arrive (each share then grows), or use noise_at='server'",
            )

    def aggregate(self, updates: list, num_examples) -> list:
        """Return (sum of clipped updates + N(0, (z C)^2 I) or more) / clients_per_round.

        ``num_examples`` is accepted for the interface and ignored (equal weights).
        """
        check_updates(updates)
        self._check_arrivals(len(updates))
        vectors = [flatten_weights(u) for u in updates]
        dim = vectors[0].size
        clipped, norms = zip(*(clip_update(v, self.l2_norm_clip) for v in vectors), strict=True)
        clipped = list(clipped)
        sigma = self.noise_multiplier * self.l2_norm_clip
        if self.noise_at == "clients" and sigma > 0:
            share = sigma / math.sqrt(self.min_clients)
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
