"""Statistics (Wilson, bootstrap, SustainScore, failed-vs-success comparisons) and the figure style."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from interp.errors import InterpError
from interp.stats import (
    aggregate_effect,
    benjamini_hochberg,
    bootstrap_ci,
    curve_with_ci,
    mann_whitney_by_cell,
    paired_bootstrap_diff,
    per_item_rates,
    proportion,
    step_curves,
    sustain_score,
    wilson_ci,
)

PLANTED = [(3, 1), (10, 5), (20, 8)]


def test_wilson_hand_values():
    assert wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_ci(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_ci(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_ci(8, 10, conf=0.99)[0] < wilson_ci(8, 10)[0]
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    with pytest.raises(InterpError):
        wilson_ci(3, 2)


def test_proportion():
    p = proportion(3, 4)
    assert (p.k, p.n, p.p) == (3, 4, 0.75) and p.lo < 0.75 < p.hi
    assert math.isnan(proportion(0, 0).p)


def test_sustain_score_counts_baseline_successes_only():
    base = [True, True, True, False, True, False]
    cons = [True, False, True, True, True, False]
    s = sustain_score(base, cons)
    assert (s.k, s.n) == (3, 4) and s.p == 0.75
    assert (s.lo, s.hi) == wilson_ci(3, 4)
    assert sustain_score([True, True], [False, False]).p == 0.0
    assert sustain_score([True, True], [True, True]).hi == 1.0


def test_sustain_score_errors():
    with pytest.raises(InterpError, match="no baseline successes: SustainScore is undefined"):
        sustain_score([False, False], [True, False])
    with pytest.raises(InterpError, match="aligned by item"):
        sustain_score([True, False], [True])


def test_bootstrap_ci():
    x = np.random.default_rng(0).normal(1.0, 1.0, 200)
    est, lo, hi = bootstrap_ci(x, n_boot=4000, seed=1)
    assert est == pytest.approx(x.mean())
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert lo == pytest.approx(est - 1.96 * se, abs=0.03) and hi == pytest.approx(est + 1.96 * se, abs=0.03)
    assert bootstrap_ci(x, n_boot=500, seed=3) == bootstrap_ci(x, n_boot=500, seed=3)
    const = bootstrap_ci(np.full(10, 2.0), stat=np.median, n_boot=200)
    assert const == (2.0, 2.0, 2.0)
    assert bootstrap_ci(x, stat=lambda v: float(np.max(v)), n_boot=50)[2] == x.max()


def test_paired_bootstrap_diff_uses_pairing():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 3, 300)
    a = difficulty + 0.5 + rng.normal(0, 0.2, 300)
    b = difficulty + rng.normal(0, 0.2, 300)
    d, lo, hi = paired_bootstrap_diff(a, b, n_boot=2000)
    assert d == pytest.approx(a.mean() - b.mean())
    assert lo < d < hi and hi - lo < 0.1
    wins = np.array([1, 1, 1, 0, 1, 1, 0, 1])
    assert paired_bootstrap_diff(wins, wins, n_boot=200) == (0.0, 0.0, 0.0)
    with pytest.raises(InterpError):
        paired_bootstrap_diff([1, 0], [1])


def test_per_item_rates_weights_items_equally():
    df = pd.DataFrame({
        "item": ["a"] * 4 + ["b"] * 2 + ["c"] * 2,
        "ok": [1, 1, 1, 1, 0, 0, 1, 0],
    })
    r = per_item_rates(df, "item", "ok", n_boot=2000)
    assert r.rates.to_dict() == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert r.mean == pytest.approx(0.5) and (r.n_items, r.n_obs) == (3, 8)
    assert 0.0 <= r.lo < 0.5 < r.hi <= 1.0
    with pytest.raises(InterpError):
        per_item_rates(df, "item", "missing")


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).uniform(size=200) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), sps.false_discovery_control(p))
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.5]), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    out = benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)


def _cas(rng, n, planted=False):
    x = rng.beta(2, 8, size=(n, 30, 9))
    if planted:
        for layer, head in PLANTED:
            x[:, layer, head] = rng.beta(4, 6, size=n)
    return x


def test_planted_heads_found_exactly():
    rng = np.random.default_rng(0)
    df = mann_whitney_by_cell(_cas(rng, 40, planted=True), _cas(rng, 60), n_boot=1000)
    assert len(df) == 270 and {"p_bh", "rank_biserial", "rb_lo", "rb_hi", "cohens_d"} <= set(df.columns)
    sig = sorted(zip(df.layer[df.significant], df["head"][df.significant]))
    assert sig == PLANTED
    hits = df[df.significant]
    assert (hits["diff"] > 0).all() and (hits.rb_lo > 0).all() and (hits.cohens_d > 0.8).all()
    assert (df.rb_lo <= df.rank_biserial).all() and (df.rank_biserial <= df.rb_hi).all()
    assert (df.n_failed == 40).all() and (df.n_success == 60).all()


def test_cell_stats_match_scipy():
    rng = np.random.default_rng(1)
    f, s = rng.normal(size=(12, 2, 3)), rng.normal(size=(15, 2, 3))
    df = mann_whitney_by_cell(f, s, n_boot=0)
    row = df[(df.layer == 1) & (df["head"] == 2)].iloc[0]
    res = sps.mannwhitneyu(f[:, 1, 2], s[:, 1, 2], alternative="two-sided")
    assert row.U == pytest.approx(res.statistic) and row.p == pytest.approx(res.pvalue)
    assert row.rank_biserial == pytest.approx(2 * res.statistic / (12 * 15) - 1)
    pooled = np.sqrt((11 * f[:, 1, 2].var(ddof=1) + 14 * s[:, 1, 2].var(ddof=1)) / 25)
    assert row.cohens_d == pytest.approx((f[:, 1, 2].mean() - s[:, 1, 2].mean()) / pooled)
    assert df.rb_lo.isna().all()
    with pytest.raises(InterpError):
        mann_whitney_by_cell(f, s[:, :1])
    with pytest.raises(InterpError):
        mann_whitney_by_cell(f[:0], s)


def test_null_discoveries_rare():
    any_hit = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        df = mann_whitney_by_cell(_cas(rng, 40), _cas(rng, 60), n_boot=0)
        any_hit.append(bool(df.significant.any()))
    assert np.mean(any_hit) <= 0.1


def test_aggregate_effect():
    rng = np.random.default_rng(0)
    e = aggregate_effect(rng.normal(1, 1, 80), rng.normal(0, 1, 120), n_boot=2000)
    assert e.diff_lo < e.diff < e.diff_hi and e.diff_lo > 0
    assert e.rb_lo < e.rank_biserial < e.rb_hi and e.rb_lo > 0 and e.p < 1e-6
    assert (e.n_failed, e.n_success) == (80, 120)
    sep = aggregate_effect([5, 6, 7], [1, 2], n_boot=200)
    assert sep.rank_biserial == 1.0 and sep.diff == pytest.approx(4.5)
    assert set(e.to_dict()) >= {"diff", "rank_biserial", "p", "cohens_d"}


def test_step_curves_binning():
    long = np.arange(40, dtype=float)
    out = step_curves([long], n_bins=4)
    np.testing.assert_allclose(out[0], [4.5, 14.5, 24.5, 34.5])
    short = np.array([1.0, 3.0])
    np.testing.assert_allclose(step_curves([short], n_bins=4)[0], [1, 1, 3, 3])
    odd = np.array([0.0, 3.0, 6.0])
    np.testing.assert_allclose(step_curves([odd], n_bins=2)[0], [1.0, 5.0])
    cas = [np.ones((7, 30, 9)), np.zeros((25, 30, 9)), np.zeros((0, 30, 9))]
    b = step_curves(cas, n_bins=5)
    assert b.shape == (3, 5, 30, 9)
    assert np.allclose(b[0], 1) and np.allclose(b[1], 0) and np.isnan(b[2]).all()
    with pytest.raises(InterpError):
        step_curves([np.ones((3, 2)), np.ones((3, 4))])


def test_curve_with_ci_t_interval():
    x = np.random.default_rng(0).normal(size=(30, 5))
    mean, lo, hi = curve_with_ci(x)
    half = sps.t.ppf(0.975, 29) * x.std(axis=0, ddof=1) / np.sqrt(30)
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(hi - mean, half)
    np.testing.assert_allclose(mean - lo, half)
    x[0, 0] = np.nan
    m2, lo2, _ = curve_with_ci(x)
    assert m2[0] == pytest.approx(np.nanmean(x[:, 0])) and np.isfinite(lo2[0])
    _, lo1, _ = curve_with_ci(x[:1])
    assert np.isnan(lo1).all()


def test_save_figure_and_plotly(tmp_path):
    import plotly.graph_objects as go

    from interp.plots import COLUMN_WIDTH, PALETTE, new_figure, plotly_template, save_figure, save_plotly

    fig, ax = new_figure("column")
    assert fig.get_size_inches()[0] == pytest.approx(COLUMN_WIDTH)
    ax.plot([0, 1, 2], [1, 0, 2], label="x")
    paths = save_figure(fig, tmp_path / "sub" / "fig")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert len(save_figure(fig, tmp_path / "fig2.png", svg=True)) == 3
    pf = go.Figure(go.Scatter(y=[1, 3, 2]), layout=dict(template=plotly_template()))
    assert list(pf.layout.template.layout.colorway) == PALETTE
    html = save_plotly(pf, tmp_path / "p" / "fig")
    assert html.suffix == ".html" and html.stat().st_size > 1_000_000
    with pytest.raises(ValueError):
        save_plotly(pf, tmp_path / "q", include_plotlyjs="cdn")
