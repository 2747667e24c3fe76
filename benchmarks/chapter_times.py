"""How long each chapter takes in quick mode (the mode nbval runs), one kernel at a time.

Usage: uv run python benchmarks/chapter_times.py [NN ...]   (about 6 min on 2 cores)
Writes ``benchmarks/results/chapter_times.json``: one row per chapter, ``{"chapter", "seconds",
"slowest_cell", "slowest_cell_seconds", "cells"}``, with the load average before and after each
chapter (a chapter timed on a busy machine says so). The goal is under 60 s per chapter on 2
cores, kernel start and TensorFlow import included. Notebooks are executed on an in-memory copy:
the stored outputs are not touched. Always quick mode, so the file name has no ``_quick``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from _common import print_table, read_rows, write_results
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 60


class TimedClient(NotebookClient):
    """An nbclient that records each code cell's wall time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cell_seconds: list[float] = []

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        start = time.perf_counter()
        out = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        if cell.cell_type == "code":
            self.cell_seconds.append(time.perf_counter() - start)
        return out


def time_chapter(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    client = TimedClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    seconds = time.perf_counter() - start
    slowest = max(range(len(client.cell_seconds)), key=client.cell_seconds.__getitem__)
    return {
        "chapter": path.stem,
        "seconds": round(seconds, 1),
        "within_goal": seconds < GOAL_SECONDS,
        "slowest_cell": slowest,  # 0-based among code cells: nbval's "Cell N"
        "slowest_cell_seconds": round(client.cell_seconds[slowest], 1),
        "cells": len(client.cell_seconds),
        "cell_seconds": [round(t, 2) for t in client.cell_seconds],
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> int:
    os.environ.pop("LABKIT_FULL", None)  # nbval's mode
    os.environ.setdefault("LABKIT_PROGRESS", "0")
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if argv:
        paths = [p for p in paths if p.name[:2] in argv]
    rows = []
    for p in paths:
        rows.append(time_chapter(p))
        print(f"{p.name}: {rows[-1]['seconds']} s", flush=True)
    cols = ["chapter", "seconds", "slowest_cell", "slowest_cell_seconds", "load_average_before"]
    print_table(rows, cols, precision=3)
    meta = {"goal_seconds": GOAL_SECONDS, "cpus": os.cpu_count()}
    if argv:  # a partial run: keep the other chapters' rows
        done = {r["chapter"] for r in rows}
        rows = [r for r in read_rows("chapter_times", full=True) if r["chapter"] not in done] + rows
        rows.sort(key=lambda r: r["chapter"])
    print(write_results("chapter_times", rows, meta, full=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
