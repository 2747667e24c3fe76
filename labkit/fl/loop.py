"""Federated averaging (McMahan et al. 2017): sampling, the loop, histories and costs.

``fedavg`` is one loop: each round it samples clients, asks a trainer to "train these clients
from the global weights and return (updates, num_examples)" (``client.OneByOne``, or the
vectorised ``_cohort.CohortTrainer`` behind the same call), hands the updates to an
``Aggregator`` (``labkit.aggregation``) and adds what it returns to the global weights.
``fedsgd`` is the special case E = 1, B = all.

Why a hand-written loop and not TensorFlow Federated: TFF does not install next to TF 2.15 on
Python 3.11 here, and the chapter needs to show each step; Flower can call ``client_update``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from labkit._checks import (
    ParameterError,
    check_bool,
    check_finite_array,
    check_float,
    check_int,
    check_labels,
    check_positive,
    check_probability,
)
from labkit.aggregation import Aggregator, WeightedMean, Weights, check_aggregate
from labkit.config import make_rng, progress
from labkit.fl._cohort import CohortTrainer, dense_layers
from labkit.fl.client import ClientUpdate, OneByOne, make_client_update, make_evaluator

__all__ = [
    "client_datasets",
    "num_sampled_clients",
    "sample_clients",
    "client_schedule",
    "model_bytes",
    "FLHistory",
    "fedavg",
    "fedsgd",
]


def client_datasets(
    x: np.ndarray, y: np.ndarray, partitions: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split ``(x, y)`` into one ``(x_k, y_k)`` pair per index array in ``partitions``."""
    if len(partitions) == 0:
        raise ParameterError("partitions", partitions, "at least 1 client")
    x = np.asarray(x)
    y = check_labels("y", y, len(x))
    clients = []
    for k, idx in enumerate(partitions):
        idx = np.asarray(idx)
        if idx.size == 0:
            raise ParameterError(f"partitions[{k}]", idx, "non-empty: every client needs data")
        if idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= len(x):
            raise ParameterError(f"partitions[{k}]", idx, f"integer indices in [0, {len(x)})")
        clients.append((x[idx], y[idx]))
    return clients


def num_sampled_clients(num_clients: int, client_fraction: float) -> int:
    """Return m = max(round(C * K), 1), the clients sampled per round (McMahan et al. 2017)."""
    num_clients = check_int("num_clients", num_clients, 1)
    client_fraction = check_probability("client_fraction", client_fraction)
    return max(int(round(client_fraction * num_clients)), 1)


def sample_clients(
    num_clients: int, client_fraction: float, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Draw the sorted ids of m = max(round(C K), 1) distinct clients for one round."""
    m = num_sampled_clients(num_clients, client_fraction)
    return np.sort(make_rng(seed).choice(num_clients, size=m, replace=False))


def client_schedule(num_clients: int, clients_per_round: int, seed=0) -> Iterator:
    """Yield, round after round, (sorted ids of the sampled clients, one training seed each).

    The one random sequence behind ``fedavg``'s sampling: one generator seeded with ``seed``
    draws the m clients, then a seed per chosen client. Flower's ServerApp replays it.
    """
    rng = make_rng(seed)
    while True:
        chosen = np.sort(rng.choice(num_clients, size=clients_per_round, replace=False))
        yield chosen, [int(rng.integers(2**31)) for _ in chosen]


def model_bytes(weights: Weights) -> int:
    """Return the bytes needed to send ``weights`` once, uncompressed."""
    return int(sum(np.asarray(w).nbytes for w in weights))


# --- the loop -----------------------------------------------------------------------------------


@dataclass
class FLHistory:
    """Per-round record of a federated run: accuracy, loss, cumulative bytes and seconds."""

    method: str
    num_clients: int
    clients_per_round: int
    local_epochs: int
    batch_size: int | None
    learning_rate: float
    rounds: list[int] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    bytes_up: list[int] = field(default_factory=list)
    bytes_down: list[int] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)

    def rounds_to(self, target: float) -> int | None:
        """Return the first round whose test accuracy is >= ``target``, or None if none was."""
        for r, acc in zip(self.rounds, self.test_accuracy, strict=True):
            if acc >= target:
                return r
        return None

    @property
    def final_accuracy(self) -> float:
        """Test accuracy after the last evaluated round."""
        return self.test_accuracy[-1] if self.test_accuracy else float("nan")


# Traced functions per model, so repeated runs on one model do not trace again.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(model: tf.keras.Model, what: str):
    entry = _CACHE.setdefault(model, {})
    if what not in entry:
        if what == "cohort":
            layers = dense_layers(model)
            entry[what] = CohortTrainer(model, layers) if layers is not None else None
        elif what == "client_update":
            entry[what] = make_client_update(model)
        else:
            entry[what] = make_evaluator(model)
    return entry[what]


def fedavg(
    model: tf.keras.Model,
    clients: Sequence[tuple[np.ndarray, np.ndarray]],
    num_rounds: int,
    *,
    client_fraction: float = 0.1,
    local_epochs: int = 1,
    batch_size: int | None = 10,
    learning_rate: float = 0.1,
    aggregator: Aggregator | None = None,
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
    target_accuracy: float | None = None,
    eval_every: int = 1,
    seed: int | np.random.Generator | None = 0,
    client_update: ClientUpdate | None = None,
    vectorize: bool = True,
    description: str | None = None,
) -> FLHistory:
    """Run FedAvg (McMahan et al. 2017) from ``model``'s weights; leave the result in ``model``.

    Args:
        model: a Keras model (architecture and initial weights); its trainable variables hold
            the final global weights afterwards.
        clients: one ``(x_k, y_k)`` pair per client (integer labels, finite inputs).
        num_rounds: number of communication rounds T.
        client_fraction: C; each round samples m = max(round(C K), 1) of the K clients.
        local_epochs: E, passes over its data each client makes per round.
        batch_size: B, the local minibatch size; None is the whole client (FedSGD's B = all).
        learning_rate: the clients' SGD step size.
        aggregator: the server's rule (a ``labkit.aggregation.Aggregator``), default the
            weighted mean; DP-FedAvg and secure aggregation plug in here.
        test_data: ``(x, y)`` to evaluate the global model on.
        target_accuracy: stop after the first evaluated round that reaches it.
        eval_every: evaluate every this many rounds (and after the last).
        seed: client sampling and local shuffles (not cryptographic: FL's sampling here is
            a simulation choice, not a privacy mechanism).
        client_update: your own ``client_update`` function (see ``make_client_update``).
        vectorize: train a round's clients together for Flatten + Dense models (same result to
            float rounding).
        description: label of the progress bar.

    Returns:
        An ``FLHistory`` with per-round test accuracy, loss, cumulative bytes and seconds.
    """
    num_rounds = check_int("num_rounds", num_rounds, 1)
    eval_every = check_int("eval_every", eval_every, 1)
    local_epochs = check_int("local_epochs", local_epochs, 1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1)
    lr = check_positive("learning_rate", learning_rate)
    if not isinstance(clients, list | tuple) or len(clients) == 0:
        raise ParameterError("clients", clients, "a non-empty list of (x, y) pairs")
    for k, pair in enumerate(clients):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise ParameterError(f"clients[{k}]", pair, "an (x, y) pair")
    if aggregator is not None and not callable(getattr(aggregator, "aggregate", None)):
        raise ParameterError("aggregator", aggregator, "a labkit.aggregation.Aggregator or None")
    if test_data is not None and not (isinstance(test_data, list | tuple) and len(test_data) == 2):
        raise ParameterError("test_data", test_data, "an (x, y) pair or None")
    vectorize = check_bool("vectorize", vectorize)
    m = num_sampled_clients(len(clients), client_fraction)
    if target_accuracy is not None:
        if test_data is None:
            raise ParameterError("test_data", None, "given when target_accuracy is set")
        target_accuracy = check_float("target_accuracy", target_accuracy, 0.0, 1.0)
    shape = _model_shape(model)
    data = [_client_tensors(k, x_k, y_k, *shape) for k, (x_k, y_k) in enumerate(clients)]
    aggregator = WeightedMean() if aggregator is None else aggregator
    trainer = _cached(model, "cohort") if (vectorize and client_update is None) else None
    if trainer is None:
        trainer = OneByOne(client_update or _cached(model, "client_update"))
    evaluate = _cached(model, "evaluate") if test_data is not None else None
    test = _client_tensors("test_data", *test_data, *shape) if test_data is not None else None
    schedule = client_schedule(len(clients), m, seed)

    global_w = [v.numpy() for v in model.trainable_variables]
    size = model_bytes(global_w)
    method = "FedSGD" if (local_epochs == 1 and batch_size is None) else "FedAvg"
    history = FLHistory(method, len(clients), m, local_epochs, batch_size, lr)
    up = down = 0
    start = time.perf_counter()
    bar = progress(range(1, num_rounds + 1), desc=description or method, unit="round")
    for r in bar:
        chosen, seeds = next(schedule)
        cohort = [data[int(k)] for k in chosen]
        updates, counts = trainer(global_w, cohort, local_epochs, batch_size, lr, seeds)
        for k, u in zip(chosen, updates, strict=True):
            if not all(np.all(np.isfinite(a)) for a in u):
                raise ParameterError(
                    "learning_rate", lr, "small enough for local training to stay finite",
                    f"client {int(k)}'s update in round {r} holds NaN or inf",
                )  # fmt: skip
        down += m * size  # the server sends the global model to each sampled client
        up += m * size  # each sends back one model-sized update
        delta = check_aggregate(
            aggregator.aggregate(updates, np.asarray(counts, dtype=np.float64)),
            global_w,
            aggregator,
        )
        global_w = [g + d for g, d in zip(global_w, delta, strict=True)]
        evaluated = evaluate is not None and (r % eval_every == 0 or r == num_rounds)
        if evaluated:
            loss, acc = evaluate(global_w, *test)
            history.test_loss.append(loss)
            history.test_accuracy.append(acc)
            bar.set_postfix(acc=f"{acc:.4f}")
        if evaluated or evaluate is None:
            history.rounds.append(r)
            history.bytes_up.append(up)
            history.bytes_down.append(down)
            history.wall_time.append(time.perf_counter() - start)
        if evaluated and target_accuracy is not None and acc >= target_accuracy:
            break
    for v, w in zip(model.trainable_variables, global_w, strict=True):
        v.assign(w)
    return history


def _model_shape(model) -> tuple[tuple | None, int | None]:
    """Return the model's input shape (without the batch axis) and its number of classes."""
    try:
        inputs, outputs = tuple(model.input_shape[1:]), model.output_shape[-1]
    except (AttributeError, RuntimeError):  # an unbuilt model: Keras checks later
        return None, None
    return inputs, (int(outputs) if outputs else None)


def _fits(expected: tuple, got: tuple) -> bool:
    return len(expected) == len(got) and all(
        a is None or a == b for a, b in zip(expected, got, strict=True)
    )


def _client_tensors(k, x, y, input_shape=None, num_classes=None) -> tuple[tf.Tensor, tf.Tensor]:
    """Check one client's (or the test set's) data and convert it to tensors once."""
    name = f"clients[{k}]" if isinstance(k, int) else k
    if len(x) == 0:
        raise ParameterError(name, x, "at least 1 example")
    y = check_labels(f"{name} labels", y, len(x))
    x = check_finite_array(f"{name} inputs", x, np.float32)
    if num_classes is not None and y.max() >= num_classes:
        # sparse cross-entropy would fail deep in TensorFlow (or, on some kernels, give NaN)
        raise ParameterError(
            f"{name} labels", int(y.max()), f"class labels in [0, {num_classes}) for this model"
        )
    if input_shape is not None and not _fits(input_shape, x.shape[1:]):
        raise ParameterError(
            f"{name} inputs", x, f"rows of shape {input_shape}, as the model takes"
        )
    return tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64)


def fedsgd(model: tf.keras.Model, clients, num_rounds: int, **kwargs) -> FLHistory:
    """Run FedSGD: FedAvg with one local epoch and the whole client as one batch (B = all)."""
    for name in ("local_epochs", "batch_size"):
        if name in kwargs:
            raise ParameterError(name, kwargs[name], "left out: fedsgd fixes it (use fedavg)")
    return fedavg(model, clients, num_rounds, local_epochs=1, batch_size=None, **kwargs)
