"""DP-SGD training loop: Poisson (or shuffled) batches, ``DPSGD`` steps, accounting per epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from labkit._checks import (
    check_choice,
    check_delta,
    check_finite_array,
    check_int,
    check_labels,
)
from labkit.config import progress
from labkit.dp._random import noise_rng
from labkit.dp.accounting import dpsgd_epsilon
from labkit.dp.dpsgd import DPSGD
from labkit.dp.dpsgd import METHODS as DPSGD_METHODS

__all__ = ["DPSGDHistory", "make_dpsgd", "poisson_batches", "shuffled_batches", "train_dpsgd"]

SAMPLINGS = ("poisson", "shuffle")
METHODS = (*DPSGD_METHODS, "ghost-recurrent")  # DPSGD's own rules, plus RecurrentDPSGD's


def make_dpsgd(
    model: tf.keras.Model,
    l2_norm_clip: float,
    noise_multiplier: float,
    learning_rate: float,
    momentum: float = 0.0,
    method: str = "ghost",
    seed: int | None = None,
) -> DPSGD:
    """Return the ``DPSGD`` whose per-example clipping rule fits ``method``.

    ``'ghost'``: Dense/Conv2D chains; ``'vectorized'``: any model, slower;
    ``'ghost-recurrent'``: Embedding -> GRU/LSTM -> Dense language models (``RecurrentDPSGD``).
    """
    method = check_choice("method", method, METHODS)
    if method == "ghost-recurrent":
        from labkit.dp.recurrent import RecurrentDPSGD  # loads the char-LM helpers only when asked

        return RecurrentDPSGD(
            model, l2_norm_clip, noise_multiplier, learning_rate, momentum, seed=seed
        )
    return DPSGD(model, l2_norm_clip, noise_multiplier, learning_rate, momentum, method, seed=seed)


def poisson_batches(
    num_examples: int, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Return one epoch of Poisson batches: round(N/L) steps, each example kept w.p. L/N."""
    q = batch_size / num_examples
    return [
        np.flatnonzero(rng.random(num_examples) < q)
        for _ in range(max(1, round(num_examples / batch_size)))
    ]


def shuffled_batches(
    num_examples: int, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Return one epoch of fixed-size batches of a random permutation (partial last one dropped)."""
    perm = rng.permutation(num_examples)
    n = num_examples // batch_size
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(n)]


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
        epochs: passes over the data (each round(len(x) / L) steps).
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
    y = check_labels("y", y, n, sequences=method == "ghost-recurrent")
    batch_size = check_int("batch_size", batch_size, 1, n)
    epochs = check_int("epochs", epochs, 1)
    sampling = check_choice("sampling", sampling, SAMPLINGS)
    delta = check_delta(delta)
    dp = make_dpsgd(model, l2_norm_clip, noise_multiplier, learning_rate, momentum, method, seed)
    # Sampling from its own stream: with a seed, a different one from the noise's.
    rng = noise_rng(None if seed is None else int(seed) + 1)
    # Capacity 4 standard deviations above the mean: chunking beyond it is rare and still exact.
    capacity = min(n, int(batch_size + 4 * math.sqrt(batch_size) + 1))
    capacity = batch_size if sampling == "shuffle" else capacity
    history = DPSGDHistory(delta=delta, sampling=sampling)
    start = time.perf_counter()
    for epoch in progress(range(1, epochs + 1), desc="DP-SGD epochs"):
        make = poisson_batches if sampling == "poisson" else shuffled_batches
        for idx in make(n, batch_size, rng):
            dp.step(x[idx], y[idx], float(batch_size), capacity)
        dp.check_weights_finite(f" in epoch {epoch}")
        if validation_data is None and on_epoch_end is None and epoch < epochs:
            continue  # nobody looks at this epoch: skip the accountant call (about 0.1 s)
        history.epochs.append(epoch)
        history.seconds.append(time.perf_counter() - start)
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
