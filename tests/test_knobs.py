"""lk.plots.knob (the chapters' widgets), notebook progress bars, and which chapters are trusted."""

import base64
import json
import os
import sys
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import nbformat
import pytest
from nbformat.sign import NotebookNotary

import labkit as lk
from labkit import jupyter_trust
from labkit.plots import knobs

sys.path.insert(0, str(Path(__file__).parent))
import knob_check  # noqa: E402  (what conftest.py runs in each chapter's kernel)

sys.path.pop(0)


def _title_of(png_output) -> bytes:
    return base64.b64decode(png_output["data"]["image/png"])


def _draw(calls):
    def draw(epsilon, label):
        calls.append((epsilon, label))
        print(f"epsilon = {epsilon:g}")
        fig, ax = lk.plots.new_figure()
        ax.plot([0, 1], [0, epsilon])
        ax.set_title(f"ε = {epsilon:g}, {label}")

    return draw


@pytest.fixture
def no_open_figures():
    """Start with no pyplot figure open: another test in this worker may have left one."""
    plt.close("all")


def test_knob_draws_once_and_redraws_on_every_change_with_exact_values(no_open_figures):
    calls = []
    eps = widgets.SelectionSlider(options=[0.1, 0.5, 10], value=0.5)
    label = widgets.Dropdown(options=[("not known", 0), ("ten", 10)], value=0)
    box = lk.plots.knob(_draw(calls), epsilon=eps, label=label)
    assert calls == [(0.5, 0)]  # exact value, no 10^-0.3 snapping
    first = box.output.outputs
    assert [o["output_type"] for o in first] == ["stream", "display_data"]
    assert first[0]["text"] == "epsilon = 0.5\n"
    assert _title_of(first[1]).startswith(b"\x89PNG")
    eps.value = 10
    label.value = 10
    assert calls == [(0.5, 0), (10, 0), (10, 10)]
    assert box.output.outputs[0]["text"] == "epsilon = 10\n"
    assert _title_of(box.output.outputs[1]) != _title_of(first[1])
    assert label.label == "ten"
    assert not plt.get_fignums()  # every figure was closed once rendered


def test_knob_replaces_the_figure_in_one_update_never_through_an_empty_output():
    seen = []
    eps = widgets.SelectionSlider(options=[0.1, 0.5], value=0.5)
    box = lk.plots.knob(_draw([]), epsilon=eps, label=widgets.Checkbox(description="a flag"))
    box.output.observe(lambda change: seen.append(change["new"]), names="outputs")
    eps.value = 0.1
    assert len(seen) == 1 and len(seen[0]) == 2  # one state change: old figure -> new figure


def test_knob_labels_are_whole_sliders_wait_for_release_and_the_note_is_shown():
    eps = widgets.FloatSlider(value=1.0, min=0.5, max=3.0)
    flag = widgets.Checkbox(description="output leaves the trusted circle")
    box = lk.plots.knob(_draw([]), epsilon=eps, label=flag)
    assert eps.description == "epsilon"  # the argument's name when none is given
    assert eps.style.description_width == "initial"
    assert flag.style.description_width == "initial" and flag.layout.width == "auto"
    assert eps.continuous_update is False
    notes = [c for c in box.children if isinstance(c, widgets.HTML)]
    assert len(notes) == 1 and "JupyterLab" in notes[0].value
    quiet = lk.plots.knob(_draw([]), note=None, epsilon=widgets.FloatSlider(1.0), label=flag)
    assert not any(isinstance(c, widgets.HTML) for c in quiet.children)


def test_knob_silences_progress_bars_while_drawing(monkeypatch):
    monkeypatch.delenv(lk.config.PROGRESS_ENV_VAR, raising=False)
    seen = []

    def draw(n):
        bar = lk.config.progress(range(n))
        seen.append(bar.disable)
        list(bar)

    lk.plots.knob(draw, n=widgets.IntSlider(3, min=1, max=5))
    assert seen == [True]
    assert lk.config.PROGRESS_ENV_VAR not in os.environ  # restored afterwards


def test_knob_shows_an_exception_as_an_error_output_and_keeps_working(no_open_figures):
    def draw(x):
        if x < 0:
            raise ValueError("x must be >= 0")
        fig, ax = plt.subplots()

    x = widgets.IntSlider(1, min=-1, max=1)
    box = lk.plots.knob(draw, x=x)
    x.value = -1
    (error,) = box.output.outputs
    assert error["output_type"] == "error" and error["evalue"] == "x must be >= 0"
    assert not plt.get_fignums()
    x.value = 0
    assert box.output.outputs[0]["output_type"] == "display_data"


def test_knob_rejects_bad_arguments():
    with pytest.raises(lk.ParameterError, match="draw"):
        lk.plots.knob("not a function", x=widgets.IntSlider())
    with pytest.raises(lk.ParameterError, match="controls"):
        lk.plots.knob(print)
    with pytest.raises(lk.ParameterError, match="x must be an ipywidgets value widget"):
        lk.plots.knob(print, x=widgets.HBox())
    blank = widgets.Dropdown(options=[("not known", None), ("10", 10)], value=None)
    assert blank.index is None  # ipywidgets shows this dropdown blank: the knob refuses it
    with pytest.raises(lk.ParameterError, match="parties"):
        lk.plots.knob(print, parties=blank)


def test_render_is_plain_jupyter_output():
    outputs = knobs.render(_draw([]), {"epsilon": 0.5, "label": "a"})
    for output in outputs:
        nbformat.validate(
            nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[output])])
        )


def _chapter(path, text):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    nb.cells[0].outputs = []
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def test_trust_signs_the_projects_chapters_and_nothing_else(tmp_path):
    root = tmp_path / "project"
    (root / "labkit").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'labkit'\n")
    (root / "notebooks" / "drafts").mkdir(parents=True)
    chapter = _chapter(root / "notebooks" / "03_dp.ipynb", "a chapter")
    other = _chapter(root / "notebooks" / "downloaded.ipynb", "someone else's")
    nested = _chapter(root / "notebooks" / "drafts" / "04_x.ipynb", "a draft")
    notary = NotebookNotary(db_file=":memory:", secret=b"test secret")
    signed = jupyter_trust.trust_chapters(notary, root)
    assert [p.name for p in signed] == ["03_dp.ipynb"]
    assert notary.check_signature(chapter)
    assert not notary.check_signature(other) and not notary.check_signature(nested)
    # No checkout next to the package (a wheel in site-packages): nothing is signed.
    assert jupyter_trust.project_chapters(tmp_path) == []


def test_trust_is_enabled_by_the_shipped_server_configuration():
    root = jupyter_trust.Path(jupyter_trust.__file__).resolve().parents[1]
    config = json.loads((root / "jupyter" / "labkit_server.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"] == {"labkit.jupyter_trust": True}
    assert config["LabApp"]["news_url"] is None
    overrides = json.loads((root / "jupyter" / "overrides.json").read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert {p.name for p in jupyter_trust.project_chapters()} >= {"03_differential_privacy.ipynb"}


def test_notebook_progress_bar_blanks_its_output_instead_of_leaving_a_closed_widget(monkeypatch):
    from unittest import mock

    from labkit import _progress

    handles = []
    monkeypatch.setattr(
        _progress, "display", lambda *a, **k: handles.append(mock.Mock()) or handles[-1]
    )
    done = _progress.VanishingBar(range(3), leave=False)
    list(done)
    assert done.container.comm is None  # tqdm closed the widget ...
    handles[0].update.assert_called_once_with({"text/plain": ""}, raw=True)  # ... and its view
    failed = _progress.VanishingBar(range(3), leave=False)
    for _ in failed:
        break
    failed.close()
    handles[1].update.assert_not_called()  # an interrupted bar stays visible (red), as in tqdm


def test_progress_picks_the_vanishing_bar_where_tqdm_auto_picks_a_notebook_bar(monkeypatch):
    import tqdm.auto
    from tqdm.notebook import tqdm as notebook_tqdm

    from labkit import _progress

    monkeypatch.delenv(lk.config.PROGRESS_ENV_VAR, raising=False)
    monkeypatch.setattr(_progress, "display", lambda *a, **k: None)
    monkeypatch.setattr(tqdm.auto, "tqdm", type("AutoBar", (notebook_tqdm,), {}))
    assert isinstance(lk.config.progress(range(2)), _progress.VanishingBar)
    assert not isinstance(lk.config.progress(range(2), leave=True), _progress.VanishingBar)


def _run_knob_check(monkeypatch, *boxes):
    """Run the conftest's in-kernel knob check here, on these knobs only."""
    import ipywidgets.widgets.widget as widget_module

    monkeypatch.setattr(widget_module, "_instances", {b.model_id: b for b in boxes})
    print(knob_check.check_knobs())


def test_the_chapters_knob_check_moves_every_control_and_fails_on_a_broken_draw(
    monkeypatch, capsys, no_open_figures
):
    seen = []

    def draw(level, mode, on):
        seen.append((level, mode, on))
        print(level, mode, on)

    controls = dict(
        level=widgets.IntSlider(value=10, min=0, max=10, step=5),  # at the top: moves down
        mode=widgets.Dropdown(options=["a", "b"], value="b"),  # last: wraps to the first
        on=widgets.Checkbox(value=False),
    )
    _run_knob_check(monkeypatch, lk.plots.knob(draw, **controls))
    assert seen == [(10, "b", False), (5, "b", False), (5, "a", False), (5, "a", True)]
    assert "1 knob(s): every control redrew without an error" in capsys.readouterr().out

    def broken(level):
        if level != 0:
            raise ValueError("the redraw broke")
        print(level)

    box = lk.plots.knob(broken, level=widgets.IntSlider(value=0, min=0, max=3))
    with pytest.raises(AssertionError, match="the redraw broke"):
        _run_knob_check(monkeypatch, box)

    def ignores_it(level):
        print("always the same")

    box = lk.plots.knob(ignores_it, level=widgets.IntSlider(value=0, min=0, max=3))
    with pytest.raises(AssertionError, match="changed nothing"):
        _run_knob_check(monkeypatch, box)
    with pytest.raises(AssertionError, match="no knob is alive"):
        _run_knob_check(monkeypatch)
