"""The source article's formula E(x)·E(y) = E(x·y): textbook (unpadded) RSA, for demonstration."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import gmpy2

from labkit._checks import ParameterError, check_int
from labkit.he.keys import ValueRangeError

__all__ = ["TextbookRSA"]


@dataclass(frozen=True)
class TextbookRSA:
    """Unpadded RSA, E(x) = x^e mod n: multiplicatively homomorphic and insecure.

    For the chapter's demonstration only (no library ships unpadded RSA on purpose). It is
    insecure because it is deterministic (equal plaintexts give equal ciphertexts, so guesses
    can be tested) and malleable (anyone can turn E(x) into E(k*x)); being multiplicative is not
    the flaw (ElGamal is multiplicative and randomised).
    """

    n: int
    e: int
    d: int = field(repr=False)

    @classmethod
    def generate(cls, n_length: int = 1024, e: int = 65537) -> TextbookRSA:
        """Return a fresh key with an ``n_length``-bit modulus (demo sizes are fine: no padding)."""
        n_length = check_int("n_length", n_length, 64)
        if n_length % 2:
            raise ParameterError("n_length", n_length, "an even number of bits >= 64")
        e = check_int("e", e, 3)
        half = n_length // 2
        while True:
            p = int(gmpy2.next_prime(secrets.randbits(half) | (1 << (half - 1))))
            q = int(gmpy2.next_prime(secrets.randbits(half) | (1 << (half - 1))))
            phi = (p - 1) * (q - 1)
            if p != q and math.gcd(e, phi) == 1:
                return cls(p * q, e, pow(e, -1, phi))

    def _check(self, name: str, value) -> int:
        value = check_int(name, value)
        if not 0 <= value < self.n:
            raise ValueRangeError(name, value, "an integer in [0, n) for this key")
        return value

    def encrypt(self, m: int) -> int:
        """Return m^e mod n for an integer 0 <= m < n."""
        return pow(self._check("m", m), self.e, self.n)

    def decrypt(self, c: int) -> int:
        """Return c^d mod n for a ciphertext 0 <= c < n."""
        return pow(self._check("c", c), self.d, self.n)
