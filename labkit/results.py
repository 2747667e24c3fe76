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
    out = []
    exact = [r for r in rows if r.get("exact") and "phe, one ciphertext" not in r["method"]]
    naive = next((r for r in rows if "one ciphertext per value" in r["method"]), None)
    if exact:
        best = min(exact, key=lambda r: r["seconds_total"])
        out.append(
            _row(
                "homomorphic encryption",
                f"seconds to aggregate 10 x 100k values ({best['method']})",
                best["seconds_total"],
                "s",
                "he_aggregation",
            )
        )
        out.append(
            _row(
                "homomorphic encryption",
                "bytes on the wire per value (packed) vs float32",
                best["bytes_per_value"] / FLOAT32_BYTES,
                "x plaintext",
                "he_aggregation",
            )
        )
        if naive:
            out.append(
                _row(
                    "homomorphic encryption",
                    "speed-up of packing + fast encryption over one phe ciphertext per value",
                    naive["seconds_total"] / best["seconds_total"],
                    "x",
                    "he_aggregation",
                )
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


# --- chapters 03 and 04: rendered tables and the encrypted-aggregation results ---

__all__ += ["markdown_table", "he_tables", "bytes_comparison"]


def markdown_table(rows: list[dict], columns: list[str], precision: int = 3):
    """Return ``format_table(rows, columns, precision)`` as an IPython ``Markdown`` object."""
    from IPython.display import Markdown

    return Markdown(format_table(rows, columns, precision))


def he_tables(results_dir: str | Path | None = None) -> tuple[list[dict], list[dict]]:
    """Return ``(aggregation_rows, key_size_rows)`` of he_aggregation.json, in either file shape.

    Rows tagged ``table`` are split by it; an untagged file keeps its key-size sweep under
    ``key_size_sweep`` (top level or ``meta``). ``([], [])`` when nothing was recorded.
    """
    data = load_results("he_aggregation", results_dir)
    if data is None:
        return [], []
    rows = load_rows("he_aggregation", results_dir)
    sweep = [r for r in rows if "key" in str(r.get("table", ""))]
    if not sweep and isinstance(data, dict):
        sweep = list(data.get("key_size_sweep") or data.get("meta", {}).get("key_size_sweep", []))
    aggregation = [r for r in rows if r not in sweep and "bytes_per_value" in r]
    return aggregation, sweep


def _is_ckks(row: dict) -> bool:
    return "ckks" in f"{row.get('scheme', '')} {row.get('method', '')}".lower()


def bytes_comparison(rows: list[dict]) -> dict | None:
    """Return the fewest bytes per value of exact Paillier rows and of CKKS, and the winner.

    ``{"paillier": row, "ckks": row, "ratio": paillier / ckks bytes, "winner": "Paillier" or
    "CKKS"}``; None when either side was not measured (e.g. CKKS skipped).
    """
    measured = [r for r in rows if r.get("bytes_per_value")]
    paillier = [r for r in measured if not _is_ckks(r)]
    ckks = [r for r in measured if _is_ckks(r)]
    if not paillier or not ckks:
        return None
    p = min(paillier, key=lambda r: r["bytes_per_value"])
    c = min(ckks, key=lambda r: r["bytes_per_value"])
    ratio = p["bytes_per_value"] / c["bytes_per_value"]
    return {"paillier": p, "ckks": c, "ratio": ratio, "winner": "Paillier" if ratio < 1 else "CKKS"}
