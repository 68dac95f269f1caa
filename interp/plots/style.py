"""One figure style for the paper: two-column sizes, 8-9 pt fonts, Okabe–Ito colours, PNG+PDF output."""
from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
from cycler import cycler

COLUMN_WIDTH = 3.33
FULL_WIDTH = 6.9

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"]
"""Okabe–Ito colours (colour-blind safe), ordered so the first few stay distinct in greyscale too."""

ROLE_COLORS = {"success": PALETTE[0], "failed": PALETTE[1], "baseline": "#7F7F7F"}
"""Fixed colours for the recurring failed-vs-successful comparison, so every figure agrees."""

RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["Helvetica", "Arial", "DejaVu Sans"],
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.5,
    "axes.axisbelow": True,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "image.cmap": "viridis",
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}
"""rcParams of the style; TrueType (type 42) fonts keep PDF text editable and accepted by venues."""


def use_style() -> None:
    """Apply the paper style to matplotlib's global rcParams."""
    mpl.rcParams.update(RC)


def new_figure(width: str | float = "column", aspect: float = 0.62, nrows: int = 1, ncols: int = 1, **kw):
    """(fig, axes) in the paper style; width "column" (3.33 in), "full" (6.9 in) or inches; height = width * aspect."""
    use_style()
    if isinstance(width, str):
        if width not in ("column", "full"):
            raise ValueError(f'width must be "column", "full" or inches, got {width!r}')
        width = COLUMN_WIDTH if width == "column" else FULL_WIDTH
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, width * aspect), **kw)


def _stem(path_stem: str | Path) -> Path:
    p = Path(path_stem)
    return p.with_suffix("") if p.suffix.lower() in {".png", ".pdf", ".svg", ".html"} else p


def save_figure(fig, path_stem: str | Path, svg: bool = False, dpi: int = 200, close: bool = True) -> list[Path]:
    """Write <stem>.png (dpi) and <stem>.pdf (and .svg) side by side, creating folders; returns the paths.

    PDF/SVG carry no creation date, so re-running a script does not change unchanged figures. The figure
    is closed afterwards (pass close=False to keep drawing on it), so long runs do not pile up figures.
    """
    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(f"{stem}.png"), Path(f"{stem}.pdf")] + ([Path(f"{stem}.svg")] if svg else [])
    meta = {".png": None, ".pdf": {"CreationDate": None}, ".svg": {"Date": None}}
    for p in paths:
        fig.savefig(p, dpi=dpi, metadata=meta[p.suffix])
    if close:
        plt.close(fig)
    return paths


def plotly_template():
    """A plotly layout template matching the matplotlib style (palette, fonts, light grid, white ground)."""
    import plotly.graph_objects as go

    axis = dict(showgrid=True, gridcolor="#DDDDDD", gridwidth=0.5, zeroline=False, showline=True,
                linecolor="#444444", linewidth=0.6, ticks="outside", mirror=False)
    return go.layout.Template(layout=go.Layout(
        colorway=PALETTE,
        font=dict(family="Helvetica, Arial, DejaVu Sans, sans-serif", size=12),
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=axis,
        yaxis=axis,
        legend=dict(bgcolor="rgba(0,0,0,0)"),
        colorscale=dict(sequential="Viridis"),
    ))


def save_plotly(fig, path_stem: str | Path, include_plotlyjs: bool | str = True) -> Path:
    """Write <stem>.html that works offline.

    include_plotlyjs=True embeds plotly.js (~4.7 MB per file, fully portable); "directory" writes one
    shared plotly.min.js beside the HTML files instead. "cdn" is refused: the figures must open offline.
    """
    if include_plotlyjs == "cdn":
        raise ValueError('include_plotlyjs="cdn" needs network access; use True or "directory"')
    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = Path(f"{stem}.html")
    fig.write_html(path, include_plotlyjs=include_plotlyjs, full_html=True)
    return path
