"""Progress bars whose final state survives in a saved notebook.

`from labkit.progress import tqdm` is `tqdm.auto.tqdm`, except in a notebook: there the widget bar is displayed
with a display id, and when the bar closes that display is replaced by the same widget with its final line as
the text (`training: 100%|██████████| 1000/1000 [00:41<00:00, 24.1step/s]`). JupyterLab still draws the widget;
GitHub, nbviewer and exports, which cannot run widgets, read that text instead of the "0%" tqdm's widget
carries from the moment it was first displayed. A bar with leave=False leaves nothing, as in a terminal.
"""

from __future__ import annotations

from tqdm.auto import tqdm as _auto_tqdm

try:
    from tqdm.notebook import tqdm_notebook
except ImportError:  # pragma: no cover - tqdm without its notebook module
    tqdm_notebook = None

__all__ = ["tqdm", "trange"]


def display(obj, **kwargs):
    """IPython's display (a module-level name, so tests can watch it)."""
    from IPython.display import display as ipython_display

    return ipython_display(obj, **kwargs)


class KeepsFinalText:
    """Mixin for tqdm_notebook: displays the bar under a display id and, on close, updates that display with
    the bar's final line as its text/plain (or empties it when leave=False)."""

    _handle = None

    def __init__(self, *args, **kwargs):
        display_here = kwargs.pop("display", True)
        super().__init__(*args, display=False, **kwargs)
        if display_here and not self.disable and self.delay <= 0:
            self._show()

    def _show(self):
        self._handle = display(self.container, display_id=True)
        self.displayed = True

    def display(self, msg=None, pos=None, close=False, bar_style=None, check_delay=True):
        super().display(msg=msg, pos=pos, close=close, bar_style=bar_style, check_delay=False)
        if check_delay and self.delay > 0 and not self.displayed:
            self._show()

    def close(self):
        if self.disable or self._handle is None:
            return super().close()
        leave = self.leave or (self.total and self.n < self.total)  # a failed bar stays, as tqdm's does
        final = self.format_meter(**self.format_dict)
        super().close()
        handle, self._handle = self._handle, None
        if not leave:
            handle.update({"text/plain": ""}, raw=True)
        else:
            bundle = {"text/plain": final}
            if getattr(self.container, "comm", None) is not None:  # still open: JupyterLab keeps drawing it
                bundle["application/vnd.jupyter.widget-view+json"] = {
                    "version_major": 2, "version_minor": 0, "model_id": self.container._model_id}
            handle.update(bundle, raw=True)


if tqdm_notebook is not None:
    class NotebookBar(KeepsFinalText, tqdm_notebook):
        """The notebook bar, whichever environment this runs in (what `tqdm` is inside a notebook)."""
else:  # pragma: no cover
    NotebookBar = None

if tqdm_notebook is not None and issubclass(_auto_tqdm, tqdm_notebook):
    class tqdm(KeepsFinalText, _auto_tqdm):  # noqa: N801 - tqdm's own name
        """tqdm.auto.tqdm whose final line is kept in the saved notebook."""
else:
    tqdm = _auto_tqdm


def trange(*args, **kwargs):
    """`tqdm(range(*args), **kwargs)`."""
    return tqdm(range(*args), **kwargs)
