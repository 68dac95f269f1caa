"""Groups too small for an interval (nan bounds, n < 3) get no error bar, not a zero-width one."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from interp.plots.sustain import _errorbars  # noqa: E402


def _segments(ax) -> list[np.ndarray]:
    return [seg for c in ax.collections for seg in c.get_segments()]


def test_rows_without_interval_draw_no_bar():
    df = pd.DataFrame({"score": [1.0, 0.5, 0.25], "lo": [np.nan, 0.2, 0.1], "hi": [np.nan, 0.8, 0.5]})
    fig, ax = plt.subplots()
    _errorbars(ax, [2, 1, 0], df, horizontal=True)
    segs = _segments(ax)
    assert len(segs) == 2  # one bar per row with an interval
    assert sorted(tuple(np.round(s[:, 0], 3)) for s in segs) == [(0.1, 0.5), (0.2, 0.8)]
    assert sorted(float(s[0, 1]) for s in segs) == [0.0, 1.0]  # rows 1 and 2; the n < 3 row (y = 2) has none
    plt.close(fig)


def test_no_interval_at_all_draws_nothing():
    fig, ax = plt.subplots()
    _errorbars(ax, [0], pd.DataFrame({"score": [1.0], "lo": [np.nan], "hi": [np.nan]}))
    assert _segments(ax) == []
    plt.close(fig)
