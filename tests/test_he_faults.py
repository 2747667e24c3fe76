"""labkit.he refuses or answers correctly where it used to give a silent wrong answer (issue 9).

Each case failed on the single-module he.py: a packed mean plus a vector dropped the mean's
division, values beyond the fixed-point range raised a bare OverflowError, bit helpers wrapped
negative or too-wide integers, NumPy scalars broke PackingSpec and TextbookRSA, an infinite
value range or an empty vector passed unnoticed, and a short demo key had no valid default DJN
exponent.
"""

import warnings

import numpy as np
import pytest

import labkit as lk


@pytest.fixture(scope="module")
def keys(insecure_keypair):
    return insecure_keypair(512)


@pytest.fixture(scope="module")
def fast(keys):
    return lk.he.FastEncryptor(keys[0])


@pytest.fixture(scope="module")
def abc(keys, fast):
    """Three packed vectors a, b, c and their plaintexts."""
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=12, max_summands=8)
    rng = np.random.default_rng(7)
    xs = [rng.uniform(-1, 1, 40) for _ in range(3)]
    return spec, xs, [lk.he.encrypt_packed(keys[0], x, spec, encryptor=fast) for x in xs]


def test_packed_mean_plus_vector_keeps_the_division_in_both_orders(keys, abc):
    _, sk = keys
    spec, (a, b, c), (ea, eb, ec) = abc
    mean = lk.he.encrypted_weighted_mean([ea, eb], [1, 1])
    want = (a + b) / 2 + c
    for got in (mean + ec, ec + mean, lk.he.encrypted_sum([ec, mean])):
        assert got.divisor == 2 and got.weight == 4  # (a + b + 2c) / 2: headroom for 4 values
        err = np.abs(lk.he.decrypt_vector(sk, got) - want).max()
        assert err <= spec.max_error(4) / 2 + 1e-12
    # a weighted mean of a mean and a vector: ((a + b)/2 * 1 + c * 3) / 4
    nested = lk.he.encrypted_weighted_mean([mean, ec], [1, 3])
    got = lk.he.decrypt_vector(sk, nested)
    assert np.abs(got - ((a + b) / 2 + 3 * c) / 4).max() <= spec.step / 2 + 1e-12
    assert mean.divisor == 2  # combining did not modify its input


def test_packed_mean_sum_that_overflows_the_headroom_is_refused(abc):
    spec, _, (ea, eb, ec) = abc
    mean = lk.he.encrypted_weighted_mean([ea, eb], [3, 2])  # weight 5, divisor 5
    with pytest.raises(lk.he.HeadroomError, match="max_summands=8, got 10"):
        mean + ec  # (3a + 2b + 5c) / 5 needs 5 + 5 = 10 > 8 summands  # noqa: B018


def test_fixed_point_overflow_is_a_named_error(keys):
    fp = lk.he.FixedPoint(32)
    with pytest.raises(lk.he.ValueRangeError, match=r"values\[1\] must be \|x\| <="):
        fp.encode([0.0, 1e300])
    with pytest.raises(lk.he.ValueRangeError):
        lk.he.encrypt_vector(keys[0], [1e300], fp)
    with pytest.raises(lk.he.ValueRangeError, match="codes"):
        fp.decode([1 << 1100])


@pytest.mark.parametrize(
    "levels", [[1, -1, 2], [0, 2**13], np.array([-3], dtype=np.int64), [0.5, 1.0]]
)
def test_pack_integers_refuses_what_would_wrap_or_spill(levels):
    with pytest.raises(ValueError, match="levels"):
        lk.he.pack_integers(levels, 13, 4)


def test_unpack_integers_refuses_wide_inputs_and_missing_slots():
    packed = lk.he.pack_integers(np.arange(8), 4, 4)
    np.testing.assert_array_equal(lk.he.unpack_integers(packed, 4, 4, 8), np.arange(8))
    with pytest.raises(lk.he.ValueRangeError, match=r"packed\[0\]"):
        lk.he.unpack_integers([1 << 16], 4, 4, 4)
    with pytest.raises(lk.he.ValueRangeError, match=r"packed\[0\]"):
        lk.he.unpack_integers([-1], 4, 4, 4)
    with pytest.raises(ValueError, match="length"):
        lk.he.unpack_integers(packed, 4, 4, 9)


def test_numpy_scalars_are_accepted_like_python_numbers(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(
        np.float32(-1.0), np.float64(1.0), np.int64(10), max_summands=np.int32(4)
    )
    assert spec == lk.he.PackingSpec(-1.0, 1.0, 10, 4) and spec.slot_bits == 12
    x = np.array([0.25, -0.5])
    v = lk.he.encrypt_packed(pk, x, spec, encryptor=fast, workers=np.int64(1))
    out = lk.he.encrypted_weighted_sum([v, v], np.array([np.int64(1), np.int64(2)]))
    assert np.abs(lk.he.decrypt_vector(sk, out) - 3 * x).max() <= spec.max_error(3)
    rsa = lk.he.TextbookRSA.generate(np.int64(128))
    assert rsa.decrypt(rsa.encrypt(np.int64(42))) == 42
    assert lk.he.FixedPoint(np.int64(8)).frac_bits == 8


def test_pending_mean_weights_accept_numpy_floats(keys, abc):
    _, sk = keys
    spec, (a, b, _), (ea, eb, _) = abc
    mean = lk.he.encrypted_weighted_mean([ea, eb], np.array([2.0, 6.0]))
    want = (2 * a + 6 * b) / 8
    assert np.abs(lk.he.decrypt_vector(sk, mean) - want).max() <= spec.step / 2 + 1e-12


def test_infinite_or_nan_ranges_and_weights_are_refused(keys):
    with pytest.raises(ValueError, match="high"):
        lk.he.PackingSpec(-1e308, 1e308)  # high - low overflows: every step would be inf
    with pytest.raises(ValueError, match="low"):
        lk.he.PackingSpec(np.nan, 1.0)
    u = lk.he.encrypt_vector(keys[0], [1.0])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        lk.he.encrypted_weighted_sum([u, u], [1.0, np.inf])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        lk.he.encrypted_weighted_mean([u, u], [np.nan, 1.0])


def test_empty_vectors_are_refused(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec()
    with pytest.raises(ValueError, match="at least one value"):
        lk.he.encrypt_packed(pk, [], spec, encryptor=fast)
    with pytest.raises(ValueError, match="at least one value"):
        lk.he.encrypt_vector(pk, np.zeros(0))
    with pytest.raises(ValueError, match="at least one"):
        lk.he.secure_aggregate([np.zeros(0), np.zeros(0)], pk, sk, spec, encryptor=fast)
    with pytest.raises(ValueError, match="at least one"):
        lk.he.encrypted_sum([])


def test_short_demo_key_gets_a_valid_default_djn_exponent():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
        pk, sk = lk.he.cached_keypair(256, allow_insecure=True)
    fe = lk.he.FastEncryptor(pk)  # k/2 = 128 bits is below 2 x 80: the floor is the default
    assert fe.exponent_bits == 2 * lk.he.security_bits(256) == 160
    assert sk.raw_decrypt(fe.raw_encrypt(99)) == 99
    with pytest.raises(ValueError, match="n_length"):
        lk.he.generate_keypair(100, allow_insecure=True)


def test_textbook_rsa_refuses_ciphertexts_outside_its_modulus():
    rsa = lk.he.TextbookRSA.generate(128)
    for bad in (-1, rsa.n):
        with pytest.raises(lk.he.ValueRangeError):
            rsa.decrypt(bad)
