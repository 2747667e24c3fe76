"""Per-layer rules for DP-SGD's exact per-example clipping, in one registry (as Opacus keeps them).

Every weight gradient of a supported layer is a sum of outer products over positions,
``grad_i(W) = A_i^T G_i``, with ``A_i`` what the layer multiplied ``W`` by and ``G_i`` the
gradient at the product, for example ``i``. A rule runs its layer's forward pass from the
layer's own weights and returns *taps*: (variable, ``A``, the tensor ``z`` whose gradient is
``G``). ``labkit.dp.dpsgd`` turns taps into per-example norms (a "ghost" Gram
``<A_i A_i^T, G_i G_i^T>`` or the explicit ``A_i^T G_i``, whichever is cheaper) and into the
clipped sum (the ordinary gradient with ``G_i`` scaled by its clip factor). A bias tap has no
``A``: its per-example gradient is ``G_i`` summed over positions.

* Dense: ``A`` = the layer input (any rank), ``z`` = ``A W + b``; the activation is applied.
* Conv2D: ``A`` = the input patches, ``z`` = the convolution.
* Embedding: ``A`` = one-hot codes, ``z`` = the embedded vectors (first layer only).
* GRU (reset_after=True) / LSTM: input kernel ``A`` = inputs, ``z`` = ``x W (+ b)``; recurrent
  kernel ``A`` = previous hidden states, ``z`` = ``h U (+ b)`` (a zero "probe" added to it,
  so its gradient covers every time step at once).
* Flatten, Reshape, pooling, Activation, Dropout: called as they are.

A rule's ``check`` refuses, before any training, every option it would otherwise compute
wrongly (a ``ParameterError`` naming the layer and the option). Adding a layer type is one
``register`` call and one test against ``reference_clipped_sum``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from labkit._checks import ParameterError
from labkit.models import rnn_step

__all__ = ["Tap", "LayerRule", "register", "rule_for", "RULES"]

_K = tf.keras.layers


@dataclass
class Tap:
    """``grad_i(variable[slot]) = A_i^T G_i`` (or ``sum_positions G_i`` when ``a`` is None)."""

    variable: tf.Variable
    a: tf.Tensor | None
    z: tf.Tensor
    slot: int | None = None  # the row of ``variable`` this tap fills (a GRU's two biases)


@dataclass
class LayerRule:
    """How DP-SGD runs one layer type: ``forward(layer, h, training, watch) -> (h, taps)`` and
    ``check(layer)``, which raises ``ParameterError`` for an option the forward does not honour."""

    forward: Callable
    check: Callable[[tf.keras.layers.Layer], None]


RULES: dict[type, LayerRule] = {}


def _refuse(layer, option: str, allowed: str, hint: str = "use method='vectorized'") -> None:
    raise ParameterError("model", f"layer {layer.name!r} ({type(layer).__name__}) with {option}",
                         allowed, hint)  # fmt: skip


def _no_regularizers(layer) -> None:
    for attr in ("kernel_regularizer", "bias_regularizer", "recurrent_regularizer",
                 "embeddings_regularizer", "activity_regularizer"):  # fmt: skip
        if getattr(layer, attr, None) is not None:
            _refuse(layer, f"{attr}={getattr(layer, attr)!r}",
                    "no regularizer: DP-SGD clips the loss's gradient only, model.losses would "
                    "be added unclipped", "drop the regularizer (or use weight decay in the "
                    "optimizer, which touches no data)")  # fmt: skip


def register(*layer_types: type, check: Callable | None = None):
    """Decorator: register ``forward`` (and ``check``) as the rule for exactly these types.

    Exact types only: a subclass may override ``call`` and is refused until it has its own rule.
    """

    def wrap(forward):
        for t in layer_types:
            RULES[t] = LayerRule(forward, check or (lambda layer: None))
        return forward

    return wrap


def rule_for(layer: tf.keras.layers.Layer) -> LayerRule:
    """Return the registered rule for ``layer`` after its ``check``; refuse unknown layers."""
    rule = RULES.get(type(layer))
    if rule is None:
        names = ", ".join(sorted(t.__name__ for t in RULES))
        _refuse(layer, "no per-example rule", f"one of the registered layer types ({names})")
    rule.check(layer)
    return rule


# --- weightless layers ----------------------------------------------------------------------
def _check_weightless(layer) -> None:
    if layer.weights:
        _refuse(layer, f"{len(layer.weights)} weights", "a weightless layer")


@register(_K.Flatten, _K.Reshape, _K.MaxPooling2D, _K.AveragePooling2D, _K.GlobalAveragePooling2D,
          _K.GlobalMaxPooling2D, _K.Activation, _K.Dropout, check=_check_weightless)  # fmt: skip
def _weightless(layer, h, training, watch):
    return layer(h, training=training), []


# --- Dense ----------------------------------------------------------------------------------
def _check_dense(layer) -> None:
    _no_regularizers(layer)


@register(_K.Dense, check=_check_dense)
def _dense(layer, h, training, watch):
    if h.shape.rank == 2:
        z = tf.matmul(h, layer.kernel)  # the plain GEMM (tensordot adds reshapes)
    else:
        z = tf.tensordot(h, layer.kernel, [[h.shape.rank - 1], [0]])
    return _biased(layer, z, [Tap(layer.kernel, h, None)])


def _biased(layer, z, taps: list[Tap]):
    """Add the layer's bias (a tap of its own), point every tap at z, apply the activation."""
    if layer.use_bias:
        z = z + layer.bias
        taps.append(Tap(layer.bias, None, None))
    for tap in taps:
        tap.z = z
    return layer.activation(z), taps


# --- Conv2D ---------------------------------------------------------------------------------
def _check_conv(layer) -> None:
    _no_regularizers(layer)
    if layer.groups != 1:
        _refuse(layer, f"groups={layer.groups}", "groups=1")
    if tuple(layer.dilation_rate) != (1, 1):
        _refuse(layer, f"dilation_rate={layer.dilation_rate}", "dilation_rate=(1, 1)")
    if layer.data_format != "channels_last":
        _refuse(layer, f"data_format={layer.data_format!r}", "data_format='channels_last'")


@register(_K.Conv2D, check=_check_conv)
def _conv2d(layer, h, training, watch):
    padding = layer.padding.upper()
    z = tf.nn.conv2d(h, layer.kernel, layer.strides, padding)
    kh, kw = layer.kernel_size
    patches = tf.image.extract_patches(
        h, sizes=[1, kh, kw, 1], strides=[1, *layer.strides, 1], rates=[1, 1, 1, 1],
        padding=padding,
    )  # fmt: skip
    return _biased(layer, z, [Tap(layer.kernel, patches, None)])


# --- Embedding ------------------------------------------------------------------------------
def _check_embedding(layer) -> None:
    _no_regularizers(layer)
    if layer.mask_zero:
        _refuse(layer, "mask_zero=True",
                "mask_zero=False: the masked steps would change the function differentiated",
                "pad with a real character, or use method='vectorized'")  # fmt: skip


@register(_K.Embedding, check=_check_embedding)
def _embedding(layer, h, training, watch):
    codes = tf.cast(h, tf.int32)  # whole numbers in range: checked before training
    emb = tf.gather(layer.embeddings, codes)
    watch(emb)
    return emb, [Tap(layer.embeddings, tf.one_hot(codes, layer.input_dim), emb)]


# --- GRU / LSTM -----------------------------------------------------------------------------
def _check_recurrent(layer) -> None:
    _no_regularizers(layer)
    for option, default in (("dropout", 0.0), ("recurrent_dropout", 0.0), ("go_backwards", False),
                            ("stateful", False), ("return_state", False),
                            ("time_major", False)):  # fmt: skip
        value = getattr(layer, option)
        if value != default:
            _refuse(layer, f"{option}={value!r}", f"{option}={default!r}")
    if isinstance(layer, _K.GRU) and not layer.reset_after:
        _refuse(layer, "reset_after=False", "reset_after=True (the Keras default)")


@register(_K.GRU, _K.LSTM, check=_check_recurrent)
def _recurrent(layer, h, training, watch):
    cell, gru = layer.cell, isinstance(layer, _K.GRU)
    n, steps = tf.shape(h)[0], int(h.shape[1])
    k = int(cell.recurrent_kernel.shape[1])
    mx = tf.tensordot(h, cell.kernel, [[2], [0]])
    b_rec = 0.0
    if cell.use_bias:
        mx = mx + (cell.bias[0] if gru else cell.bias)
        b_rec = cell.bias[1] if gru else 0.0
    # The probe (zeros) added to every recurrent projection: its gradient is the gradient at
    # h U + b for all steps at once, so the loop stays a graph loop (fast to trace).
    probe = tf.zeros([n, steps, k])
    watch(probe)
    # Time-major TensorArrays: slicing mx[:, t] instead would make every step's gradient a
    # dense (batch, steps, k) tensor (quadratic in the sequence length).
    mx_t = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(mx, [1, 0, 2]))
    probe_t = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(probe, [1, 0, 2]))
    zeros = tf.zeros([n, layer.units])
    state = [zeros] if gru else [zeros, zeros]

    def body(t, prev, outs, state):
        prev = prev.write(t, state[0])
        mr = tf.matmul(state[0], cell.recurrent_kernel) + b_rec + probe_t.read(t)
        out, state = rnn_step(layer, mx_t.read(t), mr, state)  # the cell math of the LM
        return t + 1, prev, outs.write(t, out), state

    arrays = (tf.TensorArray(tf.float32, size=steps), tf.TensorArray(tf.float32, size=steps))
    _, prev, outs, _ = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), *arrays, state)
    )
    prev = tf.transpose(prev.stack(), [1, 0, 2])
    hs = tf.transpose(outs.stack(), [1, 0, 2])
    taps = [Tap(cell.kernel, h, mx), Tap(cell.recurrent_kernel, prev, probe)]
    if cell.use_bias:  # LSTM: one bias, in mx; GRU: row 0 in mx, row 1 in h U + b
        taps += (
            [Tap(cell.bias, None, mx, 0), Tap(cell.bias, None, probe, 1)]
            if gru
            else [Tap(cell.bias, None, mx)]
        )
    return (hs if layer.return_sequences else hs[:, -1]), taps
