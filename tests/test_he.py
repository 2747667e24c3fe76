"""labkit.he: exact sums against integer references, named errors, phe interoperability.

Unit tests use opt-in 512-bit keys for speed (insecure; fine for arithmetic checks) and one
2048-bit check of the fast encryptor.
"""

import dataclasses
import secrets

import gmpy2
import numpy as np
import pytest
from phe import paillier

import labkit as lk
from labkit import he


@pytest.fixture(scope="module")
def keys(insecure_keypair):
    return insecure_keypair(512)


@pytest.fixture(scope="module")
def fast(keys):
    return lk.he.FastEncryptor(keys[0])


# --- keys -------------------------------------------------------------------------------------
def test_short_key_needs_opt_in_and_warns():
    with pytest.raises(lk.he.KeyTooShortError, match="n_length must be >= 2048 bits.*got 1024"):
        lk.he.generate_keypair(1024)
    with pytest.raises(lk.he.KeyTooShortError):
        lk.he.cached_keypair(512)
    with pytest.warns(lk.he.InsecureKeyWarning):
        pk, sk = lk.he.generate_keypair(256, allow_insecure=True)
    assert pk.n.bit_length() == 256 and sk.public_key == pk
    with pytest.raises(ValueError, match="n_length"):
        lk.he.generate_keypair(2047)


def test_default_key_size_and_security_levels():
    assert lk.he.DEFAULT_KEY_BITS == 3072
    assert [lk.he.security_bits(b) for b in (512, 1024, 2048, 3072)] == [80, 80, 112, 128]


def test_cached_keypair_reuses_one_key_per_size(keys):
    with pytest.warns(lk.he.InsecureKeyWarning):
        again = lk.he.cached_keypair(512, allow_insecure=True)
    assert again[0] is keys[0]


def test_ciphertext_bytes(keys):
    assert lk.he.ciphertext_bytes(keys[0]) == 128  # n^2 of a 512-bit n is 1024 bits


# --- fixed point, unpacked ----------------------------------------------------------------------
def test_fixed_point_precision_is_half_the_resolution():
    fp = lk.he.FixedPoint(frac_bits=12)
    x = np.random.default_rng(0).normal(0, 100, 1000)
    err = np.abs(fp.decode(fp.encode(x)) - x)
    assert err.max() <= fp.precision
    assert err.max() > 0.9 * fp.precision  # the bound is tight, not vacuous
    assert fp.exponent == -3
    with pytest.raises(ValueError, match="frac_bits"):
        lk.he.FixedPoint(frac_bits=10)


@pytest.mark.parametrize("use_fast", [False, True])
def test_encrypted_sum_is_exact_in_fixed_point(keys, fast, use_fast):
    pk, sk = keys
    rng = np.random.default_rng(1)
    fp = lk.he.FixedPoint(16)
    xs = [rng.normal(0, 3, 6) for _ in range(4)]
    xs[0][0] = -7.25  # negative, exactly representable
    enc = fast if use_fast else None
    vecs = [lk.he.encrypt_vector(pk, x, fp, encryptor=enc) for x in xs]
    total = lk.he.encrypted_sum(vecs)
    codes = lk.he.decrypt_vector(sk, total, integers=True)
    ref = [sum(col) for col in zip(*(fp.encode(x) for x in xs), strict=True)]
    assert list(codes) == ref
    got = lk.he.decrypt_vector(sk, total)
    assert np.abs(got - np.sum(xs, axis=0)).max() <= 4 * fp.precision
    # phe's own decrypt agrees with ours
    assert sk.decrypt(total.numbers[0]) == pytest.approx(got[0], abs=1e-12)


def test_encrypted_weighted_mean_unpacked(keys):
    pk, sk = keys
    rng = np.random.default_rng(2)
    xs = [rng.uniform(-5, 5, 5) for _ in range(3)]
    w = [120, 30, 50]
    mean = lk.he.encrypted_weighted_mean([lk.he.encrypt_vector(pk, x) for x in xs], w)
    ref = np.average(np.array(xs), axis=0, weights=w)
    np.testing.assert_allclose(lk.he.decrypt_vector(sk, mean), ref, atol=1e-8)


def test_non_finite_values_are_refused(keys):
    pk, _ = keys
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(lk.he.NonFiniteValueError, match=r"values\[1\]"):
            lk.he.encrypt_vector(pk, [0.0, bad])


def test_value_too_large_for_the_key_is_refused(keys):
    pk, _ = keys
    with pytest.raises(lk.he.ValueRangeError, match="max_int"):
        lk.he.encrypt_vector(pk, [1e150], lk.he.FixedPoint(32))


# --- fast encryption ----------------------------------------------------------------------------
def test_fast_table_matches_powmod(fast):
    n2 = fast.public_key.nsquare
    for a in [0, 1, 255, 256, 2**fast.exponent_bits - 1, secrets.randbits(fast.exponent_bits)]:
        assert fast._power(a) == gmpy2.powmod(fast.h_s, a, n2)


def test_fast_ciphertexts_decrypt_with_phe(keys, fast):
    pk, sk = keys
    c1, c2 = fast.raw_encrypt(42), fast.raw_encrypt(42)
    assert c1 != c2  # randomised: equal plaintexts do not give equal ciphertexts
    assert sk.raw_decrypt(c1) == sk.raw_decrypt(c2) == 42
    assert sk.raw_decrypt(int(fast.obfuscator())) == 0  # the obfuscator encrypts zero
    enc = fast.encrypt_encoded(paillier.EncodedNumber.encode(pk, -3.5))
    assert sk.decrypt(enc) == -3.5
    assert sk.decrypt(enc + pk.encrypt(1.25)) == -2.25  # mixes with phe's own ciphertexts


def test_fast_encryptor_2048_bits_decrypts_with_phe():
    pk, sk = lk.he.cached_keypair(2048)
    fe = lk.he.FastEncryptor(pk)
    assert fe.exponent_bits == 1024  # DJN: ceil(k/2)
    m = secrets.randbelow(pk.n)
    assert sk.decrypt_encoded(paillier.EncryptedNumber(pk, fe.raw_encrypt(m), 0)).encoding == m


def test_fast_encryptor_refuses_short_exponents(keys):
    pk, _ = keys
    with pytest.raises(ValueError, match="exponent_bits must be an integer in \\[160"):
        lk.he.FastEncryptor(pk, exponent_bits=64)


# --- packing ------------------------------------------------------------------------------------
def test_pack_matches_shift_reference_at_slot_boundaries():
    slot_bits, slots = 13, 7
    levels = np.array([0, 2**13 - 1, 1, 2**12, 2**13 - 2, 0, 5, 2**13 - 1, 3], dtype=np.int64)
    packed = lk.he.pack_integers(levels, slot_bits, slots)
    ref = [
        sum(int(v) << (i * slot_bits) for i, v in enumerate(levels[j : j + slots]))
        for j in range(0, len(levels), slots)
    ]
    assert packed == ref
    np.testing.assert_array_equal(lk.he.unpack_integers(packed, slot_bits, slots, 9), levels)


def test_quantize_endpoints_and_range():
    spec = lk.he.PackingSpec(-2.0, 2.0, precision_bits=8, max_summands=3)
    np.testing.assert_array_equal(lk.he.quantize([-2.0, 2.0, 0.0], spec), [0, 255, 128])
    assert spec.slot_bits == (3 * 255).bit_length() == 10
    inside = r"values\[1\] must be inside the packing range \[-2.0, 2.0\], got 2.0001"
    with pytest.raises(lk.he.ValueRangeError, match=inside):
        lk.he.quantize([0.0, 2.0001], spec)
    with pytest.raises(lk.he.NonFiniteValueError):
        lk.he.quantize([np.nan], spec)


@pytest.mark.parametrize("use_fast", [False, True])
def test_packed_sum_equals_integer_sum_exactly(keys, fast, use_fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=12, max_summands=5)
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, 300) for _ in range(5)]
    for x in xs:  # every slot position sees the range's endpoints somewhere
        x[:4] = [-1.0, 1.0, -1.0, 1.0]
    xs[0][-1] = -0.999
    vecs = [lk.he.encrypt_packed(pk, x, spec, encryptor=fast if use_fast else None) for x in xs]
    assert len(vecs[0].ciphertexts) == -(-300 // spec.slots(pk))
    total = lk.he.encrypted_sum(vecs)
    ref = np.sum([lk.he.quantize(x, spec) for x in xs], axis=0)
    np.testing.assert_array_equal(lk.he.decrypt_vector(sk, total, integers=True), ref)
    err = np.abs(lk.he.decrypt_vector(sk, total) - np.sum(xs, axis=0))
    assert err.max() <= spec.max_error(5) + 1e-12


def test_full_headroom_fits_and_one_more_is_refused(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=10, max_summands=4)
    top = [lk.he.encrypt_packed(pk, np.ones(50), spec, encryptor=fast) for _ in range(5)]
    full = lk.he.encrypted_sum(top[:4])  # every slot at its maximum, 4 * 1023
    assert (lk.he.decrypt_vector(sk, full, integers=True) == 4 * spec.levels).all()
    np.testing.assert_allclose(lk.he.decrypt_vector(sk, full), 4.0, atol=1e-12)
    with pytest.raises(lk.he.HeadroomError, match="<= the headroom max_summands=4, got 5"):
        lk.he.encrypted_sum(top)
    with pytest.raises(lk.he.HeadroomError):
        full + top[4]  # noqa: B018
    with pytest.raises(lk.he.HeadroomError, match="max_summands=4, got 6"):
        lk.he.encrypted_weighted_sum(top[:2], [3, 3])


def test_headroom_check_sits_exactly_where_a_slot_overflows(keys, fast):
    pk, sk = keys
    # max_summands * levels = 2^slot_bits - 1: the declared headroom fills the slot exactly
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=6, max_summands=2**6 + 1)
    assert spec.slot_bits == 12 and spec.max_summands * spec.levels == 2**12 - 1
    top = lk.he.encrypt_packed(pk, np.ones(30), spec, encryptor=fast)
    full = lk.he.encrypted_weighted_sum([top], [spec.max_summands])
    assert (lk.he.decrypt_vector(sk, full, integers=True) == 2**12 - 1).all()
    with pytest.raises(lk.he.HeadroomError, match="max_summands=65, got 66"):
        lk.he.encrypted_weighted_sum([top], [spec.max_summands + 1])
    # what the check prevents: one more summand, multiplied in by hand, carries into the next slot
    n2 = pk.n**2
    cts = [c * t % n2 for c, t in zip(full.ciphertexts, top.ciphertexts, strict=True)]
    wrong = lk.he.decrypt_vector(sk, dataclasses.replace(full, ciphertexts=cts), integers=True)
    assert (wrong != 66 * spec.levels).all()
    # the benchmark's spec: 20-bit values, 10 clients, 24-bit slots; 10 fit, 11 are refused
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=20, max_summands=10)
    assert spec.slot_bits == 24 == (10 * (2**20 - 1)).bit_length()
    tops = [lk.he.encrypt_packed(pk, np.ones(50), spec, encryptor=fast) for _ in range(11)]
    assert (lk.he.decrypt_vector(sk, lk.he.encrypted_sum(tops[:10]), integers=True)
            == 10 * spec.levels).all()  # fmt: skip
    with pytest.raises(lk.he.HeadroomError, match="max_summands=10, got 11"):
        lk.he.encrypted_sum(tops)


def test_packed_weighted_mean(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(-3.0, 3.0, precision_bits=16, max_summands=10)
    rng = np.random.default_rng(4)
    xs = [rng.uniform(-3, 3, 40) for _ in range(3)]
    w = [5, 1, 4]
    vecs = [lk.he.encrypt_packed(pk, x, spec, encryptor=fast) for x in xs]
    ints = lk.he.decrypt_vector(sk, lk.he.encrypted_weighted_sum(vecs, w), integers=True)
    ref = sum(wi * lk.he.quantize(x, spec) for wi, x in zip(w, xs, strict=True))
    np.testing.assert_array_equal(ints, ref)
    mean = lk.he.decrypt_vector(sk, lk.he.encrypted_weighted_mean(vecs, w))
    assert np.abs(mean - np.average(xs, axis=0, weights=w)).max() <= spec.step / 2 + 1e-12


def test_bad_weights_are_refused(keys, fast):
    pk, _ = keys
    spec = lk.he.PackingSpec(max_summands=10)
    v = [lk.he.encrypt_packed(pk, [0.5], spec, encryptor=fast) for _ in range(2)]
    for bad in ([0.5, 1], [-1, 2]):
        with pytest.raises(ValueError, match="weights\\[0\\]"):
            lk.he.encrypted_weighted_sum(v, bad)
    with pytest.raises(ValueError, match="one entry per vector"):
        lk.he.encrypted_weighted_sum(v, [1])


def test_packed_input_is_validated_before_encryption(keys, fast, no_encrypt):
    pk, _ = keys
    spy = no_encrypt.__new__(no_encrypt)
    spy.__dict__.update(fast.__dict__)
    spec = lk.he.PackingSpec(-1.0, 1.0)
    with pytest.raises(lk.he.ValueRangeError, match="inside the packing range"):
        lk.he.encrypt_packed(pk, [0.0, 1.5], spec, encryptor=spy)
    with pytest.raises(lk.he.NonFiniteValueError):
        lk.he.encrypt_packed(pk, [np.inf], spec, encryptor=spy)


def test_spec_validation():
    with pytest.raises(ValueError, match="precision_bits"):
        lk.he.PackingSpec(precision_bits=0)
    with pytest.raises(ValueError, match="62"):
        lk.he.PackingSpec(precision_bits=52, max_summands=2**20)
    with pytest.raises(ValueError, match="high must be finite, > low"):
        lk.he.PackingSpec(low=1.0, high=1.0)


def test_two_workers_give_the_same_result(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(precision_bits=16, max_summands=2)
    x = np.random.default_rng(5).uniform(-1, 1, 400)
    v = lk.he.encrypt_packed(pk, x, spec, encryptor=fast, workers=2)
    np.testing.assert_array_equal(
        lk.he.decrypt_vector(sk, v, integers=True, workers=2), lk.he.quantize(x, spec)
    )


def test_secure_aggregate_matches_the_integer_reference(keys, fast):
    pk, sk = keys
    spec = lk.he.PackingSpec(-2.0, 2.0, precision_bits=14, max_summands=6)
    rng = np.random.default_rng(6)
    xs = [rng.uniform(-2, 2, 120) for _ in range(3)]
    total = lk.he.secure_aggregate(xs, pk, sk, spec, weights=[1, 2, 3], encryptor=fast)
    ref = sum(wi * lk.he.quantize(x, spec) for wi, x in zip([1, 2, 3], xs, strict=True))
    np.testing.assert_allclose(total, lk.he.dequantize(ref, spec, 6), rtol=0, atol=1e-9)
    mean = lk.he.secure_aggregate(xs, pk, sk, spec, weights=[1, 2, 3], mean=True, encryptor=fast)
    assert np.abs(mean - np.average(xs, axis=0, weights=[1, 2, 3])).max() <= spec.step / 2


def test_secure_aggregate_refuses_before_encrypting(keys, fast, no_encrypt):
    pk, sk = keys
    spy = no_encrypt.__new__(no_encrypt)
    spy.__dict__.update(fast.__dict__)
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=8, max_summands=3)
    ok = [np.zeros(10)] * 3
    with pytest.raises(lk.he.HeadroomError, match="max_summands=3, got 4"):
        lk.he.secure_aggregate(ok + [np.zeros(10)], pk, sk, spec, encryptor=spy)
    with pytest.raises(lk.he.HeadroomError, match="max_summands=3, got 5"):
        lk.he.secure_aggregate(ok[:2], pk, sk, spec, weights=[2, 3], encryptor=spy)
    bad = [np.zeros(10), np.zeros(10), np.full(10, 0.5)]
    bad[2][7] = -1.2
    inside = r"updates\[2\]\[7\] must be inside the packing range \[-1.0, 1.0\], got -1.2"
    with pytest.raises(lk.he.ValueRangeError, match=inside):
        lk.he.secure_aggregate(bad, pk, sk, spec, encryptor=spy)
    with pytest.raises(ValueError, match=r"updates\[1\] must be 10 values, got \'9 values\'"):
        lk.he.secure_aggregate([np.zeros(10), np.zeros(9)], pk, sk, spec, encryptor=spy)


# --- keys must match ----------------------------------------------------------------------------
def test_mixing_keys_and_wrong_private_key_raise(keys, other_keys, fast):
    (pk, sk), (pk2, sk2) = keys, other_keys
    spec = lk.he.PackingSpec()
    a = lk.he.encrypt_packed(pk, [0.1], spec, encryptor=fast)
    b = lk.he.encrypt_packed(pk2, [0.2], spec)
    with pytest.raises(lk.he.KeyMismatchError, match=r"vectors\[1\]"):
        lk.he.encrypted_sum([a, b])
    with pytest.raises(lk.he.WrongKeyError, match="private_key does not match"):
        lk.he.decrypt_vector(sk2, a)
    u, v = lk.he.encrypt_vector(pk, [1.0]), lk.he.encrypt_vector(pk2, [1.0])
    with pytest.raises(lk.he.KeyMismatchError):
        u + v  # noqa: B018
    with pytest.raises(lk.he.WrongKeyError):
        lk.he.decrypt_vector(sk, v)
    with pytest.raises(lk.he.KeyMismatchError):
        lk.he.encrypt_packed(pk2, [0.1], spec, encryptor=fast)
    assert issubclass(lk.he.KeyMismatchError, ValueError)


# --- the source's formula ----------------------------------------------------------------------
def test_textbook_rsa_is_multiplicative_and_deterministic():
    rsa = lk.he.TextbookRSA.generate(256)
    x, y = 1234, 5678
    cx, cy = rsa.encrypt(x), rsa.encrypt(y)
    assert rsa.decrypt(cx * cy % rsa.n) == x * y
    assert rsa.encrypt(x) == cx  # deterministic: an eavesdropper can test guesses
    assert rsa.decrypt(cx * rsa.encrypt(3) % rsa.n) == 3 * x  # malleable


def test_public_api_is_reached_through_its_namespace():
    assert set(he.__all__) <= set(dir(lk.he))
    assert not set(he.__all__) & set(lk.__all__)  # the top level stays small


# --- Damgård–Jurik s=2: the same key, twice the plaintext per ciphertext -----------------------
def test_damgard_jurik_packs_twice_the_slots_and_sums_exactly(keys):
    pk, sk = keys
    spec = lk.he.PackingSpec(-1.0, 1.0, precision_bits=12, max_summands=6)
    fe2 = lk.he.FastEncryptor(pk, s=2)
    assert spec.slots(pk, s=2) == 2 * (pk.n.bit_length() - 1) // spec.slot_bits
    assert lk.he.ciphertext_bytes(pk, s=2) == 3 * lk.he.ciphertext_bytes(pk) // 2
    rng = np.random.default_rng(8)
    xs = [rng.uniform(-1, 1, 200) for _ in range(3)]
    xs[0][:2] = [-1.0, 1.0]
    vecs = [lk.he.encrypt_packed(pk, x, spec, encryptor=fe2) for x in xs]
    assert vecs[0].s == 2 and len(vecs[0].ciphertexts) == -(-200 // spec.slots(pk, s=2))
    total = lk.he.encrypted_weighted_sum(vecs, [1, 2, 3])
    ref = sum(w * lk.he.quantize(x, spec) for w, x in zip([1, 2, 3], xs, strict=True))
    np.testing.assert_array_equal(lk.he.decrypt_vector(sk, total, integers=True, workers=2), ref)
    mean = lk.he.decrypt_vector(sk, lk.he.encrypted_weighted_mean(vecs, [1, 2, 3]))
    assert np.abs(mean - np.average(xs, axis=0, weights=[1, 2, 3])).max() <= spec.step / 2
    with pytest.raises(ValueError, match="s=1"):
        lk.he.encrypted_sum([vecs[0], lk.he.encrypt_packed(pk, xs[1], spec)])  # s=2 with s=1
    agg = lk.he.SecureAggregator(pk, sk, spec, encryptor=fe2)
    out = agg.aggregate([[x.reshape(20, 10)] for x in xs], np.array([1, 2, 3]))
    assert np.abs(out[0].ravel() - np.average(xs, axis=0, weights=[1, 2, 3])).max() <= spec.step
