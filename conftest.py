"""Test-wide settings for tests/ and the nbval-run notebooks: headless plots, no progress bars,
and one more item per chapter with a knob: every control moved in the chapter's own kernel."""

import importlib.util
import os
from collections import defaultdict
from pathlib import Path

import matplotlib
import nbformat

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_PROGRESS", "0")

# Chapter 09 needs Flower (`uv sync --group flower`); without it nbval skips the chapter.
if importlib.util.find_spec("flwr") is None:
    collect_ignore_glob = ["notebooks/09_*.ipynb"]

# One more nbval item per chapter with a knob: see tests/knob_check.py.
KNOB_CHECK = (Path(__file__).parent / "tests" / "knob_check.py").read_text()
KNOB_CHECK += "\nprint(check_knobs())\n"


def _has_knob(nb) -> bool:
    return any(c.cell_type == "code" and "lk.plots.knob(" in c.source for c in nb.cells)


def pytest_collection_modifyitems(config, items):
    from nbval.plugin import IPyNbCell, IPyNbFile

    cells, last = {}, {}  # per chapter with a knob: its collected cells, the last one's place
    for index, item in enumerate(items):
        parent = getattr(item, "parent", None)
        if isinstance(item, IPyNbCell) and isinstance(parent, IPyNbFile) and _has_knob(parent.nb):
            cells[parent] = cells.get(parent, 0) + 1
            last[parent] = index
    for parent, index in sorted(last.items(), key=lambda kv: -kv[1]):  # back to front
        if cells[parent] < sum(c.cell_type == "code" for c in parent.nb.cells):
            continue  # only some cells were selected: the knob may not exist
        cell = nbformat.v4.new_code_cell(KNOB_CHECK)  # never run: no output to compare
        item = IPyNbCell.from_parent(
            parent,
            name="knobs",
            cell_num=items[index].cell_num + 1,
            cell=cell,
            options=defaultdict(bool),
        )
        items.insert(index + 1, item)
