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

from labkit.plots.knobs import NOTE as KNOB_NOTE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "book-shots"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WEB = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)

sys.path.insert(0, str(ROOT / "tools"))
import book_cells  # noqa: E402
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


def test_figure_style_keeps_text_readable():
    """Figures are at most MAX_WIDTH inches wide and no text is set under MIN_FONT points."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.font_manager import FontProperties

    from labkit import plots

    fig, _ = plots.new_figure(3, 1, figsize=(14, 3.4))
    assert fig.get_size_inches()[0] == plots.MAX_WIDTH
    fig, _ = plots.plot_bars(
        {"a rather long technique name, as chapter 06 has": 1.0}, "s", horizontal=True
    )
    fig.canvas.draw()
    assert fig.get_tightbbox().width <= plots.MAX_WIDTH
    plots.use_style()
    keys = ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize")
    points = {k: FontProperties(size=matplotlib.rcParams[k]).get_size_in_points() for k in keys}
    assert min(points.values()) >= plots.MIN_FONT, points
    small = re.findall(r"fontsize=(\d+)", Path(plots.__file__).read_text())
    assert not small, f"labkit.plots sets text under MIN_FONT: {small}"


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
        _offline(
            [sys.executable, str(ROOT / "tools" / "build_book.py"), "-W", "--lang=all", "--pdf"]
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # Only printed: a wall time depends on the machine's load, so the build's time budget lives in
    # benchmarks/book_build.py (a table per phase, load recorded), not in a test.
    print(f"both editions and their PDFs built offline in {seconds:.0f} s")
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
    pages += [f"zh_CN/{page}" for page in pages]
    shutil.rmtree(SHOTS, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "tests" / "book_browser.py"), str(site), str(SHOTS)]
    proc = subprocess.run(
        _offline([*cmd, *pages]), cwd=ROOT, capture_output=True, text=True, timeout=2400
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["network_cut"], "the browser test must run with the network cut"
    return report["pages"]


# --- The Chinese edition and the PDFs -------------------------------------------------------


@pytest.mark.parametrize("name", ["intro", *CHAPTERS])
def test_chinese_page_renders_offline(browser, name):
    """CJK glyphs (not boxes), typeset math, widgets' saved state; links both ways."""
    en, zh = browser[f"{name}.html"], browser[f"zh_CN/{name}.html"]
    assert zh["lang"].lower().startswith("zh"), zh["lang"]
    assert zh["cjk_glyphs_distinct"], (
        "CJK characters draw as boxes (apt-get install fonts-noto-cjk)"
    )
    assert re.search(r"[\u4e00-\u9fff]", zh["page_text"]), "no Chinese text on the page"
    assert zh["external_requests"] == [] and zh["untypeset"] == 0 and zh["mjx_errors"] == 0
    assert zh["mjx_containers"] == en["mjx_containers"], "math differs from the English page"
    assert zh["widgets_rendered"] >= zh["widget_views"] == en["widget_views"]
    assert en["language_links"] == [f"zh_CN/{name}.html"], en["language_links"]
    assert zh["language_links"] == [f"../{name}.html"], zh["language_links"]
    # a heading left in English (Sphinx keeps the English when it cannot use the translation)
    page = (build_book.HTML / "zh_CN" / f"{name}.html").read_text()
    headings = re.findall(r"<h[1-4]>(.*?)<a class=\"headerlink\"", page)
    english = [h for h in headings if not re.search(r"[\u4e00-\u9fff]", h)]
    assert len(headings) >= 2 and not english, f"untranslated headings: {english}"


def _cjk_glyphs_differ(pdf: Path, tmp: Path) -> bool:
    """Render page 1 with pdftoppm; the title's CJK characters must not all be the same box."""
    from PIL import Image

    layout = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    word = next(
        m
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]+)<',
            layout,
        )
        if re.fullmatch(r"[\u4e00-\u9fff]{2,}", m.group(5))
    )
    x0, y0, x1, y1 = (float(v) for v in word.groups()[:4])
    subprocess.run(
        ["pdftoppm", "-png", "-r", "144", "-f", "1", "-l", "1", str(pdf), str(tmp / "c")],
        check=True,
    )
    page = Image.open(next(tmp.glob("c-*.png"))).convert("L")
    scale, n = 2.0, len(word.group(5))  # 144 dpi / 72 pt
    step = (x1 - x0) / n
    cells = [
        page.crop(
            (
                int((x0 + i * step) * scale),
                int(y0 * scale),
                int((x0 + (i + 1) * step) * scale),
                int(y1 * scale),
            )
        ).tobytes()
        for i in range(n)
    ]
    return len(set(cells)) == n and all(min(c) < 128 for c in cells)


def _pdf(lang: str) -> Path:
    return build_book.OUT / ("course.pdf" if lang == "en" else f"course-{lang}.pdf")


@pytest.mark.parametrize("lang", build_book.LANGS)
def test_pdf_has_toc_math_figures_and_cjk(site, lang, tmp_path):
    _need(shutil.which("pdftoppm") is not None, "apt-get install -y poppler-utils")
    pdf = _pdf(lang)
    assert pdf.is_file(), f"no {pdf.name}"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 40, f"{pdf.name}: only {pages} pages"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    # The contents page read in its printed layout (CJK and Latin runs stay on their line).
    layout = subprocess.run(
        ["pdftotext", "-layout", "-l", "3", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    toc = layout[: layout.index("\f", layout.index("Contents" if lang == "en" else "目录"))]
    for name in CHAPTERS:  # every chapter in the printed contents, by its number
        assert f"{name[:2]} · " in toc, f"{pdf.name}: chapter {name} missing from the contents"
    captions = [p["caption"] for p in yaml.safe_load((NOTEBOOKS / "_toc.yml").read_text())["parts"]]
    english = [c for c in captions if c in toc]
    assert english == (captions if lang == "en" else []), f"{pdf.name}: part captions {english}"
    # Math: MathJax replaced every TeX source (the HTML tests check it typesets without error).
    assert "\\frac" not in text and "\\(" not in text, f"{pdf.name}: raw TeX in the PDF"
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True)
    assert len(images.stdout.splitlines()) - 2 >= 20, f"{pdf.name}: figures missing"
    # Code is printed whole: each chapter's longest line wraps at the margin, none is cut off.
    flat = re.sub(r"\s+", "", re.sub(r"\d+ / \d+\s*\f", "", text))  # no page footers
    for name in CHAPTERS:
        cells = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
        lines = [
            line
            for c in cells
            if c.cell_type == "code" and "remove-input" not in c.metadata.get("tags", [])
            for line in c.source.splitlines()
        ]
        longest = max(lines, key=len)
        assert re.sub(r"\s+", "", longest) in flat, f"{pdf.name}, {name}: cut off: {longest}"
    # Solutions are printed (their folds opened, labelled, no button text) after their exercises.
    label, button = (book_cells.SOLUTION_LABELS[lang][k] for k in ("printed", "hide"))
    solutions = sum(
        "solution" in cell.metadata.get("tags", [])
        for name in CHAPTERS
        for cell in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
    )
    labels = sum(line.strip() == label for line in text.splitlines())
    assert labels >= solutions >= 10, f"{pdf.name}: {labels} solution labels, {solutions} solutions"
    assert button not in text and "the solution" not in text, f"{pdf.name}: a fold's button text"
    if lang != "en":
        assert _cjk_glyphs_differ(pdf, tmp_path), f"{pdf.name}: CJK characters print as boxes"
    # Pages render: pdftoppm draws the first pages, and they are not blank.
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "p")],
        check=True,
    )
    shots = sorted(tmp_path.glob("p-*.png"))
    assert len(shots) == 3 and all(p.stat().st_size > 3000 for p in shots)


@pytest.mark.parametrize("name", CHAPTERS)
def test_page_renders_offline(browser, name):
    page = browser[f"{name}.html"]
    assert (SHOTS / f"{name}.png").stat().st_size > 10_000, "screenshot missing"
    assert page["external_requests"] == []
    failed = [f for f in page["failed_requests"] if "favicon.ico" not in f]
    assert failed == [], "requests that failed"
    assert all(img["loaded"] for img in page["images"]), page["images"]
    assert page["wide_code"] == [], "code cells wider than the page that do not scroll"
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


# The smallest figure text (labkit.plots.MIN_FONT points, drawn at figure.dpi 100) must read at
# 9 px or more where the page shows the figure: shown / natural width >= 9 / (MIN_FONT * 100/72).
MIN_TEXT_PX = 9


@pytest.mark.parametrize("name", ["intro", *CHAPTERS])
def test_page_layout(browser, name):
    """Nothing wider than the page at 1280 or 400 px; code keeps its lines; one search box."""
    page = browser[f"{name}.html"]
    assert page["overflowing"] == [], f"{name}: elements wider than the column at 1280 px"
    assert page["page_overflow"] <= 0, f"{name}: the page scrolls sideways at 1280 px"
    narrow = page["narrow"]
    assert narrow["page_overflow"] <= 0, f"{name}: the page scrolls sideways at 400 px"
    assert narrow["overflowing"] == [], f"{name}: elements wider than the page at 400 px"
    assert page["code_wrapping"] == [], f"{name}: code wraps (indentation lost)"
    assert page["search_boxes"] == 1, f"{name}: {page['search_boxes']} search boxes"
    footer = page["footer_text"]
    assert "MIT licence" in footer, footer
    assert "Last updated" not in footer and "©" not in footer, footer


@pytest.mark.parametrize("name", CHAPTERS)
def test_figure_text_is_readable(browser, name):
    from labkit.plots import MIN_FONT

    small = []
    for fig in browser[f"{name}.html"]["figures"]:
        if fig["natural"] and fig["shown"]:
            px = MIN_FONT * 100 / 72 * fig["shown"] / fig["natural"]
            if px < MIN_TEXT_PX:
                small.append(f"{fig['src']}: {px:.1f} px")
    assert not small, f"{name}: figure text under {MIN_TEXT_PX} px (labkit.plots.MAX_WIDTH)"


@pytest.mark.parametrize("name", CHAPTERS)
def test_tables_and_solutions(browser, name):
    """Tables render as tables (no Markdown pipes); a solution's output is inside its fold."""
    page = browser[f"{name}.html"]
    # a separator row: |---| (or |—|, the site's typography of ---); not |o-1| - |o|
    pipes = re.findall(r".{0,40}\|\s*(?::?-{3,}:?|[—–])\s*\|.{0,40}", page["page_text"])
    assert not pipes, f"{name}: a Markdown table printed as text: {pipes[:2]}"
    assert page["solution_outputs_outside"] == 0, f"{name}: a solution's output shows unasked"


@pytest.mark.parametrize("name", CHAPTERS)
def test_widget_pages_say_what_is_live(browser, name):
    page = browser[f"{name}.html"]
    if not page["widget_views"]:
        pytest.skip("no widget on this page")
    assert page["live_widget_inputs"] == 0, "a saved widget reacts on the static page"
    # the knob's own note (lk.plots.knob), drawn from the saved widget state beside the figure
    note = " ".join(KNOB_NOTE.split())
    assert note in page["widget_text"], f"{name}: the knob's note is not shown beside the widget"


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
