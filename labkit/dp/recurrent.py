"""DP-SGD for character LMs (Embedding -> GRU/LSTM -> Dense): exact per-example clipping, fast.

``DPSGD(method='vectorized')`` needs the recurrent layer unrolled (``tf.vectorized_map`` cannot
vectorise Keras's while-loop) and then costs 10-25x a non-private step on a 2-core CPU at 230k
parameters. This extends the ghost / book-keeping idea of ``labkit.dp.dpsgd`` to recurrent
layers instead. One forward pass records, per example ``i`` and time step ``t``, the inputs of
every weight matrix and one backward pass the gradients at its outputs. Every weight gradient is
then a sum over time of outer products, ``grad_i(W) = sum_t a_{i,t} g_{i,t}^T = A_i^T G_i``:

* Embedding: ``A`` = one-hot characters, ``G`` = gradient at the embedded vectors;
* GRU/LSTM input kernel: ``A`` = embedded characters, ``G`` = gradient at ``x W + b``;
* recurrent kernel: ``A`` = previous hidden states, ``G`` = gradient at ``h U (+ b)``;
* Dense head (at every position or the last one): ``A`` = hidden states, ``G`` = at the logits.

The per-example norm ``||A_i^T G_i||`` comes from ``<A_i A_i^T, G_i G_i^T>`` (a T x T "ghost"
Gram, Li et al. 2022) or from the explicit k x c per-example matrix, whichever is smaller; the
clipped sum is the ordinary gradient with ``G_i`` scaled by its clip factor. Exact: a test checks
it against ``reference_clipped_sum``. Noise, the update and accounting are ``DPSGD``'s; train with
``labkit.dp.train_dpsgd(..., method='ghost-recurrent')``.
"""

from __future__ import annotations

import tensorflow as tf

from labkit.dp.dpsgd import DPSGD

__all__ = ["RecurrentDPSGD"]


def _outer_norms(a: tf.Tensor, g: tf.Tensor):
    """Return (per-example squared norms of A_i^T G_i, explicit per-example matrices or None)."""
    positions, k, c = a.shape[1], a.shape[2], g.shape[2]
    if positions * positions <= k * c:
        gram = tf.einsum("bpk,bqk->bpq", a, a) * tf.einsum("bpc,bqc->bpq", g, g)
        return tf.reduce_sum(gram, axis=[1, 2]), None
    per_example = tf.einsum("bpk,bpc->bkc", a, g)
    return tf.reduce_sum(tf.square(per_example), axis=[1, 2]), per_example


class RecurrentDPSGD(DPSGD):
    """``DPSGD`` with exact, ghost-style per-example clipping for an Embedding-RNN-Dense LM.

    ``y`` holds one label per example (next character after the window) or one per position
    (shape (batch, seq_len)); the loss is summed over positions, so the unit of privacy is one
    training example (one window or chunk of text).
    """

    def __init__(
        self,
        model: tf.keras.Model,
        l2_norm_clip: float,
        noise_multiplier: float,
        learning_rate: float = 0.1,
        momentum: float = 0.0,
        seed: int | None = None,
    ):
        from labkit.models import char_lm_layers  # checks the architecture

        self._parts = char_lm_layers(model)
        super().__init__(
            model, l2_norm_clip, noise_multiplier, learning_rate, momentum, "vectorized", seed=seed
        )
        self.method = "ghost-recurrent"
        self._clipped_sum = tf.function(self._recurrent_clipped_sum, reduce_retracing=True)

    def _recurrent_clipped_sum(self, x, y, mask):
        from labkit.models import _projections, rnn_step

        emb_layer, rnn, dense = self._parts
        cell = rnn.cell
        gru = hasattr(cell, "reset_after")
        codes = tf.cast(x, tf.int32)
        steps = int(codes.shape[1])
        n = tf.shape(codes)[0]
        k = int(cell.recurrent_kernel.shape[1])
        # A zero "probe" added to every recurrent projection: its gradient is the gradient at
        # h U + b for all steps at once, so the loop can stay a graph loop (fast to trace).
        probe = tf.zeros([n, steps, k])
        with tf.GradientTape() as tape:
            tape.watch(probe)
            emb = tf.gather(emb_layer.embeddings, codes)
            tape.watch(emb)
            mx, rec = _projections(rnn, emb)
            zeros = tf.zeros([n, rnn.units])
            state = [zeros] if gru else [zeros, zeros]
            # Time-major TensorArrays: slicing mx[:, t] instead would make every step's
            # gradient a dense (batch, steps, k) tensor (quadratic in the sequence length).
            mx_t = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(mx, [1, 0, 2]))
            probe_t = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(probe, [1, 0, 2]))
            prev = tf.TensorArray(tf.float32, size=steps)
            outs = tf.TensorArray(tf.float32, size=steps)
            for t in tf.range(steps):
                prev = prev.write(t, state[0])
                h, state = rnn_step(rnn, mx_t.read(t), rec(state[0]) + probe_t.read(t), state)
                outs = outs.write(t, h)
            hs = tf.transpose(outs.stack(), [1, 0, 2])
            if not rnn.return_sequences:
                hs = hs[:, -1:]
            z = tf.einsum("bth,hv->btv", hs, dense.kernel) + dense.bias
            logits = z if rnn.return_sequences else z[:, 0]
            total = tf.reduce_sum(self.loss(y, logits))
        g_emb, g_mx, g_z, g_probe = tape.gradient(total, [emb, mx, z, probe])
        prev = tf.transpose(prev.stack(), [1, 0, 2])
        g_rec = g_probe  # LSTM: the same as g_mx (its gate input is mx + mr)
        one_hot = tf.one_hot(codes, emb_layer.input_dim)
        pairs = {  # variable -> (A, G) with grad_i = A_i^T G_i
            id(emb_layer.embeddings): (one_hot, g_emb),
            id(cell.kernel): (emb, g_mx),
            id(cell.recurrent_kernel): (prev, g_rec),
            id(dense.kernel): (hs, g_z),
        }
        biases = {  # variable -> per-example gradients (B, ...)
            id(dense.bias): tf.reduce_sum(g_z, axis=1),
            id(cell.bias): (
                tf.stack([tf.reduce_sum(g_mx, 1), tf.reduce_sum(g_rec, 1)], axis=1)
                if gru
                else tf.reduce_sum(g_mx, 1)
            ),
        }
        sq_norms, explicit = 0.0, {}
        for key, (a, g) in pairs.items():
            sq, explicit[key] = _outer_norms(a, g)
            sq_norms += sq
        for b in biases.values():
            sq_norms += tf.reduce_sum(tf.reshape(tf.square(b), [tf.shape(b)[0], -1]), axis=1)
        norms = tf.sqrt(sq_norms)
        clip = tf.constant(self.l2_norm_clip, tf.float32)
        weights = mask * clip / tf.maximum(norms, clip)
        grads = {}
        for key, (a, g) in pairs.items():
            if explicit[key] is not None:
                grads[key] = tf.einsum("b,bkc->kc", weights, explicit[key])
            else:
                grads[key] = tf.einsum("bpk,bpc->kc", a, g * weights[:, None, None])
        for key, b in biases.items():
            grads[key] = tf.tensordot(weights, b, axes=1)
        return [grads[id(v)] for v in self.model.trainable_variables], norms
