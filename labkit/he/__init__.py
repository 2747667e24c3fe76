"""Paillier homomorphic encryption on phe: keys, fixed-point vectors, packing, fast encryption.

Everything here produces ordinary Paillier ciphertexts under phe's keys (g = n + 1), so phe's
private key decrypts them; phe's own ``encrypt`` stays available as the reference path.

Modules, one concern each:
    keys        key generation, security levels, the named errors, the key-match checks
    encoding    fixed-point codes (``FixedPoint``)
    packing     quantisation and slots with headroom (``PackingSpec``), bit packing
    vectors     ``EncryptedVector`` / ``PackedVector``, encryption, sums, means, decryption
    djn         DJN fast encryption (``FastEncryptor``) and CRT decryption
    rsa         textbook RSA, the source article's multiplicative formula
    aggregator  ``secure_aggregate`` and ``SecureAggregator`` (a ``labkit.aggregation.Aggregator``)
    inference   a linear model served on encrypted features (``labkit.he.inference``, chapter 08)
Worker processes are opt-in (``workers=2`` or a ``Workers`` pool); none starts at import.
Cryptographic randomness comes from ``secrets`` / phe's ``SystemRandom`` and is never seeded.
"""

from labkit.he._pool import Workers
from labkit.he.aggregator import SecureAggregator, secure_aggregate
from labkit.he.djn import FastEncryptor
from labkit.he.encoding import FixedPoint
from labkit.he.keys import (
    DEFAULT_KEY_BITS,
    MIN_SECURE_KEY_BITS,
    HeadroomError,
    HEError,
    InsecureKeyWarning,
    KeyMismatchError,
    KeyTooShortError,
    NonFiniteValueError,
    ValueRangeError,
    WrongKeyError,
    cached_keypair,
    ciphertext_bytes,
    generate_keypair,
    security_bits,
)
from labkit.he.packing import PackingSpec, dequantize, pack_integers, quantize, unpack_integers
from labkit.he.rsa import TextbookRSA
from labkit.he.vectors import (
    EncryptedVector,
    PackedVector,
    decrypt_vector,
    encrypt_packed,
    encrypt_vector,
    encrypted_sum,
    encrypted_weighted_mean,
    encrypted_weighted_sum,
)

__all__ = [
    # keys and errors
    "DEFAULT_KEY_BITS",
    "MIN_SECURE_KEY_BITS",
    "generate_keypair",
    "cached_keypair",
    "security_bits",
    "ciphertext_bytes",
    "HEError",
    "KeyTooShortError",
    "NonFiniteValueError",
    "ValueRangeError",
    "HeadroomError",
    "KeyMismatchError",
    "WrongKeyError",
    "InsecureKeyWarning",
    # encoding and packing
    "FixedPoint",
    "PackingSpec",
    "quantize",
    "dequantize",
    "pack_integers",
    "unpack_integers",
    # vectors
    "EncryptedVector",
    "PackedVector",
    "encrypt_vector",
    "encrypt_packed",
    "encrypted_sum",
    "encrypted_weighted_sum",
    "encrypted_weighted_mean",
    "decrypt_vector",
    # speed
    "FastEncryptor",
    "Workers",
    # the source's formula, and secure aggregation
    "TextbookRSA",
    "secure_aggregate",
    "SecureAggregator",
]
