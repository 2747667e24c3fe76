"""labkit.he.cost: the analytic operation counts agree with an instrumented run of each path.

The instrumented run swaps ``gmpy2`` inside labkit.he (and phe's ``powmod``/``mulmod``) for a
counting stand-in: every reduction ``x % m`` and every exponentiation is tallied by modulus size,
and the path's result is still checked exactly, so the counts are of the code that ran.
"""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from phe import paillier

import labkit as lk
from labkit.he import djn, vectors


class Counted(int):
    """An int whose products stay Counted and whose reductions ``% m`` are tallied."""

    log: Counter = Counter()

    def __mul__(self, other):
        return Counted(int(self) * int(other))

    __rmul__ = __mul__

    def __mod__(self, m):
        Counted.log["mulmod", None, int(m).bit_length()] += 1
        return Counted(int(self) % int(m))


def _powmod(b, e, m):
    Counted.log["powmod", int(e).bit_length(), int(m).bit_length()] += 1
    return Counted(pow(int(b), int(e), int(m)))


FAKE_GMPY2 = SimpleNamespace(
    mpz=Counted,
    powmod=_powmod,
    powmod_base_list=lambda bases, e, m: [_powmod(b, e, m) for b in bases],
    invert=lambda a, m: Counted(pow(int(a), -1, int(m))),
)


@pytest.fixture(scope="module")
def keys512(insecure_keypair):
    return insecure_keypair(512)


@pytest.fixture
def counted(monkeypatch):
    """Count the big-integer operations of labkit.he's DJN, CRT and packed-sum code."""
    for module in (djn, vectors):
        monkeypatch.setattr(module, "gmpy2", FAKE_GMPY2)
    real_powmod, real_mulmod = paillier.powmod, paillier.mulmod

    def phe_powmod(a, b, c):
        if a != 1:  # phe returns 1 at once for base 1: no exponentiation happens
            Counted.log["powmod", int(b).bit_length(), int(c).bit_length()] += 1
        return real_powmod(a, b, c)

    def phe_mulmod(a, b, c):
        if a != 1 and b != 1:  # phe multiplies by 1 when encrypting with r_value=1
            Counted.log["mulmod", None, int(c).bit_length()] += 1
        return real_mulmod(a, b, c)

    monkeypatch.setattr(paillier, "powmod", phe_powmod)
    monkeypatch.setattr(paillier, "mulmod", phe_mulmod)
    Counted.log = Counter()
    return Counted.log


def _expected(ops) -> dict:
    out = Counter()
    for op in ops:
        out[op["phase"], op["op"], op["exponent_bits"], op["modulus_bits"]] += op["count"]
    return out


def _phase(log: Counter, phase: str, k: int, s: int) -> dict:
    """The counted heavy operations: mulmods mod n^(s+1), exponentiations (both labelled with
    the model's nominal sizes: n^(s+1) and p^(s+1) may be a bit or two short of (s+1)k and
    (s+1)k/2 bits)."""
    out = Counter()
    for (op, e, m), c in log.items():
        if op == "mulmod" and m > (s + 1) * (k - 1):  # mod n^(s+1); mod p, q, p^2 left out
            out[phase, op, None, (s + 1) * k] += c
        elif op == "powmod":
            out[phase, op, e, (s + 1) * (k if e == k else k // 2)] += c
    return out


@pytest.mark.parametrize("s", [1, 2])
def test_djn_path_performs_exactly_the_counted_operations(keys512, counted, s, monkeypatch):
    pk, sk = keys512
    k = pk.n.bit_length()
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=12, max_summands=3)
    fe = lk.he.FastEncryptor(pk, exponent_bits=180, window_bits=8, s=s)  # built counted
    fe.obfuscator()  # the table: one-off set-up, not part of a round
    # Every window digit non-zero, so the count is exact, not an expectation.
    monkeypatch.setattr(djn.secrets, "randbits", lambda bits: (1 << bits) - 1)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, 60) for _ in range(3)]
    got = Counter()
    counted.clear()
    vecs = [lk.he.encrypt_packed(pk, x, spec, encryptor=fe) for x in xs]
    got += _phase(counted, "encrypt", k, s)
    counted.clear()
    total = lk.he.encrypted_sum(vecs)
    got += _phase(counted, "aggregate", k, s)
    counted.clear()
    out = lk.he.decrypt_vector(sk, total, integers=True)
    got += _phase(counted, "decrypt", k, s)
    assert (out == np.sum([lk.he.quantize(x, spec) for x in xs], axis=0)).all()
    ops = lk.he.aggregation_ops(k, 60, 3, spec, "djn", s, 180, 8)
    want = _expected(ops)
    rows = -(-180 // 8)  # 23 digits, all non-zero: 22 products + (1 + n)^m * obfuscator
    enc = [op for op in ops if op["phase"] == "encrypt"][0]
    ciphertexts = -(-60 // spec.slots(pk, s))
    assert enc["count"] == pytest.approx(3 * ciphertexts * (rows - 1 + 1), rel=0.02)
    want["encrypt", "mulmod", None, (s + 1) * k] = 3 * ciphertexts * rows  # exact here
    assert dict(got) == dict(want)


def test_window_multiplications_is_the_mean_count(keys512, counted):
    fe = lk.he.FastEncryptor(keys512[0], exponent_bits=160, window_bits=3)
    fe.obfuscator()
    counted.clear()
    draws = 3000
    for _ in range(draws):
        fe.obfuscator()
    mean = sum(counted.values()) / draws
    expected = lk.he.window_multiplications(160, 3)
    assert expected == pytest.approx(53 * 7 / 8 + 1 / 2 - 1)  # 53 3-bit digits, one 1-bit
    # sd of one count is sqrt(54 * 7/64) ~ 2.4; of the mean of 3000 about 0.045
    assert mean == pytest.approx(expected, abs=0.25)


def test_phe_packed_path_counts(keys512, counted):
    pk, sk = keys512
    k = pk.n.bit_length()
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=10, max_summands=2)
    xs = [np.linspace(-1, 1, 40), np.linspace(1, -1, 40)]
    got = Counter()
    counted.clear()
    vecs = [lk.he.encrypt_packed(pk, x, spec) for x in xs]
    got += _phase(counted, "encrypt", k, 1)
    counted.clear()
    total = lk.he.encrypted_sum(vecs)
    got += _phase(counted, "aggregate", k, 1)
    counted.clear()
    np.testing.assert_allclose(lk.he.decrypt_vector(sk, total), 0.0, atol=spec.max_error(2))
    got += _phase(counted, "decrypt", k, 1)
    assert dict(got) == dict(_expected(lk.he.aggregation_ops(k, 40, 2, spec, "phe")))


def test_phe_per_value_needs_at_least_the_counted_operations(keys512, counted):
    pk, sk = keys512
    k = pk.n.bit_length()
    enc = [[pk.encrypt(int(v)) for v in row] for row in ([1, 2, 3], [4, 5, 6])]
    encrypt = _phase(counted, "encrypt", k, 1)
    counted.clear()
    total = [a + b for a, b in zip(*enc, strict=True)]
    aggregate = _phase(counted, "aggregate", k, 1)
    counted.clear()
    assert [sk.decrypt(c) for c in total] == [5, 7, 9]
    decrypt = _phase(counted, "decrypt", k, 1)
    got = encrypt + aggregate + decrypt
    assert dict(got) == dict(_expected(lk.he.aggregation_ops(k, 3, 2, None, "phe")))


def test_bad_arguments_are_named():
    spec = lk.he.PackingSpec()
    with pytest.raises(lk.ParameterError, match="exponent_bits"):
        lk.he.aggregation_ops(2048, 10, 2, spec, "djn")
    with pytest.raises(lk.ParameterError, match="encryption"):
        lk.he.aggregation_ops(2048, 10, 2, spec, "rsa")
    with pytest.raises(lk.ParameterError, match="s"):
        lk.he.aggregation_ops(2048, 10, 2, spec, "phe", s=2)
    with pytest.raises(lk.ParameterError, match="seconds_each"):
        lk.he.floor_seconds(lk.he.aggregation_ops(2048, 10, 2, spec, "phe"), {})


def test_floor_divides_only_the_parallel_phases():
    ops = lk.he.aggregation_ops(2048, 850, 10, lk.he.PackingSpec(-1, 1, 20, 10), "djn", 1,
                                224, 10)  # fmt: skip
    each = {op["kind"]: 1.0 for op in ops}
    one, two = lk.he.floor_seconds(ops, each, 1), lk.he.floor_seconds(ops, each, 2)
    assert one["aggregate"] == two["aggregate"] == 9 * 10  # 10 ciphertexts, 9 products each
    assert one["decrypt"] == 2 * two["decrypt"] == 2 * 10
    assert one["total"] == pytest.approx(sum(one[p] for p in ("encrypt", "aggregate", "decrypt")))
    measured = lk.he.floor_seconds(ops, each, 2, parallel_seconds_each={k: 0.75 for k in each})
    assert measured["decrypt"] == 0.75 * 20 and measured["aggregate"] == 90  # taken as measured
