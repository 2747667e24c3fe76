"""Small Keras models used across the chapters; every model outputs logits."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import labkit.config  # noqa: F401  (quiets TensorFlow before the first import)
from labkit._checks import check_choice, check_finite_array, check_int, check_labels, check_positive

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
