"""JupyterLab as a learner meets it, in headless Chromium: knobs on first open, no error, state kept

One JupyterLab, started the way the README starts it (``jupyter lab notebooks/``, from this
environment, so with the configuration labkit installs), on a fresh copy of representative chapters
that have a knob (see CHAPTERS) and with fresh Jupyter user directories (no notary database, no
settings: a fresh machine). For each chapter the test opens it, checks that the saved knobs render
before anything runs, runs all cells, checks that no cell and no widget shows an error, moves every
control of the knob and checks that the figure changes without the output going blank, saves, shuts
the kernel down, reopens and checks the knob again from the saved file. Chromium is driven over the
DevTools protocol (``tests/book_browser.py``'s driver); every process started here is stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Representative chapters, not all seven with a knob: between them every kind of control (checkbox,
# dropdown, number slider, selection slider) and both kinds of figure (text, image). What differs
# per chapter is covered by cheaper tests: each chapter's draw function by the in-kernel knob check
# (tests/knob_check.py, after nbval's last cell), its saved widget state and trust signature by
# tests/test_book.py and tests/test_knobs.py. Every chapter here costs a Run All on a busy machine
# (the seven took ~400 s of the suite's ~12 min; these three ~110 s).
CHAPTERS = [  # chapter, controls in its knob (one knob per chapter)
    ("07_choosing_a_method.ipynb", 5),  # four checkboxes, a dropdown; printed text
    ("04_homomorphic_encryption.ipynb", 2),  # a dropdown, an integer slider; a figure
    ("08_language_models.ipynb", 1),  # a selection slider; a figure
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RUN_TIMEOUT = 420  # seconds for one chapter's Run All on a loaded 2-core machine
ERROR_TEXTS = ("Error displaying widget", "model not found", "Traceback (most recent call last)")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]
websocket = pytest.importorskip("websocket", reason="websocket-client (the docs group) is missing")
sys.path.insert(0, str(Path(__file__).parent))
from book_browser import Browser  # noqa: E402

# What the page reports about the open notebook: knobs, their controls and outputs, error text.
STATE = r"""
(() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const knobs = [...nb.querySelectorAll('.labkit-knob')].map(k => {
    const out = k.querySelector('.widget-output');
    const controls = [...k.querySelectorAll(
      '.widget-slider, .widget-dropdown, .widget-checkbox')].map(c => {
        const label = c.querySelector('.widget-label');
        const readout = c.querySelector('.widget-readout');
        const select = c.querySelector('select');
        const box = c.querySelector('input[type=checkbox]');
        const lab = label || c.querySelector('label');
        return {
          kind: c.classList.contains('widget-slider') ? 'slider' : select ? 'dropdown' : 'checkbox',
          label: lab ? lab.textContent : '',
          label_cut: lab ? lab.scrollWidth > lab.clientWidth + 1 : false,
          value: readout ? readout.textContent : select ?
            (select.selectedIndex < 0 ? '' : select.options[select.selectedIndex].text) :
            box ? String(box.checked) : '',
        };
      });
    return {
      controls,
      items: out ? out.querySelectorAll('.jp-OutputArea-output').length : 0,
      images: out ? [...out.querySelectorAll('img')]
        .map(i => i.src.length + ':' + i.src.slice(-64)) : [],
      text: out ? out.textContent : '',
      note: k.textContent.includes('live only') || k.textContent.includes('JupyterLab'),
    };
  });
  return {
    knobs,
    text: nb.textContent,  // not innerText: cells out of view are not laid out (windowing)
    raw_widgets: [...nb.querySelectorAll('.jp-OutputArea-output')]
      .filter(o => /^(interactive|VBox|HBox)\(children=/.test(o.textContent.trim())).length,
    dirty: document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')
      ?.title?.className?.includes('jp-mod-dirty') ?? null,
  };
})()
"""


# The open notebook panel (headless Chromium has no focus, so shell.currentWidget may be null).
PANEL = "[...jupyterapp.shell.widgets('main')].find(w => w.context && w.sessionContext)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


class Lab:
    """``jupyter lab notebooks/`` in ``workdir`` with fresh user directories, and its REST API."""

    def __init__(self, workdir: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        home = workdir / "user"
        env = {
            **os.environ,
            # A fresh machine: no notary database, no lab settings, no workspaces of a previous run.
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
        }
        env.pop("LABKIT_PROGRESS", None)  # a learner's default: progress bars on
        jupyter = Path(sys.executable).with_name("jupyter")
        self.log_path = workdir / "jupyterlab.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [str(jupyter), "lab", "notebooks/", "--no-browser", "--allow-root",
             f"--port={self.port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}",
             # Test-only: window.jupyterapp, so the test can run, save and open by command.
             "--LabApp.expose_app_in_browser=True"],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.workdir, self.url = workdir, f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(self.api("status"))
                break
            except OSError as err:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.log_path.read_text()
                    raise RuntimeError(f"JupyterLab did not start:\n{log}") from err
                time.sleep(0.5)

    def api(self, path: str) -> str:
        return f"{self.url}/api/{path}?token={self.token}"

    def defaults(self, plugin: str) -> dict:
        """``plugin``'s defaults as JupyterLab serves them (schema defaults with overrides.json)."""
        schema = _get(f"{self.url}/lab/api/settings/{plugin}?token={self.token}")["schema"]
        return {k: v.get("default") for k, v in schema["properties"].items()}

    def shutdown_kernels(self) -> None:
        for kernel in _get(self.api("kernels")):
            req = urllib.request.Request(self.api(f"kernels/{kernel['id']}"), method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Page:
    """The JupyterLab page in Chromium."""

    def __init__(self, browser: Browser, lab: Lab):
        self.browser, self.lab = browser, lab
        browser.call("Emulation.setFocusEmulationEnabled", enabled=True)  # as a focused window

    def js(self, expression: str, timeout: float | None = None):
        result = self.browser.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        state = json.dumps(self.js(STATE))[:1500]
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; page: {state}")

    def open(self, name: str) -> dict:
        """Load JupyterLab with only ``name`` open (``?reset``: no restored tabs)."""
        self.browser.call(
            "Page.navigate", url=f"{self.lab.url}/lab/tree/{name}?reset&token={self.lab.token}"
        )
        self.wait("!!window.jupyterapp && !!document.querySelector('.jp-Notebook')", 120, "lab")
        self.wait(
            f"(() => {{ const w = {PANEL}; if (w) jupyterapp.shell.activateById(w.id);"
            " return !!(w && w.context.isReady && w.sessionContext.session"
            " && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle'); })()",
            180,
            "the notebook and an idle kernel",
        )
        return self.knob_state("the saved knob")

    def knob_state(self, what: str) -> dict:
        """Wait until the knob shows its controls and a non-empty output; return the page state."""
        self.wait(
            "(() => { const k = document.querySelector('.jp-Notebook .labkit-knob');"
            " return !!(k && k.querySelector('.widget-output .jp-OutputArea-output')); })()",
            60,
            what,
        )
        time.sleep(0.5)  # let the rest of the widgets settle
        return self.js(STATE)

    def run_all(self) -> None:
        self.js(
            "window.__run = null; jupyterapp.commands.execute('notebook:run-all-cells')"
            ".then(ok => window.__run = {ok}, e => window.__run = {error: String(e)}); 1"
        )
        result = self.wait("window.__run", RUN_TIMEOUT, "Run All to finish")
        errors = self.js(
            "[...document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]')]"
            ".map(e => e.innerText.slice(-1500))"
        )
        assert result == {"ok": True}, (result, errors)

    def save(self) -> None:
        self.js("jupyterapp.commands.execute('docmanager:save').then(() => 1)")
        self.wait(f"!{PANEL}.context.model.dirty", 60, "save")

    def move(self, index: int, control: dict) -> None:
        """Change control ``index`` of the knob as a learner would (keyboard, select, click)."""
        if control["kind"] == "slider":
            self.js(
                "(() => { const c = document.querySelector('.jp-Notebook .labkit-knob')"
                f".querySelectorAll('.widget-slider, .widget-dropdown, .widget-checkbox')[{index}];"
                " c.querySelector('.noUi-handle').focus(); return 1; })()"
            )
            for kind in ("rawKeyDown", "keyUp"):
                self.browser.call(
                    "Input.dispatchKeyEvent", type=kind, key="ArrowRight", code="ArrowRight",
                    windowsVirtualKeyCode=39, nativeVirtualKeyCode=39,
                )  # fmt: skip
        elif control["kind"] == "dropdown":
            self.js(
                "(() => { const c = document.querySelector('.jp-Notebook .labkit-knob')"
                f".querySelectorAll('.widget-slider, .widget-dropdown, .widget-checkbox')[{index}];"
                " const s = c.querySelector('select');"
                " s.selectedIndex = (s.selectedIndex + 1) % s.options.length;"
                " s.dispatchEvent(new Event('change', {bubbles: true})); return 1; })()"
            )
        else:
            self.js(
                "(() => { const c = document.querySelector('.jp-Notebook .labkit-knob')"
                f".querySelectorAll('.widget-slider, .widget-dropdown, .widget-checkbox')[{index}];"
                " c.querySelector('input[type=checkbox]').click(); return 1; })()"
            )

    def kernel_requests(self) -> int:
        """How many times the open notebook's kernel went busy (counted from the first call)."""
        return self.js(
            f"(() => {{ const k = {PANEL}.sessionContext.session.kernel;"
            " if (!k.__labkit) { k.__labkit = {busy: 0};"
            " k.statusChanged.connect((_, s) => { if (s === 'busy') k.__labkit.busy++; }); }"
            " return k.__labkit.busy; })()"
        )

    def kernel_done_since(self, busy: int) -> bool:
        """True once the kernel went busy after the count ``busy`` and is idle again."""
        return self.js(
            f"(() => {{ const k = {PANEL}.sessionContext.session.kernel;"
            f" return k.__labkit.busy > {busy} && k.status === 'idle'; }})()"
        )

    def console(self, kind: str) -> list[str]:
        return [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
            for e in self.browser.events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == kind
        ]


def _no_errors(state: dict, where: str) -> None:
    for text in ERROR_TEXTS:
        assert text not in state["text"], f"{where}: the notebook shows {text!r}"
    assert state["raw_widgets"] == 0, f"{where}: a widget shows as raw text, not as a widget"


def _check_knob(state: dict, controls: int, where: str) -> dict:
    _no_errors(state, where)
    assert len(state["knobs"]) == 1, f"{where}: expected one knob, found {len(state['knobs'])}"
    knob = state["knobs"][0]
    assert len(knob["controls"]) == controls, f"{where}: controls {knob['controls']}"
    for c in knob["controls"]:
        assert c["label"] and not c["label_cut"], f"{where}: label cut or missing: {c}"
        if c["kind"] != "checkbox":
            assert c["value"].strip(), f"{where}: a control shows no value: {c}"
    assert knob["items"] >= 1 and (knob["images"] or knob["text"].strip()), f"{where}: no figure"
    assert knob["note"], f"{where}: the knob does not say it is live only in JupyterLab"
    return knob


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("jupyterlab")
    (work / "notebooks").mkdir()
    for name, _ in CHAPTERS:  # byte-identical copies: a signature covers the content
        shutil.copy2(ROOT / "notebooks" / name, work / "notebooks" / name)
    # the files the chapters read relative to their folder, as in the checkout (02: listings/)
    shutil.copytree(ROOT / "notebooks" / "listings", work / "notebooks" / "listings")
    server = Lab(work)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab):
    browser = Browser(CHROMIUM)
    try:
        yield Page(browser, lab)
    finally:
        browser.close()


def test_server_is_configured_by_the_project(lab):
    assert lab.defaults("@jupyter-widgets/jupyterlab-manager:plugin")["saveState"] is True
    news = lab.defaults("@jupyterlab/apputils-extension:notification")
    assert news["fetchNews"] == "false" and news["checkForUpdates"] is False
    assert "labkit: trusted" in lab.log_path.read_text()


@pytest.mark.parametrize("name,controls", CHAPTERS, ids=[n[:2] for n, _ in CHAPTERS])
def test_chapter_knob_in_jupyterlab(lab, page, name, controls):
    first = _check_knob(page.open(name), controls, f"{name}, first open")

    page.run_all()
    after_run = _check_knob(page.knob_state("the knob after Run All"), controls, f"{name}, Run All")
    saved_values = [c["value"] for c in after_run["controls"]]
    assert saved_values == [c["value"] for c in first["controls"]], "Run All changed the defaults"

    redrew = []
    for index, control in enumerate(after_run["controls"]):
        before = page.js(STATE)["knobs"][0]
        busy = page.kernel_requests()
        page.move(index, control)
        # The first control must redraw (a training run may take a while); a later one may leave
        # the output as it is (07: the number of parties does not change every recommendation),
        # which is final once the kernel has handled the change (busy, then idle again).
        deadline, changed = time.monotonic() + RUN_TIMEOUT, None
        while time.monotonic() < deadline:  # poll: the output never goes blank on the way
            now = page.js(STATE)
            knob = now["knobs"][0]
            assert knob["items"] >= 1, f"{name}: the figure vanished while control {index} redrew"
            _no_errors(now, f"{name}, moving control {index}")
            if (knob["images"], knob["text"]) != (before["images"], before["text"]):
                changed = knob
                break
            if index > 0 and page.kernel_done_since(busy):
                time.sleep(0.5)  # the output messages precede idle; let the page draw them
                now = page.js(STATE)["knobs"][0]
                if (now["images"], now["text"]) != (before["images"], before["text"]):
                    changed = now
                break
            time.sleep(0.1)
        value = page.js(STATE)["knobs"][0]["controls"][index]["value"]
        assert value != control["value"], f"{name}: control {index} did not move: {control}"
        redrew.append(changed is not None)
    assert redrew[0], f"{name}: moving {after_run['controls'][0]} did not change the figure"
    time.sleep(1)  # let a last redraw land
    moved = page.js(STATE)["knobs"][0]

    page.save()
    lab.shutdown_kernels()
    on_disk = json.loads((lab.workdir / "notebooks" / name).read_text())
    assert not [
        o for c in on_disk["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
    ], f"{name}: a cell has an error output"
    state_ids = set(
        on_disk["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    )
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in on_disk["cells"] for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]  # fmt: skip
    assert views and set(views) <= state_ids, f"{name}: a widget output has no saved state"

    reopened = _check_knob(page.open(name), controls, f"{name}, reopened after save")
    assert [c["value"] for c in reopened["controls"]] == [c["value"] for c in moved["controls"]]
    assert reopened["images"] == moved["images"] and reopened["text"] == moved["text"]
    lab.shutdown_kernels()


def test_console_has_no_version_mismatch_and_no_news(page):
    warnings = page.console("warning") + page.console("error")
    assert not [w for w in warnings if "Unsatisfied version" in w], warnings
    assert "official Jupyter news" not in (page.js("document.body.innerText") or "")
