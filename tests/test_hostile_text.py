"""Hostile input for text data (labkit.data.text), char LMs and canary exposure (chapter 08).

A case passes when it gives the right value or a ``ParameterError`` naming the parameter.
"""

import math

import numpy as np
import pytest

from labkit._checks import ParameterError
from labkit.attacks import exposure as ex
from labkit.data import text

BAD_INTS = [None, "3", 2.5, 3.0, True, math.nan, math.inf, 1 + 0j, -1, 0]
CODES = text.encode("to be, or not to be: that is the question")


def named(name, fn, *args, **kwargs):
    with pytest.raises(ParameterError) as err:
        fn(*args, **kwargs)
    assert err.value.name == name, f"{err.value.name!r} != {name!r}: {err.value}"
    return err.value


@pytest.fixture(scope="module")
def lm():
    from labkit.models import build_char_lm

    return build_char_lm(seq_len=16, units=4, embedding_dim=2, seed=0)


# --- encode / decode ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "codes", [[-1], [2.7], [999], [len(text.VOCAB)], ["a"], [None], [True], [math.nan], [1j]]
)
def test_decode_refuses_what_is_not_a_code(codes):
    named("codes", text.decode, codes)


@pytest.mark.parametrize(
    "codes", [[3], np.array([3.0]), np.int64(3), np.array([[3, 4]], np.uint8), []]
)
def test_decode_accepts_integer_codes_of_any_kind(codes):
    assert text.decode(codes) == "".join(text.VOCAB[int(c)] for c in np.ravel(codes))


@pytest.mark.parametrize("value", [None, 5, b"abc", ["a", "b"]])
def test_encode_refuses_non_strings(value):
    named("text", text.encode, value)


def test_encode_decode_round_trip():
    s = "Hamlet: to be, or not to be?"
    assert text.decode(text.encode(s)) == s


# --- windows and chunks ---------------------------------------------------------------------
@pytest.mark.parametrize("seq_len", BAD_INTS)
@pytest.mark.parametrize("fn", [text.next_char_windows, text.sequence_chunks])
def test_windows_refuse_bad_seq_len(fn, seq_len):
    named("seq_len", fn, CODES, seq_len)


@pytest.mark.parametrize("stride", BAD_INTS)
@pytest.mark.parametrize("fn", [text.next_char_windows, text.sequence_chunks])
def test_windows_refuse_bad_stride(fn, stride):
    if stride is None and fn is text.sequence_chunks:
        return  # None is sequence_chunks' default: non-overlapping chunks
    named("stride", fn, CODES, 4, stride)


@pytest.mark.parametrize(
    "codes", [[-1, 2, 3, 4, 5, 6], np.arange(6.0), [[1, 2, 3, 4, 5, 6]], ["a"] * 6, [999] * 6]
)
def test_windows_refuse_bad_codes(codes):
    named("codes", text.next_char_windows, codes, 3)


def test_windows_take_numpy_integers_and_are_right():
    x, y = text.next_char_windows(CODES, np.int64(4), np.int32(2))
    assert x.shape == (len(range(0, len(CODES) - 4, 2)), 4)
    assert np.array_equal(x[1], CODES[2:6]) and y[1] == CODES[6]
    x, y = text.sequence_chunks(CODES, np.int64(5))
    assert np.array_equal(y[0], CODES[1:6])


def test_seq_len_longer_than_text_names_seq_len():
    named("seq_len", text.next_char_windows, CODES[:4], 4)


# --- roles, canaries ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"play": "p", "role": "R", "lines": "abc"}, "lines"),
        ({"play": "p", "role": "R", "lines": ("", "  ")}, "lines"),
        ({"play": "p", "role": "R", "lines": (1, 2)}, "lines"),
        ({"play": "", "role": "R", "lines": ("a",)}, "play"),
        ({"play": "p", "role": None, "lines": ("a",)}, "role"),
    ],
)
def test_role_refuses(kwargs, name):
    named(name, text.Role, **kwargs)


def test_role_from_a_list_keeps_its_lines():
    r = text.Role("p", "R", ["a", "b"])
    assert r.lines == ("a", "b") and r.text == "a\nb\n"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"plays": "hamlet"}, "plays"),
        ({"plays": ["nosuchplay"]}, "plays"),
        ({"plays": []}, "plays"),
        ({"plays": ["hamlet"], "min_chars": 0}, "min_chars"),
        ({"plays": ["hamlet"], "min_chars": 2.5}, "min_chars"),
        ({"plays": ["hamlet"], "min_chars": True}, "min_chars"),
    ],
)
def test_load_roles_refuses(kwargs, name):
    named(name, text.load_roles, **kwargs)


def test_load_roles_takes_numpy_integers():
    assert len(text.load_roles(["macbeth"], min_chars=np.int64(2000))) == len(
        text.load_roles(["macbeth"], min_chars=2000)
    )


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("", 8), "canary"),
        ((None, 8), "canary"),
        (("pin \0", 8), "canary"),
        (("é", 8), "canary"),
        (("a long canary", 8), "canary"),
        (("pin", 0), "seq_len"),
        (("pin", "8"), "seq_len"),
    ],
)
def test_check_canary_refuses(args, name):
    named(name, text.check_canary, *args)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("a\nb", "pin 1", [1], 8), "canaries"),
        (("a\nb", ["pin 1"], [1, 2], 8), "counts"),
        (("a\nb", ["pin 1"], [-1], 8), "counts[0]"),
        (("a\nb", ["pin 1"], [1.5], 8), "counts[0]"),
        (("a\nb", ["pin 1"], [True], 8), "counts[0]"),
        ((None, ["pin 1"], [1], 8), "text"),
    ],
)
def test_insert_canaries_refuses(args, name):
    named(name, text.insert_canaries, *args)


def test_insert_canaries_takes_numpy_counts_and_inserts_exactly():
    out = text.insert_canaries("a\nb\nc", ["pin 1", "pin 2"], np.array([2, 1]), 8, seed=0)
    lines = out.split("\n")
    assert lines.count("pin 1") == 2 and lines.count("pin 2") == 1 and len(lines) == 6


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([], 4), "roles"),
        ((text.Role("p", "R", ("abcdefgh",)), 4), "roles"),
        ((["not a role"], 4), "roles[0]"),
        (([text.Role("p", "R", ("abcdefgh",))], 4, 1.0), "test_fraction"),
        (([text.Role("p", "R", ("abcdefgh",))], 4, math.nan), "test_fraction"),
        (([text.Role("p", "R", ("abcdefgh",))], 4, 0.2, 0), "stride"),
    ],
)
def test_role_clients_refuses(args, name):
    named(name, text.role_clients, *args)


@pytest.mark.parametrize(("fn", "arg", "name"), [
    (text.genre_of, "nosuchplay", "play"), (text.genre_of, None, "play"),
    (text.char_frequencies, "", "text"), (text.char_frequencies, None, "text"),
])  # fmt: skip
def test_small_text_helpers_refuse(fn, arg, name):
    named(name, fn, arg)


def test_char_frequencies_sum_to_one():
    assert text.char_frequencies("aab").sum() == pytest.approx(1.0)


# --- build_char_lm ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"seq_len": 0}, "seq_len"),
        ({"seq_len": 2.0}, "seq_len"),
        ({"seq_len": 8, "units": True}, "units"),
        ({"seq_len": 8, "embedding_dim": -1}, "embedding_dim"),
        ({"seq_len": 8, "cell": "rnn"}, "cell"),
        ({"seq_len": 8, "return_sequences": "no"}, "return_sequences"),
        ({"seq_len": 8, "vocab_size": 1}, "vocab_size"),
    ],
)
def test_build_char_lm_refuses(kwargs, name):
    from labkit.models import build_char_lm

    named(name, build_char_lm, **kwargs)


def test_build_char_lm_takes_numpy_integers():
    from labkit.models import build_char_lm

    model = build_char_lm(np.int64(8), units=np.int32(4), embedding_dim=np.int64(2))
    assert model.input_shape == (None, 8)


# --- exposure ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("canary", "candidates", "name"),
    [
        (math.nan, [1, 2, 3], "canary"),
        (math.inf, [1, 2, 3], "canary"),
        ("1", [1, 2, 3], "canary"),
        (None, [1, 2, 3], "canary"),
        (9.0, [1, 2, 3], "canary"),  # outside R: a rank beyond |R|, a negative exposure
        (1.0, [math.nan, 2, 3], "candidates"),
        (1.0, [1, 2, math.inf], "candidates"),
        (1.0, [], "candidates"),
        (1.0, ["a", "b"], "candidates"),
        (1.0, [1j, 2], "candidates"),
    ],
)
def test_exposure_from_log_perplexities_refuses(canary, candidates, name):
    named(name, ex.exposure_from_log_perplexities, canary, candidates)


@pytest.mark.parametrize(("canary", "expected"), [(0.0, 2.0), (1.0, 2.0), (2.5, 1.0), (3.0, 0.0)])
def test_exposure_from_log_perplexities_is_right(canary, expected):
    # R = {0, 1, 2.5, 3}: rank = 1 + #below; exposure = log2 4 - log2 rank
    out = ex.exposure_from_log_perplexities(canary, [3.0, 0.0, 2.5, canary])
    rank = 1 + sum(v < canary for v in [3.0, 0.0, 2.5, canary])
    assert out == pytest.approx(math.log2(4) - math.log2(rank))
    assert out >= 0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((10**400,), None),
        ((0,), "num_canaries"),
        ((2.0,), "num_canaries"),
        ((True,), "num_canaries"),
        ((1, 0.0), "level"),
        ((1, 1.0), "level"),
        ((1, math.nan), "level"),
    ],
)
def test_chance_exposure(args, name):
    if name is None:
        assert ex.chance_exposure(*args) == pytest.approx(400 * math.log2(10) + math.log2(100))
    else:
        named(name, ex.chance_exposure, *args)


def test_chance_exposure_takes_numpy_integers():
    assert ex.chance_exposure(np.int64(4), 0.01) == pytest.approx(math.log2(400))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prefix": ""}, "prefix"),
        ({"prefix": None}, "prefix"),
        ({"prefix": "p", "alphabet": "0"}, "alphabet"),
        ({"prefix": "p", "alphabet": "00"}, "alphabet"),
        ({"prefix": "p", "alphabet": 10}, "alphabet"),
        ({"prefix": "p", "length": 0}, "length"),
        ({"prefix": "p", "length": 2.0}, "length"),
        ({"prefix": "p", "length": True}, "length"),
    ],
)
def test_canary_space_refuses(kwargs, name):
    named(name, ex.CanarySpace, **kwargs)


SPACE = ex.CanarySpace("pin ", "01", 3)


@pytest.mark.parametrize("index", [-1, 8, 2.0, "1", None, True, 10**400])
def test_secret_refuses_indices_outside_the_space(index):
    named("index", SPACE.secret, index)


@pytest.mark.parametrize("secret", ["0102", "01", "abc", 101, None])
def test_index_refuses_secrets_outside_the_space(secret):
    named("secret", SPACE.index, secret)


def test_secret_and_index_are_inverse_for_every_secret_and_numpy_index():
    assert [SPACE.index(SPACE.secret(np.int64(i))) for i in range(SPACE.size)] == list(range(8))


@pytest.mark.parametrize("num", [0, 9, 2.0, None, True])
def test_random_secrets_refuses(num):
    named("num", SPACE.random_secrets, num, seed=0)


def test_random_secrets_are_distinct_and_take_numpy_counts():
    out = SPACE.random_secrets(np.int64(8), seed=0)
    assert sorted(out) == sorted(SPACE.secret(i) for i in range(8))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m: ex.log_perplexity(m, "a"), "text"),
        (lambda m: ex.log_perplexity(m, ""), "canary"),
        (lambda m: ex.log_perplexity(m, None), "canary"),
        (lambda m: ex.log_perplexity(m, "x" * 17), "canary"),
        (lambda m: ex.log_perplexity("not a model", "ab"), "model"),
        (lambda m: ex.exposure(m, SPACE, "222"), "secret"),
        (lambda m: ex.exposure(m, "pin ", "010"), "space"),
        (lambda m: ex.sampled_exposure(m, SPACE, "010", 0), "num_samples"),
        (lambda m: ex.sampled_exposure(m, SPACE, "010", 8), "num_samples"),
        (lambda m: ex.sampled_exposure(m, SPACE, "010", 2.0), "num_samples"),
        (lambda m: ex.sampled_exposure(m, SPACE, "010", 3, "median"), "estimator"),
        (lambda m: ex.sampled_exposure(m, SPACE, "019", 3), "secret"),
        (lambda m: ex.sampled_log_perplexities(m, SPACE, "010"), "secrets"),
        (lambda m: ex.sampled_log_perplexities(m, SPACE, ["0101"]), "secret"),
        (lambda m: ex.complete_secret(m, SPACE, 0), "beam_width"),
        (lambda m: ex.complete_secret(m, SPACE, "2"), "beam_width"),
        (lambda m: ex.candidate_log_perplexities(m, ex.CanarySpace("x" * 15, "01", 3)), "canary"),
    ],
)
def test_model_functions_refuse(lm, call, name):
    named(name, call, lm)


def test_exposure_paths_agree_and_take_numpy_integers(lm):
    exact = ex.exposure(lm, SPACE, "010")
    assert 0.0 <= exact["exposure"] <= 3.0 and 1 <= exact["rank"] <= 8
    # every other candidate sampled: the rank estimator equals the exact exposure
    sampled = ex.sampled_exposure(lm, SPACE, "010", np.int64(7))
    assert sampled == pytest.approx(exact["exposure"])
    beams = ex.complete_secret(lm, SPACE, np.int64(2))
    assert len(beams) == 2 and beams[0][0] == exact["best"]
