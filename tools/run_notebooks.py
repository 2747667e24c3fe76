"""Execute chapters in place (quick mode unless LABKIT_FULL=1) and clean volatile metadata.

Usage: uv run python tools/run_notebooks.py [notebooks/NN_name.ipynb ...]   (default: all)
The stored outputs are nbval's expected results, so re-run a chapter after changing it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def clean(nb: nbformat.NotebookNode) -> None:
    """Renumber execution counts 1..N, drop per-run metadata; keep kernelspec, language_info and
    the saved widget state (``widgets``: the course website renders the widgets from it)."""
    keep = ("kernelspec", "language_info", "widgets")
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in keep}
    nb.metadata.setdefault(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
    )
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        if cell.cell_type == "code":
            # nbval treats a cell with outputs but no count as "unrun", so counts stay, renumbered
            # 1..N in order: stable across re-runs, so they never show up in a diff.
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out.execution_count = count


def run(path: Path, timeout: int = 1800) -> float:
    """Execute one notebook in its folder and write it back cleaned; return seconds taken."""
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("LABKIT_PROGRESS", "0")  # no progress-bar widgets in stored outputs
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,  # saved in nb.metadata.widgets, for the course website
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    clean(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for p in paths:
        print(f"{p.name}: {run(p.resolve()):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
