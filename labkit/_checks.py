"""One set of argument checks for all of labkit.

Every check takes the parameter's public name, returns the value converted to a plain Python
type, and raises ``ParameterError`` (a ``ValueError``) naming the parameter, the value and the
allowed range. NumPy scalars (``np.int64``, ``np.float32``) are accepted wherever the
corresponding Python number is; ``bool`` is never a number here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

__all__ = [
    "ParameterError",
    "check_int",
    "check_float",
    "check_positive",
    "check_probability",
    "check_epsilon",
    "check_delta",
    "check_noise_multiplier",
    "check_l2_norm_clip",
    "check_choice",
    "check_finite_array",
    "check_labels",
]

# Largest float32: a clip norm (or any value fed to a float32 model) beyond it becomes inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ParameterError(ValueError):
    """A labkit argument outside its allowed range; carries ``name``, ``value`` and ``allowed``."""

    def __init__(self, name: str, value, allowed: str, hint: str = ""):
        self.name, self.value, self.allowed = name, value, allowed
        message = f"{name} must be {allowed}, got {_show(value)}"
        super().__init__(f"{message}; {hint}" if hint else message)


def _show(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]`` (either bound may be None)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        if high is None:
            allowed = "an integer" if low is None else f"an integer >= {low}"
        else:
            allowed = f"an integer in [{low}, {high}]"
        raise ParameterError(name, value, allowed)
    return int(value)


def check_float(
    name: str,
    value,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float in the interval given by the bounds; NaN is never allowed."""
    ok = _is_real(value) and not math.isnan(value)
    if ok:
        v = float(value)
        ok = (allow_inf or math.isfinite(v)) and (v > low if low_open else v >= low)
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        kind = "a number" if allow_inf else "a finite number"
        lo = ("(" if low_open else "[") + f"{low:g}"
        hi = f"{high:g}" + (")" if high_open else "]")
        if math.isinf(high) and not math.isinf(low):
            allowed = f"{kind} {'>' if low_open else '>='} {low:g}"
        elif math.isinf(low) and not math.isinf(high):
            allowed = f"{kind} {'<' if high_open else '<='} {high:g}"
        elif math.isinf(low) and math.isinf(high):
            allowed = kind
        else:
            allowed = f"{kind} in {lo}, {hi}"
        raise ParameterError(name, value, allowed)
    return float(value)


def check_positive(name: str, value, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float > 0 (finite unless ``allow_inf``)."""
    return check_float(name, value, 0.0, low_open=True, allow_inf=allow_inf)


def check_probability(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float in (0, 1] (or [0, 1] with ``allow_zero``)."""
    return check_float(name, value, 0.0, 1.0, low_open=not allow_zero)


def check_epsilon(epsilon, name: str = "epsilon") -> float:
    """Return ``epsilon`` as a float, or raise unless it is finite and > 0."""
    return check_positive(name, epsilon)


def check_delta(delta, name: str = "delta") -> float:
    """Return ``delta`` as a float, or raise unless 0 < delta < 1."""
    ok = _is_real(delta) and 0.0 < float(delta) < 1.0
    if not ok:
        raise ParameterError(name, delta, "in the open interval (0, 1)")
    return float(delta)


def check_noise_multiplier(noise_multiplier, *, allow_zero: bool = True) -> float:
    """Return the noise multiplier as a finite float >= 0 (> 0 unless ``allow_zero``).

    Infinity is refused everywhere: it is not "maximal privacy" but a NaN factory (inf * 0) and
    makes the accountants search forever. Pass a large finite value to study the limit.
    """
    return check_float("noise_multiplier", noise_multiplier, 0.0, low_open=not allow_zero)


def check_l2_norm_clip(l2_norm_clip, name: str = "l2_norm_clip") -> float:
    """Return the clip norm as a float in (0, float32 max]; larger overflows float32 norms."""
    return check_float(name, l2_norm_clip, 0.0, FLOAT32_MAX, low_open=True)


def check_choice(name: str, value, choices: Iterable):
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ParameterError(name, value, f"one of {choices}")
    return value


def check_finite_array(name: str, values, dtype=np.float64) -> np.ndarray:
    """Return ``values`` as an array of ``dtype``; raise if any entry is NaN or infinite."""
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ParameterError(name, values, "an array of numbers") from err
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ParameterError(name, arr, "finite everywhere", f"{bad} NaN or infinite value(s)")
    return arr


def check_labels(
    name: str, labels, num_examples: int | None = None, *, sequences: bool = False
) -> np.ndarray:
    """Return integer class labels as an int64 array: 1-D, or (examples, positions) if asked.

    Refused: 2-D (one-hot) labels unless ``sequences`` (one label per position of a sequence
    model), NaN, non-integral floats (which ``astype(int)`` would truncate silently), negative
    values, and a number of rows different from ``num_examples``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 and not (sequences and y.ndim == 2):
        hint = "pass class indices (e.g. np.argmax(one_hot, axis=1)), not one-hot rows"
        want = "a 1-D array of integer class labels" + (
            ", or one per position: 1-D or (examples, positions)" if sequences else ""
        )
        raise ParameterError(name, y, want, hint)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ParameterError(name, y, "integer class labels", "it holds NaN or inf")
        if not np.all(y == np.round(y)):
            raise ParameterError(name, y, "integer class labels", "it holds fractional values")
    elif y.dtype.kind not in "iu":
        raise ParameterError(name, y, "integer class labels")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ParameterError(name, y, "class labels >= 0", f"min is {int(y.min())}")
    if num_examples is not None and y.shape[0] != num_examples:
        raise ParameterError(name, y, f"{num_examples} labels, one per example")
    return y
