"""Print the single-page build of the course to one PDF with headless Chromium (offline).

Used by tools/build_book.py --pdf. Why Chromium and not LaTeX: the pages already render math
(the bundled MathJax), figures, tables and CJK text (fonts-noto-cjk) correctly in Chromium, which
the browser tests check; Sphinx's LaTeX route would need a TeX Live with xeCJK (gigabytes),
re-typesets MathJax-only constructs differently and drops the widgets' saved views.
Before printing, every solution's fold is opened, so solutions follow their exercises, and code
wraps at the margin (the website scrolls a long line sideways; paper cannot, so it would be cut).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tools")]
import book_browser  # noqa: E402  (the DevTools driver the browser tests use)
from book_cells import SOLUTION_LABELS  # noqa: E402  (the site's labels for a solution)

del sys.path[:2]

PREPARE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  // On paper every fold is open: a solution's "Hide the solution" button becomes its label.
  const printed = __PRINTED_LABELS__;
  const label = printed[document.documentElement.lang.replace('-', '_')] || printed.en;
  document.querySelectorAll('.tag_solution details > summary').forEach(s => {
    s.textContent = label;
    s.style.listStyle = 'none';
    s.style.fontWeight = 'bold';
  });
  // A printed table of contents: the chapters (h1) and their sections (h2), linked.
  const main = document.querySelector('article.bd-article') || document.body;
  const toc = document.createElement('nav');
  toc.id = 'pdf-toc';
  toc.innerHTML = '<h1>' + (document.documentElement.lang.startsWith('zh') ? '目录' : 'Contents')
    + '</h1>';
  const list = document.createElement('ol');
  main.querySelectorAll('h1, h2').forEach((h, i) => {
    if (!h.id) h.id = 'pdf-toc-' + i;
    const li = document.createElement('li');
    li.className = h.tagName === 'H1' ? 'pdf-toc-chapter' : 'pdf-toc-section';
    const a = document.createElement('a');
    a.href = '#' + h.id;
    a.textContent = h.textContent.replace(/#$/, '').trim();
    li.appendChild(a);
    list.appendChild(li);
  });
  toc.appendChild(list);
  main.insertBefore(toc, main.firstChild);
  const style = document.createElement('style');
  style.textContent = `
    #pdf-toc { break-after: page; } #pdf-toc ol { list-style: none; padding-left: 0; }
    .pdf-toc-chapter { font-weight: bold; margin-top: .4em; }
    .pdf-toc-section { margin-left: 1.5em; }
    article.bd-article section > h1 { break-before: page; }
    .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header, .prev-next-footer,
    .book-language-switch, .header-article { display: none !important; }
    div.cell_input pre, div.cell_input div.highlight pre, div.cell_output pre {
      white-space: pre-wrap !important; overflow-wrap: anywhere; font-size: 0.8em; }
    mjx-container[display="true"] { overflow: visible; }`;
  document.head.appendChild(style);
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]').length;
  for (let i = 0; i < 100 && views &&
       document.querySelectorAll('.jupyter-widgets').length === 0; i++) await sleep(100);
  await Promise.all([...document.images].map(i => i.complete ? 0 :
    new Promise(r => { i.onload = i.onerror = r; })));
  return document.querySelectorAll('mjx-container').length;
})()
"""


def print_pdf(site: Path, page: str, out: Path) -> Path:
    """Serve site on loopback, load page, open the folds, print it to out (A4)."""
    port = book_browser._serve(site)
    browser = book_browser.Browser(book_browser.chromium())
    try:
        browser.ws.settimeout(900)  # loading and laying out the whole course takes a while
        browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/{page}")
        browser.wait_event("Page.loadEventFired", timeout=900)
        printed = {lang: labels["printed"] for lang, labels in SOLUTION_LABELS.items()}
        prepare = PREPARE.replace("__PRINTED_LABELS__", json.dumps(printed, ensure_ascii=False))
        browser.call("Runtime.evaluate", expression=prepare, awaitPromise=True)
        pdf = browser.call(
            "Page.printToPDF",
            printBackground=True,
            paperWidth=8.27,
            paperHeight=11.69,
            marginTop=0.6,
            marginBottom=0.6,
            marginLeft=0.6,
            marginRight=0.6,
            displayHeaderFooter=True,
            headerTemplate="<span></span>",
            footerTemplate=(
                '<div style="font-size:8px;width:100%;text-align:center">'
                '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
            ),
            generateDocumentOutline=True,
            generateTaggedPDF=True,
        )["data"]
    finally:
        browser.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(pdf))
    return out
