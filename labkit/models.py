"""Small Keras models used across the chapters, character LMs included; all output logits."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import labkit.config  # noqa: F401  (quiets TensorFlow before the first import)
from labkit._checks import (
    check_bool,
    check_choice,
    check_finite_array,
    check_int,
    check_labels,
    check_positive,
)
from labkit.data.text import CELLS, VOCAB, TextError

__all__ = [
    "logistic",
    "mlp",
    "cnn",
    "build_model",
    "compile_model",
    "train",
    "per_example_loss",
    "evaluate",
    "count_params",
    "build_char_lm",
    "char_lm_layers",
    "perplexity",
    "rnn_step",
    "sequence_log_probs",
]


def _input(input_shape: tuple[int, ...]) -> tf.keras.layers.Layer:
    return tf.keras.layers.InputLayer(input_shape=tuple(input_shape))


def logistic(input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """Build multinomial logistic regression: flatten, then one dense layer."""
    return tf.keras.Sequential(
        [_input(input_shape), tf.keras.layers.Flatten(), tf.keras.layers.Dense(num_classes)],
        name="logistic",
    )


def mlp(
    input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (200, 200)
) -> tf.keras.Model:
    """Build an MLP; the default is McMahan et al.'s 2NN (784-200-200-10, ReLU)."""
    layers = [_input(input_shape), tf.keras.layers.Flatten()]
    layers += [tf.keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(tf.keras.layers.Dense(num_classes))
    name = "2nn" if tuple(hidden) == (200, 200) else "mlp_" + "_".join(map(str, hidden))
    return tf.keras.Sequential(layers, name=name)


def cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: tuple[int, int] = (32, 64),
    dense: int = 512,
) -> tf.keras.Model:
    """Build McMahan et al.'s CNN: 5x5 conv 32, pool, 5x5 conv 64, pool, dense 512."""
    shape = tuple(input_shape)
    layers = [_input(shape)]
    if len(shape) == 2:  # grey images without a channel axis
        layers.append(tf.keras.layers.Reshape(shape + (1,)))
    for f in filters:
        layers.append(tf.keras.layers.Conv2D(f, 5, padding="same", activation="relu"))
        layers.append(tf.keras.layers.MaxPooling2D(2, padding="same"))
    layers += [
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(dense, activation="relu"),
        tf.keras.layers.Dense(num_classes),
    ]
    name = "cnn" if (tuple(filters), dense) == ((32, 64), 512) else "cnn_small"
    return tf.keras.Sequential(layers, name=name)


_SMALL = {
    "logistic": {},
    "mlp": {"hidden": (64,)},
    "2nn": {"hidden": (64,)},
    "cnn": {"filters": (8, 16), "dense": 64},
}


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    small: bool = False,
    seed: int | None = None,
) -> tf.keras.Model:
    """Build ``'logistic'``, ``'2nn'``/``'mlp'`` or ``'cnn'``; ``small`` is the quick size."""
    builders = {"logistic": logistic, "mlp": mlp, "2nn": mlp, "cnn": cnn}
    check_choice("name", name, sorted(builders))
    if seed is not None:
        tf.keras.utils.set_random_seed(int(seed))  # same seed, same initial weights
    kwargs = _SMALL[name] if small else {}
    return builders[name](input_shape, num_classes, **kwargs)


def compile_model(
    model: tf.keras.Model,
    learning_rate: float = 0.1,
    optimizer: tf.keras.optimizers.Optimizer | None = None,
) -> tf.keras.Model:
    """Compile with SGD (or ``optimizer``), cross-entropy on logits, and accuracy."""
    if optimizer is None:
        learning_rate = check_positive("learning_rate", learning_rate)
        optimizer = tf.keras.optimizers.SGD(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
) -> tf.keras.Model:
    """Train non-privately with Adam (or ``'sgd'``) on logits; return the model."""
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    optimizers = {"adam": tf.keras.optimizers.Adam, "sgd": tf.keras.optimizers.SGD}
    check_choice("optimizer", optimizer, sorted(optimizers))
    x, y = _check_data(x, y)
    compile_model(
        model, optimizer=optimizers[optimizer](check_positive("learning_rate", learning_rate))
    )
    from labkit.config import progress

    bar = progress(total=epochs, desc=f"training {model.name}", unit="epoch")
    callback = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: bar.update(1))
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback])
    bar.close()
    return model


def per_example_loss(
    model: tf.keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """Return the cross-entropy of every example (no reduction), as float64."""
    x, y = _check_data(x, y)
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    losses = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return np.asarray(losses, dtype=np.float64)


def evaluate(
    model: tf.keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024
) -> tuple[float, float]:
    """Return ``(mean loss, accuracy)`` of ``model`` on ``(x, y)``."""
    x, y = _check_data(x, y)
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    losses = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    acc = float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))
    return float(np.mean(losses)), acc


def _check_data(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Finite float32 inputs and integer labels, one per input (Keras would truncate floats)."""
    x = check_finite_array("x", x, np.float32)
    return x, check_labels("y", y, len(x))


def count_params(model: tf.keras.Model) -> int:
    """Return the number of trainable parameters."""
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


# --- character language models (chapter 08) ---------------------------------------------


def build_char_lm(
    seq_len: int,
    units: int = 256,
    embedding_dim: int = 16,
    cell: str = "gru",
    return_sequences: bool = True,
    vocab_size: int = len(VOCAB),
    seed: int | None = None,
):
    """Build a character LM: Embedding -> GRU/LSTM -> Dense logits over the vocabulary.

    ``return_sequences=True`` predicts the next character at every position (logits of shape
    (batch, seq_len, vocab)); False predicts only the character after the window (the
    next-character task of ``labkit.fl``). 256 GRU units give about 230k parameters.
    """
    check_choice("cell", cell, CELLS)
    seq_len, units = check_int("seq_len", seq_len, 1), check_int("units", units, 1)
    embedding_dim = check_int("embedding_dim", embedding_dim, 1)
    vocab_size = check_int("vocab_size", vocab_size, 2)
    return_sequences = check_bool("return_sequences", return_sequences)
    if seed is not None:
        tf.keras.utils.set_random_seed(int(seed))
    rnn = tf.keras.layers.GRU if cell == "gru" else tf.keras.layers.LSTM
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(seq_len,)),
            tf.keras.layers.Embedding(vocab_size, embedding_dim),
            rnn(units, return_sequences=return_sequences),
            tf.keras.layers.Dense(vocab_size),
        ],
        name=f"char_{cell}{units}",
    )


def perplexity(model, x, y, batch_size: int = 512) -> float:
    """Return the per-character perplexity 2^(mean -log2 P(next char)) of ``model`` on (x, y)."""
    total, count = 0.0, 0
    for s in range(0, len(x), batch_size):
        logits = model(np.asarray(x[s : s + batch_size], np.float32), training=False)
        nll = tf.keras.losses.sparse_categorical_crossentropy(
            y[s : s + batch_size], logits, from_logits=True
        )
        total += float(tf.reduce_sum(nll))
        count += int(np.prod(nll.shape))
    return float(2.0 ** (total / count / np.log(2.0)))


def char_lm_layers(model):
    """Return (Embedding, GRU/LSTM, Dense) of a char LM; raise ``TextError`` for any other model."""
    layers = [la for la in model.layers if not isinstance(la, tf.keras.layers.InputLayer)]
    kinds = (tf.keras.layers.Embedding, (tf.keras.layers.GRU, tf.keras.layers.LSTM))
    if (
        len(layers) != 3
        or not isinstance(layers[0], kinds[0])
        or not isinstance(layers[1], kinds[1])
        or type(layers[2]) is not tf.keras.layers.Dense
    ):
        raise TextError("model", model.name, "Embedding -> GRU/LSTM -> Dense (a char LM)")
    return layers


def rnn_step(rnn, mx, mr, state):
    """One recurrent step from projections: GRU/LSTM cell math as Keras computes it.

    ``mx = x W + b_input`` and ``mr = h U + b_recurrent`` (GRU, reset_after) or ``mr = h U``
    (LSTM; its bias is in ``mx``). Returns ``(h, new_state)``; state is ``[h]`` or ``[h, c]``.
    """
    cell = rnn.cell
    act, rec = cell.activation, cell.recurrent_activation
    if hasattr(cell, "reset_after"):  # GRU
        if not cell.reset_after:
            raise TextError("rnn", rnn.name, "a GRU with reset_after=True (the Keras default)")
        xz, xr, xh = tf.split(mx, 3, axis=-1)
        rz, rr, rh = tf.split(mr, 3, axis=-1)
        z, r = rec(xz + rz), rec(xr + rr)
        h = z * state[0] + (1.0 - z) * act(xh + r * rh)
        return h, [h]
    i, f, g, o = tf.split(mx + mr, 4, axis=-1)
    c = rec(f) * state[1] + rec(i) * act(g)
    h = rec(o) * act(c)
    return h, [h, c]


def _projections(rnn, emb):
    """Return ``mx`` (B, T, k) and a function h -> ``mr`` for one recurrent layer."""
    cell = rnn.cell
    if hasattr(cell, "reset_after"):
        b_in, b_rec = cell.bias[0], cell.bias[1]
    else:
        b_in, b_rec = cell.bias, 0.0
    mx = tf.einsum("bte,ek->btk", emb, cell.kernel) + b_in
    return mx, (lambda h: tf.matmul(h, cell.recurrent_kernel) + b_rec)


def sequence_log_probs(model, codes, state=None, return_state: bool = False):
    """Return log2 P(code[t+1] | code[:t+1]) from ``model``'s weights, for a batch of sequences.

    ``codes`` (B, L) are fed from ``state`` (default zeros); the result has shape (B, L, vocab):
    row t holds the distribution of the character after position t. Works for any L (the model's
    weights are used directly, step by step), and with ``return_state`` also returns the state
    after the last character, so a caller can continue from it (exposure, beam search).
    """
    emb_layer, rnn, dense = char_lm_layers(model)
    codes = tf.convert_to_tensor(np.asarray(codes, np.int32))
    emb = tf.gather(emb_layer.embeddings, codes)
    n = tf.shape(codes)[0]
    if state is None:
        zeros = tf.zeros([n, rnn.units])
        state = [zeros] if hasattr(rnn.cell, "reset_after") else [zeros, zeros]
    mx, rec = _projections(rnn, emb)
    outs = []
    for t in range(int(codes.shape[1])):
        h, state = rnn_step(rnn, mx[:, t], rec(state[0]), state)
        outs.append(h)
    logits = tf.einsum("bth,hv->btv", tf.stack(outs, axis=1), dense.kernel) + dense.bias
    logp = (tf.nn.log_softmax(logits, axis=-1) / np.log(2.0)).numpy().astype(np.float64)
    return (logp, state) if return_state else logp
