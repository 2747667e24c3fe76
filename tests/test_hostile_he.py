"""Hostile input for labkit.he: encoding, packing, encrypted vectors, aggregation, inference.

A case passes when it gives the right value or a ``ParameterError`` (or its named HE subclass)
naming the parameter. Small demo keys keep it fast.
"""

import math
import warnings

import numpy as np
import pytest

from labkit import he
from labkit._checks import ParameterError
from labkit.he.inference import LinearService, private_query, score_error_bound

BAD_VALUES = [
    "5",
    ["1", "2"],
    [1 + 2j],
    np.array([1 + 0j]),
    [True],
    [None],
    [[1.0], [2.0, 3.0]],
    [math.nan],
    [math.inf],
    [-math.inf],
    [10**400],
]


def named(name, fn, *args, cls=ParameterError, **kwargs):
    with pytest.raises(cls) as err:
        fn(*args, **kwargs)
    assert err.value.name == name, f"{err.value.name!r} != {name!r}: {err.value}"
    return err.value


@pytest.fixture(scope="module")
def keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he.InsecureKeyWarning)
        return he.cached_keypair(512, allow_insecure=True), he.cached_keypair(
            514, allow_insecure=True
        )


# --- keys -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_length", [0, 127, 513, 2.0, "2048", None, True, math.nan])
def test_key_length_refused(n_length):
    named("n_length", he.generate_keypair, n_length, allow_insecure=True)


def test_short_key_needs_allow_insecure():
    named("n_length", he.generate_keypair, 1024, cls=he.KeyTooShortError)


@pytest.mark.parametrize("s", [0, 3, 1.0, None])
def test_ciphertext_bytes_refuses_s(keys, s):
    named("s", he.ciphertext_bytes, keys[0][0], s)


@pytest.mark.parametrize("n_length", [0, -1, 2.5, "x"])
def test_security_bits_refuses(n_length):
    named("n_length", he.security_bits, n_length)


# --- fixed point ----------------------------------------------------------------------------
@pytest.mark.parametrize("frac_bits", [-4, 3, 260, 4.0, "8", None, True, math.nan])
def test_fixed_point_refuses(frac_bits):
    named("frac_bits", he.FixedPoint, frac_bits)


@pytest.mark.parametrize("values", BAD_VALUES)
def test_fixed_point_encode_refuses(values):
    with pytest.raises(ParameterError) as err:
        he.FixedPoint(8).encode(values)
    assert err.value.name.startswith("values")


def test_fixed_point_refuses_codes_beyond_float64():
    named("values[0]", he.FixedPoint(256).encode, [1e300], cls=he.ValueRangeError)


def test_fixed_point_round_trip_within_precision():
    fp = he.FixedPoint(np.int64(16))
    x = np.array([0.1, -2.5, 1e6, 0.0])
    assert np.all(np.abs(fp.decode(fp.encode(x)) - x) <= fp.precision)


# --- packing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 5e-324), "high"),  # step 0: every value would quantise to 0
        ((1, 1), "high"),
        ((1, 0), "high"),
        ((math.nan, 1), "low"),
        (("0", 1), "low"),
        ((0, math.inf), "high"),
        ((-1e308, 1e308), "high"),  # high - low overflows
        ((0, 1, 0), "precision_bits"),
        ((0, 1, 53), "precision_bits"),
        ((0, 1, 16.0), "precision_bits"),
        ((0, 1, 16, 0), "max_summands"),
        ((0, 1, 16, True), "max_summands"),
        ((0, 1, 52, 10**6), "precision_bits"),  # slots wider than 62 bits
    ],
)
def test_packing_spec_refuses(args, name):
    named(name, he.PackingSpec, *args)


@pytest.mark.parametrize("precision_bits", [1, 8, 16, 32, 40, 48, 52])
@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (0.0, 1.0), (3.0, 7.0), (-1e3, 1e-3)])
def test_packing_error_bound_holds_at_every_precision(precision_bits, low, high):
    spec = he.PackingSpec(low, high, precision_bits, 10)
    rng = np.random.default_rng(precision_bits)
    for total in (1, 3, 10):
        x = rng.uniform(low, high, size=(total, 2000))
        x[0, :2] = low, high  # the ends of the range
        levels = np.stack([he.quantize(row, spec) for row in x]).sum(axis=0)
        err = np.abs(he.dequantize(levels, spec, total) - x.sum(axis=0))
        assert err.max() <= spec.max_error(total)


@pytest.mark.parametrize("values", BAD_VALUES + [[2.0], [-1.5]])
def test_quantize_refuses(values):
    with pytest.raises(ParameterError) as err:
        he.quantize(values, he.PackingSpec(-1, 1))
    assert err.value.name.startswith("values")


@pytest.mark.parametrize("total_weight", [0, -1, 1.5, None])
def test_max_error_refuses(total_weight):
    named("total_weight", he.PackingSpec().max_error, total_weight)


@pytest.mark.parametrize(
    ("weights", "name"),
    [([1, -1], "weights[1]"), ([0.5, 1], "weights[0]"), ([True, 1], "weights[0]"),
     (["1", 1], "weights[0]"), ([0, 0], "weights"), ([1], "weights"), ([6, 6], "total weight")],
)  # fmt: skip
def test_packed_weights_refused(weights, name):
    named(name, he.PackingSpec(max_summands=10).check_weights, weights, 2)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([-1], 8, 2), "levels[0]"),
        (([256], 8, 2), "levels[0]"),
        (([1.5], 8, 2), "levels"),
        (([1], 0, 2), "slot_bits"),
        (([1], 8, 0), "slots"),
    ],
)
def test_pack_integers_refuses(args, name):
    named(name, he.pack_integers, *args)


def test_pack_unpack_round_trip():
    levels = np.array([0, 1, 255, 7, 9])
    packed = he.pack_integers(levels, 8, 2)
    assert he.unpack_integers(packed, 8, 2, 5).tolist() == levels.tolist()
    named("length", he.unpack_integers, packed, 8, 2, 7)
    named("packed[0]", he.unpack_integers, [1 << 16], 8, 2, 1)


# --- encrypted vectors ----------------------------------------------------------------------
@pytest.mark.parametrize("values", BAD_VALUES + [[]])
def test_encrypt_vector_refuses(keys, values):
    with pytest.raises(ParameterError) as err:
        he.encrypt_vector(keys[0][0], values)
    assert err.value.name.startswith("values")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"public_key": "pk"}, "public_key"),
        ({"fixed_point": 16}, "fixed_point"),
        ({"encryptor": "fast"}, "encryptor"),
    ],
)
def test_encrypt_vector_refuses_setup(keys, kwargs, name):
    args = {"public_key": keys[0][0], "values": [1.0], **kwargs}
    named(name, he.encrypt_vector, **args)


def test_encrypt_vector_refuses_an_encryptor_for_another_key(keys):
    (pk, _), (pk2, _) = keys
    named(
        "encryptor", he.encrypt_vector, pk, [1.0], encryptor=he.FastEncryptor(pk2),
        cls=he.KeyMismatchError,
    )  # fmt: skip


@pytest.mark.parametrize("count", [2, 3, 5, 40])
def test_sums_past_the_plaintext_space_are_refused_not_garbage(keys, count):
    (pk, sk), _ = keys
    v = he.encrypt_vector(pk, [float(pk.max_int // 2)], he.FixedPoint(0))
    named("vectors", he.encrypted_sum, [v] * count, cls=he.ValueRangeError)


def test_sums_within_the_plaintext_space_are_exact(keys):
    (pk, sk), _ = keys
    fp = he.FixedPoint(8)
    a, b = he.encrypt_vector(pk, [1.5, -2.0], fp), he.encrypt_vector(pk, [0.25, 4.0], fp)
    assert he.decrypt_vector(sk, a + b).tolist() == [1.75, 2.0]
    mean = he.encrypted_weighted_mean([a, b], [np.int64(1), 3.0])
    assert he.decrypt_vector(sk, mean) == pytest.approx([0.5625, 2.5])


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda a, b, c: he.encrypted_sum([]), "vectors"),
        (lambda a, b, c: he.encrypted_sum([a, "b"]), "vectors[1]"),
        (lambda a, b, c: he.encrypted_sum([a, c]), "vectors[1]"),  # another key
        (lambda a, b, c: he.encrypted_weighted_sum([a, b], [1]), "weights"),
        (lambda a, b, c: he.encrypted_weighted_sum([a, b], [1, math.nan]), "weights[1]"),
        (lambda a, b, c: he.encrypted_weighted_sum([a, b], [1, "2"]), "weights[1]"),
        (lambda a, b, c: he.encrypted_weighted_sum([a, b], [1, 1j]), "weights[1]"),
        (lambda a, b, c: he.encrypted_weighted_mean([a, b], [1, -1]), "weights"),
    ],
)
def test_combining_refuses(keys, make, name):
    (pk, _), (pk2, _) = keys
    a, b = he.encrypt_vector(pk, [1.0]), he.encrypt_vector(pk, [2.0])
    c = he.encrypt_vector(pk2, [1.0])
    named(name, make, a, b, c)


def test_decrypt_refuses_wrong_key_and_non_vectors(keys):
    (pk, sk), (_, sk2) = keys
    v = he.encrypt_vector(pk, [1.0])
    named("private_key", he.decrypt_vector, sk2, v, cls=he.WrongKeyError)
    named("private_key", he.decrypt_vector, "sk", v)
    named("encrypted", he.decrypt_vector, sk, [1.0])
    named("integers", he.decrypt_vector, sk, v, integers="no")


# --- packed vectors and the secure aggregator -----------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"spec": "spec"}, "spec"),
        ({"mean": "yes"}, "mean"),
        ({"weights": [1, 2.5]}, "weights[1]"),
        ({"weights": [11, 0]}, "total weight"),
        ({"updates": [[0.5], [0.5, 0.1]]}, "updates[1]"),
        ({"updates": [[0.5], [1j]]}, "updates[1]"),
        ({"updates": [[0.5], [2.0]]}, "updates[1][0]"),
        ({"updates": []}, "updates"),
        ({"encryptor": "fast"}, "encryptor"),
    ],
)
def test_secure_aggregate_refuses(keys, kwargs, name):
    (pk, sk), _ = keys
    args = {"updates": [[0.5], [0.25]], "public_key": pk, "private_key": sk,
            "spec": he.PackingSpec(-1, 1, 16, 10), **kwargs}  # fmt: skip
    named(name, he.secure_aggregate, **args)


def test_secure_aggregate_is_right_with_numpy_weights(keys):
    (pk, sk), _ = keys
    spec = he.PackingSpec(-1, 1, 16, 10)
    out = he.secure_aggregate([[0.5], [0.25]], pk, sk, spec, np.array([1, 3]), mean=True)
    assert abs(out[0] - 0.3125) <= spec.max_error(1)


@pytest.mark.parametrize(("kwargs", "name"), [({"weighted": "no"}, "weighted"),
                                               ({"clip": None}, "clip")])  # fmt: skip
def test_secure_aggregator_refuses_truthy_flags(keys, kwargs, name):
    (pk, sk), _ = keys
    named(name, he.SecureAggregator, pk, sk, he.PackingSpec(), **kwargs)


def test_secure_aggregator_refuses_mismatched_keys(keys):
    (pk, sk), (pk2, sk2) = keys
    named("private_key", he.SecureAggregator, pk, sk2, he.PackingSpec(), cls=he.WrongKeyError)
    named("public_key", he.SecureAggregator, "pk", sk, he.PackingSpec())
    named(
        "encryptor", he.SecureAggregator, pk, sk, he.PackingSpec(),
        encryptor=he.FastEncryptor(pk2), cls=he.KeyMismatchError,
    )  # fmt: skip


# --- encrypted inference --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weights", "bias", "name"),
    [
        (np.ones((2, 1, 1)), [0.0], "weights"),  # 3-D
        (np.ones((2, 1)) * 1j, [0.0], "weights"),
        ([["a"], ["b"]], [0.0], "weights"),
        ([[math.nan], [1.0]], [0.0], "weights"),
        (np.ones((0, 1)), [0.0], "weights"),
        (np.ones((2, 1)), [0.0, 1.0], "bias"),
        (np.ones((2, 1)), [math.inf], "bias"),
        (np.ones((2, 1)), ["0"], "bias"),
    ],
)
def test_linear_service_refuses(weights, bias, name):
    named(name, LinearService, weights, bias)


@pytest.mark.parametrize("w_frac_bits", [3, -4, 1.0, "16"])
def test_linear_service_refuses_frac_bits(w_frac_bits):
    named("frac_bits", LinearService, np.ones((2, 1)), [0.0], w_frac_bits)


def test_score_refuses_another_keys_encryptor_instead_of_garbage(keys):
    (pk, _), (pk2, _) = keys
    service = LinearService(np.ones((2, 1)), [0.0], 16)
    query = he.encrypt_vector(pk, [1.0, 2.0], he.FixedPoint(16))
    named("encryptor", service.score, query, he.FastEncryptor(pk2), cls=he.KeyMismatchError)
    named("query", service.score, [1.0, 2.0])
    named("query", service.score, he.encrypt_vector(pk, [1.0], he.FixedPoint(16)))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.full((2, 1), 1e80), [1e80, 1e80]), "x"),  # beyond the key's plaintext space
        ((np.ones((2, 1)), [1.0]), "x"),
        ((np.ones((2, 1)), [1.0, math.nan]), "x"),
        ((np.ones((2, 1)), ["1", "2"]), "x"),
    ],
)
def test_private_query_refuses(keys, args, name):
    (pk, sk), _ = keys
    weights, x = args
    named(name, private_query, LinearService(weights, [0.0], 16), x, pk, sk, 16)


def test_private_query_refuses_mismatched_keys(keys):
    (pk, sk), (pk2, sk2) = keys
    service = LinearService(np.ones((2, 1)), [0.0], 16)
    named("private_key", private_query, service, [1.0, 2.0], pk, sk2, cls=he.WrongKeyError)
    named("public_key", private_query, service, [1.0, 2.0], "pk", sk)
    named("service", private_query, "service", [1.0, 2.0], pk, sk)


def test_private_query_is_right_within_its_bound(keys):
    (pk, sk), _ = keys
    w = np.array([[0.5, -1.25], [2.0, 0.125], [-3.0, 1.0]])
    service = LinearService(w, [0.25, -0.5], 16)
    x = np.array([1.5, -0.75, 2.0])
    out = private_query(service, x, pk, sk, 16)
    assert out["within_bound"]
    assert np.all(np.abs(out["scores"] - (x @ w + [0.25, -0.5])) <= out["error_bound"])


def test_score_error_bound_refuses_shape_mismatch():
    named("x", score_error_bound, [1.0], np.ones((2, 1)), [0.0], 16, 16)
    named("weights", score_error_bound, [1.0], np.ones((1, 1, 1)), [0.0], 16, 16)
