"""Paillier homomorphic encryption on phe: keys, fixed-point vectors, packing, fast encryption.

Everything here produces ordinary Paillier ciphertexts under phe's keys (g = n + 1), so phe's
private key decrypts them; phe's own ``encrypt`` stays available as the reference path.

Modules, one concern each:
    keys        key generation, security levels, the named errors, the key-match checks
    encoding    fixed-point codes (``FixedPoint``)
    packing     quantisation and slots with headroom (``PackingSpec``), bit packing
    vectors     ``EncryptedVector`` / ``PackedVector``, encryption, sums, means, decryption
    djn         DJN fast encryption (``FastEncryptor``) and CRT decryption
    cost        the modular operations each aggregation path performs, and their floor
    rsa         textbook RSA, the source article's multiplicative formula
    aggregator  ``secure_aggregate`` and ``SecureAggregator`` (a ``labkit.aggregation.Aggregator``)
    inference   a linear model served on encrypted features (``labkit.he.inference``, chapter 08)
Worker processes are opt-in (``workers=2`` or a ``Workers`` pool); none starts at import.
Cryptographic randomness comes from ``secrets`` / phe's ``SystemRandom`` and is never seeded.
"""

# Each submodule's ``__all__`` is its public surface; the package re-exports them all (as
# ``labkit.dp`` does), so no name is listed twice.
from labkit._lazy import lazy_submodules
from labkit.he import _pool, aggregator, cost, djn, encoding, keys, packing, rsa, vectors
from labkit.he._pool import *  # noqa: F403
from labkit.he.aggregator import *  # noqa: F403
from labkit.he.cost import *  # noqa: F403
from labkit.he.djn import *  # noqa: F403
from labkit.he.encoding import *  # noqa: F403
from labkit.he.keys import *  # noqa: F403
from labkit.he.packing import *  # noqa: F403
from labkit.he.rsa import *  # noqa: F403
from labkit.he.vectors import *  # noqa: F403

__all__ = [
    name
    for module in (keys, encoding, packing, vectors, djn, cost, _pool, rsa, aggregator)
    for name in module.__all__
]


__getattr__ = lazy_submodules(__name__, {"inference"})  # chapter 08
