"""Fixed-point encoding: real values as integers a Paillier key can encrypt and add exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labkit._checks import ParameterError, check_int, check_real_array
from labkit.he.keys import NonFiniteValueError, ValueRangeError

__all__ = ["FixedPoint", "check_values"]


def check_values(values, name: str = "values", allow_empty: bool = False) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array; refuse NaN, infinity and (unless allowed) empty."""
    arr = check_real_array(name, values).ravel()  # refuses strings, complex, bool, None
    if arr.size == 0 and not allow_empty:
        raise ParameterError(name, arr, "at least one value")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NonFiniteValueError(f"{name}[{i}]", arr[i], "finite (no NaN or inf)")
    return arr


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point code ``round(x * 2^frac_bits)``; precision (max error) is 2^-(frac_bits+1).

    phe encodes in base 16 (value = mantissa * 16^exponent), so ``frac_bits`` is a multiple of 4
    and maps to phe's exponent ``-frac_bits / 4``. Sums of codes are exact integers; the only
    error is the rounding of each input.
    """

    frac_bits: int = 32

    def __post_init__(self):
        fb = check_int("frac_bits", self.frac_bits, 0, 256)
        if fb % 4:
            raise ParameterError("frac_bits", fb, "a multiple of 4 in [0, 256]")
        object.__setattr__(self, "frac_bits", fb)  # a NumPy integer becomes a plain int

    @property
    def exponent(self) -> int:
        """Return phe's base-16 exponent for this code."""
        return -self.frac_bits // 4

    @property
    def resolution(self) -> float:
        """Return the spacing between representable values, 2^-frac_bits."""
        return 2.0**-self.frac_bits

    @property
    def precision(self) -> float:
        """Return the largest rounding error of one encoded value, half the resolution."""
        return self.resolution / 2

    @property
    def max_value(self) -> float:
        """Return the largest |x| whose code is a finite float64 (the key may allow less)."""
        return math.ldexp(float(np.finfo(np.float64).max), -self.frac_bits)

    def encode(self, values, name: str = "values") -> list[int]:
        """Return the signed integer codes of finite ``values`` within ``max_value``."""
        arr = check_values(values, name, allow_empty=True)
        # scaling by a power of two is exact in float64, so rint is the only rounding
        with np.errstate(over="ignore"):  # overflow to inf is reported below by name
            scaled = np.rint(np.ldexp(arr, self.frac_bits))
        bad = ~np.isfinite(scaled)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueRangeError(
                f"{name}[{i}]",
                arr[i],
                f"|x| <= {self.max_value:.3g} for frac_bits={self.frac_bits}",
                "use fewer frac_bits",
            )
        return [int(v) for v in scaled]

    def decode(self, codes) -> np.ndarray:
        """Return float64 values of integer ``codes`` (int / 2^k is correctly rounded)."""
        scale = 1 << self.frac_bits
        out = np.empty(len(codes), dtype=np.float64)
        for i, c in enumerate(codes):
            try:
                out[i] = int(c) / scale
            except OverflowError as err:
                raise ValueRangeError(
                    f"codes[{i}]", f"a {int(c).bit_length()}-bit integer", "within float64 range"
                ) from err
        return out
