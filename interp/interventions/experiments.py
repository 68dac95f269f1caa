"""Causal tests of constraint attention on a SustainScore run: does changing it rescue or induce failures?

Stages over a finished run directory (every stage resumable, records appended batch by batch):

- rescue: constrained failures regenerated with attention to the constraint damped (scale alpha_damp)
  or knocked out, on all heads, on the top-k heads by CAS difference (failed - successful) and on
  k random heads; rescued share = task now solved (the run's scorer), plus whether the output still
  meets the constraint (the trade-off);
- induce: constrained successes regenerated with constraint attention boosted (scale alpha_boost);
- controls: the same operations on a random span of the constraint's length, on the task text and on
  random heads, and an unintervened replay ("none") of every base record;
- sweep: teacher-forced single-head / single-layer knockouts of constraint attention on failures,
  scored by the log-likelihood of the baseline's correct answer, with attribution patching vs actual;
  the top sweep heads are then knocked out one at a time in real generations.

Generations use the run's GenConfig with CAS capture on, so CAS on the target before (the replay)
and after the intervention is reported. Layout added to the run directory:

    ablations.jsonl        one record per (base record, interventions); interventions stored as dicts
    ablation_sweep.jsonl   one record per swept failure (head/layer effects, attribution estimates)
    ablation_report.md / ablation_report.json / figures/ablation_*.png|pdf
"""
from __future__ import annotations

import json
import math
import random
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..attention.cas import CAS
from ..attention.storage import load_cas
from ..constraints import Constraint
from ..experiments.config import SustainConfig
from ..errors import InterpError
from ..stats.power import n_two_proportions as n_for_power
from ..models.generation import GenConfig
from ..models.thinking import ThinkingBudget, segment_generation, thinking_spec
from ..prompts import Prompt
from ..records import AblationRecord, SweepRecord
from ..stats import paired_bootstrap_diff, proportion
from .. import shards
from ..rundir import RunDir
from ..shards import Shard
from ..store import ResultStore, record_key
from .attribution import attribution_scores, spearman
from .spec import Intervention, random_span
from .sweep import effect_grid, sweep_heads

STAGES = ("rescue", "induce")
RANDOM_SPAN = "__random__"


@dataclass
class AblationConfig:
    """Settings of `run_ablation`. `rescue_ops` from ("knockout", "damp"); `max_items` caps items (seeded pick)."""

    alpha_damp: float = 0.1
    alpha_boost: float = 5.0
    top_k: int = 10
    n_random_heads: int | None = None
    max_items: int | None = None
    seed: int = 0
    rescue_ops: tuple[str, ...] = ("knockout", "damp")
    sweep_items: int = 4
    sweep_top: int = 3
    sweep_batch_size: int = 32
    batch_size: int | None = None

    def __post_init__(self):
        if self.n_random_heads is None:
            self.n_random_heads = self.top_k
        bad = set(self.rescue_ops) - {"knockout", "damp"}
        if bad:
            raise InterpError(f"unknown rescue ops {sorted(bad)}; choose from knockout, damp")
        self.rescue_ops = tuple(self.rescue_ops)


@dataclass(frozen=True)
class Arm:
    """One experimental condition: interventions for a stage, the CAS span of its target and where it acts."""

    stage: str
    name: str
    role: str  # main | control | head | none
    ivs: tuple[Intervention, ...]
    span: str
    cells: tuple[tuple[int, int], ...] | None = None  # None = all heads


def make_arms(stage: str, cfg: AblationConfig, top: Sequence[tuple[int, int]] | None,
              rand: Sequence[tuple[int, int]]) -> list[Arm]:
    """The arms of a stage: the replay, main arms on the constraint, and span / head controls."""
    ops = ([(o, "knockout", 1.0) if o == "knockout" else (o, "scale", cfg.alpha_damp) for o in cfg.rescue_ops]
           if stage == "rescue" else [("boost", "scale", cfg.alpha_boost)])
    arms = [Arm(stage, "none", "none", (), "constraints")]
    rand = tuple(map(tuple, rand))
    for name, op, alpha in ops:
        spec = [("constraints", "constraints", None, "all", "main")]
        if top:
            spec.append(("constraints", "constraints", tuple(map(tuple, top)), f"top{len(top)}", "main"))
        if rand:
            spec.append(("constraints", "constraints", rand, f"random{len(rand)}", "control"))
        spec += [("random:constraint_0", RANDOM_SPAN, None, "all", "control"),
                 ("task", "task", None, "all", "control")]
        for target, span, heads, hlabel, role in spec:
            tlabel = "random_span" if span == RANDOM_SPAN else span
            label = f"{name}:{tlabel}:{hlabel}"
            iv = Intervention(target=target, op=op, alpha=alpha, heads=heads, seed=cfg.seed, label=label)
            arms.append(Arm(stage, label, role, (iv,), span, heads))
    return arms


def head_arms(stage: str, heads: Sequence[tuple[int, int]]) -> list[Arm]:
    """Single-head knockouts of constraint attention (the sweep's top heads) as arms."""
    out = []
    for l, h in heads:
        label = f"knockout:constraints:L{l}H{h}"
        iv = Intervention(target="constraints", op="knockout", heads=((l, h),), label=label)
        out.append(Arm(stage, label, "head", (iv,), "constraints", ((l, h),)))
    return out


def cas_head_diff(run_dir, failed: Sequence[dict], success: Sequence[dict]) -> np.ndarray | None:
    """[layers, heads] mean CAS on the constraints, failed minus successful; None with < 2 of either."""
    f = load_cas(run_dir, failed).per_generation_mean() if failed else np.zeros((0,))
    s = load_cas(run_dir, success).per_generation_mean() if success else np.zeros((0,))
    if f.ndim != 3 or s.ndim != 3 or f.shape[0] < 2 or s.shape[0] < 2:
        return None
    return np.nanmean(f, 0) - np.nanmean(s, 0)


def record_prompt(rec: dict, seed: int = 0) -> Prompt:
    """A record's prompt, plus a ``__random__`` span: the random control span of constraint_0's length."""
    p = Prompt(rec["prompt_text"], list(rec["prompt_ids"]), {k: tuple(v) for k, v in rec["spans"].items()})
    if "constraint_0" in p.spans:
        r = random_span(p, p.spans["constraint_0"], seed)
        if len(r):
            p.spans[RANDOM_SPAN] = (r.start, r.stop)
    return p


def _cas_mean(extras: dict, spans: Sequence[str]) -> dict:
    cas, names = extras.get("cas"), extras.get("cas_spans", [])
    out = {}
    for s in spans:
        if cas is not None and s in names and cas.shape[0]:
            out[s] = np.round(cas[:, :, names.index(s)].mean(0), 5).tolist()
    return out


def _masked_mean(grid, cells) -> float:
    if grid is None:
        return math.nan
    g = np.asarray(grid, float)
    if cells is None:
        return float(g.mean())
    return float(np.mean([g[l, h] for l, h in cells]))


class AblationRun:
    """run_ablation's machinery bound to one run directory (see the module docstring for the stages)."""

    def __init__(self, run_dir, cfg: AblationConfig, model=None, log=print,
                 shard: Shard | tuple[int, int] | str | None = None, out=None, only: str | None = None):
        """`shard` (with `out`, the shard's own folder; `only` "sweep" or "arms") runs the shard's items only:
        first every shard's sweep, merged back into `run_dir`, then every shard's arms (they use the top sweep
        heads of all items); see `interp.shards`."""
        from ..tasks import get_task

        self.rundir = RunDir(run_dir)
        self.shard = Shard.of(shard)
        self.only = only
        self.out = self.rundir if out is None else RunDir(out)
        if only not in (None, "sweep", "arms"):
            raise InterpError(f"only must be None, 'sweep' or 'arms', got {only!r}")
        if self.shard and (out is None or only is None):
            raise InterpError("a sharded ablation writes into its own folder (out=...) in two steps: only='sweep' "
                              "on every shard, merge them into the run, then only='arms' on every shard, merge")
        if out is not None and self.out.path.resolve() == self.rundir.path.resolve():
            self.out = self.rundir
        self.dir = self.rundir.path
        if not self.rundir.config_path.exists() or not self.rundir.has("constrained"):
            raise InterpError(f"{self.dir} is not a finished SustainScore run (needs config.json and constrained.jsonl)")
        self.cfg = cfg
        self.run_cfg = SustainConfig.of_run(self.rundir)
        self.task = get_task(self.run_cfg.task, ref=self.rundir.read_config().get("task_ref"), **self.run_cfg.task_kwargs)
        self.items = {it.id: it for it in self.task.items(self.run_cfg.n_items, self.run_cfg.offset)}
        self._model = model
        self.log = log
        self.baseline = {r["key"]: r for r in self.rundir.records("baseline")}
        real = [r for r in self.rundir.records("constrained")
                if r.get("condition_kind") != "control" and r["item_id"] in self.items]
        stale = sorted({r["item_id"] for r in real if self.items[r["item_id"]].input not in r["prompt_text"]})
        if stale:
            raise InterpError(f"task {self.run_cfg.task!r} no longer yields the items this run used ({stale[0]} and "
                              f"{len(stale) - 1} more differ from the stored prompts): its data or generator changed "
                              "since the run, so outputs cannot be rescored; re-run the experiment")
        ids = sorted({r["item_id"] for r in real})
        random.Random(cfg.seed).shuffle(ids)
        keep = set(ids[: cfg.max_items] if cfg.max_items else ids)
        real = sorted((r for r in real if r["item_id"] in keep), key=lambda r: r["key"])
        self.failed = [r for r in real if not r["success"]]
        self.success = [r for r in real if r["success"]]
        self.notes: list[str] = []

    @property
    def store(self) -> ResultStore:
        """ablations.jsonl, writable while the run directory's lock is held."""
        return self.out.store("ablations")

    @property
    def sweep_store(self) -> ResultStore:
        return self.out.store("ablation_sweep")

    @property
    def model(self):
        if self._model is None:
            self.log(f"loading model {self.run_cfg.model} ...")
            self._model = self.run_cfg.load_model()
        return self._model

    @property
    def shape(self) -> tuple[int, int]:
        if self._model is not None:
            return self._model.n_layers, self._model.n_heads
        recs = [r for r in self.failed + self.success if r.get("cas_file")]
        if recs:
            cas = load_cas(self.dir, recs[:1]).values
            return cas.shape[2], cas.shape[3]
        return self.model.n_layers, self.model.n_heads

    def head_sets(self) -> tuple[list | None, list]:
        """Top-k heads by CAS difference (None: not enough data, all heads used) and k random other heads."""
        L, H = self.shape
        diff = cas_head_diff(self.dir, self.failed, self.success)
        top = None
        if diff is None:
            self.notes.append("top-k heads: fewer than 2 failed or 2 successful generations with CAS; "
                              "the top-k arms fall back to all heads")
        else:
            flat = np.argsort(-np.nan_to_num(diff, nan=-np.inf).ravel(), kind="stable")[: self.cfg.top_k]
            top = [(int(i // H), int(i % H)) for i in flat]
        rest = [(l, h) for l in range(L) for h in range(H) if top is None or (l, h) not in top]
        rand = sorted(random.Random(self.cfg.seed).sample(rest, min(self.cfg.n_random_heads, len(rest))))
        return top, rand

    def key(self, rec: dict, arm: Arm) -> str:
        return record_key(base=rec["key"], interventions=[iv.to_dict() for iv in arm.ivs], gen=rec.get("gen_config"))

    def _gen_config(self, rec: dict) -> GenConfig:
        gc = dict(rec.get("gen_config") or {})
        gc["stop"] = tuple(gc.get("stop", ()))
        return GenConfig(**gc, batch_size=self.cfg.batch_size or self.run_cfg.batch_size)

    def generate(self, jobs: list[tuple[dict, Arm]]) -> int:
        """Generate the pending (base record, arm) jobs, appending one record each; returns how many were new."""
        from ..api import generate  # the one door (imported here: interp.api -> interventions -> here)
        from ..progress import progress_bar

        pending = [(r, a) for r, a in jobs if self.key(r, a) not in self.store]
        if not pending:
            return 0
        model = self.model
        groups: dict[str, list] = {}
        for r, a in pending:
            groups.setdefault(json.dumps(r.get("gen_config"), sort_keys=True), []).append((r, a))
        bar = progress_bar(total=len(pending), desc="ablate", leave=False)
        for js in groups.values():
            gcfg = self._gen_config(js[0][0])
            chunk_n = gcfg.batch_size * 4
            for s in range(0, len(js), chunk_n):
                chunk = js[s: s + chunk_n]

                spec = thinking_spec(self.run_cfg.thinking, self.run_cfg.thinking_delimiters)

                def budget(batch, spec=spec):  # the run's budget forcing applies here too
                    return [] if self.run_cfg.think_budget is None else [
                        ThinkingBudget(model.tokenizer, spec, self.run_cfg.think_budget)]

                gens = generate(model, [record_prompt(r, self.cfg.seed) for r, _ in chunk], gcfg, capture=[CAS()],
                                interventions=[list(a.ivs) for _, a in chunk], providers_for_batch=budget,
                                progress=False, row_keys=[r["key"] for r, _ in chunk])
                items = [self.items[r["item_id"]] for r, _ in chunk]
                # what the run scored and checked: the answer phase of a reasoning model's output by default
                texts = [segment_generation(g, model.tokenizer, spec).answer_text
                         if self.run_cfg.phase_scope == "answer" else g.output_text for g in gens]
                scores = self.task.score_many(items, texts)
                for (r, a), g, sc, t in zip(chunk, gens, scores, texts):
                    self.store.append(self._record(r, a, g, sc, t))
                bar.update(len(chunk))
        bar.close()
        return len(pending)

    def _record(self, rec: dict, arm: Arm, g, sc, text: str) -> AblationRecord:
        hard = [Constraint.from_dict(c) for c in rec.get("constraints") or [] if c.get("kind") == "hard"]
        met = all(c.check(text).ok for c in hard) if hard else None
        spans = {"constraints", arm.span} | ({"task", RANDOM_SPAN} if arm.role == "none" else set())
        success = bool(sc.success)
        return AblationRecord(
            key=self.key(rec, arm), stage=arm.stage, arm=arm.name, role=arm.role,
            base_key=rec["key"], baseline_key=rec.get("baseline_key"), item_id=rec["item_id"],
            condition=rec.get("condition"), hardness=rec.get("hardness"),
            interventions=[iv.to_dict() for iv in arm.ivs], gen_config=rec.get("gen_config"),
            cas_span=arm.span, cells=None if arm.cells is None else [list(c) for c in arm.cells],
            output_text=g.output_text, output_ids=g.output_ids, finish_reason=g.finish_reason,
            success=success, base_success=bool(rec["success"]),
            flipped=success != bool(rec["success"]), constraint_met=met,
            base_constraint_met=rec.get("constraint_met"), cas=_cas_mean(g.extras, sorted(spans)))

    def sweep(self) -> list[dict]:
        """Teacher-forced head/layer knockout sweep + attribution on up to `sweep_items` failures."""
        L, H = self.shape
        todo = [r for r in self.failed if r.get("baseline_key") in self.baseline][: self.cfg.sweep_items]
        merged = {s["key"]: s for s in self.rundir.records("ablation_sweep")} if self.out is not self.rundir else {}
        for r in todo:
            base = self.baseline[r["baseline_key"]]
            key = record_key(base=r["key"], baseline=base["key"], sweep="knockout", target="constraints")
            if key in self.sweep_store or key in merged or not base["output_ids"]:
                continue
            if self.shard and self.only == "arms":
                raise InterpError(f"the sweep of {r['item_id']} is not in {self.dir} yet: run every ablation_sweep "
                                  "shard and merge them into the run first (the arms use the top sweep heads of all)")
            if self.shard and not self.shard.owns(r["item_id"]):
                continue
            prompt = record_prompt(r)
            df = sweep_heads(self.model, prompt, base["output_ids"], batch_size=self.cfg.sweep_batch_size)
            att = attribution_scores(self.model, prompt, base["output_ids"])
            heads, layers = effect_grid(df, L, H)
            est = att.estimate.to_numpy().reshape(L, H)
            rho, p = spearman(est.ravel(), heads.ravel())
            self.sweep_store.append(SweepRecord(
                key=key, base_key=r["key"], baseline_key=base["key"], item_id=r["item_id"],
                condition=r.get("condition"), n_output_tokens=len(base["output_ids"]),
                logp_none=float(df.loc[df.kind == "none", "logp"].iloc[0]),
                head_effect=np.round(heads, 6).tolist(), layer_effect=np.round(layers, 6).tolist(),
                attribution=np.round(est, 6).tolist(), rho=rho, p=p))
        order = {r["key"]: i for i, r in enumerate(todo)}
        found = merged | {s["key"]: s for s in self.sweep_store.records()}
        return sorted((s for s in found.values() if s["base_key"] in order), key=lambda s: order[s["base_key"]])

    def run(self) -> dict | None:
        """Every stage, holding the (shard's) directory's lock (a second writer on it is refused); a shard
        returns None (the report is written from the merged run)."""
        with ExitStack() as stack:
            if self.out is not self.rundir:  # the run is read, never written: no merge into it meanwhile
                stack.enter_context(self.rundir.lock("interp ablate (reading)", shared=True))
            stack.enter_context(self.out.lock("interp ablate"))
            if self.shard:
                if not self.out.config_path.exists():
                    self.out.write_config(self.rundir.read_config())
                shards.begin(self.out.path, "ablation_sweep" if self.only == "sweep" else "ablation", self.shard,
                             self.rundir.read_config()["config_hash"], shards.settings_hash(asdict(self.cfg)),
                             source=str(self.dir.resolve()))
            return self._run()

    def _run(self) -> dict | None:
        top, rand = self.head_sets()  # from every picked item, so that every shard acts on the same heads
        failed, success = (shards.select(rs, self.shard, lambda r: r["item_id"]) for rs in (self.failed, self.success))
        self.log(f"ablation: {len(failed)} constrained failures, {len(success)} successes")
        if self.only != "sweep":
            jobs = [(r, a) for r in failed for a in make_arms("rescue", self.cfg, top, rand)]
            jobs += [(r, a) for r in success for a in make_arms("induce", self.cfg, top, rand)]
            self.generate(jobs)
        sweeps = self.sweep()
        if self.only == "sweep":
            shards.finish(self.out.path)
            return None
        top_heads = top_sweep_heads(sweeps, self.cfg.sweep_top)
        self.generate([(r, a) for r in failed for a in head_arms("rescue", top_heads)]
                      + [(r, a) for r in success for a in head_arms("induce", top_heads)])
        if self.shard:
            shards.finish(self.out.path)
            return None
        if not self.failed:
            self.notes.append("no constrained failures: nothing to rescue, no sweep")
        if not self.success:
            self.notes.append("no constrained successes: nothing to induce")
        return write_ablation_report(self.dir, self.cfg, top, rand, top_heads, self.notes,
                                     base_keys={r["key"] for r in self.failed + self.success},
                                     sweep_keys={s["base_key"] for s in sweeps})


def top_sweep_heads(sweeps: Sequence[dict], n: int) -> list[tuple[int, int]]:
    """The n heads whose knockout most raises the correct answer's log-likelihood (mean over swept items)."""
    if not sweeps or n <= 0:
        return []
    eff = np.nanmean([np.asarray(s["head_effect"], float) for s in sweeps], 0)
    H = eff.shape[1]
    flat = np.argsort(-np.nan_to_num(eff, nan=-np.inf).ravel(), kind="stable")[:n]
    return [(int(i // H), int(i % H)) for i in flat]


def summary_table(recs: pd.DataFrame) -> pd.DataFrame:
    """Per (stage, arm): n, flipped share with Wilson CI, constraint-still-met share, CAS on target before/after."""
    if recs.empty:
        return pd.DataFrame()
    none = {r.base_key: r.cas for r in recs[recs.arm == "none"].itertuples()}
    rows = []
    for (stage, arm), g in recs.groupby(["stage", "arm"], sort=False):
        p = proportion(int(g.flipped.sum()), len(g))
        met = g.constraint_met.dropna()
        before = [_masked_mean(none.get(r.base_key, {}).get(r.cas_span), r.cells) for r in g.itertuples()]
        after = [_masked_mean(r.cas.get(r.cas_span), r.cells) for r in g.itertuples()]
        rows.append({"stage": stage, "arm": arm, "role": g.role.iloc[0], "n": p.n, "k": p.k, "rate": p.p,
                     "lo": p.lo, "hi": p.hi, "constraint_met": float(met.astype(float).mean()) if len(met) else math.nan,
                     "n_checked": int(len(met)), "cas_before": float(np.nanmean(before)) if len(before) else math.nan,
                     "cas_after": float(np.nanmean(after)) if len(after) else math.nan,
                     "target": g.cas_span.iloc[0]})
    order = {"none": 0, "main": 1, "head": 2, "control": 3}
    df = pd.DataFrame(rows)
    return df.sort_values(["stage", "role", "arm"], key=lambda c: c.map(order) if c.name == "role" else c,
                          ascending=[False, True, True], kind="stable").reset_index(drop=True)


def paired_comparisons(recs: pd.DataFrame) -> pd.DataFrame:
    """Each main arm vs every control of the same operation (and the replay), paired over the same base records."""
    rows = []
    for stage, g in recs.groupby("stage"):
        g = g.drop_duplicates(["base_key", "arm"], keep="last")  # an earlier config's arm of the same name
        flips = g.pivot(index="base_key", columns="arm", values="flipped")
        roles = dict(zip(g.arm, g.role))
        for m in [a for a in flips.columns if roles[a] in ("main", "head")]:
            op = m.split(":")[0]
            for c in [a for a in flips.columns if roles[a] == "none" or (roles[a] == "control" and a.startswith(op + ":"))]:
                both = flips[[m, c]].dropna()
                if both.empty:
                    continue
                d, lo, hi = paired_bootstrap_diff(both[m].astype(float), both[c].astype(float), n_boot=4000)
                pm, pc = both[m].astype(float).mean(), both[c].astype(float).mean()
                rows.append({"stage": stage, "arm": m, "vs": c, "n": len(both), "diff": d, "lo": lo, "hi": hi,
                             "n_for_80pct_power": n_for_power(pm, pc)})
    return pd.DataFrame(rows)


def _md(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_\n"
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) and np.isfinite(v) and v != int(v) else (  # noqa: E731
        str(int(v)) if isinstance(v, float) and np.isfinite(v) else str(v))
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_ablation_report(run_dir, cfg: AblationConfig, top, rand, top_heads, notes: Sequence[str] = (),
                          base_keys: set | None = None, sweep_keys: set | None = None) -> dict:
    """Tables, figures and ablation_report.md/json from the stored records (no model needed)."""
    from ..plots.ablation import plot_attribution, plot_cas_shift, plot_rates, plot_sweep_heatmap

    d = Path(run_dir)
    rd = RunDir(d)
    recs = rd.frame("ablations")
    if base_keys is not None and not recs.empty:
        recs = recs[recs.base_key.isin(base_keys)]
    sweeps = [s for s in rd.records("ablation_sweep")
              if sweep_keys is None or s["base_key"] in sweep_keys]
    table = summary_table(recs)
    comps = paired_comparisons(recs) if not recs.empty else pd.DataFrame()
    figs: list[str] = []
    if not table.empty:
        figs += [str(p) for p in plot_rates(table, d / "figures" / "ablation_rates")]
        figs += [str(p) for p in plot_cas_shift(table, d / "figures" / "ablation_cas_shift")]
    sweep_info: dict = {"n_items": len(sweeps)}
    if sweeps:
        heads = np.nanmean([np.asarray(s["head_effect"], float) for s in sweeps], 0)
        layers = np.nanmean([np.asarray(s["layer_effect"], float) for s in sweeps], 0)
        est = np.stack([np.asarray(s["attribution"], float) for s in sweeps])
        act = np.stack([np.asarray(s["head_effect"], float) for s in sweeps])
        rho, p = spearman(est.ravel(), act.ravel())
        L, H = heads.shape
        order = np.argsort(-np.nan_to_num(heads, nan=-np.inf).ravel(), kind="stable")[:10]
        sweep_info |= {
            "top_heads": [{"layer": int(i // H), "head": int(i % H), "mean_effect": float(heads.ravel()[i])}
                          for i in order],
            "layer_effect": layers.tolist(),
            "attribution_rho_pooled": rho, "attribution_p_pooled": p,
            "attribution_rho_per_item": [s["rho"] for s in sweeps]}
        figs += [str(x) for x in plot_sweep_heatmap(heads, layers, d / "figures" / "ablation_sweep_heatmap")]
        scat = pd.DataFrame({"estimate": est.ravel(), "actual": act.ravel(),
                             "item": np.repeat([s["item_id"] for s in sweeps], L * H)})
        figs += [str(x) for x in plot_attribution(scat, rho, d / "figures" / "ablation_attribution")]
    out = {"config": asdict(cfg), "top_k_heads": top, "random_heads": rand, "sweep_top_heads": top_heads,
           "summary": table.to_dict("records"), "comparisons": comps.to_dict("records"), "sweep": sweep_info,
           "notes": list(notes), "figures": figs, "n_records": int(len(recs))}
    (d / "ablation_report.json").write_text(json.dumps(_finite(out), indent=2, default=_jsonable))
    md = ["# Constraint-attention ablations", "",
          "Rescue: constrained failures regenerated with attention to the constraint damped/knocked out; rate = "
          "share now solved. Induce: constrained successes with constraint attention boosted; rate = share now "
          "failed. `none` replays the base generation unintervened (the noise floor). Controls hit a random span "
          "of the constraint's length (`random_span`), the task text (`task`) or random heads. 95% Wilson CIs; "
          "`constraint_met` = share of outputs still meeting the hard constraints; CAS = mean attention on the "
          "arm's target span at the heads it acts on, before (replay) and after.", "",
          f"alpha_damp={cfg.alpha_damp}, alpha_boost={cfg.alpha_boost}, top-k heads (CAS failed - successful): "
          f"{top if top else 'all (fallback)'}; random heads: {rand}", "", "## Rates", "", _md(table),
          "## Paired differences (main - control, bootstrap over base records)", "", _md(comps)]
    if sweeps:
        md += ["## Head sweep (teacher-forced knockout of constraint attention)", "",
               f"{len(sweeps)} failures; effect = change in sum log p of the baseline's correct output "
               "(positive: knocking out the head's constraint attention makes the correct answer likelier).", "",
               _md(pd.DataFrame(sweep_info["top_heads"])),
               f"Attribution patching vs actual knockout effects: Spearman rho = {sweep_info['attribution_rho_pooled']:.3f} "
               f"(p = {sweep_info['attribution_p_pooled']:.2g}) pooled over items and heads; per item: "
               + ", ".join(f"{r:.3f}" for r in sweep_info["attribution_rho_per_item"]), ""]
    md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""] + ["## Figures", ""] + \
          [f"- {Path(f).relative_to(d)}" for f in figs if f.endswith(".png")] + [""]
    path = d / "ablation_report.md"
    path.write_text("\n".join(md))
    return {"report": str(path), "json": str(d / "ablation_report.json"), "summary": table,
            "comparisons": comps, "sweep": sweep_info, "figures": figs}


def _finite(o):
    """Non-finite floats as None, so the JSON report is strict JSON."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return None
    return o


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def run_ablation(run_dir, cfg: AblationConfig | None = None, model=None, log=print, **shard) -> dict | None:
    """Run (or resume) every ablation stage over a SustainScore run directory; returns the report dict (None for
    a shard: `shard`, `out`, `only` as in AblationRun)."""
    return AblationRun(run_dir, cfg or AblationConfig(), model, log, **shard).run()
