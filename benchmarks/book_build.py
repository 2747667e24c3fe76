"""How long the course website takes to build: each edition's HTML, single page and PDF.

Usage: uv run --group docs python benchmarks/book_build.py   (about 3 min on 2 cores)
Writes ``benchmarks/results/book_build.json``: one row per phase, ``{"lang", "phase", "seconds"}``
(phase is ``html``, ``singlehtml`` or ``pdf``, the Chromium print of the single page), with the
load average before and after each phase, and a ``total`` row. The goal is the whole build (what
``tools/build_book.py -W --lang=all --pdf`` and the site tests run) within 3 minutes on 2 idle
cores. The test that builds the site only prints its time: a wall time on a loaded machine
measures the load, so the budget lives here, where the load is recorded beside it.
Always the same work, so the file name has no ``_quick``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _common import print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import book_pdf  # noqa: E402
import build_book  # noqa: E402

sys.path.pop(0)
GOAL_SECONDS = 180


def _timed(lang: str, phase: str, fn, *args) -> tuple[dict, object]:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    out = fn(*args)
    row = {
        "lang": lang,
        "phase": phase,
        "seconds": round(time.perf_counter() - start, 1),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    print(f"{lang} {phase}: {row['seconds']} s", flush=True)
    return row, out


def main() -> int:
    rows = []
    for lang in build_book.LANGS:
        row, _ = _timed(lang, "html", build_book.build, True, lang)
        rows.append(row)
        # singlehtml reuses the html build's doctrees, as tools/build_book.py --pdf does
        row, index = _timed(lang, "singlehtml", build_book.build, True, lang, "singlehtml")
        rows.append(row)
        name = "course.pdf" if lang == "en" else f"course-{lang}.pdf"
        row, _ = _timed(
            lang, "pdf", book_pdf.print_pdf, index.parent, index.name, build_book.OUT / name
        )
        rows.append(row)
    total = round(sum(r["seconds"] for r in rows), 1)
    rows.append(
        {
            "lang": "all",
            "phase": "total",
            "seconds": total,
            "within_goal": total < GOAL_SECONDS,
            "load_average_before": rows[0]["load_average_before"],
            "load_average_after": rows[-1]["load_average_after"],
        }
    )
    print_table(rows, ["lang", "phase", "seconds", "load_average_before"], precision=3)
    meta = {"goal_seconds": GOAL_SECONDS, "cpus": os.cpu_count()}
    print(write_results("book_build", rows, meta, full=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
