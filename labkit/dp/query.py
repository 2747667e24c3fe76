"""The Gaussian sum query: clip each record to L2 norm C, sum, add N(0, (z C)^2 I).

One query for DP-SGD (records: per-example gradients) and DP-FedAvg (records: client updates),
as TF Privacy's ``GaussianSumQuery``. It reports what it adds (``event``, a dp-accounting
event per release); composing releases into an epsilon is the accountant's job
(``labkit.dp.accounting``), not the query's.
"""

from __future__ import annotations

import dp_accounting
import numpy as np
import tensorflow as tf

from labkit._checks import (
    FLOAT32_MAX,
    ParameterError,
    check_finite_array,
    check_l2_norm_clip,
    check_noise_multiplier,
)

__all__ = ["GaussianSumQuery"]


class GaussianSumQuery:
    """Clip records to ``l2_norm_clip``, sum them, add Gaussian noise of std ``noise_std``.

    Adding or removing one record moves the clipped sum by at most ``l2_norm_clip``, so one
    noisy sum is a Gaussian mechanism with noise multiplier ``noise_multiplier``.
    """

    def __init__(self, l2_norm_clip: float, noise_multiplier: float):
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

    @property
    def noise_std(self) -> float:
        """Return the per-coordinate noise std on the sum, ``noise_multiplier * l2_norm_clip``."""
        return self.noise_multiplier * self.l2_norm_clip

    def clip_factors(self, norms):
        """Return ``min(1, C / norm)`` per record (TensorFlow or NumPy, as given)."""
        if isinstance(norms, tf.Tensor):
            clip = tf.constant(self.l2_norm_clip, norms.dtype)
            return clip / tf.maximum(norms, clip)
        return self.l2_norm_clip / np.maximum(np.asarray(norms, np.float64), self.l2_norm_clip)

    def clip(self, vector: np.ndarray) -> tuple[np.ndarray, float]:
        """Return ``vector`` scaled to L2 norm <= ``l2_norm_clip``, and its norm before."""
        v = check_finite_array("vector", vector)
        peak = float(np.abs(v).max()) if v.size else 0.0
        if peak == 0.0:
            return v.copy(), 0.0
        unit = v / peak  # ||v|| = peak ||v / peak||: squares of 1e300 would overflow to inf
        r = float(np.linalg.norm(unit))
        norm = peak * r
        return (v.copy() if norm <= self.l2_norm_clip else unit * (self.l2_norm_clip / r)), norm

    def add_noise(self, total: np.ndarray, rng: np.random.Generator, share: float = 1.0):
        """Return ``total`` + N(0, (share * noise_std)^2) per coordinate (NumPy)."""
        std = share * self.noise_std
        return total + rng.normal(0.0, std, size=np.shape(total)) if std > 0 else total

    def add_noise_tf(self, tensors: list, generator: tf.random.Generator) -> list:
        """Return each tensor + N(0, noise_std^2), one draw for all of them (in a graph)."""
        if self.noise_std == 0:
            return list(tensors)
        sizes = [int(np.prod(t.shape)) for t in tensors]
        parts = tf.split(generator.normal([sum(sizes)]), sizes)
        return [t + self.noise_std * tf.reshape(z, t.shape) for t, z in zip(tensors, parts,
                                                                          strict=True)]  # fmt: skip

    def event(self) -> dp_accounting.DpEvent:
        """Return the dp-accounting event of one noisy sum (before any sampling)."""
        return dp_accounting.GaussianDpEvent(self.noise_multiplier)
