"""Counted modular operations of an encrypted aggregation, and the floor they imply.

Every path of ``benchmarks/he_aggregation.py`` is, at bottom, a number of modular
exponentiations and multiplications on big integers; the rest (packing, Python loops, worker
processes) is overhead. ``aggregation_ops`` counts them from the parameters alone (the tests
check the count against an instrumented run); multiplying each count by the time gmpy2 alone
takes for one such operation gives the path's **floor**: the time no implementation built on
the same operations can beat. What the floor contains, per ciphertext:

- encryption, DJN (``FastEncryptor``): one multiplication mod n^(s+1) per non-zero window digit
  of the short exponent but the first (the obfuscator from the fixed-base table), and one
  more for (1 + n)^m times the obfuscator; phe's ``raw_encrypt``: one exponentiation
  r^n mod n^2 (a k-bit exponent) and one multiplication;
- aggregation: one multiplication mod n^(s+1) per client but the first;
- decryption (CRT, the key holder): two exponentiations, by p - 1 mod p^(s+1) and by q - 1 mod
  q^(s+1) (k/2-bit exponents on (s+1)k/2-bit moduli). No short exponent applies with ordinary
  keys: this is the scheme's own cost, whoever implements it.

Encryption is the clients' (they hold only the public key, so no CRT); decryption is the key
holder's, the one party that may use p and q.
"""

from __future__ import annotations

import math

from labkit._checks import ParameterError, check_choice, check_int
from labkit.he.packing import PackingSpec

__all__ = ["aggregation_ops", "window_multiplications", "floor_seconds", "op_kind"]

_PHASES = ("encrypt", "aggregate", "decrypt")


def op_kind(op: str, modulus_bits: int, exponent_bits: int | None = None) -> str:
    """Return the name of one kind of operation, e.g. ``powmod 1024-bit exp mod 2048 bits``."""
    op = check_choice("op", op, ("powmod", "mulmod"))
    if op == "mulmod":
        return f"mulmod mod {modulus_bits} bits"
    return f"powmod {exponent_bits}-bit exp mod {modulus_bits} bits"


def window_multiplications(exponent_bits: int, window_bits: int) -> float:
    """Return the expected multiplications of one fixed-base obfuscator h^a, a uniform.

    The table has one row per ``window_bits`` digit of ``a`` (the top row gets what is left);
    the product of the rows' entries takes (non-zero digits - 1) multiplications, none when
    every digit is zero.
    """
    e = check_int("exponent_bits", exponent_bits, 1)
    w = check_int("window_bits", window_bits, 1)
    widths = [min(w, e - i) for i in range(0, e, w)]
    nonzero = sum(1 - 2.0**-b for b in widths)
    all_zero = 2.0 ** -sum(widths)
    return nonzero - 1 + all_zero


def aggregation_ops(
    key_bits: int,
    num_values: int,
    num_clients: int,
    spec: PackingSpec | None = None,
    encryption: str = "djn",
    s: int = 1,
    exponent_bits: int | None = None,
    window_bits: int | None = None,
) -> list[dict]:
    """Return the modular operations of one aggregation, per phase and kind.

    Args:
        key_bits: bits k of the Paillier modulus n.
        num_values: values per client update.
        num_clients: clients whose encrypted updates are summed.
        spec: the packing (slots per ciphertext); ``None`` for one ciphertext per value.
        encryption: ``"djn"`` (``FastEncryptor``) or ``"phe"`` (phe's r^n).
        s: Damgård–Jurik's s (1 is Paillier); any s >= 1, to predict what is not built.
        exponent_bits, window_bits: the DJN exponent and table window (``"djn"`` only).

    Returns:
        A list of ``{"phase", "op", "kind", "exponent_bits", "modulus_bits", "count"}``
        (counts of window multiplications are expectations over the random exponent).
    """
    k = check_int("key_bits", key_bits, 2)
    num_values = check_int("num_values", num_values, 1)
    num_clients = check_int("num_clients", num_clients, 1)
    encryption = check_choice("encryption", encryption, ("djn", "phe"))
    s = check_int("s", s, 1)
    if spec is None:
        slots = 1  # phe's one ciphertext per value (fixed point, no packing)
    elif isinstance(spec, PackingSpec):
        slots = s * (k - 1) // spec.slot_bits  # as PackingSpec.slots, for any s
    else:
        raise ParameterError("spec", type(spec).__name__, "a PackingSpec or None")
    if slots < 1:
        raise ParameterError("key_bits", k, f"room for one {spec.slot_bits}-bit slot")
    if encryption == "phe" and s != 1:
        raise ParameterError("s", s, "1 with encryption='phe' (phe has no Damgård–Jurik)")
    ciphertexts = math.ceil(num_values / slots)
    big = (s + 1) * k  # the ciphertext modulus n^(s+1)
    out = []

    def add(phase, op, count, modulus_bits, exp=None):
        kind = op_kind(op, modulus_bits, exp)
        out.append({"phase": phase, "op": op, "kind": kind, "exponent_bits": exp,
                    "modulus_bits": modulus_bits, "count": count})  # fmt: skip

    encryptions = num_clients * ciphertexts
    if encryption == "phe":
        add("encrypt", "powmod", encryptions, big, k)  # r^n mod n^2, a fresh full-size r
        add("encrypt", "mulmod", encryptions, big)
    else:
        if exponent_bits is None or window_bits is None:
            raise ParameterError(
                "exponent_bits", exponent_bits, "given with window_bits for encryption='djn'"
            )
        per = window_multiplications(exponent_bits, window_bits) + 1  # + (1 + n)^m * obfuscator
        add("encrypt", "mulmod", encryptions * per, big)
    add("aggregate", "mulmod", (num_clients - 1) * ciphertexts, big)
    half = k // 2  # p and q of a k-bit phe key have k/2 bits
    add("decrypt", "powmod", 2 * ciphertexts, (s + 1) * half, half)
    return out


def floor_seconds(
    ops: list[dict],
    seconds_each: dict,
    processes: int = 1,
    parallel=("encrypt", "decrypt"),
    parallel_seconds_each: dict | None = None,
) -> dict:
    """Return the floor per phase and in total: sum of count x gmpy2's time for one op.

    ``seconds_each`` maps each op's ``kind`` to its measured time in one process. Phases in
    ``parallel`` (labkit spreads encryption and decryption over worker processes; the server's
    multiplications run inline) take ``parallel_seconds_each`` when given (wall time per op
    with ``processes`` processes at once: what the machine delivers now), else
    ``seconds_each`` divided by ``processes``.
    """
    processes = check_int("processes", processes, 1)
    out = dict.fromkeys(_PHASES, 0.0)
    for op in ops:
        par = op["phase"] in parallel and processes > 1
        table = parallel_seconds_each if par and parallel_seconds_each else seconds_each
        if op["kind"] not in table:
            raise ParameterError("seconds_each", sorted(table), f"a time for {op['kind']}")
        t = op["count"] * table[op["kind"]]
        out[op["phase"]] += t / processes if par and table is seconds_each else t
    out["total"] = sum(out[p] for p in _PHASES)
    return out
