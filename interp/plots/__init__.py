"""Paper figures: one shared style (see style.py)."""
from .style import (
    COLUMN_WIDTH,
    FULL_WIDTH,
    PALETTE,
    ROLE_COLORS,
    new_figure,
    plotly_template,
    save_figure,
    save_plotly,
    use_style,
)

__all__ = [
    "COLUMN_WIDTH", "FULL_WIDTH", "PALETTE", "ROLE_COLORS", "new_figure", "plotly_template", "save_figure",
    "save_plotly", "use_style",
]
