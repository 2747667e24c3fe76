"""Seeds, the quick/full switch, and quiet TensorFlow start-up: read in one place."""

from __future__ import annotations

import os
import random

# TensorFlow prints CUDA/cuDNN/TensorRT chatter at import; silence it before the first import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

__all__ = [
    "FULL_ENV_VAR",
    "PROGRESS_ENV_VAR",
    "DEFAULT_SEED",
    "is_full",
    "scale",
    "set_seed",
    "make_rng",
    "quiet_tensorflow",
    "progress",
    "versions",
]

FULL_ENV_VAR = "LABKIT_FULL"
PROGRESS_ENV_VAR = "LABKIT_PROGRESS"
DEFAULT_SEED = 0


def is_full() -> bool:
    """Return True when full-scale runs are requested with ``LABKIT_FULL=1``."""
    value = os.environ.get(FULL_ENV_VAR, "0").strip().lower()
    return value in {"1", "true", "yes", "on"}


def scale(quick, full):
    """Return ``full`` in full mode and ``quick`` otherwise."""
    return full if is_full() else quick


def set_seed(seed: int = DEFAULT_SEED) -> np.random.Generator:
    """Seed Python, NumPy and TensorFlow once; return a NumPy generator for explicit use."""
    from labkit._checks import check_int

    seed = check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed)
    import tensorflow as tf  # lazy: the HE chapter does not need TensorFlow

    tf.keras.utils.set_random_seed(int(seed))
    # Same seed, same numbers: the chapters' compared cells depend on it (costs little on CPU).
    tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed)


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a NumPy generator from a seed, an existing generator, or fresh entropy for None."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def quiet_tensorflow() -> None:
    """Silence TensorFlow's Python-side logging (absl warnings about retracing and the like)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def progress(iterable=None, **kwargs):
    """Wrap ``iterable`` in a ``tqdm.auto`` bar; ``LABKIT_PROGRESS=0`` silences every bar."""
    from tqdm.auto import tqdm

    if os.environ.get(PROGRESS_ENV_VAR, "1").strip() == "0":
        kwargs["disable"] = True
    kwargs.setdefault("leave", False)
    if not kwargs["leave"] and not kwargs.get("delay"):
        from tqdm.notebook import tqdm as notebook_tqdm

        if issubclass(tqdm, notebook_tqdm):  # in a kernel: no "model not found" after a reopen
            from labkit._progress import VanishingBar

            return VanishingBar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)


# The libraries a chapter's numbers depend on, in the order a reader looks for them.
_VERSIONED = ("tensorflow", "tensorflow-privacy", "dp-accounting", "numpy", "phe", "gmpy2",
              "tenseal", "flwr", "ipywidgets", "matplotlib")  # fmt: skip


def versions(packages: tuple[str, ...] = _VERSIONED) -> dict[str, str]:
    """Return ``{package: version}`` for Python, labkit and ``packages`` ("not installed" if
    absent).

    Every chapter prints this at its end, so a learner can tell which releases made its outputs.
    """
    import platform
    from importlib import metadata

    found = {"python": platform.python_version(), "labkit": metadata.version("labkit")}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
