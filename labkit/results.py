"""Read the benchmark results that chapters quote, and condense them into a cost table.

Where the results live: the ``results_dir`` argument of each function if given, else the folder
named by the environment variable ``LABKIT_RESULTS``, else ``benchmarks/results`` of the source
tree labkit is imported from (``uv sync`` installs it editable). An installed wheel has no
source tree: set ``LABKIT_RESULTS`` (or pass ``results_dir``) to read results there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from labkit._checks import ParameterError, check_positive, check_str
from labkit._tables import Table, format_table, show_table

__all__ = [
    "FLOAT32_BYTES",
    "history_rows",
    "combining_rows",
    "RESULTS_DIR",
    "RESULTS_ENV",
    "ResultsError",
    "results_folder",
    "Table",
    "load_results",
    "load_rows",
    "load_meta",
    "cost_summary",
    "format_table",
    "rounds_table",
    "user_dp_costs",
    "show_table",
    "dp_accuracy_loss",
    "extrapolated",
]

# benchmarks/results/ of the checkout labkit is imported from (an editable install, as set up
# by `uv sync`); a chapter says so plainly when a file is missing rather than inventing numbers.
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
RESULTS_ENV = "LABKIT_RESULTS"

# Bytes of one float32 model parameter or plaintext value: the unencrypted baseline.
FLOAT32_BYTES = 4


class ResultsError(ParameterError):
    """A results file that exists but is not ``{"meta": {...}, "rows": [...]}``; names the file."""


def results_folder(results_dir: str | Path | None = None) -> Path:
    """Return the results folder: ``results_dir``, else ``$LABKIT_RESULTS``, else the source's."""
    if results_dir is None:
        results_dir = os.environ.get(RESULTS_ENV) or RESULTS_DIR
    if not isinstance(results_dir, str | os.PathLike) or not str(results_dir):
        raise ParameterError("results_dir", results_dir, "a folder path (str or Path) or None")
    return Path(results_dir)


def _path(name: str, results_dir) -> Path:
    check_str("name", name)
    if Path(name).name != name or name.endswith(".json"):
        raise ParameterError("name", name, "a benchmark name such as 'fedavg_rounds'")
    return results_folder(results_dir) / f"{name}.json"


def load_results(name: str, results_dir: str | Path | None = None):
    """Return the parsed ``<results folder>/<name>.json``, or None when it was not recorded.

    A file that exists but is empty or not JSON raises ``ResultsError`` naming the file.
    """
    path = _path(name, results_dir)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"results file {path}", "not JSON" if path.stat().st_size else "an empty file",
            'a JSON object {"meta": {...}, "rows": [...]}',
            f"{err}; re-run the benchmark that writes it",
        ) from err  # fmt: skip


def _rows_of(name: str, data, results_dir) -> list[dict]:
    rows = data if isinstance(data, list) else data.get("rows", [data])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ResultsError(
            f"rows of results file {_path(name, results_dir)}", rows, "a list of JSON objects"
        )
    return rows


def load_rows(name: str, results_dir: str | Path | None = None, **select) -> list[dict]:
    """Return the rows of ``<name>.json`` whose fields equal ``select``; [] if not recorded.

    Every results file is ``{"meta": {...}, "rows": [...]}`` (see ``benchmarks/_common.py``);
    ``load_rows("dpsgd_speed", library="labkit", model="cnn")`` selects by field, never by a
    display string.
    """
    data = load_results(name, results_dir)
    if data is None:
        return []
    if not isinstance(data, dict | list):
        raise ResultsError(f"results file {_path(name, results_dir)}", data, "a JSON object")
    rows = _rows_of(name, data, results_dir)
    return [r for r in rows if all(r.get(k) == v for k, v in select.items())]


def load_meta(name: str, results_dir: str | Path | None = None) -> dict:
    """Return the ``meta`` of ``<name>.json`` (machine, load, versions, settings); {} if none."""
    data = load_results(name, results_dir)
    meta = data.get("meta", {}) if isinstance(data, dict) else {}
    if not isinstance(meta, dict):
        raise ResultsError(
            f"meta of results file {_path(name, results_dir)}", meta, "a JSON object"
        )
    return meta


def _fl_costs(rows: list[dict], speed: dict | None) -> list[dict]:
    out = []

    def rounds(scheme, method, e=None):
        """Rounds to target of the 2NN row with these fields (None if not reached/recorded)."""
        select = {"model": "2nn", "scheme": scheme, "method": method}
        select.update({} if e is None else {"E": e})
        found = [r for r in rows if all(r.get(k) == v for k, v in select.items())]
        return next((r["rounds"] for r in found if r.get("rounds")), None)

    sgd, avg = rounds("iid", "FedSGD"), rounds("iid", "FedAvg", 5)
    non_iid = rounds("shards", "FedAvg", 5)
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
    speed = (speed or {}).get("meta") if isinstance(speed, dict) and "meta" in speed else speed
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


def _which(row: dict) -> str:
    """Name a dpsgd_mnist row's method, and the seeds it averages when there are several."""
    seeds = row.get("seeds") or []
    return row.get("method", "DP-SGD") + (f", mean of {len(seeds)} seeds" if len(seeds) > 1 else "")


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
                f"MNIST test accuracy at epsilon {best['epsilon']:.2f}, delta {best['delta']:g}"
                f" ({_which(best)})",
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
                    f"accuracy lost to DP at epsilon <= 3 ({_which(best)} vs non-private)",
                    100 * loss,  # a difference of two accuracies: percentage points
                    "percentage points",
                    "dpsgd_mnist",
                )
            )
    speed = [_speed_fields(r) for r in speed if "ratio_to_nonprivate" in r]
    for model in dict.fromkeys(r["model"] for r in speed):
        rows_m = [r for r in speed if r["model"] == model]
        labkit = [r for r in rows_m if (r["library"], r["variant"]) == ("labkit", "ghost")]
        ours = labkit[0] if labkit else None
        theirs = [r for r in rows_m if r["library"] == "tf-privacy"]
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
                    f"DP-SGD step time, {model} (fastest TF Privacy: {best['variant']})",
                    best["ratio_to_nonprivate"],
                    "x non-private",
                    "dpsgd_speed",
                )
            )
    return out


def _speed_fields(row: dict) -> dict:
    """Return a dpsgd_speed row with ``library`` and ``variant``; rows written before the fields
    existed (only a display ``method``) are mapped once here."""
    if "library" in row:
        return row
    method = row.get("method", "")
    if method.startswith("tfp "):
        return {**row, "library": "tf-privacy", "variant": method.removeprefix("tfp ")}
    if method.startswith("labkit "):
        variant = "clip-only" if "clipping only" in method else method.split()[1]
        return {**row, "library": "labkit", "variant": variant}
    return {**row, "library": "keras", "variant": method}


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
        guessed = naive.get("extrapolated")  # the phe row timed a sample and scaled it up
        row(
            "speed-up of packing + fast encryption over one phe ciphertext per value",
            naive["seconds_total"] / best["seconds_total"],
            "x (extrapolated)" if guessed else "x",
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
    """Return headline costs of FL, DP and HE from the recorded full-mode benchmark results.

    A row missing a field the summary needs raises ``ResultsError`` naming its file.
    """
    parts = (
        ("fedavg_rounds", lambda: _fl_costs(
            load_rows("fedavg_rounds", results_dir), load_results("fedavg_speed", results_dir))),
        ("dpsgd_mnist", lambda: _dp_costs(
            load_rows("dpsgd_mnist", results_dir), load_rows("dpsgd_speed", results_dir))),
        ("he_aggregation", lambda: _he_costs(load_rows("he_aggregation", results_dir))),
    )  # fmt: skip
    out = []
    for name, part in parts:
        try:
            out += part()
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as err:
            if isinstance(err, ParameterError):
                raise
            raise ResultsError(
                f"results behind {name}", f"{type(err).__name__}: {err}",
                "rows with the fields the benchmark writes (numbers where numbers belong)",
                "re-run the benchmarks that write these files",
            ) from err  # fmt: skip
    return out


def rounds_table(rows: list[dict]) -> Table:
    """Return fedavg_rounds rows as a ``Table``: rounds to target, ours and the paper's, ratios.

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

    columns = ["model", "partition", "method", "E", "B", "target", "rounds (ours)",
               "rounds (paper)", "FedSGD / this (ours)", "FedSGD / this (paper)",
               "best accuracy"]  # fmt: skip
    out = []
    for r in rows:
        paper = r.get("paper_rounds")
        values = [
            r["model"], r["partition"], r["method"], r["E"], r["B"], f"{r['target']:.2f}",
            r["rounds"] if r["rounds"] is not None else f"> {r['budget']}", paper or "n/a",
            ratio(fedsgd(r, "rounds"), r["rounds"]), ratio(fedsgd(r, "paper_rounds"), paper),
            f"{r['best_accuracy']:.4f}",
        ]  # fmt: skip
        out.append({c: str(v) for c, v in zip(columns, values, strict=True)})
    return Table(out, columns)


# --- chapters 00, 01, 06, 07 -------------------------------------------------------------------


def user_dp_costs(results_dir: str | Path | None = None) -> list[dict]:
    """Return user-level DP's measured price from ``combining.json``, one row per population.

    Per number of clients: epsilon of DP-FedAvg (z = 1, no secure aggregation) and the accuracy
    points it lost against plain FedAvg on the same clients; then the accounting rows where every
    client takes part in every round (q = 1, the few-parties case) at the run's number of rounds,
    with ``points_lost`` None (accounted, not trained). [] when the file is not recorded.
    """
    runs = load_rows("combining", results_dir, table="runs", secure_aggregation=False)
    out = []
    for k in sorted({r["num_clients"] for r in runs}):
        plain = [r for r in runs if r["num_clients"] == k and not r["dp"]]
        dp = [r for r in runs if r["num_clients"] == k and r["dp"] and r["noise_multiplier"] == 1]
        if plain and dp:
            lost = 100 * (plain[0]["test_accuracy"] - dp[0]["test_accuracy"])
            out.append(_user_dp_row(dp[0], lost))
    rounds = load_meta("combining", results_dir).get("num_rounds")
    for r in load_rows("combining", results_dir, table="accounting", num_rounds=rounds):
        if r["clients_per_round"] == r["num_clients"]:
            out.append(_user_dp_row(r, None))
    return out


def _user_dp_row(r: dict, points_lost: float | None) -> dict:
    keys = ("num_clients", "clients_per_round", "noise_multiplier", "num_rounds", "epsilon")
    return {**{k: r[k] for k in keys}, "points_lost": points_lost}


def dp_accuracy_loss(max_epsilon: float = 3.0, results_dir: str | Path | None = None):
    """Return the accuracy (fraction) DP-SGD lost on MNIST at the best epsilon <= max_epsilon.

    Best non-private accuracy minus the best DP-SGD accuracy with ``epsilon <= max_epsilon`` in
    ``dpsgd_mnist.json`` (rows selected by ``method``); None when either is not recorded.
    """
    max_epsilon = check_positive("max_epsilon", max_epsilon)
    private = [
        r for r in load_rows("dpsgd_mnist", results_dir, method="DP-SGD")
        if r["epsilon"] <= max_epsilon
    ]  # fmt: skip
    public = load_rows("dpsgd_mnist", results_dir, method="non-private")
    if not private or not public:
        return None
    return max(r["test_accuracy"] for r in public) - max(r["test_accuracy"] for r in private)


def extrapolated(rows: list[dict], key: str = "method") -> list[str]:
    """Return the ``key`` of every row recorded with ``"extrapolated": true`` (not measured)."""
    return [r[key] for r in rows if r.get("extrapolated")]


# --- chapters 02 and 05 (federated learning, combining) -----------------------------------


def history_rows(histories: dict, target: float) -> list[dict]:
    """Return one display row per ``{(partition, method): FLHistory}``: final accuracy, rounds.

    "rounds to target" is the first evaluated round at or above ``target``, or "not reached".
    """
    rows = []
    for (partition, method), h in histories.items():
        reached = h.rounds_to(target)
        rows.append(
            {
                "partition": partition,
                "method": method,
                "final accuracy": f"{h.final_accuracy:.3f}",
                f"rounds to {target:.0%}": "not reached" if reached is None else reached,
            }
        )
    return rows


def combining_rows(rows: list[dict]) -> list[dict]:
    """Return ``combining`` benchmark rows formatted for display ("–" where there is no epsilon)."""
    return [
        {
            "method": r["method"],
            "clients": r["num_clients"],
            "accuracy": f"{r['test_accuracy']:.4f}",
            "epsilon": "–" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
            "seconds": f"{r['seconds']:.1f}",
            "bytes up / client / round": f"{r['bytes_up_per_client_per_round']:,}",
        }
        for r in rows
    ]


# --- chapters 03 and 04: rendered tables and the encrypted-aggregation results ---

__all__ += ["he_tables", "bytes_comparison"]


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
