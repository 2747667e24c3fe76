"""BatchCrypt-style packing: quantise values to unsigned integers, many slots per plaintext.

Zhang et al. (USENIX ATC 2020): each value in [low, high] becomes an unsigned integer level, and
a slot keeps room (headroom) for a declared number of summands, so one 2048-bit plaintext holds
~85 values and sums of ciphertexts never carry from one slot into the next. The headroom check
(``PackingSpec.check_headroom``) and the slot-fit check (``PackingSpec.slots``) live here once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from phe import paillier

from labkit._checks import ParameterError, check_float, check_int
from labkit.he.encoding import check_values
from labkit.he.keys import HeadroomError, ValueRangeError

__all__ = [
    "MAX_SLOT_BITS",
    "PackingSpec",
    "quantize",
    "dequantize",
    "pack_integers",
    "unpack_integers",
    "check_integer_weights",
]

MAX_SLOT_BITS = 62  # slots are unpacked into int64


@dataclass(frozen=True)
class PackingSpec:
    """How to quantise and pack: a value range, bits per value, and the summands to make room for.

    Each value x in [low, high] becomes q = round((x - low) / step) in [0, 2^precision_bits - 1]
    with step = (high - low) / (2^precision_bits - 1), so negatives need no sign bit. A slot holds
    ``slot_bits`` = bit length of max_summands * (2^precision_bits - 1), so any integer-weighted
    sum with total weight <= max_summands fits. Rounding error: step / 2 per value, W * step / 2
    for a sum of total weight W, step / 2 for a weighted mean.

    Args:
        low: smallest value that can be packed (finite).
        high: largest value that can be packed (finite, > low).
        precision_bits: bits per quantised value, in [1, 52].
        max_summands: the largest total integer weight a sum may reach (>= 1): the headroom.

    Raises:
        ParameterError: for a bound out of range, or slots wider than 62 bits.
    """

    low: float = -1.0
    high: float = 1.0
    precision_bits: int = 16
    max_summands: int = 10

    def __post_init__(self):
        low, high = check_float("low", self.low), check_float("high", self.high)
        if not (low < high and math.isfinite(high - low)):
            raise ParameterError("high", high, f"finite, > low={low} and high - low finite")
        pb = check_int("precision_bits", self.precision_bits, 1, 52)
        ms = check_int("max_summands", self.max_summands, 1)
        for name, value in (("low", low), ("high", high), ("precision_bits", pb)):
            object.__setattr__(self, name, value)  # NumPy scalars become plain numbers
        object.__setattr__(self, "max_summands", ms)
        if not self.step >= np.finfo(np.float64).tiny:  # 5e-324 wide: step 0, every value 0
            raise ParameterError(
                "high", high, f"far enough above low={low} for {pb}-bit levels",
                f"the step (high - low) / {self.levels} is {self.step:g}, below float64's "
                "smallest normal number",
            )  # fmt: skip
        if self.slot_bits > MAX_SLOT_BITS:
            raise ParameterError(
                "precision_bits",
                pb,
                f"small enough that slots fit {MAX_SLOT_BITS} bits",
                f"max_summands={ms} needs {self.slot_bits}-bit slots",
            )

    @property
    def levels(self) -> int:
        """Return the largest quantised value, 2^precision_bits - 1."""
        return (1 << self.precision_bits) - 1

    @property
    def step(self) -> float:
        """Return the quantisation step (value units per integer level)."""
        return (self.high - self.low) / self.levels

    @property
    def slot_bits(self) -> int:
        """Return bits per slot: room for max_summands values at the top level."""
        return (self.max_summands * self.levels).bit_length()

    def slots(self, public_key: paillier.PaillierPublicKey, s: int = 1) -> int:
        """Return slots per plaintext for ``public_key`` (the packed integer stays below n^s).

        ``s`` = 2 is Damgård–Jurik's plaintext space n^2. Raises ``ValueRangeError`` when not
        even one slot fits the key.
        """
        k = public_key.n.bit_length()
        slots = check_int("s", s, 1, 2) * (k - 1) // self.slot_bits
        if slots < 1:
            raise ValueRangeError(
                "public_key",
                f"a {k}-bit key",
                f"a key longer than one {self.slot_bits}-bit slot",
                "use a larger key or fewer precision_bits / max_summands",
            )
        return slots

    def check_headroom(self, total_weight: int) -> int:
        """Return ``total_weight`` if a sum of that total weight fits every slot."""
        if total_weight > self.max_summands:
            raise HeadroomError(
                "total weight",
                total_weight,
                f"<= the headroom max_summands={self.max_summands}",
                "slots would overflow; use a PackingSpec with max_summands >= the total "
                "weight, or smaller weights",
            )
        return total_weight

    def check_weights(self, weights, num: int | None = None, name: str = "weights") -> list[int]:
        """Return ``weights`` as ints if their total fits the headroom; raise before encrypting."""
        out = check_integer_weights(weights, num, name)
        self.check_headroom(sum(out))
        return out

    def max_error(self, total_weight: int = 1) -> float:
        """Return the bound on |decoded - exact| for a sum of total integer weight.

        Half a step per summand, plus float64 rounding in ``quantize`` (x - low, the division by
        the step) and ``dequantize`` (W low + levels step): a few ulps of the range per
        summand, which at 52 precision bits is as large as the step itself.
        """
        w = check_int("total_weight", total_weight, 1)
        eps = float(np.finfo(np.float64).eps)
        span, top = self.high - self.low, max(abs(self.low), abs(self.high))
        return w * (self.step / 2 + 2 * eps * (span + top))


def check_integer_weights(weights, num: int | None = None, name: str = "weights") -> list[int]:
    """Return non-negative integer weights (one per vector if ``num``) with a positive total."""
    w = list(weights)
    if num is not None and len(w) != num:
        raise ParameterError(name, w, f"one entry per vector ({num})")
    out = []
    for i, wi in enumerate(w):
        if isinstance(wi, numbers.Real) and not isinstance(wi, numbers.Integral):
            if math.isfinite(wi) and float(wi).is_integer():
                wi = int(wi)  # 3.0 from np.ones(...) * 3 is an integer weight
        if not isinstance(wi, numbers.Integral) or isinstance(wi, bool | np.bool_) or wi < 0:
            raise ParameterError(
                f"{name}[{i}]",
                wi,
                "non-negative integer weights",
                "packed sums take integer weights; scale and round float weights first",
            )
        out.append(int(wi))
    if not out or sum(out) == 0:
        raise ParameterError(name, out, "at least one positive weight")
    return out


def quantize(values, spec: PackingSpec, name: str = "values") -> np.ndarray:
    """Return int64 levels of ``values``; refuse NaN/inf and anything outside [low, high]."""
    arr = check_values(values, name)
    outside = (arr < spec.low) | (arr > spec.high)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueRangeError(
            f"{name}[{i}]",
            arr[i],
            f"inside the packing range [{spec.low}, {spec.high}]",
            "clip first or widen the PackingSpec",
        )
    q = np.rint((arr - spec.low) / spec.step).astype(np.int64)
    return np.clip(q, 0, spec.levels)  # guards float rounding at the very top of the range


def dequantize(levels, spec: PackingSpec, total_weight: int = 1) -> np.ndarray:
    """Return the float sum encoded by summed levels of a sum with ``total_weight``."""
    return total_weight * spec.low + np.asarray(levels, dtype=np.float64) * spec.step


def _check_layout(slot_bits, slots) -> tuple[int, int]:
    return check_int("slot_bits", slot_bits, 1, 63), check_int("slots", slots, 1)


def pack_integers(levels, slot_bits: int, slots: int) -> list[int]:
    """Pack integers in [0, 2^slot_bits) into ints of ``slots`` slots (slot 0 lowest).

    Negative or too-wide integers are refused: they would wrap or spill into the next slot.
    """
    slot_bits, slots = _check_layout(slot_bits, slots)
    raw = np.asarray(levels).ravel()
    if raw.size and raw.dtype.kind not in "iu":
        raise ParameterError("levels", raw, "an array of integers")
    if raw.size and (raw.min() < 0 or int(raw.max()) >= 1 << slot_bits):
        bad = int(np.flatnonzero((raw < 0) | (raw >= 1 << slot_bits))[0])
        raise ValueRangeError(f"levels[{bad}]", raw[bad], f"an integer in [0, 2^{slot_bits})")
    q = raw.astype(np.uint64)
    num = -(-q.size // slots)
    padded = np.zeros(num * slots, dtype=np.uint64)
    padded[: q.size] = q
    shifts = np.arange(slot_bits, dtype=np.uint64)
    bits = ((padded.reshape(num, slots, 1) >> shifts) & np.uint64(1)).astype(np.uint8)
    rows = np.packbits(bits.reshape(num, slots * slot_bits), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def unpack_integers(packed: Sequence[int], slot_bits: int, slots: int, length: int) -> np.ndarray:
    """Unpack ints made by ``pack_integers`` into ``length`` int64 slot values."""
    slot_bits, slots = _check_layout(slot_bits, slots)
    length = check_int("length", length, 0, len(packed) * slots)
    width = slot_bits * slots
    for i, p in enumerate(packed):
        if not 0 <= int(p) < 1 << width:
            raise ValueRangeError(f"packed[{i}]", int(p), f"an integer in [0, 2^{width})")
    nbytes = -(-width // 8)
    buf = b"".join(int(p).to_bytes(nbytes, "little") for p in packed)
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(len(packed), nbytes)
    bits = np.unpackbits(rows, axis=1, bitorder="little")[:, :width]
    bits = bits.reshape(len(packed), slots, slot_bits).astype(np.uint64)
    values = (bits << np.arange(slot_bits, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
    return values.ravel()[:length].astype(np.int64)
