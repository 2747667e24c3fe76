"""Helpers added for chapters 03 and 04: the audit's witness, the knobs' figures, the HE tables."""

import json

import numpy as np
import pytest

import labkit as lk


@pytest.mark.parametrize("shift", [0.0, 0.5, 3.0])
def test_epsilon_witness_reproduces_the_insample_maximum(shift):
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(shift, 1, 500), rng.normal(0, 1, 500)
    w = lk.attacks.epsilon_witness(members, nonmembers, delta=1e-5)
    assert w.epsilon == lk.attacks._insample_epsilon(members, nonmembers, 1e-5, 0.95)
    if w.bound == "TPR/FPR":
        assert w.epsilon == pytest.approx(np.log((w.tpr_low - 1e-5) / w.fpr_high))
    elif w.bound == "TNR/FNR":
        assert w.epsilon == pytest.approx(np.log((1 - 1e-5 - w.fpr_high) / (1 - w.tpr_low)))
    assert w.tpr_low <= w.tpr and w.fpr_high >= w.fpr
    assert f"{w.epsilon:.2f}" in w.summary() or w.bound == "none"


def test_epsilon_witness_uses_the_complementary_bound_when_members_all_score_high():
    # Every member above every non-member except a few: "non-member if below" is the witness.
    members = np.linspace(10, 11, 1000)
    nonmembers = np.r_[np.linspace(0, 1, 900), np.linspace(10, 11, 100)]
    w = lk.attacks.epsilon_witness(members, nonmembers)
    assert w.bound in {"TPR/FPR", "TNR/FNR"} and w.epsilon > 1.0


def test_epsilon_witness_none_when_scores_are_identical():
    w = lk.attacks.epsilon_witness(np.zeros(50), np.zeros(50))
    assert (w.bound, w.epsilon) == ("none", 0.0)
    assert "eps >= 0" in w.summary()


def test_plot_laplace_release_and_log_ratios():
    fig, (left, right) = lk.plots.plot_laplace_release(0.5, ["a", "b"], [100, 10], [98, 10])
    assert left.get_title() == "ε = 0.5" and len(right.patches) == 2
    fig, ax = lk.plots.plot_log_ratios([0, 1], [0.4, -0.5], [0.3, -0.6], [0.5, -0.4], 0.5)
    assert ax.get_ylabel().startswith("log")


def test_plot_packing_cost_two_panels():
    fig, (left, right) = lk.plots.plot_packing_cost([2, 10], {"a": [6, 7]}, {"a": [1, 2]})
    assert left.get_yscale() == "log" and len(right.lines) == 1


def test_show_table_renders_markdown():
    md = lk.results.show_table([{"x": 1.23456, "y": "z"}], ["x", "y"])
    assert "| 1.23 | z |" in md.data


def _write(tmp_path, data):
    (tmp_path / "he_aggregation.json").write_text(json.dumps(data))
    return tmp_path


ROWS = [
    {"method": "phe, one ciphertext per value", "bytes_per_value": 512},
    {"method": "labkit packed + DJN", "bytes_per_value": 6.0},
    {"method": "TenSEAL CKKS (N=4096)", "bytes_per_value": 30.0},
]


def test_he_tables_old_and_new_shapes(tmp_path):
    old = _write(tmp_path, {"rows": ROWS, "key_size_sweep": [{"key_bits": 1024}]})
    agg, sweep = lk.results.he_tables(old)
    assert len(agg) == 3 and sweep == [{"key_bits": 1024}]
    tagged = [{**r, "table": "aggregation"} for r in ROWS] + [
        {"table": "key_size_sweep", "key_bits": 2048}
    ]
    agg, sweep = lk.results.he_tables(_write(tmp_path, {"meta": {}, "rows": tagged}))
    assert len(agg) == 3 and [r["key_bits"] for r in sweep] == [2048]
    assert lk.results.he_tables(tmp_path / "missing") == ([], [])


def test_bytes_comparison_derives_the_winner():
    out = lk.results.bytes_comparison(ROWS)
    assert out["winner"] == "Paillier" and out["ratio"] == pytest.approx(0.2)
    assert (
        lk.results.bytes_comparison([{**ROWS[2], "bytes_per_value": 3.0}, ROWS[1]])["winner"]
        == "CKKS"
    )
    assert lk.results.bytes_comparison(ROWS[:2]) is None
