"""One DP-SGD step schedule: how many steps, at which sampling rate, where each epoch ends.

Calibration (``dpsgd_noise_multiplier``), accounting (``dpsgd_epsilon``), the trainer
(``train_dpsgd``), the benchmarks and ``labkit.experiments`` all take their step count from
``schedule``, so a run that asks for a target epsilon trains exactly the steps the noise was
calibrated for. An "epoch" is N / L expected steps' worth of data; ``epochs`` of them take
``ceil(epochs * N / L)`` steps, and epoch ``e`` ends after ``ceil(e * N / L)`` of them (so with
N = 10,000 and L = 512, three epochs are 59 steps, split 20 + 20 + 19).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit._checks import check_int, check_positive

__all__ = ["Schedule", "schedule", "num_steps", "sampling_probability"]


@dataclass(frozen=True)
class Schedule:
    """``steps`` Poisson-sampled steps at rate ``sampling_probability``; ``epoch_ends[e - 1]``
    is the number of steps taken when epoch ``e`` is over (the last one equals ``steps``)."""

    num_examples: int
    batch_size: int
    epochs: float
    steps: int
    sampling_probability: float
    epoch_ends: tuple[int, ...]

    def steps_in_epoch(self, epoch: int) -> int:
        """Return how many steps epoch ``epoch`` (1-based) takes."""
        epoch = check_int("epoch", epoch, 1, len(self.epoch_ends))
        return self.epoch_ends[epoch - 1] - (self.epoch_ends[epoch - 2] if epoch > 1 else 0)


def sampling_probability(batch_size: int, num_examples: int) -> float:
    """Return the Poisson sampling rate q = batch_size / num_examples, checking both."""
    num_examples = check_int("num_examples", num_examples, 1)
    batch_size = check_int("batch_size", batch_size, 1, num_examples)
    return batch_size / num_examples


def _ends_after(epochs: float, num_examples: int, batch_size: int) -> int:
    # Exact integer arithmetic for whole epochs: ceil(e * N / L) without float rounding.
    if float(epochs).is_integer():
        return max(1, -(-int(epochs) * num_examples // batch_size))
    return max(1, math.ceil(epochs * num_examples / batch_size))


def schedule(num_examples: int, batch_size: int, epochs: float) -> Schedule:
    """Return the DP-SGD schedule for ``epochs`` passes over ``num_examples`` at ``batch_size``.

    ``epochs`` may be fractional (calibration for part of a pass); each whole epoch and the
    final, partial one get an entry in ``epoch_ends``.
    """
    q = sampling_probability(batch_size, num_examples)
    epochs = check_positive("epochs", epochs)
    n, b = int(num_examples), int(batch_size)
    marks = [float(e) for e in range(1, math.floor(epochs) + 1)]
    if not marks or marks[-1] < epochs:
        marks.append(epochs)
    ends = tuple(_ends_after(e, n, b) for e in marks)
    return Schedule(n, b, epochs, ends[-1], q, ends)


def num_steps(epochs: float, batch_size: int, num_examples: int) -> int:
    """Return the number of DP-SGD steps in ``epochs`` passes (``schedule(...).steps``)."""
    return schedule(num_examples, batch_size, epochs).steps
