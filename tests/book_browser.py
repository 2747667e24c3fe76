"""Load pages of the built course website in headless Chromium and report what rendered.

Run by tests/test_book.py inside a network namespace with only loopback up (``unshare -n``):
  python tests/book_browser.py SITE_DIR SHOT_DIR page.html [page.html ...]
It serves SITE_DIR on 127.0.0.1, drives one Chromium over the DevTools protocol, and prints one
JSON object: {"network_cut": bool, "pages": {page: {...measurements...}}}. Each page is also
saved as SHOT_DIR/<page>.png. No assertions here: the test decides.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1600",
]

# Runs in the page once it has loaded: waits for MathJax and the widget manager, then measures.
MEASURE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]').length;
  for (let i = 0; i < 100 && views &&
       document.querySelectorAll('.jupyter-widgets').length === 0; i++) await sleep(100);
  const math = [...document.querySelectorAll('span.math, div.math')];
  const all = document.body.cloneNode(true);
  all.querySelectorAll('script, style').forEach(e => e.remove());
  const text = document.body.cloneNode(true);
  text.querySelectorAll('script, style, mjx-container, div.cell_input, ' +
    'div[class^="highlight-"]:not(.output)').forEach(e => e.remove());
  const wide = [...document.querySelectorAll('div.cell_input pre')]
    .filter(p => p.scrollWidth > p.clientWidth + 1 &&
                 !['auto', 'scroll'].includes(getComputedStyle(p).overflowX))
    .map(p => p.textContent.slice(0, 80));
  const visible = e => e.offsetParent !== null && e.getBoundingClientRect().width > 0;
  // Elements that stick out of the article column (or the page) without a scrolling ancestor.
  const article = document.querySelector('article.bd-article') || document.body;
  const limit = Math.min(article.getBoundingClientRect().right,
                         document.documentElement.clientWidth) + 1;
  const clipped = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const overflowing = [...article.querySelectorAll('*')]
    .filter(e => visible(e) && e.getBoundingClientRect().right > limit && !clipped(e))
    .map(e => e.tagName.toLowerCase() + '.' + [...e.classList].join('.') + ': ' +
              (e.textContent || '').trim().slice(0, 60));
  const codeWrap = [...document.querySelectorAll('div.cell_input pre')]
    .filter(p => !getComputedStyle(p).whiteSpace.startsWith('pre') ||
                 getComputedStyle(p).whiteSpace === 'pre-wrap')
    .map(p => p.textContent.slice(0, 60));
  const figures = [...document.querySelectorAll('div.cell_output img')].filter(visible)
    .map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth, shown: i.clientWidth}));
  const solutionOutputs = [...document.querySelectorAll('.cell.tag_solution .cell_output')]
    .filter(o => !o.closest('details')).length;
  const search = [...document.querySelectorAll(
    '.search-button-field, .search-button, .bd-search, input[type="search"]')]
    .filter(visible).length;
  const footer = [...document.querySelectorAll('footer')].map(f => f.textContent).join(' ');
  const widgetInputs = [...document.querySelectorAll('.jupyter-widgets input, ' +
    '.jupyter-widgets select, .jupyter-widgets .ui-slider')];
  return {
    mathjax_loaded: !!(window.MathJax && MathJax.startup),
    math_spans: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).length,
    mjx_containers: document.querySelectorAll('mjx-container').length,
    mjx_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    widget_views: views,
    widgets_rendered: document.querySelectorAll('.widget-subarea .jupyter-widgets').length,
    widget_text: [...document.querySelectorAll('.widget-subarea')].map(w => w.innerText)
      .join(' ').replace(/\s+/g, ' '),
    widget_inputs: document.querySelectorAll('.jupyter-widgets input').length,
    images: [...document.images].map(i => ({src: i.getAttribute('src'),
      loaded: i.complete && i.naturalWidth > 0, alt: i.getAttribute('alt')})),
    solutions_collapsed: [...document.querySelectorAll('.tag_solution details')]
      .filter(d => !d.open).length,
    solutions: document.querySelectorAll('.cell.tag_solution').length,
    wide_code: wide,
    overflowing: overflowing.slice(0, 20),
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    code_wrapping: codeWrap.slice(0, 5),
    figures: figures,
    solution_outputs_outside: solutionOutputs,
    search_boxes: search,
    footer_text: footer.replace(/\s+/g, ' ').trim(),
    live_widget_inputs: widgetInputs.filter(e => getComputedStyle(e).pointerEvents !== 'none')
      .length,
    lang: document.documentElement.lang,
    language_links: [...document.querySelectorAll('.book-language-switch a')]
      .map(a => a.getAttribute('href')),
    cjk_glyphs_distinct: (() => {
      // Two CJK characters drawn in the page's font: missing glyphs ("tofu") draw the same box.
      const font = '32px ' + getComputedStyle(document.body).fontFamily;
      const draw = ch => {
        const c = document.createElement('canvas'); c.width = c.height = 40;
        const g = c.getContext('2d'); g.font = font; g.fillText(ch, 2, 32);
        return Array.from(g.getImageData(0, 0, 40, 40).data).join(',');
      };
      const a = draw('隐'), b = draw('私');
      return a !== b && a !== draw(' ');
    })(),
    page_text: all.textContent,
    prose_text: text.textContent,
  };
})()
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(root: Path) -> int:
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _network_cut() -> bool:
    """True when nothing but loopback is reachable (no name lookup, no route out)."""
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=2).close()
    except OSError:
        try:
            socket.getaddrinfo("pypi.org", 443)
        except OSError:
            return True
    return False


class Browser:
    """One headless Chromium, one tab, driven over the DevTools protocol."""

    def __init__(self, chromium: str):
        self.profile = tempfile.mkdtemp(prefix="book-chromium-")
        self.proc = subprocess.Popen(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                break
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=300)
        self.next_id = 0
        self.events: list[dict] = []
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            self.call(method)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def screenshot(self, path: Path) -> None:
        png = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(png))

    def visit(self, url: str, shot: Path) -> dict:
        self.events = []
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        result = self.call(
            "Runtime.evaluate", expression=MEASURE, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        info = result["result"]["value"]
        self.screenshot(shot)
        if info["widgets_rendered"]:  # a second picture with the first widget in view
            first = "document.querySelector('.widget-subarea')"
            self.call("Runtime.evaluate", expression=f"{first}.scrollIntoView({{block: 'center'}})")
            self.screenshot(shot.with_name(f"{shot.stem}-widget.png"))
        requests = [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        info["external_requests"] = [
            u for u in requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))
        ]
        failed_ids = {
            e["params"]["requestId"]: e["params"].get("errorText", "")
            for e in self.events
            if e.get("method") == "Network.loadingFailed"
        }
        for e in self.events:
            if e.get("method") == "Network.responseReceived":
                status = e["params"]["response"]["status"]
                if status >= 400:
                    failed_ids[e["params"]["requestId"]] = f"HTTP {status}"
        by_id = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        }
        info["failed_requests"] = [f"{by_id.get(i, i)}: {why}" for i, why in failed_ids.items()]
        info["console_errors"] = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
            for e in self.events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"
        ]
        return info

    def narrow(self, shot: Path, width: int = 400) -> dict:
        """Lay the loaded page out at a phone width; report sideways overflow, take a picture.

        The page is not loaded again (no second MathJax typesetting): on five chapters, a fresh
        load at 400 px gave the same overflow report in two to three times the time.
        """
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=True,
        )
        try:
            self.call("Runtime.evaluate", expression="window.scrollTo(0, 0)")
            result = self.call(
                "Runtime.evaluate", expression=MEASURE, awaitPromise=True, returnByValue=True
            )
            self.screenshot(shot)
            info = result["result"]["value"]
            return {k: info[k] for k in ("overflowing", "page_overflow", "code_wrapping")}
        finally:
            self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def chromium() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def main(argv: list[str]) -> int:
    site, shots, pages = Path(argv[0]), Path(argv[1]), argv[2:]
    shots.mkdir(parents=True, exist_ok=True)
    report = {"network_cut": _network_cut(), "pages": {}}
    port = _serve(site)
    browser = Browser(chromium())
    try:
        for page in pages:
            url = f"http://127.0.0.1:{port}/{page}"
            stem = page.removesuffix(".html").replace("/", "-")  # zh_CN/x.html: zh_CN-x.png
            report["pages"][page] = browser.visit(url, shots / f"{stem}.png")
            if not page.startswith("zh_CN/"):  # the Chinese pages share the layout
                report["pages"][page]["narrow"] = browser.narrow(shots / f"{stem}-400px.png")
    finally:
        browser.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
