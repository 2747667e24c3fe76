"""Sphinx extension for the course website: how notebook cells look on the page.

Loaded by notebooks/_config.yml (``local_extensions``). It runs after MyST-NB has turned the
notebooks into document trees and before MyST-NB wraps hidden cells in ``<details>``:

- a code cell tagged ``solution`` (config ``book_solution_tag``) is collapsed, code and output,
  behind a "Show the solution" summary in the edition's language (MyST-NB's own hide-cell
  mechanism, works without JS), whatever hide-* tags it also carries;
- a figure without alt text gets one from its section heading and the call that drew it
  (a cell can still set its own: cell metadata ``mystnb: {image: {alt: ...}}``);
- every page links to the same page in the other language (config ``book_language``);
- a warning printed to stderr loses its file path and echoed source line
  (``/tmp/ipykernel_1/123.py:1: InsecureKeyWarning: ...`` becomes ``InsecureKeyWarning: ...``).
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

# "<path>.py:<line>: <Name>Warning: message" as printed by warnings.showwarning.
_WARNING = re.compile(r"^\S*?[\w.<>-]+\.py:\d+: (\w*(?:Warning|Error)\b.*)$")
_PLOT_CALL = re.compile(r"\b((?:lk\.)?plots?\.\w+|lk\.\w+|plt\.\w+|ax\.\w+)\(")


def strip_warning_paths(text: str) -> str:
    """Drop the file path from warning lines and the indented source line echoed after each."""
    out: list[str] = []
    skip_echo = False
    for line in text.splitlines(keepends=True):
        match = _WARNING.match(line.rstrip("\n"))
        if match:
            out.append(match.group(1) + ("\n" if line.endswith("\n") else ""))
            skip_echo = True
            continue
        if skip_echo and line.startswith("  "):
            skip_echo = False
            continue
        skip_echo = False
        out.append(line)
    return "".join(out)


def _tags(cell: nodes.Element) -> list[str]:
    return list((cell.get("cell_metadata") or {}).get("tags", []))


def _section_title(node: nodes.Node) -> str:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.section) and parent.children:
            return parent[0].astext()
        parent = parent.parent
    return ""


def _alt_text(cell: nodes.Element, number: int) -> str:
    source = cell[0].astext() if cell.children else ""
    calls = [c for c in _PLOT_CALL.findall(source) if "plot" in c or c.startswith("lk.")]
    title = _section_title(cell)
    alt = f"Figure {number}" + (f" of section “{title}”" if title else "")
    return alt + (f", drawn by {calls[-1]}" if calls else "")


class CellPresentation(SphinxPostTransform):
    """Collapse solutions, add alt text to figures, strip paths from warnings."""

    default_priority = 198  # before MyST-NB's HideInputCells (199) builds the <details>
    formats = ("html",)

    def run(self, **kwargs) -> None:
        config = self.app.config
        figure = 0
        for cell in list(self.document.findall(nodes.container)):
            if cell.get("nb_element") != "cell_code":
                continue
            # A solution hides its code *and* its output (a hide-input tag alone would leave
            # the answer in view below the folded code).
            if config.book_solution_tag in _tags(cell):
                cell["hide_mode"] = "all"
                labels = SOLUTION_LABELS.get(config.book_language, SOLUTION_LABELS["en"])
                cell["prompt_show"], cell["prompt_hide"] = labels["show"], labels["hide"]
            for image in cell.findall(nodes.image):
                figure += 1
                if not image.get("alt"):
                    image["alt"] = _alt_text(cell, figure)
            for block in cell.findall(nodes.literal_block):
                if "stderr" in block.get("classes", []):
                    text = block.astext()
                    cleaned = strip_warning_paths(text)
                    if cleaned != text:
                        block.children = [nodes.Text(cleaned)]
                        block.rawsource = cleaned


# A solution's labels in each edition: the fold's two button texts, and the heading it gets on
# paper (tools/book_pdf.py opens every fold). Sphinx's catalogues translate the text of pages,
# not the labels MyST-NB writes around a folded cell.
SOLUTION_LABELS = {
    "en": {"show": "Show the solution", "hide": "Hide the solution", "printed": "Solution"},
    "zh_CN": {"show": "显示解答", "hide": "隐藏解答", "printed": "解答"},
}


# The other edition of each page: the Chinese site is copied into the English one as zh_CN/.
_OTHER_LANGUAGE = {
    "en": ("zh_CN/", "中文版", "zh-CN"),
    "zh_CN": ("../", "English edition", "en"),
}


def add_language_switch(app: Sphinx, pagename: str, templatename, context: dict, doctree) -> None:
    """Put a link to the same page in the other language at the top of each page."""
    if app.builder.name != "html" or "body" not in context:
        return
    prefix, label, hreflang = _OTHER_LANGUAGE.get(app.config.book_language, _OTHER_LANGUAGE["en"])
    href = f"{prefix}{pagename}.html"
    note = ""
    if app.config.book_language != "en" and app.config.locale_dirs:
        done = Path(app.config.locale_dirs[0], app.config.book_language, "DONE")
        if pagename not in (done.read_text().split() if done.is_file() else []):
            note = (
                '<div class="admonition note book-untranslated"><p>本页的中文翻译尚未完成，'
                "未翻译的段落暂以英文显示。</p></div>\n"
            )
    context["body"] = (
        f'<p class="book-language-switch"><a href="{href}" hreflang="{hreflang}" '
        f'lang="{hreflang}">{label}</a></p>\n' + note + context["body"]
    )


def setup(app: Sphinx) -> dict:
    app.add_config_value("book_language", "en", "html")
    app.connect("html-page-context", add_language_switch)
    app.add_config_value("book_solution_tag", "solution", "env")
    app.add_post_transform(CellPresentation)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
