"""A client's side of federated learning: local training from the global weights, evaluation.

``make_client_update(model)`` returns a plain function
``client_update(weights, x, y, local_epochs, batch_size, learning_rate, seed)
-> (new_weights, num_examples)``: E epochs of minibatch SGD from ``weights`` on one client's data.
It knows nothing about rounds or servers, so a real framework (Flower's ``NumPyClient.fit``)
can call it unchanged. ``OneByOne`` wraps it in the trainer interface the loop consumes:
``trainer(weights, clients, local_epochs, batch_size, learning_rate, seeds)
-> (updates, num_examples)``; the vectorised cohort trainer (``_cohort``) has the same call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from labkit._checks import ParameterError, check_int, check_positive
from labkit.aggregation import Weights
from labkit.config import make_rng

__all__ = ["ClientUpdate", "make_client_update", "OneByOne", "make_evaluator", "model_update"]

ClientUpdate = Callable[..., tuple[Weights, int]]


def model_update(trained: Weights, global_weights: Weights) -> Weights:
    """Return a client's update: its trained weights minus the global weights it started from.

    What every aggregator averages (labkit's loop, and the Flower ServerApp on the replies).
    """
    return [a - b for a, b in zip(trained, global_weights, strict=True)]


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
        raise ParameterError("model", model, "a built model with trainable variables")
    if len(model.non_trainable_variables):
        # Averaging only trainable weights would silently drop e.g. BatchNorm statistics.
        raise ParameterError(
            "model", model.name, "a model without non-trainable variables (no BatchNorm)",
            "labkit.fl averages trainable weights only",
        )  # fmt: skip
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
        local_epochs = check_int("local_epochs", local_epochs, 1)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        lr = check_positive("learning_rate", learning_rate)
        n = int(np.shape(x)[0]) if np.ndim(x) else 0
        if n == 0:
            raise ParameterError("x", x, "at least 1 example")
        if int(np.shape(y)[0]) != n:
            raise ParameterError("y", np.asarray(y), f"{n} labels, one per row of x")
        if [tuple(np.shape(w)) for w in weights] != shapes:
            raise ParameterError(
                "weights", [tuple(np.shape(w)) for w in weights], f"shapes {shapes}"
            )
        rng = make_rng(seed)
        order = np.concatenate([rng.permutation(n) for _ in range(local_epochs)]).astype(np.int32)
        starts, ends = _step_bounds(n, local_epochs, batch_size)
        for v, w in zip(variables, weights, strict=True):
            v.assign(w)
        _train(x, y, order, starts, ends, tf.constant(lr, tf.float32))
        return [v.numpy() for v in variables], n

    return client_update


class OneByOne:
    """Train a round's clients one after another with a ``client_update`` function."""

    def __init__(self, client_update: ClientUpdate):
        self.client_update = client_update

    def __call__(
        self, weights: Weights, clients: Sequence, local_epochs, batch_size, learning_rate, seeds
    ) -> tuple[list[Weights], list[int]]:
        """Return each client's update (trained minus ``weights``) and its example count."""
        updates, counts = [], []
        for (x, y), seed in zip(clients, seeds, strict=True):
            new_w, n_k = self.client_update(
                weights,
                x,
                y,
                local_epochs=local_epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
            )
            updates.append(model_update(new_w, weights))
            counts.append(int(n_k))
        return updates, counts


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
