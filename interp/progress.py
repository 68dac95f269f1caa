"""Progress bars: tqdm's notebook widget where ipywidgets is installed, the text bar everywhere else.

`tqdm.auto` picks the widget in any Jupyter kernel and, without ipywidgets, prints "IProgress not found"
on every bar; here the widget is used only when it can be drawn.
"""
from __future__ import annotations

import importlib.util
import sys


def _in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip is not None and hasattr(ip, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_widgets() -> bool:
    if "ipywidgets" in sys.modules:
        return sys.modules["ipywidgets"] is not None
    return importlib.util.find_spec("ipywidgets") is not None


def progress_bar(**kwargs):
    """A tqdm bar (``total=``, ``desc=``, ``disable=``, ``leave=`` as in tqdm)."""
    if _in_notebook() and _has_widgets():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(**kwargs)
