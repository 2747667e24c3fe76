"""Where DP noise comes from: cryptographically *seeded* unless a seed is passed on purpose.

Exactly what that means: by default labkit draws DP noise from fast, non-cryptographic
generators - NumPy's PCG64 here, TensorFlow's Philox inside DP-SGD's compiled step - seeded with
128 bits from the operating system's CSPRNG (Python's ``secrets``). The noise is therefore
unpredictable from the code and differs on every run, but the stream itself is not a CSPRNG:
whoever learns one generator state can predict the rest of that run's noise, and floating-point
Gaussian samples have known weaknesses of their own (Mironov 2012). A deployment needs a
cryptographically secure, float-safe sampler (for example ``discrete_gaussian`` in
``labkit.dp.mechanisms``, exact and driven by the OS's ``random.SystemRandom``).
"""

from __future__ import annotations

import secrets

import numpy as np

from labkit._checks import check_int

__all__ = ["noise_rng", "seed_words"]


def noise_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """Return a NumPy generator for DP noise or sampling.

    ``None`` (the default): PCG64 (not itself a CSPRNG) seeded with 128 bits from the OS's
    cryptographic source (``secrets``), so no two runs share noise and nobody can predict it
    from the code. An int is
    an explicit choice for reproducible teaching and tests (as Opacus's ``secure_mode=False``):
    its noise is predictable by anyone who knows the seed. A Generator is used as it is.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng(secrets.randbits(128))
    return np.random.default_rng(check_int("seed", seed, 0))


def seed_words(seed: int | None, count: int = 3) -> list[int]:
    """Return ``count`` 63-bit words: from ``secrets`` for None, else derived from ``seed``."""
    if seed is None:
        return [secrets.randbits(63) for _ in range(count)]
    seq = np.random.SeedSequence(check_int("seed", seed, 0))
    return [int(w) >> 1 for w in seq.generate_state(count, np.uint64)]
