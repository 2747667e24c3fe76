"""The vectorised client trainer for Flatten + Dense models: a round's clients in one graph.

Private: the loop picks it behind the same call as ``client.OneByOne`` ("train these clients,
return (updates, num_examples)") when the model qualifies; the result equals one-by-one
training to float rounding (tests/test_fl.py checks both paths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from labkit.aggregation import Weights
from labkit.config import make_rng

__all__ = ["dense_layers", "CohortTrainer"]


def dense_layers(model: tf.keras.Model) -> list | None:
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


class CohortTrainer:
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

    def __call__(
        self, weights: Weights, clients: Sequence, local_epochs, batch_size, learning_rate, seeds
    ) -> tuple[list[Weights], list[int]]:
        """Train ``clients`` (a list of (x, y) tensors) together; return updates and counts."""
        sizes = np.array([int(y.shape[0]) for _, y in clients])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        x_all = tf.concat([x for x, _ in clients], axis=0)
        y_all = tf.concat([y for _, y in clients], axis=0)
        lr = float(learning_rate)
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
        return [[a[c] for a in values] for c in range(k)], [int(n) for n in sizes]
