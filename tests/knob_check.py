"""Every control of every knob moved in a chapter's kernel, after the chapter's last cell.

conftest.py appends this file's text, plus ``print(check_knobs())``, as one more nbval item
(``<chapter>.ipynb::knobs``) to each chapter that calls ``lk.plots.knob``. A control moves the way
a learner moves it (a slider one step, a dropdown to its next option, a checkbox toggled); the
figure must never go blank, no error may show, and the first control must change the figure.
This covers each chapter's own draw function at the cost of its redraws only, in the kernel nbval
already ran; tests/test_jupyterlab.py checks the browser side on a few representative chapters.
"""

import ipywidgets as _widgets
from ipywidgets.widgets import widget as _widget_module


def _move(control) -> None:
    if isinstance(control, _widgets.widget_selection._Selection):
        control.index = (control.index + 1) % len(control.options)
    elif isinstance(control, _widgets.Checkbox):
        control.value = not control.value
    else:  # a number slider: one step up, or down at the top
        up = control.value + control.step <= control.max
        control.value = control.value + (control.step if up else -control.step)


def check_knobs() -> str:
    """Move every control of every live knob; raise AssertionError on a fault, else say so."""
    knobs = [
        w
        for w in list(_widget_module._instances.values())
        if "labkit-knob" in getattr(w, "_dom_classes", ())
    ]
    assert knobs, "the chapter calls lk.plots.knob but no knob is alive after its last cell"
    for box in knobs:
        controls = [  # the knob's children: its controls, then its note (HTML) and output
            c
            for c in box.children
            if isinstance(c, _widgets.ValueWidget)
            and not isinstance(c, _widgets.widget_string._String)
        ]
        for index, control in enumerate(controls):
            before, old = box.output.outputs, control.value
            _move(control)
            name = control.description
            assert control.value != old, f"control {index} ({name!r}) did not move"
            now = box.output.outputs
            assert now, f"moving {name!r} left the figure blank"
            errors = [o for o in now if o.get("output_type") == "error"]
            assert not errors, f"moving {name!r} shows an error: {errors[0].get('evalue')}"
            assert index > 0 or now != before, f"moving {name!r} changed nothing"
    return f"{len(knobs)} knob(s): every control redrew without an error"
