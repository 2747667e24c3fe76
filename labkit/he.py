"""Paillier homomorphic encryption on phe: keys, fixed-point vectors, packing, fast encryption.

Everything here produces ordinary Paillier ciphertexts under phe's keys (g = n + 1), so phe's
private key decrypts them; phe's own ``encrypt`` stays available as the reference path.

Three layers, each tested against the one below it:
- ``EncryptedVector``: one phe ``EncryptedNumber`` per value, fixed-point with a stated precision.
- ``PackedVector``: BatchCrypt-style packing (Zhang et al., USENIX ATC 2020): values quantised to
  unsigned integers with an offset for negatives and headroom for a declared number of summands,
  many slots per plaintext, so one ciphertext carries ~100 values at 2048 bits.
- ``FastEncryptor``: Damgård–Jurik–Nielsen short-exponent obfuscation with a fixed-base table,
  replacing phe's full-size ``r^n mod n^2`` (the dominant cost of encryption).

Cryptographic randomness comes from ``secrets`` / phe's ``SystemRandom`` and is never seeded.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import secrets
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import gmpy2
import numpy as np
from phe import paillier

from labkit.aggregation import Aggregator, flatten_weights, unflatten_weights
from labkit.config import progress

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_SECURE_KEY_BITS",
    "HEError",
    "KeyTooShortError",
    "NonFiniteValueError",
    "ValueRangeError",
    "HeadroomError",
    "KeyMismatchError",
    "WrongKeyError",
    "InsecureKeyWarning",
    "security_bits",
    "generate_keypair",
    "cached_keypair",
    "ciphertext_bytes",
    "FixedPoint",
    "EncryptedVector",
    "encrypt_vector",
    "PackingSpec",
    "PackedVector",
    "quantize",
    "dequantize",
    "pack_integers",
    "unpack_integers",
    "encrypt_packed",
    "FastEncryptor",
    "encrypted_sum",
    "encrypted_weighted_sum",
    "encrypted_weighted_mean",
    "decrypt_vector",
    "secure_aggregate",
    "TextbookRSA",
    "SecureAggregator",
]

DEFAULT_KEY_BITS = 3072  # phe's recommended size for keys meant to last (NIST SP 800-57: 128-bit)
MIN_SECURE_KEY_BITS = 2048  # 112-bit security; anything shorter needs allow_insecure=True


# --- named errors -------------------------------------------------------------------------------
class HEError(ValueError):
    """Base class for labkit.he input errors (a ValueError, so generic handlers still work)."""


class KeyTooShortError(HEError):
    """A key shorter than MIN_SECURE_KEY_BITS was requested without ``allow_insecure=True``."""


class NonFiniteValueError(HEError):
    """A value to encrypt is NaN or infinite."""


class ValueRangeError(HEError):
    """A value lies outside the declared packing range or the key's plaintext space."""


class HeadroomError(HEError):
    """A sum could overflow a packed slot: too many summands or weights too large."""


class KeyMismatchError(HEError):
    """Ciphertexts under different public keys were combined."""


class WrongKeyError(HEError):
    """A private key was used on ciphertexts made under a different public key."""


class InsecureKeyWarning(UserWarning):
    """A key shorter than MIN_SECURE_KEY_BITS is in use (tests and demos only)."""


# --- keys ---------------------------------------------------------------------------------------
# NIST SP 800-57 Part 1, Table 2: security strength of an RSA/Paillier modulus of n bits.
_SECURITY_BITS = {1024: 80, 2048: 112, 3072: 128, 7680: 192, 15360: 256}


def security_bits(n_length: int) -> int:
    """Return the NIST security strength in bits of an ``n_length``-bit modulus (80 below 2048)."""
    strength = 80  # nominal: below 1024 bits the true strength is lower still
    for bits, level in sorted(_SECURITY_BITS.items()):
        if n_length >= bits:
            strength = level
    return strength


def _check_key_length(n_length: int, allow_insecure: bool) -> None:
    if not isinstance(n_length, int | np.integer) or n_length < 128 or n_length % 2:
        raise ValueError(f"n_length must be an even integer >= 128 bits, got {n_length!r}")
    if n_length < MIN_SECURE_KEY_BITS:
        if not allow_insecure:
            raise KeyTooShortError(
                f"n_length={n_length} is below {MIN_SECURE_KEY_BITS} bits; use 2048 or 3072, "
                "or pass allow_insecure=True for a test or demo key"
            )
        warnings.warn(
            f"{n_length}-bit Paillier key: factorable with public tools (RSA-768 was "
            "factored in 2009); only for tests and demos",
            InsecureKeyWarning,
            stacklevel=3,
        )


def generate_keypair(n_length: int = DEFAULT_KEY_BITS, allow_insecure: bool = False):
    """Return a fresh phe ``(public_key, private_key)``; under 2048 bits needs allow_insecure."""
    _check_key_length(n_length, allow_insecure)
    return paillier.generate_paillier_keypair(n_length=int(n_length))


@lru_cache(maxsize=8)
def _cached(n_length: int):
    return paillier.generate_paillier_keypair(n_length=n_length)


def cached_keypair(n_length: int = DEFAULT_KEY_BITS, allow_insecure: bool = False):
    """Return one ``(public_key, private_key)`` per size per process (quick mode and tests)."""
    _check_key_length(n_length, allow_insecure)
    return _cached(int(n_length))


def ciphertext_bytes(public_key: paillier.PaillierPublicKey) -> int:
    """Return the bytes one ciphertext (an integer mod n^2) takes on the wire."""
    return (public_key.nsquare.bit_length() + 7) // 8


def _check_same_key(items: Sequence, what: str = "vectors") -> paillier.PaillierPublicKey:
    key = items[0].public_key
    for i, item in enumerate(items[1:], start=1):
        if item.public_key != key:
            raise KeyMismatchError(
                f"{what}[{i}] was encrypted under a different public key than {what}[0]; "
                "all summands must share one key"
            )
    return key


def _check_private_key(private_key: paillier.PaillierPrivateKey, public_key) -> None:
    if private_key.public_key != public_key:
        raise WrongKeyError(
            "private_key does not match the public key these ciphertexts were made under "
            f"(modulus ...{private_key.public_key.n % 10**6:06d} vs ...{public_key.n % 10**6:06d})"
        )


def _as_finite_array(values, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NonFiniteValueError(
            f"{name}[{i}] = {arr[i]!r}; every value must be finite (no NaN or inf)"
        )
    return arr


# --- fast encryption (DJN) ----------------------------------------------------------------------
class FastEncryptor:
    """Encrypt under a phe public key with DJN short-exponent obfuscation and a fixed-base table.

    phe computes ``r^n mod n^2`` for a fresh full-size r per value. Damgård, Jurik and Nielsen
    ("A generalization of Paillier's public-key system with applications to electronic voting",
    Int. J. Inf. Security, 2010; also used by Intel's Paillier library) instead publish
    ``h_s = (-x^2)^n mod n^2`` once and use ``h_s^a`` with a short random exponent ``a`` of
    ``exponent_bits`` bits (default ceil(k/2) for a k-bit n, as in DJN).
    ``h_s^a = ((-x^2)^a mod n)^n mod n^2`` is still an n-th
    power, so the ciphertext is an ordinary Paillier ciphertext and phe's private key decrypts it.

    Security assumption: the DCR assumption (as for Paillier) plus a short-exponent assumption,
    that ``h_s^a`` for a short uniform ``a`` cannot be told from a uniform element of the
    subgroup ``<h_s>``. Generic attacks on a t-bit exponent cost about 2^(t/2) steps, so
    exponents shorter than twice the key's security level (224 bits at 2048) are refused.
    Because ``h_s`` is fixed, ``h_s^(j * 256^i)`` is tabulated once (8-bit windows), and each
    obfuscator is then ``exponent_bits / 8`` modular multiplications and no squarings.
    """

    WINDOW_BITS = 8  # one table row per exponent byte: ceil(t/8) multiplications per encryption

    def __init__(self, public_key: paillier.PaillierPublicKey, exponent_bits: int | None = None):
        """Precompute h_s and its table for ``public_key``; ``exponent_bits`` defaults to k/2."""
        n = public_key.n
        k = n.bit_length()
        floor_bits = 2 * security_bits(k)
        if exponent_bits is None:
            exponent_bits = (k + 1) // 2
        if not isinstance(exponent_bits, int | np.integer) or not (
            floor_bits <= exponent_bits <= 2 * k
        ):
            raise ValueError(
                f"exponent_bits must be an integer in [{floor_bits}, {2 * k}] for a {k}-bit key "
                f"(2 x its {floor_bits // 2}-bit security level), got {exponent_bits!r}"
            )
        while True:  # x must be a unit mod n; failure means we found a factor of n (negligible)
            x = secrets.randbelow(n - 2) + 2
            if math.gcd(x, n) == 1:
                break
        h = (-x * x) % n
        self.public_key = public_key
        self.exponent_bits = int(exponent_bits)
        self.h_s = gmpy2.powmod(gmpy2.mpz(h), n, public_key.nsquare)
        self._build_table()

    def _build_table(self) -> None:
        n2 = gmpy2.mpz(self.public_key.nsquare)
        rows = -(-self.exponent_bits // self.WINDOW_BITS)
        size = 1 << self.WINDOW_BITS
        table = []
        base = self.h_s
        for _ in range(rows):
            row = [gmpy2.mpz(1), base]
            for _ in range(size - 2):
                row.append(row[-1] * base % n2)
            table.append(row)
            base = row[-1] * base % n2  # base^(2^8) for the next window
        self._table = table
        self._n2 = n2
        self._nbytes = rows

    def __getstate__(self):
        # The table is ~16 MB at 2048 bits; workers rebuild it from h_s instead of unpickling it.
        return {"public_key": self.public_key, "exponent_bits": self.exponent_bits, "h_s": self.h_s}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build_table()

    def obfuscator(self) -> gmpy2.mpz:
        """Return a fresh ``h_s^a mod n^2`` for a secret random ``a`` of exponent_bits bits."""
        return self._power(secrets.randbits(self.exponent_bits))

    def _power(self, a: int) -> gmpy2.mpz:
        """Return h_s^a mod n^2 from the table, for 0 <= a < 2^(8 * rows)."""
        acc = gmpy2.mpz(1)
        n2 = self._n2
        for row, byte in zip(self._table, a.to_bytes(self._nbytes, "little"), strict=True):
            if byte:
                acc = acc * row[byte] % n2
        return acc

    def raw_encrypt(self, plaintext: int) -> int:
        """Return a Paillier ciphertext of the integer ``0 <= plaintext < n`` (g = n + 1)."""
        n = self.public_key.n
        if not 0 <= plaintext < n:
            raise ValueRangeError(f"plaintext must be in [0, n) for this key, got {plaintext}")
        nude = (1 + plaintext * n) % self._n2  # (n+1)^m = 1 + m*n mod n^2
        return int(nude * self.obfuscator() % self._n2)

    def encrypt_encoded(self, encoded: paillier.EncodedNumber) -> paillier.EncryptedNumber:
        """Return a phe ``EncryptedNumber`` of a phe ``EncodedNumber`` (phe's keys decrypt it)."""
        if encoded.public_key != self.public_key:
            raise KeyMismatchError("encoded number was encoded under a different public key")
        c = self.raw_encrypt(int(encoded.encoding))
        return paillier.EncryptedNumber(self.public_key, c, encoded.exponent)


# --- worker processes ---------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(kind: str, obj) -> None:
    _WORKER[kind] = obj


def _encrypt_chunk(plaintexts: list[int]) -> list[int]:
    enc = _WORKER["encryptor"]  # a FastEncryptor, or a phe public key (the reference path)
    return [enc.raw_encrypt(m) for m in plaintexts]


def _decrypt_chunk(ciphertexts: list[int]) -> list[int]:
    key = _WORKER["private_key"]
    return [key.raw_decrypt(c) for c in ciphertexts]


_POOL: dict = {}  # one live pool, reused while the same key material is in use


def _pool(workers: int, kind: str, obj) -> ProcessPoolExecutor:
    """Return a cached pool of forked workers holding ``obj``; replace it when ``obj`` changes."""
    if _POOL.get("key") != (workers, kind, id(obj)):
        if "executor" in _POOL:
            _POOL["executor"].shutdown()
        # fork: workers inherit obj (e.g. the DJN table) without pickling; they only run gmpy2
        ctx = multiprocessing.get_context("fork")
        _POOL["executor"] = ProcessPoolExecutor(
            workers, ctx, initializer=_init_worker, initargs=(kind, obj)
        )
        _POOL.update(key=(workers, kind, id(obj)), obj=obj)  # holding obj keeps its id unique
    return _POOL["executor"]


@atexit.register
def _close_pool() -> None:
    if "executor" in _POOL:
        _POOL.pop("executor").shutdown(cancel_futures=True)
        _POOL.clear()


def _bar(items, desc: str):
    """Wrap long loops in labkit's progress bar (silent for short ones and LABKIT_PROGRESS=0)."""
    return progress(items, desc=desc, disable=len(items) < _BAR_MIN_ITEMS)


_BAR_MIN_ITEMS = 500  # below this a loop takes about a second or less at 2048 bits


def _map(
    func: Callable, items: list, workers: int, kind: str, obj, inline: Callable, desc: str = ""
) -> list[int]:
    """Apply ``func`` to chunks of ``items`` in ``workers`` forked processes (inline if 1)."""
    if not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if workers == 1 or len(items) < 2 * workers:
        return [inline(x) for x in _bar(items, desc)]
    chunk = -(-len(items) // (4 * workers))
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    return [x for part in _pool(workers, kind, obj).map(func, chunks) for x in part]


# --- fixed point, one ciphertext per value ------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point code ``round(x * 2^frac_bits)``; precision (max error) is 2^-(frac_bits+1).

    phe encodes in base 16 (value = mantissa * 16^exponent), so ``frac_bits`` is a multiple of 4
    and maps to phe's exponent ``-frac_bits / 4``. Sums of codes are exact integers; the only
    error is the rounding of each input.
    """

    frac_bits: int = 32

    def __post_init__(self):
        fb = self.frac_bits
        if not isinstance(fb, int | np.integer) or fb < 0 or fb > 256 or fb % 4:
            raise ValueError(f"frac_bits must be a multiple of 4 in [0, 256], got {fb!r}")

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

    def encode(self, values) -> list[int]:
        """Return the signed integer codes of finite ``values``."""
        arr = _as_finite_array(values)
        # scaling by a power of two is exact in float64, so rint is the only rounding
        return [int(v) for v in np.rint(np.ldexp(arr, self.frac_bits))]

    def decode(self, codes) -> np.ndarray:
        """Return float64 values of integer ``codes``."""
        return np.array([math.ldexp(int(c), -self.frac_bits) for c in codes], dtype=np.float64)


@dataclass
class EncryptedVector:
    """A vector encrypted value by value: phe ``EncryptedNumber``s sharing one exponent."""

    public_key: paillier.PaillierPublicKey
    numbers: list = field(repr=False)

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def nbytes(self) -> int:
        """Return bytes on the wire: one n^2-sized ciphertext per value (exponents are public)."""
        return len(self.numbers) * ciphertext_bytes(self.public_key)

    def __add__(self, other: EncryptedVector) -> EncryptedVector:
        return encrypted_sum([self, other])


def encrypt_vector(
    public_key: paillier.PaillierPublicKey,
    values,
    fixed_point: FixedPoint | None = None,
    encryptor: FastEncryptor | None = None,
) -> EncryptedVector:
    """Encrypt each value in fixed point; phe's encryption unless a FastEncryptor is given."""
    fp = fixed_point or FixedPoint()
    codes = fp.encode(values)
    limit = public_key.max_int
    for i, c in enumerate(codes):
        if abs(c) > limit:
            raise ValueRangeError(
                f"values[{i}] needs |code| = {abs(c)} > max_int of this key; "
                f"use fewer frac_bits than {fp.frac_bits} or a larger key"
            )
    if encryptor is not None and encryptor.public_key != public_key:
        raise KeyMismatchError("encryptor was built for a different public key")
    numbers = []
    for c in _bar(codes, "encrypt"):
        encoded = paillier.EncodedNumber(public_key, c % public_key.n, fp.exponent)
        if encryptor is None:
            numbers.append(public_key.encrypt(encoded))
        else:
            numbers.append(encryptor.encrypt_encoded(encoded))
    return EncryptedVector(public_key, numbers)


# --- packing (BatchCrypt-style) -----------------------------------------------------------------
@dataclass(frozen=True)
class PackingSpec:
    """How to quantise and pack: a value range, bits per value, and the summands to make room for.

    Each value x in [low, high] becomes q = round((x - low) / step) in [0, 2^precision_bits - 1]
    with step = (high - low) / (2^precision_bits - 1), so negatives need no sign bit. A slot holds
    ``slot_bits`` = bit length of max_summands * (2^precision_bits - 1), so any integer-weighted sum
    with total weight <= max_summands fits. Rounding error: step / 2 per value, W * step / 2 for a
    sum of total weight W, step / 2 for a weighted mean.
    """

    low: float = -1.0
    high: float = 1.0
    precision_bits: int = 16
    max_summands: int = 10

    def __post_init__(self):
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"need finite low < high, got low={self.low!r}, high={self.high!r}")
        pb = self.precision_bits
        if not isinstance(pb, int | np.integer) or not 1 <= pb <= 52:
            raise ValueError(f"precision_bits must be an integer in [1, 52], got {pb!r}")
        ms = self.max_summands
        if not isinstance(ms, int | np.integer) or ms < 1:
            raise ValueError(f"max_summands must be an integer >= 1, got {ms!r}")
        if self.slot_bits > 62:
            raise ValueError(
                f"precision_bits={pb} with max_summands={ms} needs {self.slot_bits}-bit slots; "
                "the maximum is 62"
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

    def slots(self, public_key: paillier.PaillierPublicKey) -> int:
        """Return slots per plaintext for ``public_key`` (the packed integer stays below n)."""
        return (public_key.n.bit_length() - 1) // self.slot_bits

    def check_weights(self, weights) -> list[int]:
        """Return ``weights`` as ints if their total fits the headroom; raise before encrypting."""
        out = _check_integer_weights(weights, len(list(weights)))
        if sum(out) > self.max_summands:
            raise HeadroomError(
                f"total weight {sum(out)} exceeds the headroom max_summands="
                f"{self.max_summands}; slots would overflow. Use a PackingSpec with "
                "max_summands >= the total weight, or smaller weights"
            )
        return out

    def max_error(self, total_weight: int = 1) -> float:
        """Return the bound on |decoded - exact| for a sum of total integer weight."""
        return total_weight * self.step / 2


def quantize(values, spec: PackingSpec, name: str = "values") -> np.ndarray:
    """Return int64 levels of ``values``; refuse NaN/inf and anything outside [low, high]."""
    arr = _as_finite_array(values, name)
    outside = (arr < spec.low) | (arr > spec.high)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueRangeError(
            f"{name}[{i}] = {arr[i]!r} is outside the packing range "
            f"[{spec.low}, {spec.high}]; clip first or widen the PackingSpec"
        )
    q = np.rint((arr - spec.low) / spec.step).astype(np.int64)
    return np.clip(q, 0, spec.levels)  # guards float rounding at the very top of the range


def dequantize(levels, spec: PackingSpec, total_weight: int = 1) -> np.ndarray:
    """Return the float sum encoded by summed levels of a sum with ``total_weight``."""
    return total_weight * spec.low + np.asarray(levels, dtype=np.float64) * spec.step


def pack_integers(levels: np.ndarray, slot_bits: int, slots: int) -> list[int]:
    """Pack non-negative ints < 2^slot_bits into ints of ``slots`` slots (slot 0 lowest)."""
    q = np.asarray(levels, dtype=np.uint64).ravel()
    num = -(-q.size // slots) if q.size else 0
    padded = np.zeros(num * slots, dtype=np.uint64)
    padded[: q.size] = q
    shifts = np.arange(slot_bits, dtype=np.uint64)
    bits = ((padded.reshape(num, slots, 1) >> shifts) & np.uint64(1)).astype(np.uint8)
    rows = np.packbits(bits.reshape(num, slots * slot_bits), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def unpack_integers(packed: Sequence[int], slot_bits: int, slots: int, length: int) -> np.ndarray:
    """Unpack ints made by ``pack_integers`` into ``length`` int64 slot values."""
    nbytes = -(-(slot_bits * slots) // 8)
    buf = b"".join(int(p).to_bytes(nbytes, "little") for p in packed)
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(len(packed), nbytes)
    bits = np.unpackbits(rows, axis=1, bitorder="little")[:, : slot_bits * slots]
    bits = bits.reshape(len(packed), slots, slot_bits).astype(np.uint64)
    values = (bits << np.arange(slot_bits, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
    return values.ravel()[:length].astype(np.int64)


@dataclass
class PackedVector:
    """Packed ciphertexts of a vector, with the total integer weight already summed in them."""

    public_key: paillier.PaillierPublicKey
    ciphertexts: list[int] = field(repr=False)
    spec: PackingSpec
    length: int
    weight: int = 1  # total weight of the sum so far: the headroom it uses
    divisor: int = 1  # > 1 after encrypted_weighted_mean; applied at decoding

    def __len__(self) -> int:
        return self.length

    @property
    def nbytes(self) -> int:
        """Return bytes on the wire for the ciphertexts."""
        return len(self.ciphertexts) * ciphertext_bytes(self.public_key)

    def __add__(self, other: PackedVector) -> PackedVector:
        return encrypted_sum([self, other])

    def to_phe(self) -> list[paillier.EncryptedNumber]:
        """Return the ciphertexts as phe ``EncryptedNumber``s (exponent 0: raw packed integers)."""
        return [paillier.EncryptedNumber(self.public_key, c, 0) for c in self.ciphertexts]


def encrypt_packed(
    public_key: paillier.PaillierPublicKey,
    values,
    spec: PackingSpec,
    encryptor: FastEncryptor | None = None,
    workers: int = 1,
) -> PackedVector:
    """Quantise, pack and encrypt ``values``; phe's raw_encrypt unless a FastEncryptor is given."""
    levels = quantize(values, spec)  # refuses NaN/inf/out-of-range before any encryption
    slots = spec.slots(public_key)
    if slots < 1:
        raise ValueError(
            f"a {spec.slot_bits}-bit slot does not fit a {public_key.n.bit_length()}-bit key"
        )
    if encryptor is not None and encryptor.public_key != public_key:
        raise KeyMismatchError("encryptor was built for a different public key")
    plaintexts = pack_integers(levels, spec.slot_bits, slots)
    enc = encryptor if encryptor is not None else public_key
    cts = _map(_encrypt_chunk, plaintexts, workers, "encryptor", enc, enc.raw_encrypt, "encrypt")
    return PackedVector(public_key, [int(c) for c in cts], spec, int(levels.size))


# --- aggregation --------------------------------------------------------------------------------
def _check_integer_weights(weights, num: int) -> list[int]:
    w = list(weights)
    if len(w) != num:
        raise ValueError(f"weights must have one entry per vector ({num}), got {len(w)}")
    out = []
    for i, wi in enumerate(w):
        if isinstance(wi, float | np.floating) and float(wi).is_integer():
            wi = int(wi)
        if not isinstance(wi, int | np.integer) or wi < 0:
            raise ValueError(
                f"weights[{i}] = {wi!r}; packed sums take non-negative integer weights "
                "(scale and round float weights first)"
            )
        out.append(int(wi))
    return out


def _packed_weighted_sum(vectors: Sequence[PackedVector], weights: list[int]) -> PackedVector:
    first = vectors[0]
    for i, v in enumerate(vectors[1:], start=1):
        if v.spec != first.spec or v.length != first.length or v.divisor != 1:
            raise ValueError(
                f"vectors[{i}] has spec/length {v.spec}/{v.length}, expected "
                f"{first.spec}/{first.length} (and no pending mean division)"
            )
    total = sum(w * v.weight for w, v in zip(weights, vectors, strict=True))
    if total > first.spec.max_summands:
        raise HeadroomError(
            f"total weight {total} exceeds the headroom max_summands="
            f"{first.spec.max_summands}; slots would overflow. Use a PackingSpec with "
            "max_summands >= the total weight, or smaller weights"
        )
    if total == 0:
        raise ValueError("weights sum to 0; a weighted sum needs at least one positive weight")
    n2 = gmpy2.mpz(first.public_key.nsquare)
    acc = [gmpy2.mpz(1)] * len(first.ciphertexts)
    for w, v in zip(weights, vectors, strict=True):
        if w == 0:
            continue
        for j, c in enumerate(v.ciphertexts):
            term = gmpy2.mpz(c) if w == 1 else gmpy2.powmod(c, w, n2)  # E(x)^w = E(w*x)
            acc[j] = acc[j] * term % n2  # E(x)*E(y) = E(x+y)
    return PackedVector(first.public_key, [int(c) for c in acc], first.spec, first.length, total)


def encrypted_weighted_sum(vectors: Sequence, weights) -> EncryptedVector | PackedVector:
    """Return the encryption of sum_i weights[i] * vectors[i] for public weights."""
    if not vectors:
        raise ValueError("vectors must contain at least one encrypted vector")
    _check_same_key(vectors)
    if isinstance(vectors[0], PackedVector):
        if not all(isinstance(v, PackedVector) for v in vectors):
            raise TypeError("cannot mix PackedVector and EncryptedVector in one sum")
        return _packed_weighted_sum(vectors, _check_integer_weights(weights, len(vectors)))
    w = list(weights)
    if len(w) != len(vectors):
        raise ValueError(f"weights must have one entry per vector ({len(vectors)}), got {len(w)}")
    _as_finite_array(w, "weights")
    length = len(vectors[0])
    for i, v in enumerate(vectors):
        if not isinstance(v, EncryptedVector):
            raise TypeError(f"vectors[{i}] is {type(v).__name__}, expected EncryptedVector")
        if len(v) != length:
            raise ValueError(f"vectors[{i}] has length {len(v)}, expected {length}")
    numbers = []
    for j in range(length):
        acc = None
        for wi, v in zip(w, vectors, strict=True):
            term = v.numbers[j] if wi == 1 else v.numbers[j] * wi  # phe encodes the weight
            acc = term if acc is None else acc + term
        numbers.append(acc)
    return EncryptedVector(vectors[0].public_key, numbers)


def encrypted_sum(vectors: Sequence) -> EncryptedVector | PackedVector:
    """Return the encryption of the element-wise sum of encrypted vectors under one key."""
    return encrypted_weighted_sum(vectors, [1] * len(vectors))


def encrypted_weighted_mean(vectors: Sequence, weights) -> EncryptedVector | PackedVector:
    """Return the encrypted weighted mean sum(w_i x_i) / sum(w_i) with public weights."""
    out = encrypted_weighted_sum(vectors, weights)
    total = float(np.sum(np.asarray(list(weights), dtype=np.float64)))
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {total}")
    if isinstance(out, PackedVector):
        out.divisor = out.weight  # packed slots hold integers; divide after decoding
        return out
    inv = 1.0 / total
    return EncryptedVector(out.public_key, [x * inv for x in out.numbers])


def decrypt_vector(
    private_key: paillier.PaillierPrivateKey, encrypted, integers: bool = False, workers: int = 1
) -> np.ndarray:
    """Decrypt to float64 (or, with ``integers=True``, the exact integer codes / slot sums)."""
    _check_private_key(private_key, encrypted.public_key)
    if isinstance(encrypted, PackedVector):
        spec = encrypted.spec
        # phe's own decryption (raw_decrypt is what decrypt_encoded calls after its key check)
        plain = _map(
            _decrypt_chunk,
            list(encrypted.ciphertexts),
            workers,
            "private_key",
            private_key,
            private_key.raw_decrypt,
            "decrypt",
        )
        sums = unpack_integers(
            plain, spec.slot_bits, spec.slots(encrypted.public_key), encrypted.length
        )
        if integers:
            return sums
        return dequantize(sums, spec, encrypted.weight) / encrypted.divisor
    if not isinstance(encrypted, EncryptedVector):
        raise TypeError(f"expected EncryptedVector or PackedVector, got {type(encrypted).__name__}")
    decoded = [private_key.decrypt_encoded(x) for x in _bar(encrypted.numbers, "decrypt")]
    if integers:
        n = private_key.public_key.n
        return np.array(
            [e.encoding if e.encoding <= n // 2 else e.encoding - n for e in decoded], dtype=object
        )
    return np.array([float(e.decode()) for e in decoded], dtype=np.float64)


def secure_aggregate(
    updates: Sequence,
    public_key: paillier.PaillierPublicKey,
    private_key: paillier.PaillierPrivateKey,
    spec: PackingSpec,
    weights=None,
    mean: bool = False,
    encryptor: FastEncryptor | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Run one packed round: check every input, encrypt each update, sum, decrypt the aggregate.

    All checks (finite values in range, equal lengths, integer weights within the headroom) run
    before the first encryption, so a round that could overflow never starts. Returns the
    weighted sum, or with ``mean=True`` the weighted mean; weights default to 1 per update.
    """
    updates = [np.asarray(u, dtype=np.float64).ravel() for u in updates]
    if not updates:
        raise ValueError("updates must contain at least one vector")
    w = spec.check_weights([1] * len(updates) if weights is None else weights)
    for i, u in enumerate(updates):
        if u.size != updates[0].size:
            raise ValueError(f"updates[{i}] has {u.size} values, expected {updates[0].size}")
        quantize(u, spec, name=f"updates[{i}]")
    encrypted = [encrypt_packed(public_key, u, spec, encryptor, workers) for u in updates]
    combine = encrypted_weighted_mean if mean else encrypted_weighted_sum
    return decrypt_vector(private_key, combine(encrypted, w), workers=workers)


# --- the source's formula: textbook RSA -------------------------------------------------------
@dataclass(frozen=True)
class TextbookRSA:
    """Unpadded RSA, E(x) = x^e mod n: multiplicatively homomorphic and, for that reason, insecure.

    For the chapter's demonstration only (no library ships unpadded RSA on purpose): it is
    deterministic (equal plaintexts give equal ciphertexts) and malleable (anyone can turn E(x)
    into E(k*x)), so it is neither semantically secure nor safe against tampering.
    """

    n: int
    e: int
    d: int = field(repr=False)

    @classmethod
    def generate(cls, n_length: int = 1024, e: int = 65537) -> TextbookRSA:
        """Return a fresh key with an ``n_length``-bit modulus (demo sizes are fine: no padding)."""
        if not isinstance(n_length, int) or n_length < 64 or n_length % 2:
            raise ValueError(f"n_length must be an even integer >= 64, got {n_length!r}")
        while True:
            p = int(gmpy2.next_prime(secrets.randbits(n_length // 2) | (1 << (n_length // 2 - 1))))
            q = int(gmpy2.next_prime(secrets.randbits(n_length // 2) | (1 << (n_length // 2 - 1))))
            phi = (p - 1) * (q - 1)
            if p != q and math.gcd(e, phi) == 1:
                return cls(p * q, e, pow(e, -1, phi))

    def encrypt(self, m: int) -> int:
        """Return m^e mod n for an integer 0 <= m < n."""
        if not 0 <= m < self.n:
            raise ValueRangeError(f"m must be in [0, n), got {m}")
        return pow(m, self.e, self.n)

    def decrypt(self, c: int) -> int:
        """Return c^d mod n."""
        return pow(c, self.d, self.n)


# --- secure aggregation for FedAvg (chapter 05) ---
class SecureAggregator(Aggregator):
    """FedAvg's server under Paillier: the server adds ciphertexts; only the aggregate is decrypted.

    For each sampled client, ``aggregate`` plays three roles in order:
    client: flatten its update, clip each value into ``[spec.low, spec.high]`` (counted in
    ``history``), quantise, pack and encrypt it (DJN fast encryption);
    server: multiply the ciphertexts, raising each client's to its public integer weight
    (its example count, or 1 with ``weighted=False``), which gives E(sum_k n_k q_k), never
    decrypting a single client's vector;
    key holder: decrypt only that aggregate and divide by sum(n_k) (``encrypted_weighted_mean``).

    The weighted mean differs from ``fl.WeightedMean`` by at most ``spec.step / 2`` per value when
    nothing is clipped. Every check (finite values, integer weights, total weight within
    ``spec.max_summands``: ``HeadroomError``) runs before the first encryption. The server still
    learns the example counts (public weights) and the aggregate's key holder learns the sum;
    a single simulated key holder stands in for a threshold key or a separate trusted party.
    """

    def __init__(
        self,
        public_key: paillier.PaillierPublicKey,
        private_key: paillier.PaillierPrivateKey,
        spec: PackingSpec,
        weighted: bool = True,
        clip: bool = True,
        encryptor: FastEncryptor | None = None,
        workers: int = 1,
    ):
        _check_private_key(private_key, public_key)
        if not isinstance(spec, PackingSpec):
            raise TypeError(f"spec must be a PackingSpec, got {type(spec).__name__}")
        if spec.slots(public_key) < 1:
            raise ValueError(
                f"a {spec.slot_bits}-bit slot does not fit a {public_key.n.bit_length()}-bit key"
            )
        if encryptor is not None and encryptor.public_key != public_key:
            raise KeyMismatchError("encryptor was built for a different public key")
        self.public_key = public_key
        self._private_key = private_key
        self.spec = spec
        self.weighted = bool(weighted)
        self.clip = bool(clip)
        self.encryptor = FastEncryptor(public_key) if encryptor is None else encryptor
        self.workers = workers
        self.history: list[dict] = []
        self.name = "secure aggregation" + ("" if self.weighted else " (unweighted)")

    def aggregate(self, updates: list, weights: np.ndarray) -> list:
        """Return the (example-count-)weighted mean of ``updates`` computed under encryption."""
        if len(updates) == 0:
            raise ValueError("updates must hold at least one client's update, got 0")
        vectors = [flatten_weights(u) for u in updates]
        for k, v in enumerate(vectors):
            if v.size != vectors[0].size:
                raise ValueError(f"updates[{k}] has {v.size} values, expected {vectors[0].size}")
            _as_finite_array(v, f"updates[{k}]")
        w = self.spec.check_weights(weights if self.weighted else [1] * len(vectors))
        if sum(w) == 0:
            raise ValueError("weights sum to 0; a weighted mean needs a positive weight")
        clipped = 0
        if self.clip:
            clipped = int(sum(np.sum((v < self.spec.low) | (v > self.spec.high)) for v in vectors))
            vectors = [np.clip(v, self.spec.low, self.spec.high) for v in vectors]
        else:
            for k, v in enumerate(vectors):
                quantize(v, self.spec, name=f"updates[{k}]")  # ValueRangeError before encrypting
        t0 = time.perf_counter()
        encrypted = [
            encrypt_packed(self.public_key, v, self.spec, self.encryptor, self.workers)
            for v in vectors
        ]
        t1 = time.perf_counter()
        combined = encrypted_weighted_mean(encrypted, w)  # the server's whole job
        t2 = time.perf_counter()
        mean = decrypt_vector(self._private_key, combined, workers=self.workers)
        t3 = time.perf_counter()
        self.history.append(
            {
                "clients": len(vectors),
                "values_per_client": int(vectors[0].size),
                "ciphertexts_per_client": len(encrypted[0].ciphertexts),
                "bytes_up_per_client": encrypted[0].nbytes,
                "plain_bytes_per_client": int(vectors[0].size) * 4,  # float32 on the wire
                "ciphertexts_decrypted": len(combined.ciphertexts),
                "clipped_values": clipped,
                "total_weight": int(sum(w)),
                "seconds_encrypt": t1 - t0,
                "seconds_server": t2 - t1,
                "seconds_decrypt": t3 - t2,
            }
        )
        return unflatten_weights(mean, updates[0])

    def __repr__(self) -> str:
        return (
            f"SecureAggregator({self.public_key.n.bit_length()}-bit key, spec={self.spec}, "
            f"weighted={self.weighted})"
        )
