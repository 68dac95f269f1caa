"""A read-only browser viewer of a run directory: the report's tables linked to their records, each item's
baseline and conditions side by side, ablation arms beside their original, and token-level CAS.

    v = interp.viewer.view("runs/demo")      # serves it on a free local port; a notebook cell shows it inline
    v.url, v.stop()
    interp.viewer.export_html("runs/demo", "demo.html")   # one self-contained file that opens offline

CLI: `interp view RUN [--port N]`, `interp view RUN --export out.html`.
"""
from __future__ import annotations

import os

from .export import export_html
from .server import Viewer, serve


def view(run_dir: str | os.PathLike, port: int = 0) -> Viewer:
    """Serve the viewer of `run_dir` on 127.0.0.1 (`port` 0: any free one) from a background thread."""
    return Viewer(run_dir, port)


__all__ = ["Viewer", "export_html", "serve", "view"]
