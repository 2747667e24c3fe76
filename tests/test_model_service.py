"""Chapter 10's pieces: corpora, extraction, partition selection, local DP, the experiment glue."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from labkit._checks import ParameterError
from labkit.attacks import extraction as xt
from labkit.data import corpora
from labkit.data.text import VOCAB
from labkit.dp import partition as pa

# --- corpora ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return corpora.service_corpora(
        ["as_you_like_it"], ["macbeth"], seq_len=32, canary_counts=[1, 8],
        secret_length=3, max_public_chars=6000, max_private_chars=6000, seed=0,
    )  # fmt: skip


def test_corpora_plant_canaries_and_keep_heldout_apart(small):
    text = small["private_text"]
    for canary, k in zip(small["canaries"], small["counts"], strict=True):
        assert text.count(canary + "\n") == k
    assert small["public"][0].shape[1] == small["private"][0].shape[1] == 32
    assert all(ln not in small["public_text"] for ln in small["rare_lines"])
    assert all(small["private_text"].split("\n").count(ln) == 1 for ln in small["rare_lines"][:50])
    again = corpora.service_corpora(
        ["as_you_like_it"], ["macbeth"], seq_len=32, canary_counts=[1, 8],
        secret_length=3, max_public_chars=6000, max_private_chars=6000, seed=0,
    )  # fmt: skip
    assert again["secrets"] == small["secrets"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(public_plays=["macbeth"], private_plays=["macbeth"]), "private_plays"),
        (dict(public_plays=["nope"]), "public_plays"),
        (dict(seq_len=2), "seq_len"),
        (dict(canary_counts=[-1]), "canary_counts"),
        (dict(heldout_fraction=0.9), "heldout_fraction"),
    ],
)
def test_corpora_bad_input_names_the_parameter(kwargs, name):
    with pytest.raises(ParameterError) as err:
        corpora.service_corpora(**kwargs)
    assert err.value.name == name


def test_rare_lines_and_query_log():
    assert corpora.rare_lines("a long private line\nshort\nx\na long private line\nonly me here",
                              "x\n", min_chars=6) == ["only me here"]  # fmt: skip
    users = corpora.query_log(["macbeth"])
    assert len(users) > 20 and all(u for u in users)
    lines = corpora.query_log(["macbeth"], unit="line")
    assert sum(map(len, users)) == len(lines)
    assert all(len(q.split()) == 2 and q == q.lower() for u in users for q in u)
    with pytest.raises(ParameterError, match="unit"):
        corpora.query_log(["macbeth"], unit="word")


# --- partition selection ------------------------------------------------------------------------


def test_threshold_matches_the_closed_form_and_the_accounting():
    scale, thr = pa.partition_threshold(1.0, 1e-5, 4)
    assert scale == 4.0
    assert thr == pytest.approx(1 + 4 * math.log(4 / 2e-5))
    # the accounted delta is the threshold's share (Laplace counts are pure epsilon)
    spent = pa.partition_selection_epsilon_delta(scale, thr, 4, "laplace", 1.0)
    assert spent == pytest.approx(1e-5, rel=1e-3)
    s, t = pa.partition_threshold(1.0, 1e-5, 4, noise="gaussian")
    assert pa.partition_selection_epsilon_delta(s, t, 4, "gaussian", 1.0) <= 1e-5 * 1.001


def test_a_single_users_item_is_released_at_most_with_probability_delta():
    # 1000 runs where one user alone holds 'secret' (count 1): the threshold must hide it
    users = [["common"]] * 200 + [["secret"]]
    hits = sum(
        "secret" in pa.private_partition_selection(users, 1.0, 1e-2, seed=s)["counts"]
        for s in range(1000)
    )
    assert hits <= 25  # expected <= 10 (delta = 1e-2); P(>= 25) is below 1e-4
    out = pa.private_partition_selection(users, 1.0, 1e-3, seed=0)
    assert "common" in out["counts"] and abs(out["counts"]["common"] - 200) < 30


def test_contribution_bound():
    users = [list("abcdefgh"), list("aab")]
    bounded = pa.bound_contributions(users, 3, seed=0)
    assert [len(u) for u in bounded] == [3, 2]
    assert set(bounded[0]) <= set("abcdefgh")


def test_olh_estimates_are_unbiased():
    rng = np.random.default_rng(0)
    items = list(rng.choice(["a", "b", "c", "d"], size=20000, p=[0.5, 0.3, 0.15, 0.05]))
    true = Counter(items)
    est = pa.olh_estimate(pa.olh_perturb(items, 2.0, seed=1), ["a", "b", "c", "d", "zz"])
    g = int(round(math.exp(2.0))) + 1
    p = math.exp(2.0) / (math.exp(2.0) + g - 1)
    sd = math.sqrt(20000 * (1 / g) * (1 - 1 / g)) / (p - 1 / g)  # std of a zero-count estimate
    for i, c in enumerate("abcd"):
        assert abs(est[i] - true[c]) < 4 * sd
    assert abs(est[4]) < 4 * sd


def test_recall_and_top_k():
    users = [["x"]] * 50 + [["y"]] * 30 + [["z"]] * 10 + [["w"]]
    assert pa.top_k_recall(["x", "y"], users, 2) == 1.0
    assert pa.top_k_recall({"x": 3.0, "w": 9.0}, users, 2) == 0.5
    assert pa.local_top_k(users, ["w", "x", "y", "z"], 1, 8.0, seed=0) == ["x"]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: pa.partition_threshold(0.0, 1e-5, 1), "epsilon"),
        (lambda: pa.partition_threshold(1.0, 1.0, 1), "delta"),
        (lambda: pa.partition_threshold(1.0, 1e-5, 0), "max_partitions"),
        (lambda: pa.partition_threshold(1.0, 1e-5, 1, noise="cauchy"), "noise"),
        (lambda: pa.private_partition_selection([], 1.0, 1e-5), "users"),
        (lambda: pa.olh_perturb(["a"], -1.0), "epsilon"),
        (lambda: pa.top_k_recall(["a"], [["a"]], 0), "k"),
    ],
)
def test_partition_bad_input(call, name):
    with pytest.raises(ParameterError) as err:
        call()
    assert err.value.name == name


# --- extraction -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm():
    from labkit import models

    return models.build_char_lm(16, units=8, seed=0)


def test_sampling_is_reproducible_and_scores_match_exposure(tiny_lm):
    from labkit.attacks.exposure import log_perplexity

    a = xt.sample_generations(tiny_lm, 5, 20, seed=3)
    assert a == xt.sample_generations(tiny_lm, 5, 20, seed=3)
    assert all(len(s) == 20 and "\0" not in s for s in a)
    lp = xt.log_perplexities(tiny_lm, ["my pin is 123", "ab"])
    assert lp[0] == pytest.approx(log_perplexity(tiny_lm, "\nmy pin is 123"), rel=1e-5)
    assert lp[1] == pytest.approx(log_perplexity(tiny_lm, "\nab"), rel=1e-5)


def test_ranking_and_counting(tiny_lm):
    texts = ["aaaaaaaaaaaaaaaa", "the quick fox", "qzxv jkwp"]
    order, scores = xt.rank_generations(tiny_lm, texts, "zlib")
    assert sorted(order) == [0, 1, 2] and scores[order[0]] <= scores[order[-1]]
    order, scores = xt.rank_generations(tiny_lm, texts, tiny_lm)
    assert np.allclose(scores, 0.0)  # a model against itself: no difference
    assert xt.extracted(["x 12345 y", "no"], ["12345", "999"]) == ["12345"]
    assert xt.zlib_entropy("a" * 100) < xt.zlib_entropy("qzxvjkwpfhgt" * 8)
    out = xt.extraction_attack(tiny_lm, {"s": ["zz"]}, num_samples=8, length=30, top_k=3, seed=0)
    assert len(out["top"]) <= 3 and set(out["found"]) == {"s"}
    with pytest.raises(ParameterError, match="reference"):
        xt.rank_generations(tiny_lm, texts, "model")
    with pytest.raises(ParameterError, match="top_k"):
        xt.extraction_attack(tiny_lm, {"s": ["zz"]}, top_k=0)


# --- experiment glue --------------------------------------------------------------------------


def test_head_fine_tuning_changes_only_the_head(small):
    from labkit.experiments import service as sv

    pre = sv.pretrain(small, units=8, epochs=1)
    out = sv.fine_tune("head", small, pre, epochs=1, noise_multiplier=1.0, batch_size=32, seed=0)
    before, after = pre.get_weights(), out["model"].get_weights()
    assert all(np.array_equal(b, a) for b, a in zip(before[:-2], after[:-2], strict=True))
    assert not np.array_equal(before[-2], after[-2])
    assert out["trainable_params"] == 8 * len(VOCAB) + len(VOCAB)
    assert math.isfinite(out["epsilon"]) and len(out["exposure"]) == 2
    with pytest.raises(ParameterError, match="noise_multiplier"):
        sv.fine_tune("full", small, pre)
    with pytest.raises(ParameterError, match="mode"):
        sv.fine_tune("lora", small, pre, noise_multiplier=1.0)
