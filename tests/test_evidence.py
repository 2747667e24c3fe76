"""Quoted numbers stay current: no unchecked chapter cell prints a number read from the results.

A number a chapter prints from ``benchmarks/results/*.json`` is deterministic, so its cell must be
a checked cell (tag ``nbval-check-output``): a results file that changes without the chapter being
re-executed then fails nbval instead of leaving a stale number on the page. This test finds the
cells that read a results file (through ``labkit.results``' readers) and print text, and requires
the tag. Not concerned: a table of a live run shown with ``show_table`` (it reads no file); cells
that only draw a figure from the file (nbval does not compare images). Not traced: a cell that
prints from rows another cell read (keep reading and printing in one cell).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb")
)
# Calls whose results are deterministic by construction: results files, the guide, accountants.
READERS = re.compile(
    r"\b(load_results|load_rows|load_meta|cost_summary|user_dp_costs|dp_accuracy_loss|"
    r"he_tables|final_dp_exposure|dp_exposure_summary|recommend|dpfedavg_epsilon)\s*\(|"
    r"pt\.select|\.epsilon\("
)
# Exempt: knob cells (their output is a widget; the site shows its saved state) and a cell that
# says why in a ``# not checked:`` comment (a table mixing trained metrics with recorded numbers).
EXEMPT = re.compile(r"lk\.plots\.knob\(|widgets\.interact|# not checked:")


def _printed_text(cell: dict) -> str:
    """Return the text a cell's stored outputs show (streams, text and Markdown displays)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        data = out.get("data", {})
        if "text/markdown" in data or "text/html" in data:
            parts.append("".join(data.get("text/markdown") or data.get("text/html")))
        elif "text/plain" in data and "image/png" not in data and "widget-view" not in str(data):
            parts.append("".join(data["text/plain"]))
    return "".join(parts)


def unchecked_result_cells(path: Path) -> list[int]:
    """Return the indices of code cells that read results, print digits, and are not checked."""
    cells = json.loads(path.read_text())["cells"]
    bad = []
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not READERS.search(source) or EXEMPT.search(source):
            continue
        if "nbval-check-output" in cell.get("metadata", {}).get("tags", []):
            continue
        if re.search(r"\d", _printed_text(cell)):
            bad.append(i)
    return bad


def test_reader_pattern_sees_the_readers():
    assert READERS.search('rows = lk.results.load_rows("audit")')
    assert READERS.search("costs = lk.results.cost_summary()")
    # Formatting alone reads nothing: tables of a live run are not results-file numbers.
    assert not READERS.search("lk.results.show_table(quick_rows, cols)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_unchecked_cell_prints_a_results_number(path):
    bad = unchecked_result_cells(path)
    assert not bad, f"{path.name}: cells {bad} print numbers from benchmarks/results unchecked"
