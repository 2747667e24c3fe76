"""The scaffold every benchmark shares: file naming, machine info, one JSON shape, tables.

Every results file is ``{"meta": {...}, "rows": [...]}``: ``meta`` holds the machine, its load,
the library versions, the date, the mode (quick/full) and the benchmark's settings; ``rows``
holds one flat dict per measurement, with fields to select on (``lk.results.load_rows(name,
**fields)``) rather than display strings. A file with several tables tags each row with
``table``. Quick runs write ``<name>_quick.json`` (untracked), so they never overwrite a full run.
``LABKIT_FULL=1`` is the one quick/full switch; the folder is ``lk.results.results_folder()``
(``$LABKIT_RESULTS``, else ``benchmarks/results``), the same one the chapters read.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path

import labkit as lk

RESULTS = Path(__file__).resolve().parent / "results"  # the default results folder
_VERSIONS = ("tensorflow", "numpy", "dp-accounting", "tensorflow-privacy", "phe", "gmpy2",
             "tenseal", "flwr")  # fmt: skip


def results_path(name: str, full: bool | None = None) -> Path:
    """Return ``results/<name>.json`` in full mode, ``results/<name>_quick.json`` otherwise."""
    full = lk.is_full() if full is None else full
    return lk.results.results_folder() / (f"{name}.json" if full else f"{name}_quick.json")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or the platform's machine type)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine_meta() -> dict:
    """Machine, load and versions, recorded with every result (ratios depend on them)."""
    versions = {}
    for pkg in _VERSIONS:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "versions": versions,
    }


def write_results(
    name: str, rows: list[dict], meta: dict | None = None, full: bool | None = None
) -> Path:
    """Write ``{"meta": machine + mode + meta, "rows": rows}`` to the mode's results file.

    The one writer of every benchmark: ``meta`` always carries the date, machine, load and
    versions (a benchmark's own ``meta`` adds settings and package versions, but the date and
    mode are the writer's), rows are
    flat dicts of named fields, and the file is replaced atomically (an interrupted write never
    leaves half a file for the chapters to read).
    """
    full = lk.is_full() if full is None else full
    _check_rows(name, rows)
    path = results_path(name, full)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(meta or {}, dict):
        raise lk.ParameterError("meta", meta, "a dict of the benchmark's settings or None")
    own = {k: v for k, v in (meta or {}).items() if k not in ("date", "mode")}
    machine = machine_meta()
    machine["versions"] = {**own.pop("versions", {}), **machine["versions"]}
    out = {"meta": {**machine, "mode": "full" if full else "quick", **own}, "rows": rows}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _check_rows(name: str, rows) -> None:
    """Refuse rows that are not a list of dicts with string field names."""
    if not isinstance(rows, list):
        raise lk.ParameterError("rows", type(rows).__name__, f"a list of dicts for {name}.json")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise lk.ParameterError(f"rows[{i}]", row, "a dict of named fields")


def read_rows(name: str, full: bool | None = None) -> list[dict]:
    """Return the rows already recorded in the mode's results file ([] if none)."""
    path = results_path(name, full)
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def print_table(rows: list[dict], columns: list[str], precision: int = 3) -> None:
    """Print ``rows`` as a Markdown table of ``columns`` (the library's table helper)."""
    print(lk.results.format_table(rows, columns, precision=precision))


def peak_matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's measured float32 matmul throughput (GFLOP/s): best of an n^3 TF matmul.

    The yardstick for ``fraction_of_peak``: a large dense matmul is as close to the CPU's limit
    as TensorFlow gets, so work / time / this says how far a technique runs from that limit.
    """
    import time

    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    tf.matmul(a, b).numpy()  # warm-up: thread pool, kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Best-of GFLOP/s of a float32 (m x k) @ (k x n) matmul, timed for about ``seconds``."""
    import time

    import tensorflow as tf

    a = tf.random.normal([m, k])
    b = tf.random.normal([k, n])
    mm = tf.function(lambda a, b: tf.matmul(a, b))
    mm(a, b).numpy()
    best, end = float("inf"), time.perf_counter() + seconds
    reps = max(1, int(2e8 / (2 * m * k * n)))  # ~0.1 GFLOP per timing
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(reps):
            out = mm(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2.0 * m * k * n / best / 1e9


def dense_training_flops(model, num_examples: int) -> int:
    """FLOPs of one SGD pass of a Flatten + Dense model over ``num_examples`` examples.

    Per layer with an (i x o) kernel: 2io forward, 2io for the kernel's gradient, and 2io for the
    input's gradient except at the first layer (nothing needs it). Biases and activations are
    O(o) and left out: this is the matmul work, the part a peak matmul rate bounds.
    """
    import tensorflow as tf

    kernels = [v for v in model.trainable_variables if len(v.shape) == 2]
    if not kernels or any(not isinstance(la, tf.keras.layers.Dense | tf.keras.layers.Flatten)
                          for la in model.layers):  # fmt: skip
        raise ValueError("dense_training_flops counts Flatten + Dense models only")
    io = [int(k.shape[0]) * int(k.shape[1]) for k in kernels]
    return num_examples * (6 * sum(io) - 2 * io[0])


def interleaved_rounds(methods: dict, rounds: int, warmup: bool = True, log=print) -> dict:
    """Run every method of ``methods`` (name -> no-argument callable) once per round, ABBA.

    The order is reversed every other round, so no method always runs first or last, and a
    load spike on a shared machine hits the methods of one round alike; ratios are then taken
    pairwise within a round (``median_ratio``). ``warmup`` runs each method once, unrecorded,
    first (caches, worker processes, tables). Returns ``{"results": {name: [one result per
    round]}, "load_before": ..., "load_after": ...}`` (1-minute load averages).
    """
    names = list(methods)
    if warmup:
        for name in names:
            methods[name]()
    load_before = round(os.getloadavg()[0], 2)
    results = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(methods[name]())
        log(f"  round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.2f}")
    return {"results": results, "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2)}  # fmt: skip


def median_ratio(numerators, denominators) -> tuple[float, list[float]]:
    """Return the median of the pairwise ratios of two per-round series, and the ratios."""
    import statistics

    ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return statistics.median(ratios), [round(x, 4) for x in ratios]
