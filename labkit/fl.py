"""Federated averaging (McMahan et al. 2017): client training, pluggable aggregation, the loop.

The pieces are separate so they can be reused on their own:

- ``make_client_update(model)`` returns a plain function
  ``client_update(weights, x, y, local_epochs, batch_size, learning_rate, seed)
  -> (new_weights, num_examples)``: E epochs of minibatch SGD from ``weights`` on one client's data.
  It knows nothing about rounds or servers, so a real framework (Flower's ``NumPyClient.fit``)
  can call it unchanged.
- An ``Aggregator`` turns the clients' updates into one global update. The loop hands it
  ``updates`` (one list of NumPy arrays per client: the client's new weights minus the global
  weights) and ``weights`` (the clients' example counts) and adds what it returns to the global
  model. ``WeightedMean`` is FedAvg's server; DP-FedAvg (clip + noise) and secure aggregation
  (Paillier) are other aggregators plugged into the same loop.
- ``fedavg(...)`` runs the rounds and returns an ``FLHistory``; ``fedsgd(...)`` is the special case
  E=1, B=all (one full-batch gradient step per client per round).

Why a hand-written loop and not TensorFlow Federated: TFF does not install next to TF 2.15 on
Python 3.11 here, and the chapter needs to show each step; Flower can call ``client_update``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from labkit.aggregation import Aggregator, WeightedMean, Weights, check_aggregate
from labkit.config import make_rng, progress

__all__ = [
    "ClientUpdate",
    "make_client_update",
    "make_evaluator",
    "client_datasets",
    "num_sampled_clients",
    "sample_clients",
    "model_bytes",
    "FLHistory",
    "fedavg",
    "fedsgd",
]

ClientUpdate = Callable[..., tuple[Weights, int]]


# --- client training ----------------------------------------------------------------------


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_lr(learning_rate: float) -> float:
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    return float(learning_rate)


def _step_bounds(n: int, local_epochs: int, batch_size: int | None) -> tuple[np.ndarray, ...]:
    """Return start/end offsets into the concatenated epoch permutations, one pair per step."""
    b = n if batch_size is None else min(batch_size, n)
    starts = np.concatenate([e * n + np.arange(0, n, b) for e in range(local_epochs)])
    ends = np.minimum(starts + b, (starts // n + 1) * n)  # the last batch of an epoch may be short
    return starts.astype(np.int32), ends.astype(np.int32)


def make_client_update(model: tf.keras.Model) -> ClientUpdate:
    """Return ``client_update(weights, x, y, local_epochs, batch_size, learning_rate, seed)``.

    The returned function starts from ``weights``, runs ``local_epochs`` passes of minibatch SGD
    (batch size ``batch_size``, None = the whole client, i.e. FedSGD's B = infinity; the data are
    reshuffled every epoch with ``seed``) minimising the mean cross-entropy of ``model``'s logits,
    and returns ``(new_weights, num_examples)``. ``model`` only supplies the architecture and
    scratch variables: its variables are overwritten on every call.
    """
    variables = model.trainable_variables
    if not variables:
        raise ValueError("model has no trainable variables; build it with an input shape first")
    if len(model.non_trainable_variables):
        # Averaging only trainable weights would silently drop e.g. BatchNorm statistics.
        raise ValueError("model has non-trainable variables; labkit.fl supports plain models only")
    input_shape = tuple(model.input_shape[1:])
    spec = (
        tf.TensorSpec((None, *input_shape), tf.float32),
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float32),
    )

    # One compiled graph runs every step of one client's local training: no Keras fit loop,
    # no per-step Python, no model rebuilt per client (that overhead dominates a naive loop).
    @tf.function(input_signature=spec)
    def _train(x, y, order, starts, ends, lr):
        for i in tf.range(tf.shape(starts)[0]):
            idx = order[starts[i] : ends[i]]
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads, strict=True):
                # One fused op per variable (v -= lr * g): per-op overhead dominates small steps.
                tf.raw_ops.ResourceApplyGradientDescent(var=v.handle, alpha=lr, delta=g)
        return tf.constant(0)

    shapes = [tuple(v.shape) for v in variables]

    def client_update(
        weights: Weights,
        x,
        y,
        local_epochs: int = 1,
        batch_size: int | None = None,
        learning_rate: float = 0.1,
        seed: int | np.random.Generator | None = 0,
    ) -> tuple[Weights, int]:
        """Run ``local_epochs`` epochs of SGD from ``weights`` on ``(x, y)``; return new weights."""
        local_epochs = _check_int("local_epochs", local_epochs, 1)
        if batch_size is not None:
            batch_size = _check_int("batch_size", batch_size, 1)
        lr = _check_lr(learning_rate)
        n = int(x.shape[0])
        if n == 0:
            raise ValueError("client data must hold at least 1 example, got 0")
        if int(y.shape[0]) != n:
            raise ValueError(f"x and y must have the same length, got {n} and {int(y.shape[0])}")
        if [tuple(np.shape(w)) for w in weights] != shapes:
            raise ValueError(
                f"weights must have shapes {shapes}, got {[tuple(np.shape(w)) for w in weights]}"
            )
        rng = make_rng(seed)
        order = np.concatenate([rng.permutation(n) for _ in range(local_epochs)]).astype(np.int32)
        starts, ends = _step_bounds(n, local_epochs, batch_size)
        for v, w in zip(variables, weights, strict=True):
            v.assign(w)
        _train(x, y, order, starts, ends, tf.constant(lr, tf.float32))
        return [v.numpy() for v in variables], n

    return client_update


def _dense_layers(model: tf.keras.Model) -> list | None:
    """Return ``[(kernel, bias, activation), ...]`` for a Flatten + Dense model, else None."""
    layers = list(model.layers)
    if layers and isinstance(layers[0], tf.keras.layers.Flatten):
        layers = layers[1:]
    elif len(model.input_shape) != 2:
        return None  # a Dense layer on unflattened input acts on the last axis only
    if not layers or not all(
        type(layer) is tf.keras.layers.Dense and layer.use_bias for layer in layers
    ):
        return None
    found = [v for layer in layers for v in (layer.kernel, layer.bias)]
    if [id(v) for v in found] != [id(v) for v in model.trainable_variables]:
        return None  # weights must come in the order the loop and the aggregator use
    return [(layer.kernel, layer.bias, layer.activation) for layer in layers]


class _CohortTrainer:
    """Train all of a round's clients at once for Flatten + Dense models (logistic, 2NN).

    Every client has its own copy of the weights, stacked on a leading client axis, and one
    batched matmul per layer serves all of them; padded batch slots have mask 0, so each client
    takes exactly the steps ``client_update`` would take, on the same shuffles.

    When the stacked first kernels are large (the 2NN's 784 x 200, about 80% of its weights, for
    10 clients), they are updated once per chunk of up to 10 steps instead of every step.
    Within a chunk, W_t = W_c - lr * sum_{s<t} X_s^T D_s (X_s: step s's inputs, D_s: the loss
    gradient at layer 1's pre-activation), so
    X_t W_t = X_t W_c - lr * sum_{s<t} (X_t X_s^T) D_s: one large matmul for the chunk and small
    B x B Gram corrections replace a read-modify-write of every client's kernel per step. Same
    steps, same result to float rounding; at batch 10 it roughly halved the training time of a
    2NN round on a 2-core CPU (benchmarks/fedavg_speed.py measures the whole round).

    The clients are split into two groups with their own variables and no data dependence, so
    TensorFlow's executor runs the two groups' many small per-step ops on both cores at once.
    """

    # Cap the chunk's rows (chunk x batch) so the Gram matrices stay small and cheap. Chunk only
    # when the clients' first kernels are large enough for memory traffic to matter: the 10
    # unrolled steps take ~2 s to trace, which small (quick-mode) models would not win back.
    max_chunk, max_rows, chunk_min_bytes = 10, 256, 4 * 2**20

    def __init__(self, model: tf.keras.Model, layers: list):
        self.activations = [act for _, _, act in layers]
        self.shapes = [tuple(v.shape) for k, b, _ in layers for v in (k, b)]
        self.dim = int(layers[0][0].shape[0])
        self.groups: dict[int, list[list[tf.Variable]]] = {}  # per number of clients k
        self.functions: dict[tuple[int, int, int], Callable] = {}  # per (k, chunk, width)

    def _variables(self, k: int) -> list[list[tf.Variable]]:
        if k not in self.groups:
            sizes = [k - k // 2, k // 2] if k > 1 else [k]
            self.groups[k] = [
                [tf.Variable(tf.zeros((n, *s), tf.float32)) for s in self.shapes] for n in sizes
            ]
        return self.groups[k]

    def _train_group(self, stacked, x, y, idx, mask, lr, chunk: int, b: int) -> None:
        """Run every step of ``idx``/``mask`` (clients, steps, b) on one group's variables."""
        acts, dim, k = self.activations, self.dim, int(stacked[0].shape[0])

        def apply(v: tf.Variable, grad: tf.Tensor) -> None:
            tf.raw_ops.ResourceApplyGradientDescent(var=v.handle, alpha=lr, delta=grad)

        for c in tf.range(tf.shape(idx)[1] // chunk):
            ids = tf.reshape(idx[:, c * chunk : (c + 1) * chunk], (k, chunk * b))
            xc = tf.reshape(tf.gather(x, ids), (k, chunk * b, dim))
            yc = tf.reshape(tf.gather(y, ids), (k, chunk, b))
            mc = mask[:, c * chunk : (c + 1) * chunk]
            first = tf.matmul(xc, stacked[0])  # every step's X_t W_c at once
            gram = tf.matmul(xc, xc, transpose_b=True) if chunk > 1 else None
            dz = []  # D_s of the chunk's earlier steps
            for t in range(chunk):
                m = mc[:, t]
                with tf.GradientTape() as tape:
                    z1 = first[:, t * b : (t + 1) * b] + stacked[1][:, None, :]
                    if t:
                        g_ts = gram[:, t * b : (t + 1) * b, : t * b]
                        z1 -= lr * tf.matmul(g_ts, tf.concat(dz, axis=1))
                    tape.watch(z1)
                    z = acts[0](z1)
                    for j in range(1, len(acts)):
                        z = acts[j](tf.matmul(z, stacked[2 * j]) + stacked[2 * j + 1][:, None])
                    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(yc[:, t], z)
                    # Sum over clients of each client's own mean loss: client k's gradient is
                    # that of its mean loss; an all-padding step gives a zero gradient.
                    n = tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
                    loss = tf.reduce_sum(tf.reduce_sum(m * ce, axis=1) / n)
                grads = tape.gradient(loss, [z1, *stacked[2:]])
                dz.append(grads[0])
                apply(stacked[1], tf.reduce_sum(grads[0], axis=1))
                for v, g in zip(stacked[2:], grads[1:], strict=True):
                    apply(v, g)
            apply(stacked[0], tf.matmul(xc, tf.concat(dz, axis=1), transpose_a=True))

    def _function(self, k: int, chunk: int, b: int) -> Callable:
        if (k, chunk, b) in self.functions:
            return self.functions[(k, chunk, b)]
        groups = self._variables(k)
        bounds = np.cumsum([0] + [int(g[0].shape[0]) for g in groups])

        # Static shapes (k, chunk, b) make the many slices cheaper than shapes read at run time.
        @tf.function(
            input_signature=(
                tf.TensorSpec(None, tf.float32),
                tf.TensorSpec((None,), tf.int64),
                tf.TensorSpec((k, None, b), tf.int32),
                tf.TensorSpec((k, None, b), tf.float32),
                tf.TensorSpec((), tf.float32),
                [tf.TensorSpec(s, tf.float32) for s in self.shapes],
            )
        )
        def train(x, y, idx, mask, lr, weights):
            for g, lo, hi in zip(groups, bounds[:-1], bounds[1:], strict=True):
                for v, w in zip(g, weights, strict=True):
                    v.assign(tf.broadcast_to(w, v.shape))
                self._train_group(g, x, y, idx[lo:hi], mask[lo:hi], lr, chunk, b)
            # Each client's update: its trained weights minus the global ones it started from.
            return [tf.concat([g[i] - w for g in groups], axis=0) for i, w in enumerate(weights)]

        self.functions[(k, chunk, b)] = train
        return train

    def __call__(self, weights, x_all, y_all, offsets, sizes, local_epochs, batch_size, lr, seeds):
        """Train the clients at ``offsets``/``sizes`` of the flat data; return their updates."""
        k = len(sizes)
        grids = []  # per client: (steps, width) local indices, -1 marks padding
        for n, seed in zip(sizes, seeds, strict=True):
            n = int(n)
            b = n if batch_size is None else min(batch_size, n)
            per_epoch = -(-n // b)
            rng = make_rng(seed)  # the same shuffles client_update draws for this seed
            pad = np.full((local_epochs, per_epoch * b), -1, np.int64)
            for e in range(local_epochs):
                pad[e, :n] = rng.permutation(n)
            grids.append(pad.reshape(local_epochs * per_epoch, b))
        steps = max(g.shape[0] for g in grids)
        width = max(g.shape[1] for g in grids)
        big = k * int(np.prod(self.shapes[0])) * 4 >= self.chunk_min_bytes
        chunk = max(1, min(self.max_chunk, steps, self.max_rows // width)) if big else 1
        steps = -(-steps // chunk) * chunk  # whole chunks; the extra steps are all padding
        idx = np.zeros((k, steps, width), np.int32)
        mask = np.zeros((k, steps, width), np.float32)
        for c, (g, off) in enumerate(zip(grids, offsets, strict=True)):
            valid = g >= 0
            idx[c, : g.shape[0], : g.shape[1]] = np.where(valid, g + off, 0)
            mask[c, : g.shape[0], : g.shape[1]] = valid
        train = self._function(k, chunk, width)
        deltas = train(x_all, y_all, idx, mask, tf.constant(lr, tf.float32), list(weights))
        values = [d.numpy() for d in deltas]
        return [[a[c] for a in values] for c in range(k)]


def make_evaluator(model: tf.keras.Model, batch_size: int = 2_000) -> Callable:
    """Return ``evaluate(weights, x, y) -> (mean loss, accuracy)`` for ``model``'s architecture."""
    variables = model.trainable_variables
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @tf.function(reduce_retracing=True)
    def _batch(x, y):
        logits = model(x, training=False)
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.float64))
        return tf.cast(loss_fn(y, logits), tf.float64), hits

    def evaluate(weights: Weights, x, y) -> tuple[float, float]:
        """Return ``(mean cross-entropy, accuracy)`` of ``weights`` on ``(x, y)``."""
        for v, w in zip(variables, weights, strict=True):
            v.assign(w)
        n = int(x.shape[0])
        loss = hits = 0.0
        for s in range(0, n, batch_size):
            batch_loss, batch_hits = _batch(x[s : s + batch_size], y[s : s + batch_size])
            loss += float(batch_loss)
            hits += float(batch_hits)
        return loss / n, hits / n

    return evaluate


# --- clients, sampling, cost ------------------------------------------------------------------


def client_datasets(
    x: np.ndarray, y: np.ndarray, partitions: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split ``(x, y)`` into one ``(x_k, y_k)`` pair per index array in ``partitions``."""
    if len(partitions) == 0:
        raise ValueError("partitions must hold at least 1 client, got 0")
    clients = []
    for k, idx in enumerate(partitions):
        idx = np.asarray(idx)
        if idx.size == 0:
            raise ValueError(f"partitions[{k}] is empty: every client needs at least 1 example")
        clients.append((np.asarray(x)[idx], np.asarray(y)[idx]))
    return clients


def num_sampled_clients(num_clients: int, client_fraction: float) -> int:
    """Return m = max(round(C * K), 1), the clients sampled per round (McMahan et al. 2017)."""
    num_clients = _check_int("num_clients", num_clients, 1)
    if not (np.isfinite(client_fraction) and 0.0 < client_fraction <= 1.0):
        raise ValueError(f"client_fraction must be in (0, 1], got {client_fraction!r}")
    return max(int(round(client_fraction * num_clients)), 1)


def sample_clients(
    num_clients: int, client_fraction: float, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """Draw the sorted ids of m = max(round(C K), 1) distinct clients for one round."""
    m = num_sampled_clients(num_clients, client_fraction)
    return np.sort(make_rng(seed).choice(num_clients, size=m, replace=False))


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

    def as_dict(self) -> dict:
        """Return the history as plain Python types (for JSON)."""
        return dict(self.__dict__)


# Traced functions per model, so repeated runs on one model do not trace again.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(model: tf.keras.Model, what: str):
    entry = _CACHE.setdefault(model, {})
    if what not in entry:
        if what == "cohort":
            layers = _dense_layers(model)
            entry[what] = _CohortTrainer(model, layers) if layers is not None else None
        elif what == "client_update":
            entry[what] = make_client_update(model)
        else:
            entry[what] = make_evaluator(model)
    return entry[what]


def fedavg(
    model: tf.keras.Model,
    clients: Sequence[tuple[np.ndarray, np.ndarray]],
    num_rounds: int,
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
    """Run FedAvg from ``model``'s weights; leave the final global weights in ``model``.

    Each round samples m = max(round(C K), 1) of the K ``clients`` (C = ``client_fraction``),
    each trains ``local_epochs`` epochs with ``batch_size`` (None = whole client) from the global
    weights, and ``aggregator`` (default: ``WeightedMean()``) combines their updates, weighted by
    example counts. Stops early after the round that reaches ``target_accuracy`` on ``test_data``.
    Flatten + Dense models train a round's clients together (``vectorize``, same result as
    ``make_client_update`` to float rounding); pass ``client_update`` to use your own function.
    """
    num_rounds = _check_int("num_rounds", num_rounds, 1)
    eval_every = _check_int("eval_every", eval_every, 1)
    local_epochs = _check_int("local_epochs", local_epochs, 1)
    if batch_size is not None:
        batch_size = _check_int("batch_size", batch_size, 1)
    lr = _check_lr(learning_rate)
    if len(clients) == 0:
        raise ValueError("clients must hold at least 1 client, got 0")
    m = num_sampled_clients(len(clients), client_fraction)
    if target_accuracy is not None and test_data is None:
        raise ValueError("target_accuracy needs test_data to measure accuracy on")
    if target_accuracy is not None and not 0.0 <= target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in [0, 1], got {target_accuracy!r}")
    for k, (x_k, y_k) in enumerate(clients):
        if len(x_k) == 0:
            raise ValueError(f"clients[{k}] has no data: every client needs at least 1 example")
        if len(x_k) != len(y_k):
            raise ValueError(f"clients[{k}] has {len(x_k)} inputs but {len(y_k)} labels")
    aggregator = WeightedMean() if aggregator is None else aggregator
    cohort = _cached(model, "cohort") if (vectorize and client_update is None) else None
    client_update = _cached(model, "client_update") if client_update is None else client_update
    evaluate = _cached(model, "evaluate") if test_data is not None else None
    rng = make_rng(seed)

    # Convert a client's data to tensors the first time it is sampled, not once per round.
    data: dict[int, tuple[tf.Tensor, tf.Tensor]] = {}

    def tensors(k: int) -> tuple[tf.Tensor, tf.Tensor]:
        if k not in data:
            x, y = clients[k]
            data[k] = (tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int64))
        return data[k]

    if test_data is not None:
        test = (
            tf.convert_to_tensor(test_data[0], tf.float32),
            tf.convert_to_tensor(test_data[1], tf.int64),
        )
    global_w = [v.numpy() for v in model.trainable_variables]
    size = model_bytes(global_w)
    method = "FedSGD" if (local_epochs == 1 and batch_size is None) else "FedAvg"
    history = FLHistory(method, len(clients), m, local_epochs, batch_size, lr)
    up = down = 0
    start = time.perf_counter()
    bar = progress(range(1, num_rounds + 1), desc=description or method, unit="round")
    for r in bar:
        chosen = np.sort(rng.choice(len(clients), size=m, replace=False))
        seeds = [int(rng.integers(2**31)) for _ in chosen]
        if cohort is not None:
            # The round's clients, concatenated; a client is an (offset, size) slice of it.
            pairs = [tensors(int(k)) for k in chosen]
            sizes = np.array([int(y.shape[0]) for _, y in pairs])
            updates = cohort(
                global_w,
                tf.concat([x for x, _ in pairs], axis=0),
                tf.concat([y for _, y in pairs], axis=0),
                np.concatenate([[0], np.cumsum(sizes)[:-1]]),
                sizes,
                local_epochs,
                batch_size,
                lr,
                seeds,
            )
            counts = [int(n) for n in sizes]
        else:
            updates, counts = [], []
            for k, client_seed in zip(chosen, seeds, strict=True):
                new_w, n_k = client_update(
                    global_w,
                    *tensors(int(k)),
                    local_epochs=local_epochs,
                    batch_size=batch_size,
                    learning_rate=lr,
                    seed=client_seed,
                )
                updates.append([a - b for a, b in zip(new_w, global_w, strict=True)])
                counts.append(n_k)
        down += m * size  # the server sends the global model to each sampled client
        up += m * size  # each sends back one model-sized update
        delta = check_aggregate(
            aggregator.aggregate(updates, np.asarray(counts, dtype=np.float64)),
            global_w,
            aggregator,
        )
        global_w = [g + d for g, d in zip(global_w, delta, strict=True)]
        if evaluate is not None and (r % eval_every == 0 or r == num_rounds):
            loss, acc = evaluate(global_w, *test)
            history.rounds.append(r)
            history.test_loss.append(loss)
            history.test_accuracy.append(acc)
            history.bytes_up.append(up)
            history.bytes_down.append(down)
            history.wall_time.append(time.perf_counter() - start)
            bar.set_postfix(acc=f"{acc:.4f}")
            if target_accuracy is not None and acc >= target_accuracy:
                break
        elif evaluate is None:
            history.rounds.append(r)
            history.bytes_up.append(up)
            history.bytes_down.append(down)
            history.wall_time.append(time.perf_counter() - start)
    for v, w in zip(model.trainable_variables, global_w, strict=True):
        v.assign(w)
    return history


def fedsgd(model: tf.keras.Model, clients, num_rounds: int, **kwargs) -> FLHistory:
    """Run FedSGD: FedAvg with one local epoch and the whole client as one batch (B = all)."""
    for name in ("local_epochs", "batch_size"):
        if name in kwargs:
            raise ValueError(f"fedsgd fixes {name}; use fedavg to choose it")
    return fedavg(model, clients, num_rounds, local_epochs=1, batch_size=None, **kwargs)
