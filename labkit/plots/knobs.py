"""Knobs: a chapter's controls and the figure they redraw, as one widget.

The chapters call ``lk.plots.knob(draw, name=control, ...)`` instead of ``ipywidgets.interact``
because a learner in JupyterLab should see:

- the old figure until the new one is ready: the figure is rendered off screen and swapped into
  the output in one state update (no blank output while a knob recomputes);
- no progress bar inside the knob: a tqdm bar is a widget of its own, and one that closes before
  the browser draws it leaves "Error displaying widget: model not found" behind;
- full labels (``description_width='initial'``) and the exact values the chapter names (use a
  ``SelectionSlider`` of exact options rather than a log slider that snaps to 10^-0.3);
- a short note that the knob is live only in JupyterLab with the chapter running: the static
  course website shows the figure saved with the chapter, and moving a control there changes
  nothing.

The figure lives in the knob's ``Output`` widget, so it is saved with the widget state and the
course website shows it without a static copy after the knob.
"""

from __future__ import annotations

import contextlib
import html
import io
import os
import traceback
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt

from labkit._checks import ParameterError
from labkit.config import PROGRESS_ENV_VAR

__all__ = ["NOTE", "knob", "render"]

NOTE = (
    "Live in JupyterLab once the chapter has run: each change redraws the figure. "
    "On the static course website the figure is the one saved with the chapter."
)


@contextlib.contextmanager
def _no_progress():
    """Silence labkit's progress bars (``lk.config.progress``) for the duration."""
    old = os.environ.get(PROGRESS_ENV_VAR)
    os.environ[PROGRESS_ENV_VAR] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PROGRESS_ENV_VAR, None)
        else:
            os.environ[PROGRESS_ENV_VAR] = old


def _figure_output(fig) -> dict:
    from IPython.core.pylabtools import print_figure

    png = print_figure(fig, "png", bbox_inches="tight", base64=True)
    text = f"<Figure size {fig.bbox.width:g}x{fig.bbox.height:g} with {len(fig.axes)} Axes>"
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": text},
        "metadata": {},
    }


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def render(draw: Callable[..., object], values: dict) -> tuple[dict, ...]:
    """Call ``draw(**values)`` and return what it printed and drew as Jupyter output dicts.

    Figures it opens are rendered to PNG and closed; an exception becomes an ``error`` output
    (shown in the knob, as a cell would show it) instead of escaping into the widget machinery.
    """
    before = set(plt.get_fignums())
    out, err = io.StringIO(), io.StringIO()
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _no_progress():
        try:
            draw(**values)
        except Exception as exc:
            error = {
                "output_type": "error",
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": traceback.format_exception(exc),
            }
    outputs = [_stream(name, s.getvalue()) for name, s in (("stdout", out), ("stderr", err))]
    outputs = [o for o in outputs if o["text"]]
    for num in sorted(set(plt.get_fignums()) - before):
        fig = plt.figure(num)
        if error is None:
            outputs.append(_figure_output(fig))
        plt.close(fig)
    if error is not None:
        outputs.append(error)
    return tuple(outputs)


def _prepare(name: str, control: widgets.Widget) -> None:
    if not isinstance(control, widgets.ValueWidget):
        raise ParameterError(
            name, control, "an ipywidgets value widget (a slider, a dropdown, a checkbox)"
        )
    if isinstance(control, widgets.widget_selection._Selection) and control.index is None:
        # ipywidgets reads the value None as "nothing selected": the control shows blank.
        raise ParameterError(name, control.value, "one of its options, selected (not None)")
    if not getattr(control, "description", None):
        control.description = name
    if "description_width" in control.style.keys:
        control.style.description_width = "initial"  # the whole label, never "noise_mul..."
    if isinstance(control, widgets.Checkbox):  # its label sits right of the box, in a fixed width
        control.indent = False
        control.layout.width = "auto"
    if "continuous_update" in control.keys:
        control.continuous_update = False  # one redraw when the slider is released


def knob(
    draw: Callable[..., object], *, note: str | None = NOTE, **controls: widgets.Widget
) -> widgets.VBox:
    """Controls that redraw ``draw(**values)`` whenever one of them changes.

    Args:
        draw: draws a figure (through ``labkit.plots``) and/or prints, for keyword arguments named
            as the controls.
        note: a short line under the controls (``None``: none); by default it says that the knob
            is live only in JupyterLab with the chapter running.
        **controls: one ipywidgets value widget per argument of ``draw``; its ``description``
            defaults to the argument's name, and its label is never cut.

    Returns:
        A ``VBox`` (controls, note, output) with the first figure already drawn; ``box.output``
        is its ``Output`` widget and ``box.redraw()`` redraws it.
    """
    if not callable(draw):
        raise ParameterError("draw", draw, "a callable that draws the figure")
    if not controls:
        raise ParameterError("controls", controls, "at least one name=widget")
    for name, control in controls.items():
        _prepare(name, control)
    output = widgets.Output(layout=widgets.Layout(min_height="2em"))

    def redraw(_change=None) -> None:
        # One assignment replaces the old figure by the new one: it stays until this one is ready.
        output.outputs = render(draw, {name: c.value for name, c in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    children = list(controls.values())
    if note:
        text = f'<span style="font-size: 0.85em; opacity: 0.75">{html.escape(note)}</span>'
        children.append(widgets.HTML(text))
    box = widgets.VBox([*children, output])
    box.add_class("labkit-knob")
    box.output, box.redraw = output, redraw
    redraw()
    return box
