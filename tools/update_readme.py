"""Rewrite the README's headline-results table from benchmarks/results/*.json.

Usage: uv run python tools/update_readme.py      (tests/test_workbook.py checks it is current)
"""

from __future__ import annotations

import sys
from pathlib import Path

import labkit as lk

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_block() -> str:
    """Return the Markdown between the README's result markers."""
    rows = lk.results.cost_summary(ROOT / "benchmarks" / "results")
    for r in rows:
        r["source"] = f"`{r['source']}`"
    table = lk.results.format_table(rows, ["technique", "measure", "value", "unit", "source"])
    return f"{START}\n{table}\n{END}"


def updated(text: str) -> str:
    """Return ``text`` with its results block regenerated."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + results_block() + tail


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(updated(readme.read_text()))
    print(results_block())
    sys.exit(0)
