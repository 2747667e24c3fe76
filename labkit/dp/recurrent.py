"""Character LMs (Embedding -> GRU/LSTM -> Dense) under DP-SGD: no trainer of their own.

Their per-example rules (Embedding, GRU, LSTM, Dense on sequences) live in the one registry of
``labkit.dp.layers`` and train with the one ``DPSGD``; train with
``labkit.dp.train_dpsgd(..., method='ghost-recurrent')``. ``RecurrentDPSGD`` is kept as a
factory for code that names it.
"""

from __future__ import annotations

import tensorflow as tf

from labkit.dp.dpsgd import DPSGD

__all__ = ["RecurrentDPSGD"]


def RecurrentDPSGD(  # noqa: N802  (a factory kept under the old class name)
    model: tf.keras.Model,
    l2_norm_clip: float,
    noise_multiplier: float,
    learning_rate: float = 0.1,
    momentum: float = 0.0,
    seed: int | None = None,
) -> DPSGD:
    """Return ``DPSGD(method='ghost-recurrent')`` for an Embedding -> GRU/LSTM -> Dense LM."""
    from labkit.models import char_lm_layers  # checks the architecture

    char_lm_layers(model)
    return DPSGD(model, l2_norm_clip, noise_multiplier, learning_rate, momentum,
                 "ghost-recurrent", seed=seed)  # fmt: skip
