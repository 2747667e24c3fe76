"""Seeds, the quick/full switch, and quiet TensorFlow start-up: read in one place."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import random
import sys

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
    """Seed Python, NumPy and TensorFlow once; return a NumPy generator for explicit use.

    TensorFlow is seeded now if it is loaded, else the moment it is first imported: a chapter
    that never trains (04, 06) does not pay its import (seconds, hundreds of MB). Either way
    it ends in the same state as ``tf.keras.utils.set_random_seed(seed)`` right after the import.
    """
    from labkit._checks import check_int

    global _pending_tf_seed
    seed = check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed)
    _pending_tf_seed = int(seed)
    if "tensorflow" in sys.modules:
        _seed_tensorflow(sys.modules["tensorflow"])
    elif not any(isinstance(f, _SeedOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SeedOnImport())
    return np.random.default_rng(seed)


_pending_tf_seed: int | None = None


def _seed_tensorflow(tf) -> None:
    # What tf.keras.utils.set_random_seed does for TensorFlow and Keras, without re-seeding
    # Python's and NumPy's global generators (a cell may have drawn from them since set_seed).
    from keras.src import backend

    tf.random.set_seed(_pending_tf_seed)
    backend._SEED_GENERATOR.generator = random.Random(_pending_tf_seed)
    # Same seed, same numbers: the chapters' compared cells depend on it (costs little on CPU).
    tf.config.experimental.enable_op_determinism()


class _SeedOnImport(importlib.abc.MetaPathFinder):
    """Seeds TensorFlow right after its first import (Python has no post-import hook)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate the package
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _seed_tensorflow(module)

            spec.loader.exec_module = exec_module
        return spec


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
