"""The cost table that chapters 06 and 07 quote is computed from the results files exactly."""

import json

import numpy as np
import pytest

import labkit as lk


def _write(tmp_path, name, data):
    """Write one results file."""
    (tmp_path / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture
def results(tmp_path):
    fl = [
        {
            "model": "2nn",
            "partition": "iid",
            "scheme": "iid",
            "method": "FedSGD",
            "E": 1,
            "B": "all",
            "target": 0.97,
            "rounds": 600,
        },
        {
            "model": "2nn",
            "partition": "iid",
            "scheme": "iid",
            "method": "FedAvg",
            "E": 5,
            "B": 10,
            "target": 0.97,
            "rounds": 20,
        },
        {
            "model": "2nn",
            "partition": "pathological non-iid",
            "scheme": "shards",
            "method": "FedAvg",
            "E": 5,
            "B": 10,
            "target": 0.97,
            "rounds": 150,
        },
        {
            "model": "2nn",
            "partition": "pathological non-iid",
            "scheme": "shards",
            "method": "FedSGD",
            "E": 1,
            "B": "all",
            "target": 0.97,
            "rounds": None,
        },
    ]
    dp = [
        {"epsilon": 2.9, "delta": 1e-5, "test_accuracy": 0.97},
        {"epsilon": 1.0, "delta": 1e-5, "test_accuracy": 0.95},
        {"epsilon": 8.0, "delta": 1e-5, "test_accuracy": 0.985},
        {"epsilon": None, "delta": None, "test_accuracy": 0.99},
    ]
    speed = [
        {
            "model": "mlp",
            "method": m,
            "examples_per_s": 1.0,
            "ratio_to_nonprivate": v,
            "peak_rss_mb": 1.0,
        }
        for m, v in [
            ("non-private", 1.0),
            ("labkit ghost", 1.5),
            ("labkit vectorized", 20.0),
            ("tfp DPKerasSGDOptimizer", 90.0),
            ("tfp DPSequential", 6.0),
        ]
    ]
    he = [
        {
            "table": "aggregation",
            "method": "phe, one ciphertext per value",
            "scheme": "paillier",
            "packed": False,
            "encryption": "phe",
            "seconds_total": 1000.0,
            "bytes_per_value": 512,
            "max_abs_error": 0.0,
            "exact": True,
            "extrapolated": True,
        },
        {
            "table": "aggregation",
            "method": "packed, phe",
            "scheme": "paillier",
            "packed": True,
            "encryption": "phe",
            "seconds_total": 5.0,  # faster, but extrapolated: never the quoted row
            "bytes_per_value": 8.0,
            "max_abs_error": None,
            "exact": True,
            "extrapolated": True,
        },
        {
            "table": "aggregation",
            "method": "packed",
            "scheme": "paillier",
            "packed": True,
            "encryption": "djn",
            "seconds_total": 10.0,
            "bytes_per_value": 8.0,
            "max_abs_error": 1e-6,
            "exact": True,
            "extrapolated": False,
        },
        {
            "table": "aggregation",
            "method": "packed, s=2",  # slower but smaller: quoted for bytes only
            "scheme": "paillier",
            "packed": True,
            "encryption": "djn",
            "s": 2,
            "seconds_total": 11.0,
            "bytes_per_value": 5.0,
            "max_abs_error": 1e-6,
            "exact": True,
            "extrapolated": False,
        },
        {
            "table": "aggregation",
            "method": "CKKS",
            "scheme": "ckks",
            "packed": True,
            "ckks_params": "smallest",
            "seconds_total": 2.0,
            "bytes_per_value": 20.0,
            "max_abs_error": 1e-6,
            "exact": False,
        },
        {
            "table": "aggregation",
            "method": "CKKS, previous",
            "scheme": "ckks",
            "packed": True,
            "ckks_params": "previous",
            "seconds_total": 1.0,
            "bytes_per_value": 80.0,
            "max_abs_error": 1e-8,
            "exact": False,
        },
        {"table": "key_size_sweep", "method": "2048-bit key", "key_bits": 2048},
    ]
    for name, data in [
        ("fedavg_rounds", {"meta": {"mode": "full", "num_clients": 100}, "rows": fl}),
        ("dpsgd_mnist", {"meta": {"mode": "full"}, "rows": dp}),
        ("dpsgd_speed", speed),
        ("he_aggregation", {"meta": {"mode": "full"}, "rows": he}),
        (
            "fedavg_speed",
            {
                "meta": {
                    "speedup": 12.5,
                    "model": "2nn",
                    "num_clients": 100,
                    "clients_per_round": 10,
                    "local_epochs": 1,
                    "batch_size": 10,
                },
                "rows": [],
            },
        ),
    ]:
        _write(tmp_path, name, data)
    return tmp_path


def test_cost_summary_values(results):
    rows = {r["measure"]: r["value"] for r in lk.results.cost_summary(results)}
    assert rows["rounds to 97% (2NN, IID): FedSGD / FedAvg E=5"] == 30.0
    assert rows["rounds to 97% (2NN, FedAvg E=5): non-IID / IID"] == 7.5
    measure = (
        "simulation time per round, per-client model.fit / labkit.fl (2nn, 10 clients, E=1, B=10)"
    )
    assert rows[measure] == 12.5
    assert rows["MNIST test accuracy at epsilon 2.90, delta 1e-05 (DP-SGD)"] == 0.97
    # A difference of accuracies is in percentage points: 0.99 - 0.97 is 2 points, not 0.02.
    assert rows["accuracy lost to DP at epsilon <= 3 (DP-SGD vs non-private)"] == pytest.approx(2.0)
    units = {r["measure"]: r["unit"] for r in lk.results.cost_summary(results)}
    assert (
        units["accuracy lost to DP at epsilon <= 3 (DP-SGD vs non-private)"] == "percentage points"
    )
    assert rows["DP-SGD step time, mlp (labkit)"] == 1.5
    assert rows["DP-SGD step time, mlp (fastest TF Privacy: DPSequential)"] == 6.0
    # The approximate CKKS row is faster but not exact: the exact packed path is quoted.
    assert rows["seconds to aggregate 10 x 100k values (packed)"] == 10.0
    assert rows["bytes on the wire per value (packed) vs float32"] == 2.0
    assert rows["speed-up of packing + fast encryption over one phe ciphertext per value"] == 100
    ckks = "TenSEAL CKKS at its smallest parameters"
    assert rows[f"exact Paillier aggregation time vs {ckks}"] == 5.0
    assert rows[f"exact bytes per value (packed, s=2) vs {ckks}"] == 0.25
    assert all(
        r["source"].startswith("benchmarks/results/") for r in lk.results.cost_summary(results)
    )


def test_missing_files_give_no_rows_not_made_up_ones(tmp_path):
    assert lk.load_results("fedavg_rounds", tmp_path) is None
    assert lk.results.cost_summary(tmp_path) == []


def test_format_table():
    table = lk.results.format_table([{"a": "x", "b": 1234.5678}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 1.23e+03 |"]
    missing = lk.results.format_table([{"a": None, "b": 2}, {"b": 3}], ["a", "b"])
    assert missing.splitlines()[2:] == ["| – | 2 |", "|  | 3 |"]  # None vs a column not recorded


def test_load_rows_accepts_a_list_or_a_dict_with_rows(tmp_path):
    _write(tmp_path, "a", [{"x": 1}])
    _write(tmp_path, "b", {"rows": [{"x": 2}], "config": {}})
    assert lk.load_rows("a", tmp_path) == [{"x": 1}]
    assert lk.load_rows("b", tmp_path) == [{"x": 2}]
    assert lk.load_rows("missing", tmp_path) == []


def test_rounds_table_ratios_ours_and_the_papers():
    rows = [
        {
            "model": "2nn",
            "partition": "iid",
            "method": "FedSGD",
            "E": 1,
            "B": "all",
            "target": 0.97,
            "rounds": 600,
            "budget": 900,
            "paper_rounds": 1474,
            "best_accuracy": 0.97,
        },
        {
            "model": "2nn",
            "partition": "iid",
            "method": "FedAvg",
            "E": 1,
            "B": 10,
            "target": 0.97,
            "rounds": 40,
            "budget": 900,
            "paper_rounds": 87,
            "best_accuracy": 0.971,
        },
        {
            "model": "2nn",
            "partition": "iid",
            "method": "FedAvg",
            "E": 5,
            "B": 10,
            "target": 0.97,
            "rounds": None,
            "budget": 30,
            "paper_rounds": None,
            "best_accuracy": 0.96,
        },
    ]
    lines = lk.results.rounds_table(rows).data.splitlines()
    assert len(lines) == 2 + len(rows)
    assert "| 40 | 87 | 15.0x | 16.9x | 0.9710 |" in lines[3]
    assert "| > 30 | n/a | n/a | n/a | 0.9600 |" in lines[4]
    assert "| 600 | 1474 | 1.0x | 1.0x |" in lines[2]


def test_load_rows_selects_by_field(tmp_path):
    (tmp_path / "x.json").write_text(
        '{"meta": {"mode": "full"}, "rows": [{"a": 1, "b": "p"}, {"a": 2, "b": "q"}]}'
    )
    assert lk.results.load_rows("x", tmp_path, b="q") == [{"a": 2, "b": "q"}]
    assert len(lk.results.load_rows("x", tmp_path)) == 2
    assert lk.results.load_meta("x", tmp_path) == {"mode": "full"}
    assert lk.results.load_rows("missing", tmp_path) == []


def test_fl_costs_select_rows_by_field_not_by_display_string(results):
    """Renaming a row's display label leaves the cost table unchanged: rows are found by field."""
    data = json.loads((results / "fedavg_rounds.json").read_text())
    before = lk.results.cost_summary(results)
    for r in data["rows"]:
        r["partition"] = f"label {r['scheme']} (renamed)"
    (results / "fedavg_rounds.json").write_text(json.dumps(data))
    assert lk.results.cost_summary(results) == before
    data["rows"] = [r for r in data["rows"] if r["scheme"] != "shards"]
    (results / "fedavg_rounds.json").write_text(json.dumps(data))
    measures = [r["measure"] for r in lk.results.cost_summary(results)]
    assert "rounds to 97% (2NN, FedAvg E=5): non-IID / IID" not in measures


@pytest.mark.parametrize("name", ["combining", "dpsgd_mnist", "fedavg_rounds"])
def test_stored_results_have_the_one_shape(name):
    """The recorded full runs are {"meta", "rows"}; a file with several tables tags its rows."""
    data = lk.load_results(name)
    assert set(data) == {"meta", "rows"} and data["meta"]["mode"] == "full"
    assert data["rows"] and all(isinstance(r, dict) for r in data["rows"])
    if name == "combining":
        assert {r["table"] for r in data["rows"]} == {"runs", "accounting"}
        plain = lk.load_rows(name, table="runs", secure_aggregation=False, dp=False)
        assert {r["num_clients"] for r in plain} == {100, 1000}


def test_user_dp_costs_from_the_combining_runs(tmp_path):
    def run(k, m, dp, acc, z=None, secure=False):
        return {"table": "runs", "num_clients": k, "clients_per_round": m, "dp": dp,
                "secure_aggregation": secure, "noise_multiplier": z, "num_rounds": 50,
                "epsilon": 5.9 if dp else None, "test_accuracy": acc}  # fmt: skip

    rows = [
        run(100, 10, False, 0.92),
        run(100, 10, True, 0.90, z=0.3),
        run(100, 10, True, 0.87, z=1.0),
        run(100, 10, True, 0.10, z=1.0, secure=True),  # secure rows are not the DP cost
        run(1000, 100, False, 0.89),
        run(1000, 100, True, 0.886, z=1.0),
    ]
    acct = {"table": "accounting", "noise_multiplier": 1.0, "delta": 1e-5}
    rows += [
        {**acct, "num_clients": 100, "clients_per_round": 100, "num_rounds": 50, "epsilon": 57.0},
        {**acct, "num_clients": 100, "clients_per_round": 100, "num_rounds": 1000, "epsilon": 6e2},
        {**acct, "num_clients": 1000, "clients_per_round": 100, "num_rounds": 50, "epsilon": 5.9},
    ]
    _write(tmp_path, "combining", {"meta": {"mode": "full", "num_rounds": 50}, "rows": rows})
    costs = lk.results.user_dp_costs(tmp_path)
    assert [(c["num_clients"], c["clients_per_round"]) for c in costs] == [
        (100, 10),
        (1000, 100),
        (100, 100),
    ]
    assert costs[0]["points_lost"] == pytest.approx(5.0)
    assert costs[1]["points_lost"] == pytest.approx(0.4)
    assert costs[2] == {"num_clients": 100, "clients_per_round": 100, "noise_multiplier": 1.0,
                        "num_rounds": 50, "epsilon": 57.0, "points_lost": None}  # fmt: skip
    assert lk.results.user_dp_costs(tmp_path / "missing") == []


def test_show_table_renders_markdown():
    shown = lk.results.show_table([{"a": "x", "b": 0.5}], ["a", "b"])
    assert shown.data == lk.results.format_table([{"a": "x", "b": 0.5}], ["a", "b"])
    assert shown._repr_markdown_().startswith("| a | b |")


def test_dp_accuracy_loss_selects_by_method_and_epsilon(results):
    # fixture: non-private 0.99; DP rows at eps 2.9 (0.97), 1.0 (0.95), 8.0 (0.985); rows have no
    # method yet, so nothing is selected -> None (no made-up number).
    assert lk.results.dp_accuracy_loss(3.0, results) is None
    data = json.loads((results / "dpsgd_mnist.json").read_text())
    for r in data["rows"]:
        r["method"] = "non-private" if r["epsilon"] is None else "DP-SGD"
    (results / "dpsgd_mnist.json").write_text(json.dumps(data))
    assert lk.results.dp_accuracy_loss(3.0, results) == pytest.approx(0.02)
    assert lk.results.dp_accuracy_loss(1.0, results) == pytest.approx(0.04)
    assert lk.results.dp_accuracy_loss(0.5, results) is None


def test_extrapolated_rows_are_named():
    rows = [
        {"method": "a", "extrapolated": True},
        {"method": "b", "extrapolated": False},
        {"method": "c"},
    ]
    assert lk.results.extrapolated(rows) == ["a"]


# --- the one writer (benchmarks/_common.write_results) ---------------------------------------
@pytest.fixture
def common(tmp_path, monkeypatch):
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.setenv(lk.results.RESULTS_ENV, str(tmp_path))
    monkeypatch.delenv(lk.config.FULL_ENV_VAR, raising=False)
    sys.modules.pop("_common", None)
    return importlib.import_module("_common")


def test_quick_runs_never_overwrite_full_results(common, tmp_path, monkeypatch):
    full = common.write_results("bench", [{"a": 1}], {"n": 5}, full=True)
    quick = common.write_results("bench", [{"a": 2}], {"n": 1})  # LABKIT_FULL unset: quick
    assert (full.name, quick.name) == ("bench.json", "bench_quick.json")
    assert lk.results.load_rows("bench", tmp_path) == [{"a": 1}]
    monkeypatch.setenv(lk.config.FULL_ENV_VAR, "1")
    assert common.write_results("bench", [{"a": 3}]).name == "bench.json"
    assert lk.results.load_rows("bench") == [{"a": 3}]  # LABKIT_RESULTS is the folder
    assert not list(tmp_path.glob("*.tmp"))  # replaced atomically


def test_writer_records_date_versions_and_mode_itself(common, tmp_path):
    common.write_results("bench", [{"a": 1}], {"date": "1999", "mode": "full", "n": 5,
                                               "versions": {"extra": "1.0"}})  # fmt: skip
    meta = lk.results.load_meta("bench_quick", tmp_path)
    assert meta["mode"] == "quick" and meta["date"].startswith("20") and meta["n"] == 5
    assert meta["versions"]["numpy"] == np.__version__ and meta["versions"]["extra"] == "1.0"
    assert {"machine", "platform", "python", "load_average_1min"} <= set(meta)


@pytest.mark.parametrize(("rows", "name"), [({"a": 1}, "rows"), ([{"a": 1}, 5], "rows[1]"),
                                            ([{1: 2}], "rows[0]")])  # fmt: skip
def test_writer_refuses_unstructured_rows(common, rows, name):
    with pytest.raises(lk.ParameterError) as err:
        common.write_results("bench", rows)
    assert err.value.name == name


def test_recorded_results_carry_date_and_versions():
    for path in sorted(lk.results.RESULTS_DIR.glob("*.json")):
        if path.stem.endswith("_quick") or path.stem == "dpsgd_mnist":
            continue  # quick runs are not tracked; dpsgd_mnist is re-run on the DP branch
        meta = lk.results.load_meta(path.stem, path.parent)
        assert meta.get("date") and meta.get("versions"), path.name
        assert meta.get("mode") == "full", path.name
