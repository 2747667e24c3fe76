"""DP-SGD training loop: Poisson (or shuffled) batches, ``DPSGD`` steps, accounting per epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from labkit._checks import (
    ParameterError,
    check_choice,
    check_delta,
    check_finite_array,
    check_int,
    check_labels,
)
from labkit.config import progress
from labkit.dp._random import noise_rng
from labkit.dp.accounting import SAMPLINGS, dpsgd_epsilon
from labkit.dp.dpsgd import DPSGD, METHODS
from labkit.dp.schedule import schedule

__all__ = ["DPSGDHistory", "make_dpsgd", "poisson_batches", "shuffled_batches", "train_dpsgd"]


def make_dpsgd(
    model: tf.keras.Model,
    l2_norm_clip: float,
    noise_multiplier: float,
    learning_rate: float,
    momentum: float = 0.0,
    method: str = "ghost",
    seed: int | None = None,
) -> DPSGD:
    """Return the ``DPSGD`` for ``model`` (one trainer; ``method`` picks the clipping path).

    ``'ghost'``: the registered layer rules (Dense, Conv2D, Embedding, GRU, LSTM, weightless
    layers); ``'ghost-recurrent'``: the same rules, the name character LMs use;
    ``'vectorized'``: any model, slower.
    """
    method = check_choice("method", method, METHODS)
    return DPSGD(model, l2_norm_clip, noise_multiplier, learning_rate, momentum, method, seed=seed)


def poisson_batches(
    num_examples: int, batch_size: int, rng: np.random.Generator, steps: int | None = None
) -> list[np.ndarray]:
    """Return ``steps`` Poisson batches (default: one epoch of ``schedule``), each example kept
    independently with probability batch_size / num_examples."""
    plan = schedule(num_examples, batch_size, 1)
    steps = plan.steps if steps is None else check_int("steps", steps, 1)
    q = plan.sampling_probability
    return [np.flatnonzero(rng.random(num_examples) < q) for _ in range(steps)]


def shuffled_batches(
    num_examples: int, batch_size: int, rng: np.random.Generator, steps: int | None = None
) -> list[np.ndarray]:
    """Return ``steps`` fixed-size batches (default: one epoch of ``schedule``) cut from a
    stream of random permutations, so every batch has exactly ``batch_size`` examples."""
    plan = schedule(num_examples, batch_size, 1)
    steps = plan.steps if steps is None else check_int("steps", steps, 1)
    need = steps * batch_size
    perms = [rng.permutation(num_examples) for _ in range(-(-need // num_examples))]
    stream = np.concatenate(perms)[:need]
    return list(stream.reshape(steps, batch_size))


@dataclass
class DPSGDHistory:
    """Per-epoch record of a DP-SGD run: accountant's epsilon, test accuracy, wall time.

    Without validation data or a callback only the last epoch is recorded.
    """

    delta: float
    sampling: str
    epochs: list[int] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def train_dpsgd(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2_norm_clip: float,
    noise_multiplier: float,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    momentum: float = 0.0,
    delta: float = 1e-5,
    sampling: str = "poisson",
    accountant: str = "rdp",
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    method: str = "ghost",
    seed: int | None = None,
    on_epoch_end: Callable[[DPSGDHistory], None] | None = None,
) -> DPSGDHistory:
    """Train ``model`` in place with DP-SGD and return the per-epoch privacy/accuracy history.

    Args:
        model: a Keras model returning logits; trained in place.
        x, y: training inputs (finite) and integer class labels (floats that are not whole
            numbers, one-hot rows, NaN and negative labels are refused).
        l2_norm_clip: C, the per-example gradient norm bound (> 0, at most float32's max).
        noise_multiplier: z, finite >= 0; noise std z * C on each summed gradient (0: no DP).
        batch_size: the expected batch size L; the sampling rate is L / len(x).
        epochs: passes over the data: ``schedule(len(x), batch_size, epochs)`` steps in all
            (ceil(epochs * N / L)), the count ``dpsgd_noise_multiplier`` calibrates for.
        learning_rate, momentum: SGD with momentum in [0, 1).
        delta: the delta of the reported (epsilon, delta), in (0, 1).
        sampling: ``'poisson'`` (each example kept with probability L / N, as the accountant
            assumes; sums divided by L) or ``'shuffle'`` (fixed batches; the same epsilon is
            then only the customary heuristic, see ``dpsgd_epsilon``).
        accountant: ``'rdp'`` or ``'pld'`` (tighter), both through dp-accounting.
        validation_data: ``(x_test, y_test)`` evaluated after every epoch, or None.
        method: the per-example clipping rule (``make_dpsgd``): ``'ghost'`` (fast, Dense/Conv2D
            chains), ``'vectorized'`` (any model) or ``'ghost-recurrent'`` (character LMs:
            Embedding -> GRU/LSTM -> Dense; ``x`` character codes, ``y`` the next character,
            one per example or one per position).
        seed: None (default): batch sampling and noise from a generator seeded by the OS's
            cryptographic source, so no two runs add the same noise. An int makes both
            reproducible - an explicit choice for teaching and tests (compare Opacus's
            ``secure_mode``); whoever knows it can predict the noise.
        on_epoch_end: called with the history after each recorded epoch.

    Returns:
        A ``DPSGDHistory``: epochs, accountant's epsilon at ``delta``, test accuracy (with
        ``validation_data``) and seconds. Without validation data or a callback only the last
        epoch is recorded.

    Raises:
        ParameterError: any argument out of range (named with value and range), or
        ``learning_rate`` when the weights become NaN or infinite during training.
    """
    from labkit.models import evaluate

    x = check_finite_array("x", x, np.float32)
    n = len(x)
    shape = getattr(model, "output_shape", None)  # (batch, positions, classes): a sequence model
    per_position = method == "ghost-recurrent" or (isinstance(shape, tuple) and len(shape) == 3)
    y = check_labels("y", y, n, sequences=per_position)
    batch_size = check_int("batch_size", batch_size, 1, n)
    epochs = check_int("epochs", epochs, 1)
    sampling = check_choice("sampling", sampling, SAMPLINGS)
    delta = check_delta(delta)
    dp = make_dpsgd(model, l2_norm_clip, noise_multiplier, learning_rate, momentum, method, seed)
    _check_label_range(model, y)
    dp._check_batch(x, y)  # codes in range, a per-example loss: refused before any step
    plan = schedule(n, batch_size, epochs)
    # Sampling from its own stream: with a seed, a different one from the noise's.
    rng = noise_rng(None if seed is None else int(seed) + 1)
    # Capacity 4 standard deviations above the mean: chunking beyond it is rare and still exact.
    capacity = min(n, int(batch_size + 4 * math.sqrt(batch_size) + 1))
    capacity = batch_size if sampling == "shuffle" else capacity
    history = DPSGDHistory(delta=delta, sampling=sampling)
    start = time.perf_counter()
    make = poisson_batches if sampling == "poisson" else shuffled_batches
    batches = make(n, batch_size, rng, plan.steps)
    for epoch in progress(range(1, epochs + 1), desc="DP-SGD epochs"):
        for idx in batches[dp.steps : plan.epoch_ends[epoch - 1]]:
            dp.step(x[idx], y[idx], float(batch_size), capacity)
        dp.check_weights_finite(f" in epoch {epoch}")
        if validation_data is None and on_epoch_end is None and epoch < epochs:
            continue  # nobody looks at this epoch: skip the accountant call (about 0.1 s)
        history.epochs.append(epoch)
        history.seconds.append(time.perf_counter() - start)
        # dp.steps == plan.epoch_ends[epoch - 1]: the steps taken are the steps accounted.
        history.epsilon.append(
            dpsgd_epsilon(
                dp.noise_multiplier, batch_size, n, epoch, delta, accountant, sampling, dp.steps
            )
        )
        if validation_data is not None:
            history.test_accuracy.append(evaluate(model, *validation_data)[1])
        if on_epoch_end is not None:
            on_epoch_end(history)
    return history


def _check_label_range(model, y: np.ndarray) -> None:
    """Refuse labels at or above the model's number of outputs (a raw TF error otherwise)."""
    shape = getattr(model, "output_shape", None)
    classes = shape[-1] if isinstance(shape, tuple) else None
    if classes and y.size and int(y.max()) >= classes:
        hint = f"the model has {classes} outputs; max label is {int(y.max())}"
        raise ParameterError("y", y, f"class labels in [0, {classes})", hint)
