"""Paillier keys (phe), their security level, and the named errors of ``labkit.he``.

The key checks live here once: the key-length check, the check that ciphertexts share one
public key, and the check that a private key matches the ciphertexts it is asked to decrypt.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

from phe import paillier

from labkit._checks import ParameterError, check_int

__all__ = [
    "MIN_KEY_BITS",
    "check_key_length",
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
    "check_public_key",
    "check_same_key",
    "check_private_key",
]

DEFAULT_KEY_BITS = 3072  # phe's recommended size for keys meant to last (NIST SP 800-57: 128-bit)
MIN_SECURE_KEY_BITS = 2048  # 112-bit security; anything shorter needs allow_insecure=True
MIN_KEY_BITS = 128  # below this even a demo key cannot hold one packed slot


# --- named errors: each a labkit ParameterError (a ValueError) naming parameter, value, range ---
class HEError(ParameterError):
    """Base class for labkit.he input errors (a ValueError, so generic handlers still work)."""


class KeyTooShortError(HEError):
    """A key shorter than MIN_SECURE_KEY_BITS was requested without ``allow_insecure=True``."""


class NonFiniteValueError(HEError):
    """A value to encrypt is NaN or infinite."""


class ValueRangeError(HEError):
    """A value lies outside the packing range, the fixed-point range or the plaintext space."""


class HeadroomError(HEError):
    """A sum could overflow a packed slot: too many summands or weights too large."""


class KeyMismatchError(HEError):
    """Ciphertexts (or an encryptor) under different public keys were combined."""


class WrongKeyError(HEError):
    """A private key was used on ciphertexts made under a different public key."""


class InsecureKeyWarning(UserWarning):
    """A key shorter than MIN_SECURE_KEY_BITS is in use (tests and demos only)."""


# --- keys ---------------------------------------------------------------------------------------
# NIST SP 800-57 Part 1, Table 2: security strength of an RSA/Paillier modulus of n bits.
_SECURITY_BITS = {1024: 80, 2048: 112, 3072: 128, 7680: 192, 15360: 256}


def security_bits(n_length: int) -> int:
    """Return the NIST security strength in bits of an ``n_length``-bit modulus (80 below 2048)."""
    n_length = check_int("n_length", n_length, 1)
    strength = 80  # nominal: below 1024 bits the true strength is lower still
    for bits, level in sorted(_SECURITY_BITS.items()):
        if n_length >= bits:
            strength = level
    return strength


def check_key_length(n_length, allow_insecure: bool) -> int:
    """Return ``n_length`` as an int; refuse odd or tiny sizes, warn (or refuse) below 2048."""
    n_length = check_int("n_length", n_length, MIN_KEY_BITS)
    if n_length % 2:
        raise ParameterError("n_length", n_length, f"an even number of bits >= {MIN_KEY_BITS}")
    if n_length < MIN_SECURE_KEY_BITS:
        if not allow_insecure:
            raise KeyTooShortError(
                "n_length",
                n_length,
                f">= {MIN_SECURE_KEY_BITS} bits (2048 or 3072)",
                "pass allow_insecure=True for a test or demo key",
            )
        warnings.warn(
            f"{n_length}-bit Paillier key: factorable with public tools (RSA-768 was "
            "factored in 2009); only for tests and demos",
            InsecureKeyWarning,
            stacklevel=3,
        )
    return n_length


def generate_keypair(n_length: int = DEFAULT_KEY_BITS, allow_insecure: bool = False):
    """Return a fresh phe ``(public_key, private_key)``; under 2048 bits needs allow_insecure."""
    return paillier.generate_paillier_keypair(n_length=check_key_length(n_length, allow_insecure))


@lru_cache(maxsize=8)
def _cached(n_length: int):
    return paillier.generate_paillier_keypair(n_length=n_length)


def cached_keypair(n_length: int = DEFAULT_KEY_BITS, allow_insecure: bool = False):
    """Return one ``(public_key, private_key)`` per size per process (quick mode and tests)."""
    return _cached(check_key_length(n_length, allow_insecure))


def ciphertext_bytes(public_key: paillier.PaillierPublicKey, s: int = 1) -> int:
    """Return the bytes one ciphertext (an integer mod n^(s+1), n^2 for Paillier) takes."""
    s = check_int("s", s, 1, 2)
    return ((public_key.n ** (s + 1)).bit_length() + 7) // 8


def _tail(public_key) -> str:
    return f"the key with modulus ...{public_key.n % 10**6:06d}"


def check_public_key(name: str, public_key) -> paillier.PaillierPublicKey:
    """Return ``public_key`` if it is a phe ``PaillierPublicKey``."""
    if not isinstance(public_key, paillier.PaillierPublicKey):
        raise ParameterError(name, type(public_key).__name__, "a phe PaillierPublicKey")
    return public_key


def check_same_key(items: Sequence, public_key=None, name: str = "vectors"):
    """Return the one public key of ``items`` (and ``public_key`` if given); raise on a mix."""
    key = items[0].public_key if public_key is None else public_key
    for i, item in enumerate(items):
        if item.public_key != key:
            raise KeyMismatchError(
                f"{name}[{i}]",
                _tail(item.public_key),
                f"made under {_tail(key)}",
                "all summands must share one public key",
            )
    return key


def check_private_key(private_key: paillier.PaillierPrivateKey, public_key) -> None:
    """Raise ``WrongKeyError`` unless ``private_key`` belongs to ``public_key``."""
    if not isinstance(private_key, paillier.PaillierPrivateKey):
        raise ParameterError("private_key", type(private_key).__name__, "a phe PaillierPrivateKey")
    if private_key.public_key != public_key:
        raise WrongKeyError(
            "private_key",
            _tail(private_key.public_key),
            f"the private key of {_tail(public_key)}",
            "private_key does not match the public key these ciphertexts were made under",
        )
