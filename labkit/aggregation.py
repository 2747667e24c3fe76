"""The server-aggregation interface: NumPy only, no TensorFlow.

The federated loop (``labkit.fl``) hands an ``Aggregator`` the clients' ``updates`` (one list of
NumPy arrays per client: its locally trained weights minus the global weights it started from,
in the order of ``model.trainable_variables``) and ``num_examples`` (each client's number of
training examples, as in Flower's ``NumPyClient.fit`` contract), and adds what it returns to the
global weights. ``WeightedMean`` is FedAvg's server; DP-FedAvg (``labkit.dp``) and Paillier secure
aggregation (``labkit.he``) implement the same interface, so none of them imports the loop.
"""

from __future__ import annotations

import numpy as np

from labkit._checks import ParameterError, check_bool, check_finite_array

__all__ = [
    "Weights",
    "Aggregator",
    "WeightedMean",
    "weighted_mean",
    "flatten_weights",
    "unflatten_weights",
    "check_updates",
    "check_num_examples",
    "check_aggregate",
]

Weights = list[np.ndarray]


class Aggregator:
    """Server-side rule that combines client updates; subclass it and implement ``aggregate``.

    ``aggregate(updates, num_examples)`` returns one list of arrays with the shapes of one
    update: what the server adds to the global weights. The loop checks the shapes and that
    every value is finite.
    """

    name = "aggregator"

    def aggregate(self, updates: list[Weights], num_examples) -> Weights:
        """Combine per-client ``updates`` (weighted by ``num_examples``) into one global update."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _is_list(value) -> bool:
    return isinstance(value, list | tuple)


def check_updates(updates: list[Weights]) -> None:
    """Raise unless ``updates`` holds >= 1 client, all with the same shapes and finite values.

    Each update is a list of real arrays (one per model variable); strings, ``None``, complex
    and boolean values are refused by name.
    """
    if not _is_list(updates) or len(updates) == 0:
        raise ParameterError("updates", updates, "a non-empty list of client updates")
    for k, u in enumerate(updates):
        if not _is_list(u) or len(u) == 0:
            raise ParameterError(f"updates[{k}]", u, "a non-empty list of arrays, one per variable")
    shapes = [np.shape(a) for a in updates[0]]
    for k, u in enumerate(updates):
        arrays = [check_finite_array(f"updates[{k}][{i}]", a) for i, a in enumerate(u)]
        if [a.shape for a in arrays] != shapes:
            raise ParameterError(f"updates[{k}]", [a.shape for a in arrays], f"shapes {shapes}")


def check_num_examples(num_examples, num_clients: int, *, positive_total: bool = True):
    """Return ``num_examples`` as a float64 vector of ``num_clients`` finite values >= 0."""
    w = check_finite_array("num_examples", num_examples)
    if w.shape != (num_clients,) or np.any(w < 0):
        raise ParameterError(
            "num_examples", num_examples, f"{num_clients} finite non-negative numbers"
        )
    if positive_total and not np.any(w > 0):
        raise ParameterError("num_examples", num_examples, "not all zero")
    return w


def weighted_mean(updates: list[Weights], num_examples, weighted: bool = True) -> Weights:
    """Return ``sum_k p_k * updates[k]`` with ``p_k = n_k / sum(n)`` (or ``1/K`` unweighted).

    A pure function of its inputs, as in Flower's ``aggregate``; sums in float64 so the result
    does not depend on the clients' order beyond rounding.
    """
    check_updates(updates)
    weighted = check_bool("weighted", weighted)
    w = check_num_examples(num_examples, len(updates), positive_total=weighted)
    if weighted:
        w = w / w.max()  # counts near 1e308 would overflow their sum to inf (and p to 0)
        p = w / w.sum()
    else:
        p = np.full(len(updates), 1.0 / len(updates))
    out = []
    for i in range(len(updates[0])):
        stacked = np.stack([np.asarray(u[i], dtype=np.float64) for u in updates])
        # p_k <= 1 and sum p_k = 1, so sum_k p_k u_k stays within max |u_k|: no overflow
        mean = np.tensordot(p, stacked, axes=1)
        dtype = np.asarray(updates[0][i]).dtype
        # integer updates give a float mean (the mean of 1 and 2 is 1.5, not 1)
        out.append(mean.astype(dtype) if dtype.kind == "f" else mean)
    return out


class WeightedMean(Aggregator):
    """FedAvg's server: the mean of client updates weighted by example counts (or unweighted)."""

    def __init__(self, weighted: bool = True):
        self.weighted = check_bool("weighted", weighted)
        self.name = "weighted mean" if self.weighted else "unweighted mean"

    def aggregate(self, updates: list[Weights], num_examples) -> Weights:
        """Return the (weighted) mean of ``updates``; see ``weighted_mean``."""
        return weighted_mean(updates, num_examples, self.weighted)

    def __repr__(self) -> str:
        return f"WeightedMean(weighted={self.weighted})"


def flatten_weights(weights: Weights) -> np.ndarray:
    """Concatenate a list of arrays into one float64 vector (for aggregators that want vectors)."""
    if len(weights) == 0:
        raise ParameterError("weights", weights, "at least one array")
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def unflatten_weights(vector: np.ndarray, like: Weights) -> Weights:
    """Cut ``vector`` back into arrays with the shapes and dtypes of ``like``."""
    vector = np.asarray(vector).ravel()
    sizes = [int(np.size(w)) for w in like]
    if vector.size != sum(sizes):
        raise ParameterError("vector", vector, f"{sum(sizes)} values")
    parts = np.split(vector, np.cumsum(sizes)[:-1])
    return [
        p.reshape(np.shape(w)).astype(np.asarray(w).dtype) for p, w in zip(parts, like, strict=True)
    ]


def check_aggregate(result, reference: Weights, aggregator) -> Weights:
    """Return an aggregator's output cast to ``reference``'s dtypes; raise on shape or NaN/inf."""
    expected = [np.shape(a) for a in reference]
    if not isinstance(result, list | tuple) or len(result) != len(reference):
        got = len(result) if isinstance(result, list | tuple) else type(result).__name__
        raise ParameterError(
            f"the output of {aggregator!r}", got, f"a list of {len(reference)} arrays {expected}"
        )
    out = [np.asarray(a) for a in result]
    got = [a.shape for a in out]
    if got != expected:
        raise ParameterError(f"the output of {aggregator!r}", got, f"shapes {expected}")
    for i, a in enumerate(out):
        if not np.all(np.isfinite(a)):
            raise ParameterError(
                f"the output of {aggregator!r}[{i}]", a, "finite", "the global model would be NaN"
            )
    return [a.astype(np.asarray(r).dtype, copy=False) for a, r in zip(out, reference, strict=True)]
