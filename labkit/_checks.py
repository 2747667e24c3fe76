"""One set of argument checks for all of labkit.

The contract: every check takes the parameter's public name first and the value second
(``check_int("num_clients", num_clients, 1)``), returns the value converted to a plain Python
type (or a NumPy array), and raises ``ParameterError`` (a ``ValueError``) or a named subclass of
it, naming the parameter, the value and the allowed range. NumPy scalars (``np.int64``,
``np.float32``) are accepted wherever the corresponding Python number is; ``bool``, complex
numbers, strings, NaN and infinity are never numbers here (unless a check says so).

The DP checks named after their parameter (``check_epsilon``, ``check_delta``,
``check_noise_multiplier``, ``check_l2_norm_clip``) take the same (name, value) pair; called with
the value alone they use the parameter's usual name (``check_epsilon(0.5)``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

__all__ = [
    "FLOAT32_MAX",
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
    "check_bool",
    "check_str",
    "check_real_array",
    "check_finite_array",
    "check_labels",
]

_NO_VALUE = object()  # marks the one-argument form check_epsilon(value)

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
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 120 else text[:100] + f"... ({len(text)} characters)"


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
        elif low is None:
            allowed = f"an integer <= {high}"
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
    ok = _is_real(value)
    if ok:
        try:
            v = float(value)  # an int beyond float64 (10**400) overflows: refused below
        except OverflowError:
            v, ok = math.inf if value > 0 else -math.inf, allow_inf
        ok = ok and not math.isnan(v)
    if ok:
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
    return v


def check_positive(name: str, value, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float > 0 (finite unless ``allow_inf``)."""
    return check_float(name, value, 0.0, low_open=True, allow_inf=allow_inf)


def check_probability(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float in (0, 1] (or [0, 1] with ``allow_zero``)."""
    return check_float(name, value, 0.0, 1.0, low_open=not allow_zero)


def _name_value(name, value, default: str):
    # check_epsilon(value) is short for check_epsilon("epsilon", value)
    return (default, name) if value is _NO_VALUE else (name, value)


def check_epsilon(name, value=_NO_VALUE) -> float:
    """Return epsilon as a float, or raise unless it is finite and > 0."""
    name, value = _name_value(name, value, "epsilon")
    return check_positive(name, value)


def check_delta(name, value=_NO_VALUE) -> float:
    """Return delta as a float, or raise unless 0 < delta < 1."""
    name, value = _name_value(name, value, "delta")
    return check_float(name, value, 0.0, 1.0, low_open=True, high_open=True)


def check_noise_multiplier(name, value=_NO_VALUE, *, allow_zero: bool = True) -> float:
    """Return the noise multiplier as a finite float >= 0 (> 0 unless ``allow_zero``).

    Infinity is refused everywhere: it is not "maximal privacy" but a NaN factory (inf * 0) and
    makes the accountants search forever. Pass a large finite value to study the limit.
    """
    name, value = _name_value(name, value, "noise_multiplier")
    return check_float(name, value, 0.0, low_open=not allow_zero)


def check_l2_norm_clip(name, value=_NO_VALUE) -> float:
    """Return the clip norm as a float in (0, float32 max]; larger overflows float32 norms."""
    name, value = _name_value(name, value, "l2_norm_clip")
    return check_float(name, value, 0.0, FLOAT32_MAX, low_open=True)


def check_choice(name: str, value, choices: Iterable):
    """Return ``value`` if it is one of ``choices`` (compared by type too: True is not 1)."""
    choices = tuple(choices)
    try:
        ok = not isinstance(value, np.ndarray) and any(
            bool(value == c) and isinstance(value, bool | np.bool_) == isinstance(c, bool)
            for c in choices
        )
    except (TypeError, ValueError):  # an array compared with a string, say
        ok = False
    if not ok:
        raise ParameterError(name, value, f"one of {choices}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool (``np.bool_`` too); 'no', 0 and None are refused."""
    if not isinstance(value, bool | np.bool_):
        raise ParameterError(name, value, "True or False")
    return bool(value)


def check_str(name: str, value, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-empty unless ``allow_empty``)."""
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ParameterError(name, value, "a string" if allow_empty else "a non-empty string")
    return value


def check_real_array(
    name: str, values, dtype=np.float64, *, allow_empty: bool = True
) -> np.ndarray:
    """Return ``values`` as an array of ``dtype`` if every entry is a real number (NaN allowed).

    Refused: strings, complex numbers (their imaginary part would be dropped), booleans,
    ``None`` and ragged nesting. Integers too large for ``dtype`` become inf.
    """
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as err:  # ragged lists
        raise ParameterError(name, values, "an array of real numbers") from err
    if raw.dtype.kind == "O":
        flat = raw.ravel()
        if not all(_is_real(v) for v in flat):
            raise ParameterError(name, values, "an array of real numbers")
    elif raw.dtype.kind not in "iuf":
        raise ParameterError(name, values, "an array of real numbers", f"dtype {raw.dtype}")
    if raw.size == 0 and not allow_empty:
        raise ParameterError(name, raw, "at least one value")
    if raw.dtype.kind == "O":  # Python ints beyond float64 overflow to inf, one by one
        with np.errstate(over="ignore"):
            return np.array([_to_float(v) for v in raw.ravel()], dtype).reshape(raw.shape)
    with np.errstate(over="ignore"):
        return raw.astype(dtype)


def _to_float(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_finite_array(
    name: str, values, dtype=np.float64, *, allow_empty: bool = True
) -> np.ndarray:
    """Return ``values`` as an array of ``dtype``; raise unless every entry is a finite real.

    Refused: strings, complex numbers (their imaginary part would be dropped), booleans,
    ``None``, ragged nesting, NaN, infinity and values too large for ``dtype``.
    """
    arr = check_real_array(name, values, dtype, allow_empty=allow_empty)
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
