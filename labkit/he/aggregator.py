"""Secure aggregation: one packed round (``secure_aggregate``) and FedAvg's Paillier server."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from phe import paillier

from labkit._checks import ParameterError, check_bool
from labkit.aggregation import Aggregator, check_num_examples, flatten_weights, unflatten_weights
from labkit.he._pool import Workers, check_workers
from labkit.he.djn import FastEncryptor
from labkit.he.encoding import check_values
from labkit.he.keys import KeyMismatchError, check_private_key, check_public_key
from labkit.he.packing import PackingSpec, quantize
from labkit.he.vectors import (
    decrypt_vector,
    encrypt_packed,
    encrypted_weighted_mean,
    encrypted_weighted_sum,
)

__all__ = ["secure_aggregate", "SecureAggregator"]


def _check_vectors(updates: Sequence, name: str = "updates") -> list[np.ndarray]:
    """Return the updates as float64 vectors of one length, every value finite."""
    vectors = [check_values(u, f"{name}[{k}]") for k, u in enumerate(updates)]
    if not vectors:
        raise ParameterError(name, list(updates), "at least one client's update")
    for k, v in enumerate(vectors):
        if v.size != vectors[0].size:
            raise ParameterError(f"{name}[{k}]", f"{v.size} values", f"{vectors[0].size} values")
    return vectors


def _check_setup(public_key, private_key, spec, encryptor) -> None:
    check_public_key("public_key", public_key)
    check_private_key(private_key, public_key)
    if not isinstance(spec, PackingSpec):
        raise ParameterError("spec", type(spec).__name__, "a PackingSpec")
    spec.slots(public_key)  # raises if not one slot fits the key
    if encryptor is not None and not isinstance(encryptor, FastEncryptor):
        raise ParameterError("encryptor", type(encryptor).__name__, "a FastEncryptor or None")
    if encryptor is not None and encryptor.public_key != public_key:
        raise KeyMismatchError(
            "encryptor", "built for another key", "built for the public key it encrypts under"
        )


def _pool_for(workers) -> tuple[int | Workers, bool]:
    """Return a pool spanning a whole round (one start-up, not one per client) and if we own it."""
    workers = check_workers(workers)
    if isinstance(workers, int) and workers > 1:
        return Workers(workers), True
    return workers, False


def secure_aggregate(
    updates: Sequence,
    public_key: paillier.PaillierPublicKey,
    private_key: paillier.PaillierPrivateKey,
    spec: PackingSpec,
    weights=None,
    mean: bool = False,
    encryptor: FastEncryptor | None = None,
    workers=1,
) -> np.ndarray:
    """Run one packed round: check every input, encrypt each update, sum, decrypt the aggregate.

    All checks (finite values in range, equal lengths, integer weights within the headroom) run
    before the first encryption, so a round that could overflow never starts. Returns the
    weighted sum, or with ``mean=True`` the weighted mean; weights default to 1 per update.
    """
    _check_setup(public_key, private_key, spec, encryptor)
    mean = check_bool("mean", mean)
    vectors = _check_vectors(updates)
    w = spec.check_weights([1] * len(vectors) if weights is None else weights, len(vectors))
    for k, v in enumerate(vectors):
        quantize(v, spec, name=f"updates[{k}]")
    pool, own = _pool_for(workers)
    try:
        encrypted = [encrypt_packed(public_key, v, spec, encryptor, pool) for v in vectors]
        combine = encrypted_weighted_mean if mean else encrypted_weighted_sum
        return decrypt_vector(private_key, combine(encrypted, w), workers=pool)
    finally:
        if own:
            pool.close()


class SecureAggregator(Aggregator):
    """FedAvg's server under Paillier: the server adds ciphertexts; only the aggregate is decrypted.

    For each sampled client, ``aggregate`` plays three roles in order:
    client: flatten its update, clip each value into ``[spec.low, spec.high]`` (counted in
    ``history``), quantise, pack and encrypt it (DJN fast encryption);
    server: multiply the ciphertexts, raising each client's to its public integer weight
    (its example count, or 1 with ``weighted=False``), which gives E(sum_k n_k q_k), never
    decrypting a single client's vector;
    key holder: decrypt only that aggregate and divide by sum(n_k) (``encrypted_weighted_mean``).

    The weighted mean differs from ``WeightedMean`` by at most ``spec.step / 2`` per value when
    nothing is clipped. Every check (finite values, integer example counts, total weight within
    ``spec.max_summands``: ``HeadroomError``) runs before the first encryption. The server still
    learns the example counts (public weights) and the aggregate's key holder learns the sum;
    a single simulated key holder stands in for a threshold key or a separate trusted party.

    Args:
        public_key: the phe public key the clients encrypt under.
        private_key: the matching private key (the simulated key holder's).
        spec: the ``PackingSpec``; its ``max_summands`` must cover the round's total weight
            (the sum of ``num_examples``, or the number of clients with ``weighted=False``).
        weighted: weight clients by ``num_examples`` (FedAvg) or equally.
        clip: clip values into the packing range (counted) instead of refusing them.
        encryptor: a ``FastEncryptor`` for ``public_key`` (one is built by default).
        workers: 1, an integer > 1 (a process pool per round) or a ``Workers`` pool.
    """

    def __init__(
        self,
        public_key: paillier.PaillierPublicKey,
        private_key: paillier.PaillierPrivateKey,
        spec: PackingSpec,
        weighted: bool = True,
        clip: bool = True,
        encryptor: FastEncryptor | None = None,
        workers=1,
    ):
        _check_setup(public_key, private_key, spec, encryptor)
        self.public_key = public_key
        self._private_key = private_key
        self.spec = spec
        self.weighted = check_bool("weighted", weighted)
        self.clip = check_bool("clip", clip)
        self.encryptor = FastEncryptor(public_key) if encryptor is None else encryptor
        self.workers = check_workers(workers)
        self.history: list[dict] = []
        self.name = "secure aggregation" + ("" if self.weighted else " (unweighted)")

    def aggregate(self, updates: list, num_examples) -> list:
        """Return the (example-count-)weighted mean of ``updates`` computed under encryption.

        Args:
            updates: one list of arrays per client (the same shapes for every client).
            num_examples: each client's number of examples (integers), its weight.

        Returns:
            The weighted mean as a list of arrays shaped like one update.
        """
        if len(updates) == 0:
            raise ParameterError("updates", updates, "at least one client's update")
        vectors = _check_vectors([flatten_weights(u) for u in updates])
        if self.weighted:
            counts = check_num_examples(num_examples, len(vectors))
            w = self.spec.check_weights(list(counts), len(vectors), "num_examples")
        else:
            w = self.spec.check_weights([1] * len(vectors))
        clipped = 0
        if self.clip:
            clipped = int(sum(np.sum((v < self.spec.low) | (v > self.spec.high)) for v in vectors))
            vectors = [np.clip(v, self.spec.low, self.spec.high) for v in vectors]
        else:
            for k, v in enumerate(vectors):
                quantize(v, self.spec, name=f"updates[{k}]")  # ValueRangeError before encrypting
        pool, own = _pool_for(self.workers)
        try:
            t0 = time.perf_counter()
            encrypted = [
                encrypt_packed(self.public_key, v, self.spec, self.encryptor, pool) for v in vectors
            ]
            t1 = time.perf_counter()
            combined = encrypted_weighted_mean(encrypted, w)  # the server's whole job
            t2 = time.perf_counter()
            mean = decrypt_vector(self._private_key, combined, workers=pool)
            t3 = time.perf_counter()
        finally:
            if own:
                pool.close()
        self.history.append(
            {
                "clients": len(vectors),
                "values_per_client": int(vectors[0].size),
                "ciphertexts_per_client": len(encrypted[0].ciphertexts),
                "bytes_up_per_client": encrypted[0].nbytes,
                "plain_bytes_per_client": int(vectors[0].size) * 4,  # float32 on the wire
                "ciphertexts_decrypted": len(combined.ciphertexts),
                "clipped_values": clipped,
                "total_weight": int(sum(w)),
                "seconds_encrypt": t1 - t0,
                "seconds_server": t2 - t1,
                "seconds_decrypt": t3 - t2,
            }
        )
        return unflatten_weights(mean, updates[0])

    def __repr__(self) -> str:
        return (
            f"SecureAggregator({self.public_key.n.bit_length()}-bit key, spec={self.spec}, "
            f"weighted={self.weighted})"
        )
