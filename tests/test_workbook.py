"""The README's main command serves the workbook; the environment files cannot drift."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _readme_open_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^uv run (jupyter lab\b.*)$", text, flags=re.MULTILINE)
    assert match, "README must give the `uv run jupyter lab ...` command"
    return match.group(1).split()


def test_jupyterlab_serves_the_chapters():
    """Start the README's command headless on loopback, list the chapters over REST, stop it."""
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", *_readme_open_command()]
    cmd += [
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root; a learner's machine does not need this
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, listing, lab_page = time.monotonic() + 90, None, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token={token}"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    listing = json.load(resp)
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/lab?token={token}", timeout=10
                ) as resp:
                    lab_page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert listing is not None, "JupyterLab did not answer on its REST API"
        served = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        assert served == NOTEBOOKS and len(served) >= 2
        assert "JupyterLab" in lab_page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    # Python: the conda pin must sit inside requires-python (>=3.11,<3.12).
    assert "python=3.11" in conda
    assert project["project"]["requires-python"] == ">=3.11,<3.12"
    # Runtime dependencies come only from pyproject (pip installs this project), so they cannot
    # drift; the dev tools are listed by name and must be exactly pyproject's dev group.
    assert "-e ." in pip
    listed = {_name(p) for p in pip if p != "-e ."}
    dev = {_name(r) for r in project["dependency-groups"]["dev"]}
    assert listed == dev
    runtime = {_name(r) for r in project["project"]["dependencies"]}
    assert not ({_name(c) for c in conda} - {"python", "pip"}) & runtime, (
        "runtime packages belong in pyproject.toml, not in environment.yml"
    )


def test_notebooks_carry_kernel_metadata_and_clean_counts():
    for name in NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", name
        assert nb["metadata"]["language_info"]["name"] == "python", name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        counts = [c["execution_count"] for c in code]
        assert counts == list(range(1, len(code) + 1)), f"{name}: run tools/run_notebooks.py"
        for cell in code:  # a chapter runs top to bottom: a failure it shows is caught, printed
            assert not any(o.get("output_type") == "error" for o in cell["outputs"]), name
            assert "raises-exception" not in cell["metadata"].get("tags", []), name
        checked = [
            c
            for c in code
            if "nbval-check-output" in c["metadata"].get("tags", [])
            or "".join(c["source"]).startswith("# NBVAL_CHECK_OUTPUT")
        ]
        assert checked, f"{name}: at least one deterministic cell must be compared by nbval"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_offline(name):
    source = (ROOT / "notebooks" / name).read_text()
    for banned in ("load_data(", "tensorflow_datasets", "fetch_openml", "urlopen", "fetch_"):
        assert banned not in source, f"{name} downloads data at run time ({banned})"


def test_readme_results_match_the_results_files():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import update_readme
    finally:
        sys.path.pop(0)
    text = (ROOT / "README.md").read_text()
    assert update_readme.updated(text) == text, "run: uv run python tools/update_readme.py"
