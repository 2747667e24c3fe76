"""Chapter 08's helpers: Shakespeare by role, canary exposure, recurrent DP-SGD, private scores."""

import itertools
import math
import warnings

import numpy as np
import pytest

import labkit as lk
from labkit.attacks import exposure as ex
from labkit.data import text
from labkit.dp.dpsgd import reference_clipped_sum
from labkit.dp.recurrent import RecurrentDPSGD
from labkit.he.inference import LinearService, private_query, score_error_bound


# --- data -------------------------------------------------------------------------------------
def test_roles_are_parsed_deterministically():
    a = text.load_roles(["macbeth"])
    b = text.load_roles(["macbeth"])
    assert [r.client_id for r in a] == [r.client_id for r in b]
    assert a[0].role == "FIRST WITCH"  # the first speech of the play, not the list of persons
    names = {r.role for r in a}
    assert {"MACBETH", "LADY MACBETH", "BANQUO"} <= names
    assert all("[" not in line for r in a for line in r.lines)  # stage directions removed
    lady = next(r for r in a if r.role == "LADY MACBETH")
    assert lady.lines[0].startswith('"They met me in the day of success')


def test_role_partition_is_deterministic_and_complete():
    roles = text.load_roles(["tempest"], min_chars=200)
    c1, t1 = text.role_clients(roles, seq_len=20, stride=5)
    c2, t2 = text.role_clients(roles, seq_len=20, stride=5)
    assert len(c1) == len(roles)
    for (x1, y1), (x2, y2) in zip(c1, c2, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(t1[0], t2[0])
    # every window of a role belongs to that role's text
    x, y = c1[0]
    codes = text.encode(roles[0].text)
    np.testing.assert_array_equal(x[1], codes[5:25])
    assert y[1] == codes[25]


def test_parse_play_continues_a_speech_after_a_stage_direction():
    play = (
        "ACT I.\n\nHAM.\nTo be, or not to be. [Aside.]\n\n[Enter Ghost.]\n\nThat is the question.\n"
    )
    (role,) = text.parse_play(play, "toy")
    assert role.role == "HAM"
    assert role.lines == ("To be, or not to be.", "That is the question.")


def test_empty_role_is_an_error():
    with pytest.raises(ValueError, match="role 'GHOST' of 'hamlet' has no text"):
        text.Role("hamlet", "GHOST", ("", "  "))


def test_role_too_short_for_the_context_is_an_error():
    role = text.Role("hamlet", "BOTH", ("Ay.",))
    with pytest.raises(ValueError, match="role 'hamlet/BOTH' has 4 characters; seq_len=20"):
        text.role_clients([role], seq_len=20)


def test_canary_longer_than_context_is_an_error():
    with pytest.raises(ValueError, match="longer than the context seq_len=8"):
        text.insert_canaries("a\nb\n", ["my pin is 1234"], [2], seq_len=8)
    model = lk.models.build_char_lm(8, units=4, seed=0)
    with pytest.raises(ValueError, match="longer than the context"):
        ex.exposure(model, ex.CanarySpace("my pin is ", length=2), "12")


def test_insert_canaries_counts():
    out = text.insert_canaries("x\n" * 50, ["pin 1", "pin 2"], [3, 1], seq_len=10, seed=1)
    lines = out.split("\n")
    assert lines.count("pin 1") == 3 and lines.count("pin 2") == 1
    assert len(lines) == 51 + 4


def test_sample_larger_than_candidate_space_is_an_error():
    model = lk.models.build_char_lm(16, units=4, seed=0)
    space = ex.CanarySpace("pin ", alphabet="01", length=3)  # |R| = 8
    with pytest.raises(ValueError, match="num_samples=8 is larger than the candidate space"):
        ex.sampled_exposure(model, space, "010", num_samples=8)


# --- exposure ---------------------------------------------------------------------------------
def _context_free_model(costs: dict[str, float]):
    """A char LM whose next-character distribution ignores the input: P(c) = 2^-costs[c]."""
    model = lk.models.build_char_lm(16, units=4, seed=0)
    dense = model.layers[-1]
    logits = np.full(len(text.VOCAB), -60.0, np.float32)
    rest = 1.0 - sum(2.0**-c for c in costs.values())
    logits[text.encode(" ")[0]] = math.log(rest)  # the remaining mass, on a non-digit
    for c, bits in costs.items():
        logits[text.encode(c)[0]] = -bits * math.log(2.0)
    dense.kernel.assign(np.zeros_like(dense.kernel.numpy()))
    dense.bias.assign(logits)
    return model


def test_exposure_is_exact_on_a_model_with_known_ranks():
    costs = {"0": 2.0, "1": 3.0, "2": 4.5, "3": 6.25}  # bits per digit, context-free
    model = _context_free_model(costs)
    space = ex.CanarySpace("pin ", alphabet="0123", length=3)
    lps = ex.candidate_log_perplexities(model, space)
    expected = {"".join(s): sum(costs[c] for c in s) for s in itertools.product("0123", repeat=3)}
    for secret, value in expected.items():
        assert lps[space.index(secret)] == pytest.approx(value, abs=1e-4)
    # "000" is the likeliest: rank 1, exposure log2 64 = 6 bits; "333" the least likely
    assert ex.exposure(model, space, "000")["exposure"] == pytest.approx(6.0)
    assert ex.exposure(model, space, "333")["rank"] == 64
    # "001" costs 7 bits; only "000" (6) is cheaper, its permutations tie: rank 2
    result = ex.exposure(model, space, "001")
    assert result["rank"] == 2 and result["exposure"] == pytest.approx(6.0 - 1.0)
    assert ex.complete_secret(model, space)[0][0] == "000"


def test_sampled_exposure_with_the_whole_space_equals_the_exact_one():
    model = lk.models.build_char_lm(16, units=6, seed=3)
    space = ex.CanarySpace("pin ", alphabet="0123", length=3)
    exact = ex.exposure(model, space, "213")["exposure"]
    assert ex.sampled_exposure(model, space, "213", num_samples=63) == pytest.approx(exact)
    lps = ex.candidate_log_perplexities(model, space)
    picks = ["213", "000", "321"]
    np.testing.assert_allclose(
        ex.sampled_log_perplexities(model, space, picks),
        [lps[space.index(s)] for s in picks],
        atol=1e-5,
    )


def test_log_perplexity_matches_keras_predictions():
    model = lk.models.build_char_lm(12, units=5, seed=2)
    codes = text.encode("pin is 4815x")
    logits = model.predict(codes[None].astype(np.float32), verbose=0)[0]
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -sum(logp[i, codes[i + 1]] for i in range(len(codes) - 2)) / math.log(2)
    assert ex.log_perplexity(model, "pin is 4815") == pytest.approx(expected, rel=1e-5)


# --- DP-SGD on recurrent models ---------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_recurrent_clipping_equals_per_example_reference(cell, return_sequences):
    model = lk.models.build_char_lm(
        7, units=6, embedding_dim=4, cell=cell, return_sequences=return_sequences, seed=1
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, len(text.VOCAB), (5, 7)).astype(np.float32)
    y = rng.integers(0, len(text.VOCAB), (5, 7) if return_sequences else (5,))
    dp = RecurrentDPSGD(model, l2_norm_clip=0.3, noise_multiplier=0.0)
    got, norms = dp.clipped_gradient_sum(x, y)
    assert np.all(norms > 0.3)  # every example is actually clipped
    for g, r in zip(got, reference_clipped_sum(model, x, y, 0.3), strict=True):
        np.testing.assert_allclose(g, r, atol=1e-6)


def test_recurrent_dpsgd_rejects_other_architectures():
    with pytest.raises(ValueError, match="must be Embedding -> GRU/LSTM -> Dense"):
        RecurrentDPSGD(lk.mlp((4,), 2, hidden=(3,)), 1.0, 1.0)


def test_train_dpsgd_takes_recurrent_models_and_per_position_labels():
    """One full-batch step with noise off is SGD on the exact clipped mean (q = 1: all kept)."""
    model = lk.models.build_char_lm(7, units=6, embedding_dim=4, seed=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, len(text.VOCAB), (6, 7)).astype(np.float32)
    y = rng.integers(0, len(text.VOCAB), (6, 7))  # one label per position
    before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    clipped = reference_clipped_sum(model, x, y, 0.3)
    kwargs = dict(l2_norm_clip=0.3, noise_multiplier=0.0, batch_size=6, epochs=1)
    history = lk.dp.train_dpsgd(
        model, x, y, **kwargs, learning_rate=0.5, method="ghost-recurrent", seed=0
    )
    assert history.epsilon == [math.inf]
    for v, b, g in zip(model.trainable_variables, before, clipped, strict=True):
        np.testing.assert_allclose(v.numpy(), b - 0.5 * g / 6, atol=1e-6)
    with pytest.raises(lk.ParameterError, match="1-D or \\(examples, positions\\)"):
        lk.dp.train_dpsgd(model, x, y[..., None], **kwargs, learning_rate=0.5,
                          method="ghost-recurrent")  # fmt: skip
    with pytest.raises(lk.ParameterError, match="not one-hot rows"):
        lk.dp.train_dpsgd(lk.mlp((7,), 3, hidden=(4,)), x, y, **kwargs, learning_rate=0.5)


# --- private inference ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
        return lk.he.cached_keypair(512, allow_insecure=True)


def test_encrypted_linear_score_matches_plaintext_within_bound(keys):
    pk, sk = keys
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(12, 3)) * 5, rng.normal(size=3)
    x = rng.normal(size=12)
    service = LinearService(w, b, w_frac_bits=16)
    out = private_query(service, x, pk, sk, x_frac_bits=16)
    bound = score_error_bound(x, w, b, 16, 16)
    np.testing.assert_array_less(np.abs(out["scores"] - x @ w - b), bound)
    assert np.all(np.abs(out["scores"] - x @ w - b) > 0)  # fixed point does round
    assert out["bytes_up"] == 12 * lk.he.ciphertext_bytes(pk)
    assert out["bytes_down"] == 3 * lk.he.ciphertext_bytes(pk)
    assert out["plaintext_bytes_up"] == 48 and out["within_bound"]


def test_encrypted_score_with_rerandomisation_decrypts_the_same(keys):
    pk, sk = keys
    service = LinearService(np.array([[2.0], [-3.0]]), np.array([0.5]))
    enc = lk.he.FastEncryptor(pk, exponent_bits=160)
    query = lk.he.encrypt_vector(pk, [1.25, 0.5], lk.he.FixedPoint(24), enc)
    a, b = service.score(query, enc), service.score(query, enc)
    assert a.numbers[0].ciphertext(False) != b.numbers[0].ciphertext(False)
    assert lk.he.decrypt_vector(sk, a)[0] == pytest.approx(1.5, abs=1e-6)


def test_wrong_number_of_features_is_an_error(keys):
    pk, _ = keys
    service = LinearService(np.ones((3, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="query has 2 features; this model takes exactly 3"):
        service.score(lk.he.encrypt_vector(pk, [1.0, 2.0]))


def test_dp_exposure_plot_marks_the_chance_level_and_the_seeds():
    from labkit.plots.text import plot_dp_exposure

    rows = [
        {"experiment": "dp_exposure", "insertions": k, "noise_multiplier": z, "epoch": 2,
         "seed": seed, "epsilon": eps, "exposure": float(k) / 8 + seed, "perplexity": 6.0}
        for k in (1, 4, 16, 64) for z, eps in ((0.0, None), (1.0, 2.0)) for seed in (0, 1, 2)
    ]  # fmt: skip
    fig, axes = plot_dp_exposure(rows, insertions=64)
    (chance,) = [ln for ln in axes[0].get_lines() if "chance" in str(ln.get_label())]
    assert chance.get_ydata()[0] == pytest.approx(math.log2(4 / 0.01))  # 4 canaries, 1 % level
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels == ["no DP\n3 runs", "ε = 2\n3 runs"]
    bars = [p.get_height() for p in axes[0].patches]
    assert bars == pytest.approx([8.0 + 1.0, 8.0 + 1.0])  # mean over seeds 0, 1, 2


def test_dp_exposure_summary_gives_the_range_over_seeds():
    from labkit.plots.text import dp_exposure_summary

    rows = [
        {"experiment": "dp_exposure", "insertions": 4, "noise_multiplier": z, "epoch": e,
         "seed": seed, "epsilon": eps, "exposure": x + e, "perplexity": 5.0}
        for z, eps in ((0.0, None), (0.7, 8.0)) for seed, x in ((0, 1.0), (1, 3.0), (2, 8.0))
        for e in (1, 2)
    ]  # fmt: skip
    got = dp_exposure_summary(rows, insertions=4)
    assert [g["epsilon"] for g in got] == [None, 8.0]
    assert got[1]["exposures"] == [3.0, 5.0, 10.0]  # last epoch (2) of each seed
    assert (got[1]["mean"], got[1]["low"], got[1]["high"], got[1]["seeds"]) == (6.0, 3.0, 10.0, 3)
    assert dp_exposure_summary(rows, insertions=16) == []


@pytest.mark.parametrize("size", [10, 1000, 100_000])
def test_chance_exposure_bounds_what_an_unmemorised_canary_reaches(size):
    """Over every rank 1..|R| (uniform: nothing memorised), P(exposure >= t) <= level."""
    ranks = np.arange(1, size + 1)
    exposures = np.log2(size) - np.log2(ranks)
    for level in (0.5, 0.05, 0.01):
        t = ex.chance_exposure(1, level)
        assert np.mean(exposures >= t) <= level
        assert np.mean(exposures >= t - 1) > level or size * level < 2  # not far too loose
    assert ex.chance_exposure(4, 0.01) == pytest.approx(math.log2(400))
    with pytest.raises(ValueError, match="level"):
        ex.chance_exposure(4, 0.0)


def test_final_dp_exposure_keeps_the_last_epoch_per_setting():
    from labkit.plots.text import final_dp_exposure

    rows = [
        {"experiment": "dp_exposure", "insertions": 4, "noise_multiplier": 1.0, "epoch": e,
         "seed": 0, "epsilon": float(e), "exposure": float(e), "perplexity": 6.0}
        for e in (3, 1, 2)
    ]  # fmt: skip
    final = final_dp_exposure(rows + [{"experiment": "other", "epoch": 9}])
    assert list(final) == [(1.0, 4, 0)] and final[(1.0, 4, 0)]["exposure"] == 3.0


def test_language_model_results_have_fields_not_display_strings():
    rows = lk.results.load_rows("language_models")
    assert rows and not any("setting" in r for r in rows)
    dp = lk.results.load_rows("language_models", experiment="dp_exposure")
    assert all(isinstance(r["insertions"], int) and "seed" in r for r in dp)
