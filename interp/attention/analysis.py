"""Failed-vs-successful CAS comparison over a SustainScore run, and a token-level attention view.

`cas_report` works from the stored records and CAS files of a run directory. Units of analysis are
constrained generations (single constraints and K-sets, controls excluded), each summarised by its
mean CAS over steps per (layer, head). The baseline reference is the teacher-forced CAS of the
item's successful unconstrained output under the constrained prompt: how much the constraint would be
attended while producing the original, correct answer. Teacher-forced arrays are cached under
``<run>/cas_tf/cas/`` (``ref_<key>.npz``, ``tf_<key>.npz``), so they are computed once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import InterpError
from ..models.thinking import phase_boundary
from ..prompts import Prompt, constraint_parts
from ..rundir import RunDir
from ..stats import MIN_N_INTERVAL, aggregate_effect, benjamini_hochberg, curve_with_ci, mann_whitney_by_cell, step_curves
from ..stats.proportions import paired_bootstrap_diff
from .cas import normalise
from .storage import read_cas, save_cas

GROUPS = ("failed", "success")
_LABEL = {"failed": "failed", "success": "successful"}
TF_DIR = "cas_tf"


def record_prompt(record: dict) -> Prompt:
    """The Prompt of a stored record (text, ids and part spans), as it was generated from."""
    return Prompt(text=record["prompt_text"], input_ids=list(record["prompt_ids"]),
                  spans={k: tuple(v) for k, v in record["spans"].items()})


def span_parts(record: dict, span: str) -> list[str]:
    """Part names making up `span` in a record: the part itself, or all constraint parts for "constraints"."""
    if span in record["spans"]:
        return [span]
    if span == "constraints":
        parts = constraint_parts(record["spans"])
        if parts:
            return parts
    raise InterpError(f"span {span!r} is not in record {record.get('key')} (parts: {sorted(record['spans'])})")


def _load_model(run_dir: Path):
    from ..experiments.config import SustainConfig

    return SustainConfig.of_run(run_dir).load_model()


def teacher_forced_cached(run_dir: str | Path, model, jobs: Sequence[tuple[str, dict, Sequence[int]]],
                          batch_size: int = 8) -> dict[str, str]:
    """CAS of (name, prompt record, output ids) jobs by teacher forcing, stored once under ``cas_tf/``.

    Returns name -> file path relative to ``<run>/cas_tf``. Existing files are reused (resumable).
    """
    from .cas import teacher_forced_cas

    root = Path(run_dir) / TF_DIR
    done = {name: f"cas/{name}.npz" for name, _, _ in jobs if (root / "cas" / f"{name}.npz").exists()}
    todo = sorted([j for j in jobs if j[0] not in done and len(j[2])],
                  key=lambda j: len(j[1]["prompt_ids"]) + len(j[2]))
    for s in range(0, len(todo), batch_size):
        chunk = todo[s: s + batch_size]
        res = teacher_forced_cas(model, [record_prompt(r) for _, r, _ in chunk], [list(o) for _, _, o in chunk],
                                 batch_size=batch_size)
        for (name, _, _), e in zip(chunk, res):
            done[name] = save_cas(root, name, e["cas"], e["cas_spans"], e["cas_span_len"])
    return done


def teacher_forced_jobs(recs: Sequence[dict], base: dict[str, dict], kind: str) -> list[tuple[str, dict, list]]:
    """`teacher_forced_cached` jobs of constrained records: "tf" (their own outputs) or "ref" (the successful
    baseline output of their item, under the constrained prompt)."""
    if kind == "tf":
        return [(f"tf_{r['key']}", r, r["output_ids"]) for r in recs]
    return [(f"ref_{r['key']}", r, base[r["baseline_key"]]["output_ids"]) for r in recs if r.get("baseline_key") in base]


def teacher_forced_shard(run_dir: str | Path, out: str | Path, shard, teacher_forced: bool = False,
                         reference: bool = True, model=None) -> int:
    """The teacher-forced CAS files of one shard's items of a run (`interp.shards`), written under
    ``<out>/cas_tf/`` for `interp merge` to copy back into the run, where `cas_report` then reuses them.
    Files the run already has are not recomputed; returns how many were computed."""
    from .. import shards

    rd, dst = RunDir(run_dir), RunDir(out)
    shard = shards.Shard.of(shard)
    recs = shard.select([r for r in rd.records("constrained") if r.get("condition_kind") in ("single", "set")
                         and r.get("cas_file")], lambda r: r["item_id"])
    base = {r["key"]: r for r in rd.records("baseline")}
    jobs = (teacher_forced_jobs(recs, base, "tf") if teacher_forced else []) + (
        teacher_forced_jobs(recs, base, "ref") if reference else [])
    jobs = [j for j in jobs if not (rd.path / TF_DIR / "cas" / f"{j[0]}.npz").exists()]
    with rd.lock("interp cas (reading)", shared=True), dst.lock("interp cas"):
        if not dst.config_path.exists():
            dst.write_config(rd.read_config())
        shards.begin(dst.path, "cas_tf", shard, rd.read_config()["config_hash"],
                     shards.settings_hash({"teacher_forced": teacher_forced, "reference": reference}),
                     source=str(rd.path.resolve()))
        todo = [j for j in jobs if not (dst.path / TF_DIR / "cas" / f"{j[0]}.npz").exists()]
        if todo:
            teacher_forced_cached(dst.path, model if model is not None else _load_model(rd.path), todo)
        shards.finish(dst.path)
    return len(todo)


def _span_array(root: Path, rel: str, span: str, how: str, control: str | None) -> np.ndarray | None:
    """[steps, layers, heads] CAS of `span` from one stored file (None if the span is absent or empty output)."""
    cas, spans, span_len = read_cas(root, rel)
    if span not in spans or cas.shape[0] == 0:
        return None
    return normalise(cas, spans, span, how, span_len, control)


def _clean(x):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def ranked_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells ordered by p, ties (e.g. equal exact p) broken by the larger |failed - successful| difference."""
    return (cells.assign(_a=-cells["diff"].abs()).sort_values(["p", "_a"], kind="stable").drop(columns="_a"))


def salient_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells to show: significant ones first, each block by the larger |difference| (a tiny p on a head that
    barely attends the constraint is not worth a panel)."""
    return (cells.assign(_s=~cells["significant"], _a=-cells["diff"].abs())
            .sort_values(["_s", "_a"], kind="stable").drop(columns=["_s", "_a"]))


def _layer_effects(pf: np.ndarray, ps: np.ndarray, alpha: float, n_boot: int, seed: int) -> pd.DataFrame:
    """Per layer: effect on the head-averaged CAS of each generation, BH-adjusted across layers."""
    rows = [dict(layer=l, **aggregate_effect(pf[:, l].mean(-1), ps[:, l].mean(-1), n_boot, seed).to_dict())
            for l in range(pf.shape[1])]
    df = pd.DataFrame(rows)
    df["p_bh"] = benjamini_hochberg(df["p"])
    df["significant"] = df["p_bh"] < alpha
    return df


def _paired(live: np.ndarray, ref: np.ndarray, n_boot: int, seed: int) -> dict:
    """Live minus reference per-generation CAS (same prompt): mean with paired bootstrap CI, Wilcoxon p."""
    if len(live) < 2:
        return {"n": int(len(live))}
    diff, lo, hi = paired_bootstrap_diff(live, ref, n_boot=max(n_boot, 1), seed=seed)
    d = live - ref
    p = float(sps.wilcoxon(d).pvalue) if np.any(d != 0) else float("nan")
    return {"n": int(len(live)), "mean_live": float(live.mean()), "mean_reference": float(ref.mean()),
            "diff": diff, "diff_lo": lo, "diff_hi": hi, "p_wilcoxon": p}


def _by(recs: list[dict], field: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in recs:
        out.setdefault(str(r.get(field)), []).append(r)
    return dict(sorted(out.items()))


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _curve(arrs: list[np.ndarray], n_bins: int) -> dict | None:
    if not arrs:
        return None
    mean, lo, hi = curve_with_ci(step_curves(arrs, n_bins))
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(arrs)}


PHASES = ("thinking", "answer")


def phase_split(a: np.ndarray, boundary: int) -> dict[str, np.ndarray]:
    """A generation's per-step array split at its first answer step: thinking = steps [0, boundary)."""
    return {"thinking": a[:boundary], "answer": a[boundary:]}


def phase_curves(series: list[np.ndarray], bounds: list[int], n_bins: int) -> dict | None:
    """Phase-aligned step curve: the thinking steps of each generation resampled onto `n_bins` bins, then its
    answer steps onto the next `n_bins`, so the phase boundary sits at bin `n_bins` for every generation.
    A generation with an empty phase contributes NaN there (left out of that half's mean)."""
    if not series:
        return None
    halves = [step_curves([phase_split(a, b)[ph] for a, b in zip(series, bounds)], n_bins) for ph in PHASES]
    mean, lo, hi = curve_with_ci(np.concatenate(halves, axis=1))
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(series), "boundary_bin": n_bins}


def distance_curve(series: list[np.ndarray], width: int, n_bins: int) -> dict | None:
    """Mean CAS by distance from the end of the prompt: step t (token t of the output) falls in bin t // width;
    each generation contributes the mean of its steps in a bin; `n` per bin says how many generations reach it."""
    if not series:
        return None
    x = np.full((len(series), n_bins), np.nan)
    for i, a in enumerate(series):
        for b in range(min(n_bins, -(-len(a) // width))):
            x[i, b] = a[b * width: (b + 1) * width].mean()
    mean, lo, hi = curve_with_ci(x)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(series), "n_per_bin": np.isfinite(x).sum(0),
            "x_tokens": (np.arange(n_bins) + 0.5) * width, "width": width}


def _phase_results(grp: dict[str, list[dict]], live: dict[str, np.ndarray], n_bins: int, n_boot: int,
                   seed: int) -> dict:
    """Per phase: per-generation mean CAS (over that phase's steps, all layers and heads) failed vs successful,
    with the aggregate effect where both groups have at least 2 generations with that phase; plus the
    phase-aligned curves."""
    out: dict = {"phases": {}, "curves": {}}
    for ph in PHASES:
        vals = {g: np.array([float(x.mean()) for r in v
                             if len(x := phase_split(live[r["key"]], phase_boundary(r))[ph])]) for g, v in grp.items()}
        row = {f"n_{g}": int(len(vals[g])) for g in GROUPS} | {f"mean_cas_{g}": _mean(vals[g]) for g in GROUPS}
        if all(len(vals[g]) >= 2 for g in GROUPS):
            row["effect"] = aggregate_effect(vals["failed"], vals["success"], n_boot, seed).to_dict()
        out["phases"][ph] = row
    for g, v in grp.items():
        out["curves"][g] = phase_curves([live[r["key"]].mean((1, 2)) for r in v], [phase_boundary(r) for r in v],
                                        n_bins)
    return out


def _suffix(span: str, how: str, tf: bool) -> str:
    parts = ([] if span == "constraints" else [span]) + ([] if how == "raw" else [how]) + (["tf"] if tf else [])
    return "".join(f"-{p}" for p in parts)


@dataclass
class _CASData:
    """What a CAS report is computed from: the generations, their CAS (live or teacher-forced) and references."""

    recs: list[dict]
    live: dict[str, np.ndarray]
    ref: dict[str, np.ndarray]
    notes: list[str]
    model: object = None
    tf_check: float | None = None


def _gather(d: Path, span: str, how: str, control: str | None, teacher_forced: bool, reference: bool,
            model) -> _CASData:
    """Select the constrained generations with CAS, load their arrays and (if asked) teacher-force the
    generations and the baseline reference; every exclusion is written into `notes`."""
    rd = RunDir(d)
    all_con = rd.records("constrained")
    base = {r["key"]: r for r in rd.records("baseline")}
    recs = [r for r in all_con if r.get("condition_kind") in ("single", "set") and r.get("cas_file")]
    notes = [f"skipped {len(v)} unreadable line(s) of {k}.jsonl (lines {v[:20]})" for k, v in rd.skipped.items()]
    if len(recs) < sum(r.get("condition_kind") in ("single", "set") for r in all_con):
        notes.append("some constrained generations have no CAS file (run with capture_cas=False?) and are left out")
    if (teacher_forced or reference) and model is None and recs:
        try:
            model = _load_model(d)
        except (InterpError, OSError, KeyError) as e:
            if teacher_forced:
                raise InterpError(f"teacher-forced CAS needs the run's model, which failed to load: {e}") from None
            notes.append(f"baseline reference skipped: the run's model could not be loaded ({e})")
            reference = False
    if model is None:
        reference = False

    def arr(root, rel, h=how, ctl=control):
        return _span_array(root, rel, span, h, ctl)

    live = {r["key"]: a for r in recs if (a := arr(d, r["cas_file"])) is not None}
    if recs and not live:  # a span no CAS file has (a typo): refuse rather than overwrite a report with an empty one
        recorded = [x for x in read_cas(d, recs[0]["cas_file"])[1] if not x.startswith("__")]
        raise InterpError(f"span {span!r} is in none of the run's CAS files (recorded spans: {recorded}); "
                          "pass --span with one of them")
    if len(live) < len(recs):
        notes.append(f"{len(recs) - len(live)} generations left out: span {span!r} absent or empty output")
    recs = [r for r in recs if r["key"] in live]
    tf_check = None
    if teacher_forced and recs:
        files = teacher_forced_cached(d, model, teacher_forced_jobs(recs, base, "tf"))
        tf_check = max(float(np.abs(arr(d / TF_DIR, files[f"tf_{r['key']}"], "raw", None)
                                    - arr(d, r["cas_file"], "raw", None)).max()) for r in recs)
        notes.append(f"teacher-forced CAS used; max |teacher-forced - live| raw CAS = {tf_check:.2e} "
                     "(float32 files: ~1e-5 is agreement; older float16 files ~1e-3)")
        live = {r["key"]: arr(d / TF_DIR, files[f"tf_{r['key']}"]) for r in recs}
    ref: dict[str, np.ndarray] = {}
    if reference and recs:
        files = teacher_forced_cached(d, model, teacher_forced_jobs(recs, base, "ref"))
        ref = {r["key"]: a for r in recs if f"ref_{r['key']}" in files
               and (a := arr(d / TF_DIR, files[f"ref_{r['key']}"])) is not None}
    return _CASData(recs, live, ref, notes, model, tf_check)


def _tests(d: Path, per_gen: dict, agg: dict, n: dict, alpha: float, n_boot: int, seed: int, notes: list[str]):
    """(cells, layers, aggregate effect) of failed vs successful, or Nones (and a note) with < 2 of a group;
    writes ``cas_cells.csv`` either way."""
    if n["failed"] < 2 or n["success"] < 2:
        notes.append(f"too few generations for statistics: {n['failed']} failed and {n['success']} successful "
                     "(need at least 2 of each); descriptive values only")
        pd.DataFrame(columns=["layer", "head", "mean_failed", "mean_success", "diff", "U", "p", "p_bh",
                              "significant"]).to_csv(d / "cas_cells.csv", index=False)
        return None, None, None
    cells = mann_whitney_by_cell(per_gen["failed"], per_gen["success"], alpha=alpha, n_boot=n_boot, seed=seed)
    effect = aggregate_effect(agg["failed"], agg["success"], n_boot=n_boot, seed=seed)
    layers = _layer_effects(per_gen["failed"], per_gen["success"], alpha, n_boot, seed)
    cells.to_csv(d / "cas_cells.csv", index=False)
    if min(n.values()) < MIN_N_INTERVAL:
        notes.append(f"a group has fewer than {MIN_N_INTERVAL} generations: no bootstrap intervals "
                     "(flagged in the tables); point estimates and p-values are descriptive only")
    return cells, layers, effect


def _descriptives(data: _CASData, grp: dict, n_bins: int, n_boot: int, seed: int) -> dict:
    """Curves over steps and prompt distance, phase splits, the reference comparison and per-type means."""
    live, ref, recs = data.live, data.ref, data.recs
    curves = {g: _curve([live[r["key"]].mean((1, 2)) for r in v], n_bins) for g, v in grp.items()}
    curves["reference"] = _curve([ref[k].mean((1, 2)) for k in ref], n_bins)
    longest = max((live[r["key"]].shape[0] for r in recs), default=0)
    width = max(1, -(-longest // n_bins))
    distance = {g: distance_curve([live[r["key"]].mean((1, 2)) for r in v], width, n_bins) for g, v in grp.items()}
    phases = _phase_results(grp, live, n_bins, n_boot, seed) if any(r.get("phase_ranges") for r in recs) else None
    ref_summary = {}
    for g, v in grp.items():
        ks = [r["key"] for r in v if r["key"] in ref]
        ref_summary[g] = _paired(np.array([live[k].mean() for k in ks]), np.array([ref[k].mean() for k in ks]),
                                 n_boot, seed)
    by_ctype = [{"ctype": t, **{f"n_{g}": sum(r["success"] == (g == "success") for r in rs) for g in GROUPS},
                 **{f"mean_cas_{g}": _mean([live[r["key"]].mean() for r in rs if r["success"] == (g == "success")])
                    for g in GROUPS}}
                for t, rs in _by(recs, "ctype").items()]
    return {"by_ctype": by_ctype, "curves": curves, "distance_curves": distance, "phases": phases,
            "reference": ref_summary if ref else None}


@dataclass(frozen=True)
class CASReportMeta:
    """What a CAS report compared (the run, the span and normalisation, the sample sizes)."""

    run_dir: str
    span: str
    normalisation: str
    teacher_forced: bool
    n_bins: int
    alpha: float
    n_boot: int
    unit: str
    n_failed: int
    n_success: int
    n_items: int
    by_kind: dict
    teacher_forced_max_abs_diff: float | None


@dataclass(frozen=True)
class CASSummary:
    """The headline numbers: group sizes and means, the aggregate difference and the top (layer, head) cells."""

    n_failed: int
    n_success: int
    mean_cas_failed: float | None
    mean_cas_success: float | None
    aggregate_diff: float | None
    aggregate_diff_ci: list | None
    aggregate_p: float | None
    n_significant_cells: int
    top_cells: list
    reference_mean: float | None


@dataclass(frozen=True)
class CASReport:
    """The result of `cas_report`: typed meta and summary; the tables (per layer, per cell, curves, phases,
    per generation) as JSON-ready rows. `to_dict()` is ``cas_report.json``; markdown and figures render it."""

    meta: CASReportMeta
    notes: list
    by_ctype: list
    summary: CASSummary
    aggregate: dict | None
    layers: list
    top_cells: list
    curves: dict
    distance_curves: dict
    phases: dict | None
    reference: dict | None
    per_generation: list
    figures: dict

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {f: (asdict(v) if f in ("meta", "summary") else v) for f, v in
                ((f.name, getattr(self, f.name)) for f in fields(self))}

    @classmethod
    def from_dict(cls, d: dict) -> "CASReport":
        return cls(**{**d, "meta": CASReportMeta(**d["meta"]), "summary": CASSummary(**d["summary"])})

    def __getitem__(self, key: str):  # the older dict access (``res["summary"]["n_failed"]``)
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)


def cas_report(run_dir: str | Path, span: str = "constraints", normalisation: str = "raw",
               teacher_forced: bool = False, n_bins: int = 20, alpha: float = 0.05, n_boot: int = 1000,
               reference: bool = True, model=None, control: str | None = None, figures: bool = True,
               html: bool = False, seed: int = 0) -> CASReport:
    """Compare CAS of failed vs successful constrained generations of a run; write report, table and figures.

    Writes ``cas_report.md``, ``cas_report.json``, ``cas_cells.csv`` and ``figures/cas_*`` (PNG+PDF, plus
    plotly HTML when `html`). `teacher_forced` recomputes the generations' CAS from their stored outputs
    (and reports the largest difference to the live files); `reference` adds the teacher-forced baseline
    reference (needs the run's model; skipped with a note when it cannot be loaded). Statistics need at
    least 2 failed and 2 successful generations; otherwise the report says so.
    """
    d = Path(run_dir)
    if not (d / "constrained.jsonl").exists():
        raise InterpError(f"{d} has no constrained.jsonl: run `interp sustain` first")
    data = _gather(d, span, normalisation, control, teacher_forced, reference, model)
    recs, live, ref, notes = data.recs, data.live, data.ref, data.notes
    grp = {g: [r for r in recs if bool(r["success"]) == (g == "success")] for g in GROUPS}
    n = {g: len(v) for g, v in grp.items()}
    per_gen = {g: np.stack([live[r["key"]].mean(0) for r in v]) if v else None for g, v in grp.items()}
    agg = {g: (p.mean((1, 2)) if p is not None else np.zeros(0)) for g, p in per_gen.items()}
    res: dict = {"meta": {"run_dir": str(d), "span": span, "normalisation": normalisation,
                          "teacher_forced": teacher_forced, "n_bins": n_bins, "alpha": alpha, "n_boot": n_boot,
                          "unit": "constrained generation (single constraint or K-set; controls excluded)",
                          "n_failed": n["failed"], "n_success": n["success"],
                          "n_items": len({r["item_id"] for r in recs}),
                          "by_kind": {k: sum(r["condition_kind"] == k for r in recs) for k in ("single", "set")},
                          "teacher_forced_max_abs_diff": data.tf_check}, "notes": notes}
    cells, layers, effect = _tests(d, per_gen, agg, n, alpha, n_boot, seed, notes)
    top = ranked_cells(cells).head(10) if cells is not None else pd.DataFrame()
    desc = _descriptives(data, grp, n_bins, n_boot, seed)
    res.update({
        "by_ctype": desc["by_ctype"],
        "summary": {"n_failed": n["failed"], "n_success": n["success"],
                    "mean_cas_failed": float(agg["failed"].mean()) if n["failed"] else None,
                    "mean_cas_success": float(agg["success"].mean()) if n["success"] else None,
                    "aggregate_diff": effect.diff if effect else None,
                    "aggregate_diff_ci": [effect.diff_lo, effect.diff_hi] if effect else None,
                    "aggregate_p": effect.p if effect else None,
                    "n_significant_cells": int(cells["significant"].sum()) if cells is not None else 0,
                    "top_cells": [(int(a), int(b)) for a, b in zip(top.get("layer", []), top.get("head", []))][:5],
                    "reference_mean": float(np.mean([ref[k].mean() for k in ref])) if ref else None},
        "aggregate": effect.to_dict() if effect else None,
        "layers": layers.to_dict(orient="records") if layers is not None else [],
        "top_cells": top.to_dict(orient="records"),
        **{k: desc[k] for k in ("curves", "distance_curves", "phases", "reference")},
        "per_generation": [{"key": r["key"], "item_id": r["item_id"], "condition": r.get("condition"),
                            "success": bool(r["success"]), "n_steps": int(live[r["key"]].shape[0]),
                            "answer_start": phase_boundary(r),
                            "mean_cas": float(live[r["key"]].mean()),
                            "reference_mean_cas": float(ref[r["key"]].mean()) if r["key"] in ref else None}
                           for r in recs],
    })
    res["figures"] = (_figures(d, res, cells, layers, per_gen, ref, grp, live, data.model, span, normalisation,
                               teacher_forced, html) if figures else {})
    rep = CASReport.from_dict(_clean(res))
    (d / "cas_report.json").write_text(json.dumps(rep.to_dict(), indent=2))
    (d / "cas_report.md").write_text(_markdown(rep, top))
    return rep


def _figures(d, res, cells, layers, per_gen, ref, grp, live, model, span, how, tf, html) -> dict[str, list[str]]:
    from ..plots import cas as pc

    fd = d / "figures"
    sfx = _suffix(span, how, tf)
    unit = "CAS (attention share)" if how == "raw" else f"CAS ({how})"
    out: dict[str, list[Path]] = {}
    if cells is not None:
        out["heatmap"] = pc.plot_cell_heatmap(cells, fd / f"cas_heatmap{sfx}", units=unit)
        out["layers"] = pc.plot_layer_effects(layers, fd / f"cas_layers{sfx}", units=unit)
    curves = {k: v for k, v in res["curves"].items() if v is not None}
    if curves:
        out["curves"] = pc.plot_step_curves(curves, fd / f"cas_curves{sfx}", ylabel=unit)
    dist = {k: v for k, v in res["distance_curves"].items() if v is not None}
    if dist:
        out["distance"] = pc.plot_distance_curves(dist, fd / f"cas_distance{sfx}", ylabel=unit)
    if res["phases"]:
        pcurves = {k: v for k, v in res["phases"]["curves"].items() if v is not None}
        if pcurves:
            out["phase_curves"] = pc.plot_phase_curves(pcurves, fd / f"cas_phases{sfx}", ylabel=unit)
    vals = {g: per_gen[g].mean((1, 2)) for g in GROUPS if per_gen[g] is not None}
    if ref:
        vals["reference"] = np.array([ref[k].mean() for k in ref])
    if vals:
        top = [] if cells is None else [(int(r.layer), int(r.head)) for r in salient_cells(cells).head(3).itertuples()]
        heads = {f"L{l}H{h}": {g: per_gen[g][:, l, h] for g in GROUPS if per_gen[g] is not None}
                 | ({"reference": np.array([ref[k].mean(0)[l, h] for k in ref])} if ref else {})
                 for l, h in top}
        out["distributions"] = pc.plot_distributions({"all heads": vals} | heads, fd / f"cas_distributions{sfx}",
                                                     ylabel=f"per-generation mean {unit}")
    if model is not None and cells is not None:
        best = salient_cells(cells).iloc[0]
        l, h = int(best["layer"]), int(best["head"])
        for g in GROUPS:
            v = sorted(grp[g], key=lambda r: len(r["output_ids"]))
            if v:
                r = v[len(v) // 2]
                df = token_attention(model, r, span=span, layer=l, head=h)
                title = f"{'failed' if g == 'failed' else 'successful'} generation, layer {l} head {h}"
                out[f"tokens_{g}"] = pc.plot_token_attention(df, fd / f"cas_tokens_{g}{sfx}", title=title)
                if html:
                    out[f"tokens_{g}_html"] = [pc.save_plotly(pc.token_attention_plotly(df, title),
                                                              fd / f"cas_tokens_{g}{sfx}")]
    if html and cells is not None:
        out["heatmap_html"] = [pc.save_plotly(pc.cell_heatmap_plotly(cells, units=unit), fd / f"cas_heatmap{sfx}")]
        out["curves_html"] = [pc.save_plotly(pc.step_curves_plotly(curves, ylabel=unit), fd / f"cas_curves{sfx}")]
    return {k: [str(Path(p).relative_to(d)) for p in ps] for k, ps in out.items()}


def _fmt(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}g}"


def _ci(lo, hi, nd=3) -> str:
    """`[lo, hi]`, or a flag where the group was too small for an interval (the stats return nan bounds)."""
    if any(v is None or not math.isfinite(v) for v in (lo, hi)):
        return f"[no CI: n < {MIN_N_INTERVAL}]"
    return f"[{_fmt(lo, nd)}, {_fmt(hi, nd)}]"


def _markdown(res: CASReport, top: pd.DataFrame) -> str:
    """cas_report.md of a report."""
    m, s = res.meta, res.summary
    md = [f"# CAS report: span `{m.span}`, normalisation `{m.normalisation}`"
          + (" (teacher-forced)" if m.teacher_forced else ""), "",
          f"Unit: {m.unit}; {m.n_failed} failed and {m.n_success} successful generations over "
          f"{m.n_items} items ({m.by_kind['single']} single, {m.by_kind['set']} sets). Each generation is "
          "summarised by its mean CAS over generated tokens per (layer, head). Generations of the same item under "
          "different conditions are not independent; treat p-values as descriptive when items are few.", ""]
    if res.notes:
        md += ["## Notes", ""] + [f"- {x}" for x in res.notes] + [""]
    a = res.aggregate
    md += ["## Aggregate (mean over all layers and heads)", ""]
    if a:
        md += [f"- mean CAS failed {_fmt(a['mean_failed'])}, successful {_fmt(a['mean_success'])}",
               f"- difference failed − successful {_fmt(a['diff'])} (95% bootstrap CI "
               f"{_ci(a['diff_lo'], a['diff_hi'])}); rank-biserial {_fmt(a['rank_biserial'])} "
               f"{_ci(a['rb_lo'], a['rb_hi'])}; Mann–Whitney p = {_fmt(a['p'])}", ""]
    else:
        md += [f"- mean CAS failed {_fmt(s.mean_cas_failed)}, successful {_fmt(s.mean_cas_success)} "
               "(no test: too few generations)", ""]
    if res.reference:
        md += ["## Baseline reference (teacher-forced successful baseline output under the constrained prompt)", "",
               "| group | n | live CAS | reference CAS | live − reference [95% CI] | Wilcoxon p |", "|---|---|---|---|---|---|"]
        for g, v in res.reference.items():
            if v.get("mean_live") is not None:
                md.append(f"| {_LABEL[g]} | {v['n']} | {_fmt(v['mean_live'])} | {_fmt(v['mean_reference'])} | "
                          f"{_fmt(v['diff'])} {_ci(v['diff_lo'], v['diff_hi'])} | {_fmt(v.get('p_wilcoxon'))} |")
            else:
                md.append(f"| {_LABEL[g]} | {v['n']} | | | too few | |")
        md.append("")
    if res.phases:
        md += ["## By phase: thinking vs answer (per-generation mean CAS over that phase's steps)", "",
               "Thinking steps run from the first output token up to and including the end delimiter; a generation "
               "without a trace is all answer, an unterminated one all thinking.", "",
               "| phase | n failed | n successful | mean CAS failed | mean CAS successful | diff [95% CI] | p |",
               "|---|---|---|---|---|---|---|"]
        for ph, r in res.phases["phases"].items():
            e = r.get("effect") or {}
            md.append(f"| {ph} | {r['n_failed']} | {r['n_success']} | {_fmt(r['mean_cas_failed'])} | "
                      f"{_fmt(r['mean_cas_success'])} | {_fmt(e.get('diff'))} [{_fmt(e.get('diff_lo'))}, "
                      f"{_fmt(e.get('diff_hi'))}] | {_fmt(e.get('p'))} |")
        md.append("")
    if res.by_ctype:
        md += ["## By constraint type (mean CAS over all layers and heads)", "",
               "CAS depends strongly on what the constraint says; compare failed with successful within a type.", "",
               "| type | n failed | n successful | mean CAS failed | mean CAS successful |", "|---|---|---|---|---|"]
        md += [f"| {r['ctype']} | {r['n_failed']} | {r['n_success']} | {_fmt(r['mean_cas_failed'])} | "
               f"{_fmt(r['mean_cas_success'])} |" for r in res.by_ctype] + [""]
    if not top.empty:
        md += ["## Heads (Mann–Whitney per layer × head, Benjamini–Hochberg across all cells)", "",
               f"{s.n_significant_cells} cells with BH-adjusted p < {m.alpha}. Top 10 by p (a head that barely "
               "attends the constraint can rank high on consistently tiny differences: read `diff` too):", "",
               "| layer | head | mean failed | mean successful | diff | rank-biserial [95% CI] | p | p (BH) |",
               "|---|---|---|---|---|---|---|---|"]
        for r in top.itertuples():
            md.append(f"| {r.layer} | {r.head} | {_fmt(r.mean_failed)} | {_fmt(r.mean_success)} | {_fmt(r.diff)} | "
                      f"{_fmt(r.rank_biserial, 2)} {_ci(r.rb_lo, r.rb_hi, 2)} | {_fmt(r.p)} | {_fmt(r.p_bh)} |")
        md += ["", "Full table: `cas_cells.csv`.", ""]
    if res.layers:
        ly = sorted(res.layers, key=lambda r: (r["p"] if r["p"] is not None else 1.0))[:5]
        md += ["## Layers (head-averaged CAS; BH across layers), top 5 by p", "",
               "| layer | diff [95% CI] | rank-biserial | p | p (BH) |", "|---|---|---|---|---|"]
        md += [f"| {r['layer']} | {_fmt(r['diff'])} {_ci(r['diff_lo'], r['diff_hi'])} | "
               f"{_fmt(r['rank_biserial'], 2)} | {_fmt(r['p'])} | {_fmt(r['p_bh'])} |" for r in ly]
        md.append("")
    for k, ps in res.figures.items():
        png = [p for p in ps if p.endswith(".png")]
        if png:
            md += [f"![{k}]({png[0]})", ""]
    return "\n".join(md) + "\n"


class _SpanRows:
    """Hook provider for one teacher-forced row: generated-token queries × span-key columns of the pattern.

    Keeps only [steps, span tokens], averaged over the selected heads and layers (never full attention).
    """

    def __init__(self, parts: list[str], layers: list[int], heads: list[int], n_steps: int):
        self.parts, self.layers, self.heads, self.n_steps = parts, layers, heads, n_steps
        self.cols = self.out = None

    def attach(self, hooks, batch) -> None:
        import torch

        self.cols = batch.span_mask(self.parts)[0].nonzero().squeeze(-1)
        self.out = torch.zeros(self.n_steps, self.cols.numel(), device=batch.input_ids.device)
        for l in self.layers:
            hooks.add(f"blocks.{l}.attn.hook_pattern", self._hook)

    def _hook(self, pattern, call):
        steps = call.query_steps[0]
        ok = steps >= 0
        p = pattern[0, self.heads][:, ok][:, :, self.cols].float().mean(0)
        self.out[steps[ok]] += p / len(self.layers)

    def collect(self, batch, n_tokens) -> list[dict]:
        return [{"span_rows": self.out.cpu().numpy()}]


def _tok(tokenizer, i: int) -> str:
    return tokenizer.decode([int(i)]).replace("\n", "\\n") or "∅"


def token_attention(model, record: dict, span: str = "constraints", layer: int | Sequence[int] | None = None,
                    head: int | Sequence[int] | None = None) -> pd.DataFrame:
    """Attention of each generated token onto each token of `span` for one stored generation.

    Teacher-forced pass over the record's prompt and output; values are averaged over the selected
    layers and heads (None: all). Rows: MultiIndex (step, token); columns: MultiIndex (position, token),
    position being the token's index in the prompt. A row's sum is that step's CAS for the span.
    """
    from ..models.generation import forward_teacher_forced

    parts = span_parts(record, span)
    out_ids = list(record["output_ids"])
    if not out_ids:
        raise InterpError(f"record {record.get('key')} has an empty output: nothing to show")
    layers = list(range(model.n_layers)) if layer is None else [layer] if isinstance(layer, int) else list(layer)
    heads = list(range(model.n_heads)) if head is None else [head] if isinstance(head, int) else list(head)
    prov = _SpanRows(parts, layers, heads, len(out_ids))
    _, _, extras = forward_teacher_forced(model.hf, model.tokenizer, [record_prompt(record)], [out_ids], [prov])
    pos = sorted(p for n in parts for p in range(*record["spans"][n]))
    tok = model.tokenizer
    ids = record["prompt_ids"]
    df = pd.DataFrame(extras[0]["span_rows"],
                      index=pd.MultiIndex.from_arrays([np.arange(len(out_ids)), [_tok(tok, i) for i in out_ids]],
                                                      names=["step", "token"]),
                      columns=pd.MultiIndex.from_arrays([pos, [_tok(tok, ids[p]) for p in pos]],
                                                        names=["position", "token"]))
    df.attrs.update({"span": span, "layers": layers, "heads": heads, "key": record.get("key"),
                     "success": record.get("success")})
    return df
