"""How long the tests take on a clean checkout: `.ci/run` phase by phase, as CI runs it.

Usage: uv run python benchmarks/suite_time.py   (about 12 min on 2 cores; the machine must be quiet)
Clones the current commit (``git clone`` of this checkout: uncommitted changes are not measured)
into a temporary folder, runs its ``.ci/run`` there and times each phase from the script's own
output: setting up (``uv sync``, the linter), ``uv run pytest`` (the README's test command) and
the chapters again under perturbed numerics. Writes ``benchmarks/results/suite_time.json``: one
row per phase ``{"phase", "seconds", "goal_seconds", "within_goal", "passed", "skipped"}``, with
the load average before and after, and the commit in ``meta``. A red run writes nothing and exits
non-zero. The goals (issue 24): ``uv run pytest`` within 8 minutes and all of ``.ci/run`` within
20, on 2 cores with Chromium and the CJK fonts installed (so the browser tests run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table, write_results

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"uv run pytest": 8 * 60, ".ci/run": 20 * 60}
PERTURBED = "--- chapters again"  # the line .ci/run prints before the perturbed run
SUMMARY = re.compile(r"=+ (?P<body>.*\bpassed\b.*) in (?P<seconds>[\d.]+)s")


def _counts(body: str) -> dict:
    found = {k: int(n) for n, k in re.findall(r"(\d+) (passed|skipped)", body)}
    return {"passed": found.get("passed", 0), "skipped": found.get("skipped", 0)}


def main() -> int:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="suite-time-"))
    clone = work / "checkout"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # the clone's own venv
    env["CI"] = "1"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    marks, summaries = {}, []
    proc = subprocess.Popen(
        ["bash", str(clone / ".ci" / "run")],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        sys.stdout.write(line)
        now = time.perf_counter() - start
        if "test session starts" in line:
            marks.setdefault("pytest_start", now)
        if line.startswith(PERTURBED):
            marks["perturbed_start"] = now
        match = SUMMARY.search(line)
        if match:
            summaries.append((now, float(match["seconds"]), _counts(match["body"])))
    total = time.perf_counter() - start
    if proc.wait() != 0 or len(summaries) != 2:
        print(f"suite_time: .ci/run failed (exit {proc.returncode}); nothing written")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    (_, pytest_s, pytest_n), (_, perturbed_s, perturbed_n) = summaries
    rows = [
        {"phase": "set-up (uv sync, ruff)", "seconds": round(marks["pytest_start"], 1)},
        {"phase": "uv run pytest", "seconds": pytest_s, **pytest_n},
        {"phase": "chapters, perturbed numerics", "seconds": perturbed_s, **perturbed_n},
        {"phase": ".ci/run", "seconds": round(total, 1)},
    ]
    for row in rows:
        goal = GOALS.get(row["phase"])
        row.update(goal_seconds=goal, within_goal=None if goal is None else row["seconds"] < goal)
    load = {"load_average_before": round(load_before, 2)}
    load["load_average_after"] = round(os.getloadavg()[0], 2)
    print_table(rows, ["phase", "seconds", "goal_seconds", "within_goal", "passed"], precision=4)
    meta = {"commit": commit, "cpus": os.cpu_count(), **load}
    print(write_results("suite_time", rows, meta, full=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
