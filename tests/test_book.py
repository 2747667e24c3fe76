"""The course website: built offline with warnings as errors, then read in a real browser.

The build and browser tests need the docs group (`uv sync --group docs`) and Chromium
(`apt-get install -y chromium`); without them they skip, except under CI, where they fail.
The browser runs in a network namespace with only loopback up (`unshare -n`), so anything the
site would fetch from the web fails visibly.
"""

from __future__ import annotations

import html.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "book-shots"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WEB = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)

sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402
import run_notebooks  # noqa: E402

sys.path.pop(0)


def _need(condition: bool, why: str) -> None:
    """Skip when a tool is missing on a workstation; fail under CI, which must have it."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide this: {why}")
        pytest.skip(why)


def _offline(cmd: list[str]) -> list[str]:
    """Wrap cmd to run in a new network namespace with only loopback up."""
    flags = "-n" if os.geteuid() == 0 else "-rn"  # unprivileged: in a user namespace too
    return ["unshare", flags, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]


def _can_cut_network() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run(_offline(["true"]), capture_output=True).returncode == 0


# --- Checks that need nothing but the repository --------------------------------------------


def test_toc_lists_exactly_the_chapters():
    toc = yaml.safe_load((NOTEBOOKS / "_toc.yml").read_text())
    listed = [
        entry["file"]
        for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}])
        for entry in part["chapters"]
    ]
    assert len(CHAPTERS) >= 8
    missing = sorted(set(CHAPTERS) - set(listed))
    assert not missing, f"add these chapters to notebooks/_toc.yml: {missing}"
    assert listed == sorted(listed), "chapters are listed in their numbered order"
    for name in [toc["root"], *listed]:
        assert list(NOTEBOOKS.glob(f"{name}.*")), f"_toc.yml lists a missing file: {name}"
    intro = (NOTEBOOKS / "intro.md").read_text()
    unmapped = [name for name in CHAPTERS if f"]({name}.ipynb)" not in intro]
    assert not unmapped, f"add these chapters to the chapter map in notebooks/intro.md: {unmapped}"


def test_run_notebooks_keeps_widget_state():
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"widgets": {WIDGET_STATE: {"state": {"a": {}}}}, "toc": 1, "papermill": {}}
    run_notebooks.clean(nb)
    assert set(nb.metadata) == {"kernelspec", "widgets"}
    assert nb.metadata["widgets"][WIDGET_STATE]["state"] == {"a": {}}


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_saved_widget_view_has_saved_state(name):
    """A widget output renders on the site only if the notebook kept the state it refers to."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    views = [
        out["data"][WIDGET_VIEW]["model_id"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if WIDGET_VIEW in out.get("data", {})
    ]
    missing = [v for v in views if v not in state]
    assert not missing, f"re-run with tools/run_notebooks.py (it saves widget state): {missing}"


def test_widget_scripts_ship_with_their_licences():
    """The book builds offline: the widget scripts are in the repo, checked, with licences."""
    vendored = build_book.VENDORED
    sums = dict(
        reversed(line.split()) for line in (vendored / "SHA256SUMS").read_text().splitlines()
    )
    assert {"embed-amd.js", "require.js"} <= set(sums)
    readme = (vendored / "README.md").read_text()
    for licence in ("BSD-3-Clause", "MIT", "OFL"):
        assert licence in readme
    assert "npm" not in Path(build_book.__file__).read_text().split("def refresh_widgets")[0]


def test_book_cells_strip_warning_paths():
    _need(importlib.util.find_spec("sphinx") is not None, "uv sync --group docs")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book_cells
    finally:
        sys.path.pop(0)
    text = (
        "/tmp/ipykernel_18355/2279773057.py:1: InsecureKeyWarning: 1024-bit key\n"
        "  pk, sk = lk.cached_keypair(1024)  # demo\n"
        "C:\\Users\\x\\labkit\\he.py:12: UserWarning: careful\n"
        "  warnings.warn('careful')\n"
        "next line\n"
    )
    assert book_cells.strip_warning_paths(text) == (
        "InsecureKeyWarning: 1024-bit key\nUserWarning: careful\nnext line\n"
    )


def test_book_cells_in_a_sphinx_build(tmp_path):
    """Solutions collapse, figures get alt text, warnings lose their paths: in a real build."""
    _need(importlib.util.find_spec("myst_nb") is not None, "uv sync --group docs")
    png = (  # a 1x1 PNG
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
        "rkJggg=="
    )
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Demo\n\n## Exercise 1"),
            nbformat.v4.new_code_cell(
                "answer = 6 * 7\nprint(answer)",
                metadata={"tags": ["solution"]},
                outputs=[nbformat.v4.new_output("stream", text="42\n")],
            ),
            nbformat.v4.new_code_cell(
                "fig, ax = lk.plots.new_figure()",
                outputs=[
                    nbformat.v4.new_output("display_data", data={"image/png": png}),
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text="/tmp/ipykernel_7/1.py:1: UserWarning: careful\n  warn('careful')\n",
                    ),
                ],
            ),
        ]
    )
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    nbformat.write(nb, src / "index.ipynb")
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        'extensions = ["myst_nb", "book_cells"]\nnb_execution_mode = "off"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", str(src), str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (out / "index.html").read_text()
    solution = page[page.index("tag_solution") :]
    assert solution.index("<details") < solution.index("answer")
    assert "Show the solution" in solution
    assert re.search(
        r'<img alt="Figure 1 of section “Exercise 1”, drawn by lk.plots.new_figure"', page
    )
    assert "UserWarning: careful" in page and "/tmp/" not in page and "warn(" not in page


# --- The built site --------------------------------------------------------------------------


class _Page(html.parser.HTMLParser):
    """Collects link targets and the URLs a page loads (script, link, img, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: set[str] = set()
        self.loads: list[tuple[str, str]] = []
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.add(attrs["href"].split("#")[0])
        for key in ("src", "href", "srcset", "data"):
            if attrs.get(key) and tag in ("script", "link", "img", "iframe", "source", "object"):
                self.loads.append((tag, attrs[key]))
        if tag == "img":
            self.images.append(attrs)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def site() -> Path:
    """Build the site with warnings as errors, with the network cut; return its html folder."""
    _need(importlib.util.find_spec("jupyter_book") is not None, "uv sync --group docs")
    _need(_can_cut_network(), "unshare -n (a network namespace) is not permitted here")
    start = time.perf_counter()
    proc = subprocess.run(
        _offline([sys.executable, str(ROOT / "tools" / "build_book.py"), "-W"]),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    print(f"book built offline in {seconds:.0f} s")
    assert seconds < 180, f"the build took {seconds:.0f} s"
    return build_book.HTML


def test_every_chapter_page_links_to_every_other(site):
    pages = {name: site / f"{name}.html" for name in CHAPTERS}
    for name, path in pages.items():
        assert path.exists(), f"no page for {name}"
        hrefs = _parse(path).hrefs
        missing = [o for o in CHAPTERS if o != name and f"{o}.html" not in hrefs]
        assert not missing, f"{name} does not link to {missing}"
        assert "intro.html" in hrefs


def test_every_image_exists_and_has_alt_text(site):
    count = 0
    for path in sorted(site.glob("*.html")):
        for img in _parse(path).images:
            src = img.get("src", "")
            if src.startswith("data:"):
                continue
            count += 1
            assert (path.parent / src.split("?")[0]).is_file(), f"{path.name}: missing {src}"
            assert (img.get("alt") or "").strip(), f"{path.name}: {src} has no alt text"
    assert count >= 10, "the chapters' figures are missing"


def test_nothing_loads_from_the_web(site):
    for path in sorted(site.glob("*.html")):
        web = [(tag, url) for tag, url in _parse(path).loads if WEB.match(url)]
        assert not web, f"{path.name} loads from the web: {web}"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_widget_scripts_load_once_and_only_where_needed(site):
    for name in CHAPTERS:
        text = (site / f"{name}.html").read_text()
        loads = len(re.findall(r"<script[^>]*src=\"[^\"]*embed-amd\.js", text))
        assert loads == (1 if WIDGET_VIEW in text else 0), name
    assert (site / "_static" / "widgets" / "embed-amd.js").is_file()
    assert (site / "_static" / "widgets" / "require.js").is_file()


# --- The site in a browser with the network cut ------------------------------------------------


@pytest.fixture(scope="module")
def browser(site) -> dict:
    """Load every chapter page (and the landing page) in headless Chromium, offline."""
    _need(shutil.which("chromium") is not None, "apt-get install -y chromium")
    pages = ["intro.html", *(f"{name}.html" for name in CHAPTERS)]
    shutil.rmtree(SHOTS, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "tests" / "book_browser.py"), str(site), str(SHOTS)]
    proc = subprocess.run(
        _offline([*cmd, *pages]), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["network_cut"], "the browser test must run with the network cut"
    return report["pages"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_page_renders_offline(browser, name):
    page = browser[f"{name}.html"]
    assert (SHOTS / f"{name}.png").stat().st_size > 10_000, "screenshot missing"
    assert page["external_requests"] == []
    failed = [f for f in page["failed_requests"] if "favicon.ico" not in f]
    assert failed == [], "requests that failed"
    assert all(img["loaded"] for img in page["images"]), page["images"]
    assert page["wide_code"] == [], "code cells wider than the page"
    # Math: every span typeset by the local MathJax, none in error.
    if page["math_spans"]:
        assert page["mathjax_loaded"]
    assert page["mjx_containers"] == page["math_spans"]
    assert page["untypeset"] == 0 and page["mjx_errors"] == 0
    # Widgets: every saved view is drawn by the local widget manager.
    if page["widget_views"]:
        assert page["widgets_rendered"] >= page["widget_views"]
    assert page["solutions_collapsed"] == page["solutions"], "solutions must start collapsed"


def test_a_widget_renders_offline(browser):
    page = browser["07_choosing_a_method.html"]
    assert page["widget_views"] >= 1
    assert page["widgets_rendered"] >= 1 and page["widget_inputs"] >= 1
    assert (SHOTS / "07_choosing_a_method-widget.png").is_file()


def test_most_chapters_show_typeset_math(browser):
    typeset = [name for name in CHAPTERS if browser[f"{name}.html"]["mjx_containers"] > 0]
    assert len(typeset) >= 5, typeset


@pytest.mark.parametrize("name", ["intro", *CHAPTERS])
def test_page_text_is_clean(browser, name):
    """No test markers, temporary paths, or math left as raw $...$ anywhere a reader looks."""
    page = browser[f"{name}.html"]
    found = {
        "NBVAL (a test marker)": re.findall(r".{0,30}nbval.{0,30}", page["page_text"], re.I),
        "/tmp/ (a temporary path)": re.findall(r".{0,30}/tmp/.{0,30}", page["page_text"]),
        "$ (raw math)": re.findall(r".{0,30}\$.{0,30}", page["prose_text"]),
    }
    found = {what: hits[:3] for what, hits in found.items() if hits}
    assert not found, f"{name}: {found}"
