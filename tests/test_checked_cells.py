"""Numbers read from results files, the guide or an accountant are printed only by checked cells.

A results file that changes without its chapters being re-executed must fail nbval, so every cell
that prints (or shows a table of) such numbers carries ``nbval-check-output``. Exempt: the knob
cells (ipywidgets: their output is a widget, not the numbers) and cells that show only a figure
(nbval does not compare images), and a cell that says why in a ``# not checked:`` comment (a
table mixing trained metrics with recorded numbers). Chapters 05-08 here; the owners of the
other chapters may add theirs.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTERS = ["05_combining", "06_trends_and_challenges", "07_choosing_a_method",
            "08_language_models"]  # fmt: skip
# Calls whose results are deterministic by construction: results files, the guide, accountants.
READS = re.compile(
    r"load_rows|load_results|load_meta|cost_summary|user_dp_costs|dp_accuracy_loss|"
    r"pt\.select|final_dp_exposure|dp_exposure_summary|guide\.recommend|dpfedavg_epsilon|"
    r"\.epsilon\("
)


def _prints_text(cell) -> bool:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            return True
        data = out.get("data", {})
        if "text/markdown" in data or "text/html" in data:
            return True
        plain = "".join(data.get("text/plain", ""))
        if plain and not plain.startswith(("<Figure", "interactive(")):
            return True
    return False


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cells_printing_recorded_numbers_are_checked(chapter):
    nb = json.loads((NOTEBOOKS / f"{chapter}.ipynb").read_text())
    unchecked = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        exempt = "widgets.interact" in source or "# not checked:" in source
        if cell["cell_type"] != "code" or exempt:
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if READS.search(source) and _prints_text(cell) and "nbval-check-output" not in tags:
            unchecked.append(i)
    assert not unchecked, f"{chapter}: cells {unchecked} print recorded numbers but are unchecked"
