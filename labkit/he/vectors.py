"""Encrypted vectors and their arithmetic: one ciphertext per value, or packed slots.

- ``EncryptedVector``: one phe ``EncryptedNumber`` per value, fixed-point with a stated precision.
- ``PackedVector``: many quantised values per ciphertext (``labkit.he.packing``), encrypted with
  phe's ``raw_encrypt`` or, much faster, a DJN ``FastEncryptor``.

Sums multiply ciphertexts (E(x)·E(y) = E(x+y)); public integer weights raise them to a power
(E(x)^k = E(k·x)). Every check runs before the first encryption or multiplication.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import gmpy2
import numpy as np
from phe import paillier

from labkit._checks import ParameterError, check_bool, check_float
from labkit.config import progress
from labkit.he._pool import check_workers, map_chunks
from labkit.he.djn import CrtDecryptor, FastEncryptor
from labkit.he.encoding import FixedPoint, check_values
from labkit.he.keys import (
    KeyMismatchError,
    ValueRangeError,
    check_private_key,
    check_public_key,
    check_same_key,
    ciphertext_bytes,
)
from labkit.he.packing import (
    PackingSpec,
    check_integer_weights,
    dequantize,
    pack_integers,
    quantize,
    unpack_integers,
)

__all__ = [
    "EncryptedVector",
    "PackedVector",
    "encrypt_vector",
    "encrypt_packed",
    "encrypted_sum",
    "encrypted_weighted_sum",
    "encrypted_weighted_mean",
    "decrypt_vector",
]

_BAR_MIN_ITEMS = 500


@dataclass
class EncryptedVector:
    """A vector encrypted value by value: phe ``EncryptedNumber``s sharing one exponent.

    ``bound`` is a public bound on every value's |integer code|: a power of two at least the
    largest code at encryption (it reveals only that code's bit length, the range a deployment
    declares anyway), carried through sums and weights. A result whose bound exceeds the key's
    ``max_int`` is refused before it is computed: it would decrypt to a wrong value. ``None``
    (a vector built by hand) counts as ``max_int``.
    """

    public_key: paillier.PaillierPublicKey
    numbers: list = field(repr=False)
    bound: int | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def nbytes(self) -> int:
        """Return bytes on the wire: one n^2-sized ciphertext per value (exponents are public)."""
        return len(self.numbers) * ciphertext_bytes(self.public_key)

    def __add__(self, other: EncryptedVector) -> EncryptedVector:
        return encrypted_sum([self, other])


@dataclass(frozen=True)
class PackedVector:
    """Packed ciphertexts of a vector: the decrypted slots hold ``divisor`` times its value.

    ``weight`` is the total integer weight already summed into the slots (the headroom used);
    ``divisor`` > 1 marks a pending division (a weighted mean), applied after decoding. Sums
    bring their terms to a common divisor, so ``mean + c`` is exactly ``(a + b) / 2 + c``.
    ``s`` = 2 marks Damgård–Jurik ciphertexts (mod n^3, from ``FastEncryptor(..., s=2)``).
    """

    public_key: paillier.PaillierPublicKey
    ciphertexts: list[int] = field(repr=False)
    spec: PackingSpec
    length: int
    weight: int = 1
    divisor: int = 1
    s: int = 1

    def __len__(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        """Return bytes on the wire for the ciphertexts."""
        return len(self.ciphertexts) * ciphertext_bytes(self.public_key, self.s)

    def __add__(self, other: PackedVector) -> PackedVector:
        return encrypted_sum([self, other])


class _PheEncryptor:
    """phe's own ``raw_encrypt`` (a full-size r^n per ciphertext): the reference path."""

    s = 1

    def __init__(self, public_key: paillier.PaillierPublicKey):
        self.public_key = public_key
        self.cache_key = ("phe", public_key.n)

    def raw_encrypt(self, plaintext: int) -> int:
        return self.public_key.raw_encrypt(plaintext)


def _check_encryptor(encryptor, public_key):
    if encryptor is None:
        return _PheEncryptor(public_key)
    if not isinstance(encryptor, FastEncryptor):
        raise ParameterError("encryptor", type(encryptor).__name__, "a FastEncryptor or None")
    if encryptor.public_key != public_key:
        raise KeyMismatchError(
            "encryptor", "built for another key", "built for the public key it encrypts under"
        )
    return encryptor


def encrypt_vector(
    public_key: paillier.PaillierPublicKey,
    values,
    fixed_point: FixedPoint | None = None,
    encryptor: FastEncryptor | None = None,
) -> EncryptedVector:
    """Encrypt each value in fixed point; phe's encryption unless a FastEncryptor is given."""
    check_public_key("public_key", public_key)
    if fixed_point is not None and not isinstance(fixed_point, FixedPoint):
        raise ParameterError("fixed_point", fixed_point, "a FixedPoint or None")
    fp = fixed_point or FixedPoint()
    codes = fp.encode(check_values(values))
    limit = public_key.max_int
    for i, c in enumerate(codes):
        if abs(c) > limit:
            raise ValueRangeError(
                f"values[{i}]",
                f"a value needing |code| = {abs(c)}",
                "|code| <= max_int of this key",
                f"use fewer frac_bits than {fp.frac_bits} or a larger key",
            )
    enc = None if encryptor is None else _check_encryptor(encryptor, public_key)
    bound = 1 << max((abs(c) for c in codes), default=0).bit_length()
    numbers_ = []
    for c in progress(codes, desc="encrypt", disable=len(codes) < _BAR_MIN_ITEMS):
        encoded = paillier.EncodedNumber(public_key, c % public_key.n, fp.exponent)
        numbers_.append(enc.encrypt_encoded(encoded) if enc else public_key.encrypt(encoded))
    return EncryptedVector(public_key, numbers_, min(bound, limit))


def encrypt_packed(
    public_key: paillier.PaillierPublicKey,
    values,
    spec: PackingSpec,
    encryptor: FastEncryptor | None = None,
    workers=1,
) -> PackedVector:
    """Quantise, pack and encrypt ``values``; phe's raw_encrypt unless a FastEncryptor is given.

    ``workers``: 1 (inline), an integer > 1 (a pool for this call) or a ``Workers`` pool.
    """
    check_public_key("public_key", public_key)
    if not isinstance(spec, PackingSpec):
        raise ParameterError("spec", type(spec).__name__, "a PackingSpec")
    levels = quantize(values, spec)  # refuses NaN/inf/out-of-range before any encryption
    enc = _check_encryptor(encryptor, public_key)
    plaintexts = pack_integers(levels, spec.slot_bits, spec.slots(public_key, enc.s))
    cts = map_chunks(check_workers(workers), "encrypt", enc, plaintexts, "encrypt")
    return PackedVector(public_key, cts, spec, int(levels.size), s=enc.s)


def _packed_weighted_sum(vectors: Sequence[PackedVector], weights: list[int], mean: bool):
    """Return sum_i weights[i] * vectors[i] (or the weighted mean) over a common divisor."""
    first = vectors[0]
    for i, v in enumerate(vectors):
        if not isinstance(v, PackedVector):
            raise ParameterError(
                f"vectors[{i}]", type(v).__name__, "a PackedVector, like vectors[0]"
            )
        if v.spec != first.spec or v.length != first.length or v.s != first.s:
            raise ParameterError(
                f"vectors[{i}]", f"spec {v.spec}, length {v.length}, s={v.s}",
                f"spec {first.spec}, length {first.length} and s={first.s}, like vectors[0]",
            )  # fmt: skip
    used = [(w, v) for w, v in zip(weights, vectors, strict=True) if w]
    divisor = math.lcm(*(v.divisor for _, v in used))
    # x_i = S_i / d_i, so sum_i k_i x_i = (sum_i k_i (L / d_i) S_i) / L with L = lcm(d_i)
    powers = [(w * (divisor // v.divisor), v) for w, v in used]
    total = first.spec.check_headroom(sum(s * v.weight for s, v in powers))
    n2 = gmpy2.mpz(first.public_key.n) ** (first.s + 1)  # the ciphertext modulus
    acc = None  # starts at the first term: (clients - 1) multiplications per ciphertext
    for s, v in powers:
        # E(x)^s = E(s*x)
        terms = [gmpy2.mpz(c) if s == 1 else gmpy2.powmod(c, s, n2) for c in v.ciphertexts]
        if acc is None:
            acc = terms
        else:  # E(x)*E(y) = E(x+y)
            acc = [a * t % n2 for a, t in zip(acc, terms, strict=True)]
    if mean:
        divisor *= sum(weights)
    return PackedVector(first.public_key, [int(c) for c in acc], first.spec, first.length,
                        total, divisor, first.s)  # fmt: skip


def _combine(vectors: Sequence, weights, mean: bool):
    vectors = list(vectors)
    if not vectors:
        raise ParameterError("vectors", vectors, "at least one encrypted vector")
    for i, v in enumerate(vectors):
        if not isinstance(v, EncryptedVector | PackedVector):
            raise ParameterError(f"vectors[{i}]", type(v).__name__, "an encrypted vector")
    check_same_key(vectors)
    if isinstance(vectors[0], PackedVector):
        return _packed_weighted_sum(vectors, check_integer_weights(weights, len(vectors)), mean)
    w = list(weights)
    if len(w) != len(vectors):
        raise ParameterError("weights", w, f"one entry per vector ({len(vectors)})")
    w = [_check_weight(i, wi) for i, wi in enumerate(w)]
    length = len(vectors[0])
    for i, v in enumerate(vectors):
        if not isinstance(v, EncryptedVector):
            raise ParameterError(f"vectors[{i}]", type(v).__name__, "an EncryptedVector")
        if len(v) != length:
            raise ParameterError(f"vectors[{i}]", f"length {len(v)}", f"length {length}")
    total = float(sum(w))
    if mean and total <= 0:
        raise ParameterError("weights", w, "a positive total for a weighted mean")
    bound = _result_bound(vectors, w, 1.0 / total if mean else None)
    numbers_ = []
    for j in range(length):
        acc = None
        for wi, v in zip(w, vectors, strict=True):
            term = v.numbers[j] if wi == 1 else v.numbers[j] * wi  # phe encodes the weight
            acc = term if acc is None else acc + term
        numbers_.append(acc * (1.0 / total) if mean else acc)
    return EncryptedVector(vectors[0].public_key, numbers_, bound)


def _result_bound(vectors, weights, scale) -> int:
    """Return a bound on the result's |code|, or raise if it could pass the key's max_int.

    phe multiplies codes by the weight's own code and aligns exponents by multiplying by powers
    of 16, so the bound follows the same steps: no value is decrypted to compute it.
    """
    pk = vectors[0].public_key
    limit = pk.max_int
    terms = []
    for wi, v in zip(weights, vectors, strict=True):
        b = limit if v.bound is None else v.bound
        exponent = v.numbers[0].exponent if len(v) else 0
        if wi != 1:
            enc = paillier.EncodedNumber.encode(pk, wi)
            code = enc.encoding if enc.encoding <= limit else pk.n - enc.encoding
            b, exponent = b * code, exponent + enc.exponent
        terms.append((b, exponent))
    low = min(e for _, e in terms)
    bound = sum(b * 16 ** (e - low) for b, e in terms)  # phe decreases exponents to add
    if scale is not None:
        enc = paillier.EncodedNumber.encode(pk, scale)
        bound *= enc.encoding
    if bound > limit:
        raise ValueRangeError(
            "vectors", f"a result needing |code| up to {bound.bit_length()} bits",
            f"|code| <= max_int ({limit.bit_length()} bits) of this key",
            "the sum would decrypt to a wrong value; use fewer frac_bits, smaller values "
            "or a larger key",
        )  # fmt: skip
    return max(bound, 1)


def _check_weight(i: int, wi):
    if isinstance(wi, numbers.Integral) and not isinstance(wi, bool | np.bool_):
        return int(wi)
    return check_float(f"weights[{i}]", wi)  # NumPy scalars become Python numbers


def encrypted_weighted_sum(vectors: Sequence, weights) -> EncryptedVector | PackedVector:
    """Return the encryption of sum_i weights[i] * vectors[i] for public weights.

    Packed vectors take non-negative integer weights whose total (times the weights already in
    the vectors) fits the headroom; a pending mean division is carried over exactly.
    """
    return _combine(vectors, weights, mean=False)


def encrypted_sum(vectors: Sequence) -> EncryptedVector | PackedVector:
    """Return the encryption of the element-wise sum of encrypted vectors under one key."""
    return _combine(vectors, [1] * len(list(vectors)), mean=False)


def encrypted_weighted_mean(vectors: Sequence, weights) -> EncryptedVector | PackedVector:
    """Return the encrypted weighted mean sum(w_i x_i) / sum(w_i) with public weights."""
    return _combine(vectors, weights, mean=True)


def decrypt_vector(
    private_key: paillier.PaillierPrivateKey, encrypted, integers: bool = False, workers=1
) -> np.ndarray:
    """Decrypt to float64 (or, with ``integers=True``, the exact integer codes / slot sums).

    Packed vectors are decrypted by CRT (``CrtDecryptor``), on ``workers`` processes if asked.
    """
    if not isinstance(encrypted, EncryptedVector | PackedVector):
        raise ParameterError(
            "encrypted", type(encrypted).__name__, "an EncryptedVector or PackedVector"
        )
    check_private_key(private_key, encrypted.public_key)
    integers = check_bool("integers", integers)
    if isinstance(encrypted, PackedVector):
        spec = encrypted.spec
        dec = CrtDecryptor(private_key, encrypted.s)
        plain = map_chunks(check_workers(workers), "decrypt", dec, list(encrypted.ciphertexts))
        slots = spec.slots(encrypted.public_key, encrypted.s)
        sums = unpack_integers(plain, spec.slot_bits, slots, encrypted.length)
        if integers:
            return sums
        return dequantize(sums, spec, encrypted.weight) / encrypted.divisor
    bar = progress(encrypted.numbers, desc="decrypt", disable=len(encrypted) < _BAR_MIN_ITEMS)
    decoded = [private_key.decrypt_encoded(x) for x in bar]
    if integers:
        n = private_key.public_key.n
        return np.array(
            [e.encoding if e.encoding <= n // 2 else e.encoding - n for e in decoded], dtype=object
        )
    return np.array([float(e.decode()) for e in decoded], dtype=np.float64)
