"""Read the benchmark results that chapters quote, and condense them into a cost table."""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = [
    "RESULTS_DIR",
    "load_results",
    "load_rows",
    "load_meta",
    "cost_summary",
    "format_table",
    "rounds_table",
]

# benchmarks/results/ of the checkout labkit is imported from (an editable install, as set up
# by `uv sync`); a chapter says so plainly when a file is missing rather than inventing numbers.
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

# Bytes of one float32 model parameter or plaintext value: the unencrypted baseline.
FLOAT32_BYTES = 4


def load_results(name: str, results_dir: str | Path | None = None):
    """Return the parsed ``benchmarks/results/<name>.json``, or None when it was not recorded."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    if not path.is_file():
        return None
    with path.open() as fh:
        return json.load(fh)


def load_rows(name: str, results_dir: str | Path | None = None, **select) -> list[dict]:
    """Return the rows of ``<name>.json`` whose fields equal ``select``; [] if not recorded.

    Every results file is ``{"meta": {...}, "rows": [...]}`` (see ``benchmarks/_common.py``);
    ``load_rows("dpsgd_speed", library="labkit", model="cnn")`` selects by field, never by a
    display string.
    """
    data = load_results(name, results_dir)
    if data is None:
        return []
    rows = data if isinstance(data, list) else data.get("rows", [data])
    return [r for r in rows if all(r.get(k) == v for k, v in select.items())]


def load_meta(name: str, results_dir: str | Path | None = None) -> dict:
    """Return the ``meta`` of ``<name>.json`` (machine, load, versions, settings); {} if none."""
    data = load_results(name, results_dir)
    return data.get("meta", {}) if isinstance(data, dict) else {}


def _fl_costs(rows: list[dict], speed: dict | None) -> list[dict]:
    out = []

    def rounds(partition, method, e=None):
        for r in rows:
            if (
                r.get("model") == "2nn"
                and r.get("partition") == partition
                and r.get("method") == method
                and (e is None or r.get("E") == e)
                and r.get("rounds")
            ):
                return r["rounds"]
        return None

    sgd, avg = rounds("iid", "FedSGD"), rounds("iid", "FedAvg", 5)
    non_iid = next(
        (
            rounds(p, "FedAvg", 5)
            for p in {r.get("partition") for r in rows}
            if p and p != "iid" and rounds(p, "FedAvg", 5)
        ),
        None,
    )
    if sgd and avg:
        out.append(
            _row(
                "federated learning",
                "rounds to 97% (2NN, IID): FedSGD / FedAvg E=5",
                sgd / avg,
                "x fewer rounds with FedAvg",
                "fedavg_rounds",
            )
        )
    if avg and non_iid:
        out.append(
            _row(
                "federated learning",
                "rounds to 97% (2NN, FedAvg E=5): non-IID / IID",
                non_iid / avg,
                "x more rounds on non-IID data",
                "fedavg_rounds",
            )
        )
    if speed and speed.get("speedup"):
        out.append(
            _row(
                "federated learning",
                f"simulation time per round, per-client model.fit / labkit.fl ({speed['model']}, "
                f"{speed['clients_per_round']} clients, E={speed['local_epochs']}, "
                f"B={speed['batch_size']})",
                speed["speedup"],
                "x faster",
                "fedavg_speed",
            )
        )
    return out


def _dp_costs(rows: list[dict], speed: list[dict]) -> list[dict]:
    out = []
    private = [r for r in rows if r.get("epsilon") is not None and math.isfinite(r["epsilon"])]
    baseline = [r for r in rows if r.get("epsilon") is None or not math.isfinite(r["epsilon"])]
    at3 = [r for r in private if r["epsilon"] <= 3.0]
    if at3:
        best = max(at3, key=lambda r: r["test_accuracy"])
        out.append(
            _row(
                "differential privacy",
                f"MNIST test accuracy at epsilon {best['epsilon']:.2f}, delta {best['delta']:g}",
                best["test_accuracy"],
                "accuracy",
                "dpsgd_mnist",
            )
        )
        if baseline:
            loss = max(r["test_accuracy"] for r in baseline) - best["test_accuracy"]
            out.append(
                _row(
                    "differential privacy",
                    "accuracy lost to DP at epsilon <= 3",
                    loss,
                    "accuracy points (fraction)",
                    "dpsgd_mnist",
                )
            )
    for model in dict.fromkeys(r["model"] for r in speed):
        rows_m = [r for r in speed if r["model"] == model]
        ours = next((r for r in rows_m if r["method"] == "labkit ghost"), None)
        theirs = [r for r in rows_m if r["method"].startswith("tfp")]
        if ours:
            out.append(
                _row(
                    "differential privacy",
                    f"DP-SGD step time, {model} (labkit)",
                    ours["ratio_to_nonprivate"],
                    "x non-private",
                    "dpsgd_speed",
                )
            )
        if theirs:
            best = min(theirs, key=lambda r: r["ratio_to_nonprivate"])
            out.append(
                _row(
                    "differential privacy",
                    f"DP-SGD step time, {model} (fastest "
                    f"TF Privacy: {best['method'].removeprefix('tfp ')})",
                    best["ratio_to_nonprivate"],
                    "x non-private",
                    "dpsgd_speed",
                )
            )
    return out


def _he_costs(rows: list[dict]) -> list[dict]:
    """Headline HE costs, selected by field: the fastest measured exact packed Paillier row, the
    per-value phe baseline and CKKS at its smallest parameters (``ckks_params="smallest"``)."""
    agg = [r for r in rows if r.get("table") == "aggregation" and r.get("seconds_total")]
    paillier = [r for r in agg if r.get("scheme") == "paillier"]
    measured = [r for r in paillier if r.get("packed") and not r.get("extrapolated")]
    exact = [r for r in measured if r.get("exact")]
    naive = next((r for r in paillier if r.get("packed") is False), None)
    ckks = next(
        (r for r in agg if r.get("scheme") == "ckks" and r.get("ckks_params") == "smallest"), None
    )
    out = []
    if not exact:
        return out
    best = min(exact, key=lambda r: r["seconds_total"])

    def row(measure, value, unit):
        out.append(_row("homomorphic encryption", measure, value, unit, "he_aggregation"))

    row(f"seconds to aggregate 10 x 100k values ({best['method']})", best["seconds_total"], "s")
    row(
        "bytes on the wire per value (packed) vs float32",
        best["bytes_per_value"] / FLOAT32_BYTES,
        "x plaintext",
    )
    if naive:
        row(
            "speed-up of packing + fast encryption over one phe ciphertext per value",
            naive["seconds_total"] / best["seconds_total"],
            "x",
        )
    if ckks:
        row(
            "exact Paillier aggregation time vs TenSEAL CKKS at its smallest parameters",
            best["seconds_total"] / ckks["seconds_total"],
            "x CKKS time",
        )
        small = min(exact, key=lambda r: r["bytes_per_value"])  # e.g. Damgård–Jurik s=2
        row(
            f"exact bytes per value ({small['method']}) vs TenSEAL CKKS at its smallest parameters",
            small["bytes_per_value"] / ckks["bytes_per_value"],
            "x CKKS bytes",
        )
    return out


def _row(technique, measure, value, unit, source):
    return {
        "technique": technique,
        "measure": measure,
        "value": float(value),
        "unit": unit,
        "source": f"benchmarks/results/{source}.json",
    }


def cost_summary(results_dir: str | Path | None = None) -> list[dict]:
    """Return headline costs of FL, DP and HE from the recorded full-mode benchmark results."""
    return (
        _fl_costs(
            load_rows("fedavg_rounds", results_dir), load_results("fedavg_speed", results_dir)
        )
        + _dp_costs(load_rows("dpsgd_mnist", results_dir), load_rows("dpsgd_speed", results_dir))
        + _he_costs(load_rows("he_aggregation", results_dir))
    )


def format_table(rows: list[dict], columns: list[str], precision: int = 3) -> str:
    """Return ``rows`` as a Markdown table of ``columns``, floats at fixed significant digits."""

    def cell(v):
        return f"{v:.{precision}g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def rounds_table(rows: list[dict]) -> str:
    """Return fedavg_rounds rows as Markdown: rounds to target, ours and the paper's, and ratios.

    A ratio is the FedSGD rounds of the same model and partition over this row's rounds, once
    for our runs and once for the paper's numbers; "> budget" marks a target not reached.
    """

    def fedsgd(r: dict, key: str):
        return next(
            (
                s.get(key)
                for s in rows
                if s["method"] == "FedSGD"
                and (s["model"], s["partition"]) == (r["model"], r["partition"])
            ),
            None,
        )

    def ratio(base, this) -> str:
        return f"{base / this:.1f}x" if base and this else "n/a"

    lines = [
        "| model | partition | method | E | B | target | rounds (ours) | rounds (paper) "
        "| FedSGD / this (ours) | FedSGD / this (paper) | best accuracy |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        ours = r["rounds"] if r["rounds"] is not None else f"> {r['budget']}"
        paper = r.get("paper_rounds")
        lines.append(
            f"| {r['model']} | {r['partition']} | {r['method']} | {r['E']} | {r['B']} "
            f"| {r['target']:.2f} | {ours} | {paper or 'n/a'} "
            f"| {ratio(fedsgd(r, 'rounds'), r['rounds'])} "
            f"| {ratio(fedsgd(r, 'paper_rounds'), paper)} | {r['best_accuracy']:.4f} |"
        )
    return "\n".join(lines)
