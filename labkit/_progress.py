"""Notebook progress bars that leave no dangling widget behind (used by ``lk.config.progress``).

tqdm's notebook bar with ``leave=False`` *closes* its widget when done, but the cell keeps an
output that points at the closed model. JupyterLab then shows "Error displaying widget: model not
found" under the cell after a save and reopen (the saved widget state omits closed models), or
during Run All when the bar closes before the browser has drawn it. This bar is shown under a
display id and, once closed, that output is replaced by an empty line: nothing refers to the
closed model any more. A bar that ends early (an error, a ``break``) stays, red, as in tqdm.
"""

from __future__ import annotations

from IPython.display import display
from tqdm.notebook import tqdm as notebook_tqdm

__all__ = ["VanishingBar"]


class VanishingBar(notebook_tqdm):
    """``tqdm.notebook.tqdm`` whose output is blanked, not left dangling, when it closes."""

    def __init__(self, *args, **kwargs):
        kwargs["display"] = False
        super().__init__(*args, **kwargs)
        self._handle = None
        if not self.disable:
            self._handle = display(self.container, display_id=True)
            self.displayed = True

    def close(self):
        super().close()
        handle, self._handle = self._handle, None
        if handle is not None and getattr(self.container, "comm", None) is None:  # closed
            handle.update({"text/plain": ""}, raw=True)
