"""DP-SGD for Keras models: exact per-example clipping at close to non-private cost, plus noise.

Why hand-written: TF Privacy 0.9.0 clips exactly but runs 50-150x slower than a non-private step
on CPU (it materialises every per-example gradient, or re-runs the model per example). Here one
forward pass records every trainable layer's input ``a`` and pre-activation ``z``; one backward
pass gives ``g = dloss_i/dz`` for all examples at once. From those:

* Dense ``z = a W + b``: the per-example gradient is the outer product ``a_i g_i^T``, so its norm
  is ``||a_i|| * ||g_i||`` without ever forming it ("ghost norm", Goodfellow 2015).
* Conv2D: with the input patches ``P_i`` (positions x kh*kw*cin) the gradient is ``P_i^T G_i``;
  we form it for the whole batch with one batched matmul when it fits in ``EXPLICIT_BYTES``
  (fewest FLOPs), else use the ghost identity ``||P^T G||^2 = <P P^T, G G^T>`` (Li et al. 2022).
* The clipped sum ``sum_i min(1, C/||grad_i||) grad_i`` is then the ordinary weight gradient
  with ``g_i`` scaled by the per-example factor: one matmul / conv-filter-gradient per layer
  ("book-keeping", Bu et al. 2023). It is exact, not an approximation; a test checks it against an
  explicit per-example loop.

Layers without weights (Flatten, Reshape, pooling, Activation, Dropout) are called as they are.
The ghost path needs a chain of layers, each called once: any other layer with weights, a layer
applied twice (a shared Dense) or a branching graph raises, and construction checks that the
recorded forward pass reproduces ``model(x)``. ``method='vectorized'`` (per-example gradients
with ``tf.vectorized_map`` under XLA) covers arbitrary models at a higher cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

import labkit.config  # noqa: F401  (quiets TensorFlow before the first import)
from labkit._checks import (
    FLOAT32_MAX,
    ParameterError,
    check_choice,
    check_float,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_positive,
)
from labkit.dp._random import seed_words

__all__ = [
    "DPSGD",
    "dp_cnn",
    "reference_clipped_sum",
]

METHODS = ("ghost", "vectorized")
_STATELESS = (
    tf.keras.layers.InputLayer,
    tf.keras.layers.Flatten,
    tf.keras.layers.Reshape,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalMaxPooling2D,
    tf.keras.layers.Activation,
    tf.keras.layers.Dropout,
)


def dp_cnn(input_shape: tuple[int, ...] = (28, 28), num_classes: int = 10) -> tf.keras.Model:
    """Build the small tanh CNN used for DP-SGD on MNIST (Tramer & Boneh 2021)."""
    shape = tuple(input_shape)
    layers: list[tf.keras.layers.Layer] = [tf.keras.layers.InputLayer(input_shape=shape)]
    if len(shape) == 2:
        layers.append(tf.keras.layers.Reshape(shape + (1,)))
    layers += [
        tf.keras.layers.Conv2D(16, 8, strides=2, padding="same", activation="tanh"),
        tf.keras.layers.MaxPooling2D(2, strides=1),
        tf.keras.layers.Conv2D(32, 4, strides=2, padding="valid", activation="tanh"),
        tf.keras.layers.MaxPooling2D(2, strides=1),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(32, activation="tanh"),
        tf.keras.layers.Dense(num_classes),
    ]
    return tf.keras.Sequential(layers, name="dp_cnn")


def _default_loss(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


def _calls_in(model: tf.keras.Model, layer: tf.keras.layers.Layer) -> int:
    """Return how many times ``model``'s graph calls ``layer`` (1 for an unbuilt Sequential)."""
    nodes = getattr(model, "_network_nodes", None)
    if nodes is None:
        return 1
    return sum(f"{layer.name}_ib-{i}" in nodes for i in range(len(layer._inbound_nodes)))


def _check_supported(model: tf.keras.Model) -> None:
    for layer in model.layers:
        if _calls_in(model, layer) > 1:
            raise ParameterError(
                "model",
                f"layer {layer.name!r} applied {_calls_in(model, layer)} times",
                "a chain of layers each applied once for method='ghost'",
                "a shared layer's per-example gradient sums over its uses; use method='vectorized'",
            )
        if isinstance(layer, tf.keras.layers.Dense | tf.keras.layers.Conv2D):
            if isinstance(layer, tf.keras.layers.Conv2D) and (
                type(layer) is not tf.keras.layers.Conv2D
                or layer.groups != 1
                or tuple(layer.dilation_rate) != (1, 1)
                or layer.data_format != "channels_last"
            ):
                raise ParameterError(
                    "model",
                    f"layer {layer.name!r}",
                    "plain channels-last Conv2D (groups=1, dilation 1) for method='ghost'",
                    "use method='vectorized'",
                )
        elif layer.trainable_weights or not isinstance(layer, _STATELESS):
            raise ParameterError(
                "model",
                f"layer {layer.name!r} ({type(layer).__name__})",
                "Dense, Conv2D and weightless layers for method='ghost'",
                "use method='vectorized'",
            )


class DPSGD:
    """Exact per-example clipping, Gaussian noise and an SGD (momentum) update for a Keras model.

    ``seed=None`` (the default) draws the noise from a generator seeded by the OS's
    cryptographic source (``secrets``): two runs never add the same noise. An int seed makes the
    noise reproducible - an explicit choice for teaching and tests, like Opacus's
    ``secure_mode=False`` - and predictable by anyone who knows the seed.
    """

    def __init__(
        self,
        model: tf.keras.Model,
        l2_norm_clip: float,
        noise_multiplier: float,
        learning_rate: float = 0.1,
        momentum: float = 0.0,
        method: str = "ghost",
        loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
        jit_compile: bool = False,
        seed: int | None = None,
    ):
        """Wrap ``model``; ``loss(y, logits)`` must return one loss per example (no reduction)."""
        self.model = model
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier)
        if self.noise_multiplier * self.l2_norm_clip > FLOAT32_MAX:
            raise ParameterError(
                "noise_multiplier",
                noise_multiplier,
                f"at most {FLOAT32_MAX / self.l2_norm_clip:.3g} with l2_norm_clip="
                f"{self.l2_norm_clip:g}",
                "the noise std would overflow float32",
            )
        self.learning_rate = check_positive("learning_rate", learning_rate)
        momentum = check_float("momentum", momentum, 0.0, 1.0, high_open=True)
        self.method = check_choice("method", method, METHODS)
        self.loss = loss or _default_loss
        self.optimizer = tf.keras.optimizers.SGD(learning_rate, momentum=momentum)
        self.optimizer.build(model.trainable_variables)
        # Noise drawn inside the compiled step (Philox), so it runs beside the backward pass
        # instead of stalling it: a NumPy draw fed in per step cost the MLP 1.9x where this
        # measures 1.6x under load. Key and counter come from secrets unless a seed is given.
        key, *counter = seed_words(seed, 3)
        self._noise = tf.random.Generator.from_key_counter(key, counter, "philox")
        self._num_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        impl = self._ghost_clipped_sum if method == "ghost" else self._vectorized_clipped_sum
        self._clipped_sum = tf.function(impl, jit_compile=jit_compile, reduce_retracing=True)
        self._apply = tf.function(self._apply_impl, reduce_retracing=True)
        self._step = tf.function(self._step_impl, reduce_retracing=True)  # one dispatch a step
        self.steps = 0
        if method == "ghost":
            _check_supported(model)
            self._check_forward_matches()

    def _check_forward_matches(self) -> None:
        """Raise unless the recorded forward pass computes ``model(x)`` (a chain of layers)."""
        shape = self.model.input_shape
        if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
            return  # unbuilt or several inputs: nothing to compare against
        x = tf.random.stateless_normal((2, *shape[1:]), seed=[0, 0])
        ours, _ = self._forward(x, training=False)
        theirs = self.model(x, training=False)
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
            raise ParameterError(
                "model",
                self.model.name,
                "a chain of layers for method='ghost' (each layer's input the previous output)",
                "its graph branches or skips layers; use method='vectorized'",
            )

    def check_weights_finite(self, when: str = "") -> None:
        """Raise ``ParameterError`` (on learning_rate) if any weight became NaN or infinite."""
        for v in self.model.trainable_variables:
            if not np.all(np.isfinite(v.numpy())):
                raise ParameterError(
                    "learning_rate",
                    self.learning_rate,
                    "small enough for the weights to stay finite",
                    f"DP-SGD diverged{when}: {v.name!r} holds NaN or inf; lower learning_rate "
                    f"or l2_norm_clip={self.l2_norm_clip:g}, or use less momentum",
                )

    # --- the ghost / book-keeping path -------------------------------------------------------
    def _forward(self, x: tf.Tensor, training: bool = True):
        records = []  # (layer, layer input a, pre-activation z)
        h = x
        for layer in self.model.layers:
            if isinstance(layer, tf.keras.layers.InputLayer):
                continue
            if isinstance(layer, tf.keras.layers.Dense):
                if h.shape.rank != 2:
                    raise ParameterError(
                        "model",
                        f"layer {layer.name!r} with a rank-{h.shape.rank} input",
                        "a 2-D input to every Dense for method='ghost'",
                        "use method='vectorized'",
                    )
                z = tf.matmul(h, layer.kernel)
            elif isinstance(layer, tf.keras.layers.Conv2D):
                z = tf.nn.conv2d(h, layer.kernel, layer.strides, layer.padding.upper())
            else:
                h = layer(h, training=training)
                continue
            if layer.use_bias:
                z = z + layer.bias
            records.append((layer, h, z))
            h = layer.activation(z)
        return h, records

    # Explicit per-example kernel gradients (k*c floats per example, one batched matmul) cost
    # fewer FLOPs than the ghost norm plus a second filter gradient, and measured 1.2x instead
    # of 2x a non-private step on the CNN (a depthwise filter-gradient per example was the
    # bottleneck); the ghost identity is kept for layers whose gradients exceed this budget.
    EXPLICIT_BYTES = 64 << 20

    def _ghost_clipped_sum(self, x, y, mask):
        with tf.GradientTape() as tape:
            logits, records = self._forward(x)
            zs = [z for _, _, z in records]
            total = tf.reduce_sum(self.loss(y, logits))
        gs = tape.gradient(total, zs)
        sq_norms = tf.zeros(tf.shape(x)[:1], dtype=tf.float32)
        parts = []  # per layer: what the clipped sum needs
        for (layer, a, _), g in zip(records, gs, strict=True):
            if isinstance(layer, tf.keras.layers.Dense):
                g_sq = tf.reduce_sum(tf.square(g), axis=1)
                sq_norms += tf.reduce_sum(tf.square(a), axis=1) * g_sq
                if layer.use_bias:
                    sq_norms += g_sq
                parts.append(None)
            else:
                kh, kw = layer.kernel_size
                patches = tf.image.extract_patches(
                    a,
                    sizes=[1, kh, kw, 1],
                    strides=[1, *layer.strides, 1],
                    rates=[1, 1, 1, 1],
                    padding=layer.padding.upper(),
                )
                n = tf.shape(a)[0]
                k, c = patches.shape[-1], g.shape[-1]
                positions = patches.shape[1] * patches.shape[2]
                p = tf.reshape(patches, [n, positions, k])
                gg = tf.reshape(g, [n, positions, c])
                explicit_bytes = 4 * k * c * (x.shape[0] or 1024)
                if explicit_bytes > self.EXPLICIT_BYTES and positions * positions <= k * c:
                    sq_norms += tf.reduce_sum(
                        tf.einsum("bpk,bqk->bpq", p, p) * tf.einsum("bpc,bqc->bpq", gg, gg),
                        axis=[1, 2],
                    )
                    parts.append(None)
                else:  # explicit per-example kernel gradient: k*c floats per example
                    per_example = tf.einsum("bpk,bpc->bkc", p, gg)
                    sq_norms += tf.reduce_sum(tf.square(per_example), axis=[1, 2])
                    parts.append(per_example)
                if layer.use_bias:
                    sq_norms += tf.reduce_sum(tf.square(tf.reduce_sum(gg, axis=1)), axis=1)
        norms = tf.sqrt(sq_norms)
        clip = tf.constant(self.l2_norm_clip, tf.float32)
        weights = mask * clip / tf.maximum(norms, clip)
        grads = {}
        for (layer, a, _), g, per_example in zip(records, gs, parts, strict=True):
            if isinstance(layer, tf.keras.layers.Dense):
                wg = g * weights[:, None]
                grads[id(layer.kernel)] = tf.matmul(a, wg, transpose_a=True)
                bias_grad = tf.reduce_sum(wg, axis=0)
            else:
                wg = g * weights[:, None, None, None]
                if per_example is not None:
                    kernel_grad = tf.reshape(
                        tf.einsum("b,bkc->kc", weights, per_example), layer.kernel.shape
                    )
                else:  # the ordinary filter gradient of the re-weighted output gradient
                    kernel_grad = tf.compat.v1.nn.conv2d_backprop_filter(
                        a,
                        layer.kernel.shape,
                        wg,
                        [1, *layer.strides, 1],
                        layer.padding.upper(),
                    )
                grads[id(layer.kernel)] = kernel_grad
                bias_grad = tf.reduce_sum(wg, axis=[0, 1, 2])
            if layer.use_bias:
                grads[id(layer.bias)] = bias_grad
        return [grads[id(v)] for v in self.model.trainable_variables], norms

    # --- the generic path ----------------------------------------------------------------------
    def _vectorized_clipped_sum(self, x, y, mask):
        variables = self.model.trainable_variables

        def one(args):
            xi, yi = args
            with tf.GradientTape() as tape:
                logits = self.model(xi[None], training=True)
                loss = tf.reduce_sum(self.loss(yi[None], logits))
            return tape.gradient(loss, variables)

        per_example = tf.vectorized_map(one, (x, y))
        sq_norms = tf.add_n(
            [tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), 1) for g in per_example]
        )
        norms = tf.sqrt(sq_norms)
        clip = tf.constant(self.l2_norm_clip, tf.float32)
        weights = mask * clip / tf.maximum(norms, clip)
        grads = [tf.tensordot(weights, g, axes=1) for g in per_example]
        return grads, norms

    # --- public API -------------------------------------------------------------------------
    def clipped_gradient_sum(
        self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Return (sum of clipped per-example gradients, per-example norms), without noise."""
        x = tf.convert_to_tensor(x, tf.float32)
        y = tf.convert_to_tensor(y)
        mask = tf.ones(tf.shape(x)[:1]) if mask is None else tf.convert_to_tensor(mask, tf.float32)
        grads, norms = self._clipped_sum(x, y, mask)
        return [g.numpy() for g in grads], norms.numpy()

    def _apply_impl(self, grads, denominator):
        std = self.noise_multiplier * self.l2_norm_clip
        if std > 0:
            noise = self._noise.normal([self._num_params])
            parts = tf.split(noise, [int(np.prod(g.shape)) for g in grads])
            grads = [g + std * tf.reshape(z, g.shape) for g, z in zip(grads, parts, strict=True)]
        noisy = [g / denominator for g in grads]
        self.optimizer.apply_gradients(zip(noisy, self.model.trainable_variables, strict=True))

    def _step_impl(self, x, y, mask, denominator):
        grads, _ = self._clipped_sum(x, y, mask)
        self._apply_impl(grads, denominator)

    def step(self, x: np.ndarray, y: np.ndarray, denominator: float, capacity: int) -> None:
        """Take one DP-SGD step on batch ``(x, y)``: clip, sum, add noise, divide, update.

        The batch is padded to ``capacity`` (masked examples weigh 0) so the compiled step sees
        one shape; batches above it are processed in chunks and summed, which is exact.
        """
        # The common case: one compiled call does everything. (Not for 'vectorized': nested in a
        # plain tf.function its XLA cluster is lost and pfor cannot vectorise MaxPoolGrad.)
        if len(x) <= capacity and self.method == "ghost":
            pad = capacity - len(x)
            mask = np.r_[np.ones(len(x), np.float32), np.zeros(pad, np.float32)]
            if pad:
                x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
                y = np.concatenate([y, np.zeros((pad,) + y.shape[1:], y.dtype)])
            self._step(x, y, mask, tf.constant(denominator, tf.float32))
            self.steps += 1
            return
        total = None
        for start in range(0, max(len(x), 1), capacity):
            xb, yb = x[start : start + capacity], y[start : start + capacity]
            pad = capacity - len(xb)
            mask = np.r_[np.ones(len(xb), np.float32), np.zeros(pad, np.float32)]
            if pad:
                xb = np.concatenate([xb, np.zeros((pad,) + xb.shape[1:], xb.dtype)])
                yb = np.concatenate([yb, np.zeros((pad,) + yb.shape[1:], yb.dtype)])
            grads, _ = self._clipped_sum(
                tf.convert_to_tensor(xb), tf.convert_to_tensor(yb), tf.convert_to_tensor(mask)
            )
            total = grads if total is None else [t + g for t, g in zip(total, grads, strict=True)]
        self._apply(total, tf.constant(denominator, tf.float32))
        self.steps += 1


def reference_clipped_sum(
    model: tf.keras.Model, x: np.ndarray, y: np.ndarray, l2_norm_clip: float
) -> list[np.ndarray]:
    """Return the clipped gradient sum the slow, obvious way: one backward pass per example."""
    l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
    total = None
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_default_loss(y[i : i + 1], model(x[i : i + 1], training=True)))
        grads = [  # convert_to_tensor: an Embedding's gradient comes as IndexedSlices
            tf.convert_to_tensor(g).numpy().astype(np.float64)
            for g in tape.gradient(loss, model.trainable_variables)
        ]
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        grads = [g * min(1.0, l2_norm_clip / norm) for g in grads]
        total = grads if total is None else [t + g for t, g in zip(total, grads, strict=True)]
    return total
