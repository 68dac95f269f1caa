"""Failed-vs-successful comparisons of per-generation values (e.g. CAS per layer and head).

Effects are reported as failed minus success: a positive diff / rank-biserial means failed
generations have larger values. Rank-biserial r = 2 * U_failed / (n_f * n_s) - 1
= P(failed > success) - P(failed < success), in [-1, 1].
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import InterpError
from .proportions import MIN_N_INTERVAL


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy's `false_discovery_control`, same shape); NaNs stay NaN
    and do not count as tests."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def _check_groups(failed: np.ndarray, success: np.ndarray) -> None:
    if failed.shape[0] == 0 or success.shape[0] == 0:
        raise InterpError(
            f"need at least one failed and one successful generation to compare, got "
            f"{failed.shape[0]} failed and {success.shape[0]} successful"
        )
    if failed.shape[1:] != success.shape[1:]:
        raise InterpError(f"failed and successful arrays differ in shape: {failed.shape[1:]} vs {success.shape[1:]}")


def _cohens_d(f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Cohen's d with pooled SD (ddof=1) per column; nan where undefined (n < 2 in total, zero SD)."""
    nf, ns = f.shape[0], s.shape[0]
    if nf + ns < 3:
        return np.full(f.shape[1:], np.nan)
    vf = f.var(axis=0, ddof=1) if nf > 1 else np.zeros(f.shape[1:])
    vs = s.var(axis=0, ddof=1) if ns > 1 else np.zeros(s.shape[1:])
    sd = np.sqrt(((nf - 1) * vf + (ns - 1) * vs) / (nf + ns - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (f.mean(0) - s.mean(0)) / sd, np.nan)


def _rank_biserial_boot(f: np.ndarray, s: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap rank-biserial and diff of means per column of f [n_f, C], s [n_s, C] -> two [n_boot, C].

    Each group is resampled independently (one resample shared by all columns). A resample is a vector
    of multinomial counts w, so U_b = sum_i wf_i * (weight of successes below f_i + half the tied
    weight); with the successes sorted once per column that is a cumulative sum: O(n_boot (n_f + n_s) C).
    """
    nf, ns = f.shape[0], s.shape[0]
    n_cols = f.shape[1]
    rng = np.random.default_rng(seed)
    wf = rng.multinomial(nf, np.full(nf, 1 / nf), size=n_boot).astype(float)
    ws = rng.multinomial(ns, np.full(ns, 1 / ns), size=n_boot).astype(float)
    diff = wf @ f / nf - ws @ s / ns
    order = np.argsort(s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    below = np.empty((nf, n_cols), dtype=np.intp)
    upto = np.empty((nf, n_cols), dtype=np.intp)
    for c in range(n_cols):
        below[:, c] = np.searchsorted(s_sorted[:, c], f[:, c], side="left")
        upto[:, c] = np.searchsorted(s_sorted[:, c], f[:, c], side="right")
    r = np.empty((n_boot, n_cols))
    chunk = max(1, int(4e6 // (n_boot * (nf + ns + 1))))
    for c0 in range(0, n_cols, chunk):
        sl = slice(c0, c0 + chunk)
        cum = np.zeros((n_boot, ns + 1, order[:, sl].shape[1]))
        np.cumsum(ws[:, order[:, sl]], axis=1, out=cum[:, 1:])
        lo = np.take_along_axis(cum, below[None, :, sl], axis=1)
        hi = np.take_along_axis(cum, upto[None, :, sl], axis=1)
        u = 0.5 * np.matmul(wf[:, None, :], lo + hi)[:, 0, :]
        r[:, sl] = 2 * u / (nf * ns) - 1
    return r, diff


def _quantiles(boots: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - conf) / 2
    lo, hi = np.quantile(boots, [a, 1 - a], axis=0)
    return lo, hi


def _mwu(f: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Mann–Whitney U (U of the failed group) and p per column; p is nan where all values tie."""
    with np.errstate(divide="ignore", invalid="ignore"):
        res = sps.mannwhitneyu(f, s, alternative="two-sided", axis=0)
    return np.asarray(res.statistic, dtype=float), np.asarray(res.pvalue, dtype=float)


def mann_whitney_by_cell(
    failed: np.ndarray,
    success: np.ndarray,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    conf: float = 0.95,
) -> pd.DataFrame:
    """Per (layer, head): Mann–Whitney U of failed [n_f, L, H] vs successful [n_s, L, H] values.

    Columns: layer, head, mean_failed, mean_success, diff, U, p, p_bh (Benjamini–Hochberg across all
    cells), significant (p_bh < alpha), rank_biserial with percentile-bootstrap rb_lo/rb_hi
    (n_boot=0 skips the bootstrap; nan when a group has fewer than MIN_N_INTERVAL generations), cohens_d,
    n_failed, n_success.
    """
    f = np.asarray(failed, dtype=float)
    s = np.asarray(success, dtype=float)
    if f.ndim != 3 or s.ndim != 3:
        raise InterpError(f"expected arrays [n, layers, heads], got shapes {f.shape} and {s.shape}")
    _check_groups(f, s)
    n_f, n_l, n_h = f.shape
    n_s = s.shape[0]
    f2, s2 = f.reshape(n_f, -1), s.reshape(n_s, -1)
    u, p = _mwu(f2, s2)
    p_bh = benjamini_hochberg(p)
    if n_boot > 0 and min(n_f, n_s) >= MIN_N_INTERVAL:
        rb_lo, rb_hi = _quantiles(_rank_biserial_boot(f2, s2, n_boot, seed)[0], conf)
    else:
        rb_lo = rb_hi = np.full(f2.shape[1], np.nan)
    layer, head = np.divmod(np.arange(n_l * n_h), n_h)
    mf, ms = f2.mean(0), s2.mean(0)
    return pd.DataFrame({
        "layer": layer,
        "head": head,
        "mean_failed": mf,
        "mean_success": ms,
        "diff": mf - ms,
        "U": u,
        "p": p,
        "p_bh": p_bh,
        "significant": p_bh < alpha,
        "rank_biserial": 2 * u / (n_f * n_s) - 1,
        "rb_lo": rb_lo,
        "rb_hi": rb_hi,
        "cohens_d": _cohens_d(f2, s2),
        "n_failed": n_f,
        "n_success": n_s,
    })


@dataclass(frozen=True)
class Effect:
    """Failed-vs-success effect on one scalar per generation (diff = mean_failed - mean_success)."""

    mean_failed: float
    mean_success: float
    diff: float
    diff_lo: float
    diff_hi: float
    rank_biserial: float
    rb_lo: float
    rb_hi: float
    cohens_d: float
    U: float
    p: float
    n_failed: int
    n_success: int

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate_effect(
    failed_vals, success_vals, n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> Effect:
    """Diff of means and rank-biserial (percentile bootstrap CIs, groups resampled independently), MWU p.

    The CIs are nan when a group has fewer than MIN_N_INTERVAL values (a report flags them instead).
    """
    f = np.asarray(failed_vals, dtype=float).reshape(-1, 1)
    s = np.asarray(success_vals, dtype=float).reshape(-1, 1)
    _check_groups(f, s)
    u, p = _mwu(f, s)
    if n_boot > 0 and min(f.size, s.size) >= MIN_N_INTERVAL:
        rb, diff = _rank_biserial_boot(f, s, n_boot, seed)
        (rb_lo,), (rb_hi,) = _quantiles(rb, conf)
        (d_lo,), (d_hi,) = _quantiles(diff, conf)
    else:
        rb_lo = rb_hi = d_lo = d_hi = math.nan
    mf, ms = float(f.mean()), float(s.mean())
    return Effect(
        mean_failed=mf, mean_success=ms, diff=mf - ms, diff_lo=float(d_lo), diff_hi=float(d_hi),
        rank_biserial=float(2 * u[0] / (f.size * s.size) - 1), rb_lo=float(rb_lo), rb_hi=float(rb_hi),
        cohens_d=float(_cohens_d(f, s)[0]), U=float(u[0]), p=float(p[0]), n_failed=f.size, n_success=s.size,
    )


def _bin_weights(t: int, n_bins: int) -> np.ndarray:
    """[n_bins, t] weights averaging a step function (step i covers [i/t, (i+1)/t)) over each bin."""
    edges_t = np.arange(t + 1) / t
    edges_b = np.arange(n_bins + 1) / n_bins
    lo = np.maximum(edges_b[:-1, None], edges_t[None, :-1])
    hi = np.minimum(edges_b[1:, None], edges_t[None, 1:])
    return np.clip(hi - lo, 0, None) * n_bins


def step_curves(arrays: list[np.ndarray], n_bins: int = 20) -> np.ndarray:
    """Resample per-step series [T_i, ...] onto n_bins bins of generation progress -> [n_items, n_bins, ...].

    Step i of a T-step generation covers progress [i/T, (i+1)/T); each bin gets the overlap-weighted
    mean of the steps it covers. For T a multiple of n_bins that is the plain mean of the steps in the
    bin; for T < n_bins a step fills the bins it spans, so no bin is empty. A zero-step generation
    gives a NaN row (curve_with_ci skips NaNs).
    """
    if n_bins < 1:
        raise InterpError(f"n_bins must be >= 1, got {n_bins}")
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    if not arrays:
        raise InterpError("step_curves needs at least one generation")
    tails = {a.shape[1:] for a in arrays}
    if len(tails) > 1:
        raise InterpError(f"per-step arrays differ beyond the step axis: {sorted(tails)}")
    tail = arrays[0].shape[1:]
    out = np.full((len(arrays), n_bins, *tail), np.nan)
    for i, a in enumerate(arrays):
        if a.shape[0]:
            out[i] = (_bin_weights(a.shape[0], n_bins) @ a.reshape(a.shape[0], -1)).reshape(n_bins, *tail)
    return out


def curve_with_ci(binned: np.ndarray, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) over items (axis 0) per bin: Student-t interval mean ± t_{n-1} · SD/√n, NaN-aware.

    Items are the independent units; bins with fewer than 2 items get a NaN interval.
    """
    x = np.asarray(binned, dtype=float)
    n = np.sum(np.isfinite(x), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        sd = np.nanstd(x, axis=0, ddof=1)
        half = sps.t.ppf(0.5 + conf / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half
