"""SustainScore tables, failure analysis and the Markdown/JSON report of a run directory.

All numbers are recomputed from the stored records, so a report can be regenerated at any time
without running a model, and tests can recount them independently.
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..rundir import RunDir
from ..stats import MIN_N_INTERVAL, per_item_rates, proportion

ESTIMATOR_NOTE = ("SustainScore = solved-with-constraint / solved-without, over (item, condition) pairs whose "
                  "baseline was solved; 95% Wilson intervals. With several sampling seeds a pair counts as the "
                  "mean success over seeds and the CI is an item-clustered bootstrap. `n_success` of `n` pairs were "
                  f"solved; groups with n < {MIN_N_INTERVAL} get no interval (shown as –).")


def load_run(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The run's stages as DataFrames: baseline, constraints, constrained (read-only; see RunDir.load_run)."""
    return RunDir(run_dir).load_run()


def _row(group: str, df: pd.DataFrame, base_len: dict[str, int] | None = None) -> dict:
    """One SustainScore row over a set of constrained records."""
    if df.empty:
        return {"group": group, "n_success": 0, "n": 0, "score": np.nan, "lo": np.nan, "hi": np.nan, "n_items": 0}
    pairs = df.groupby(["item_id", "condition"])["success"].mean()
    n_seeds = df.groupby(["item_id", "condition"]).size().max()
    if n_seeds > 1:
        r = per_item_rates(df.assign(success=df["success"].astype(float)), "item_id", "success", n_boot=2000)
        score, lo, hi, n_success = r.mean, r.lo, r.hi, float(pairs.sum())
    else:
        p = proportion(int(pairs.sum()), len(pairs))
        score, lo, hi, n_success = p.p, p.lo, p.hi, int(pairs.sum())
    if len(pairs) < MIN_N_INTERVAL:
        lo = hi = np.nan
    row = {"group": group, "n_success": n_success, "n": int(len(pairs)), "score": score, "lo": lo, "hi": hi,
           "n_items": int(df["item_id"].nunique())}
    if base_len is not None:
        added = [len(ids) - base_len.get(b, len(ids)) for ids, b in zip(df["prompt_ids"], df["baseline_key"])]
        row["added_tokens"] = float(np.mean(added))
    return row


def sustain_tables(runs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Baseline accuracy, SustainScore by type / hardness / K / control, and failure analysis tables."""
    base, con = runs["baseline"], runs["constrained"]
    out: dict[str, pd.DataFrame] = {}
    b = proportion(int(base.groupby("item_id")["success"].max().sum()), int(base["item_id"].nunique()))
    small = b.n < MIN_N_INTERVAL
    out["baseline"] = pd.DataFrame([{"group": "baseline accuracy", "n_success": b.k, "n": b.n, "score": b.p,
                                     "lo": np.nan if small else b.lo, "hi": np.nan if small else b.hi,
                                     "n_items": b.n}])
    if con.empty:
        return out
    base_len = dict(zip(base["key"], base["prompt_ids"].map(len)))
    single = con[con["condition_kind"] == "single"]
    real = con[con["condition_kind"] != "control"]
    rows = [_row("all constraints (K=1)", single, base_len)]
    rows += [_row(f"{h} (K=1)", single[single["hardness"] == h], base_len) for h in sorted(single["hardness"].unique())]
    rows += [_row(f"control: {c}", con[con["ctype"] == c], base_len)
             for c in sorted(con.loc[con["condition_kind"] == "control", "ctype"].unique())]
    out["overall"] = pd.DataFrame(rows)
    out["by_type"] = pd.DataFrame([dict(_row(t, single[single["ctype"] == t], base_len), hardness=h)
                                   for t, h in single.groupby("ctype")["hardness"].first().items()])
    out["by_domain"] = pd.DataFrame([_row(d, single[single["domain"] == d], base_len)
                                     for d in sorted(single["domain"].unique())])
    ks = [_row("K=1", single, base_len) | {"K": 1}]
    for k in sorted(real.loc[real["condition_kind"] == "set", "k"].unique()):
        ks.append(_row(f"K={k}", real[(real["condition_kind"] == "set") & (real["k"] == k)], base_len) | {"K": int(k)})
    out["scaling"] = pd.DataFrame(ks)
    fails = real[~real["success"]]
    err = fails.groupby(["ctype", "error_type"]).size().unstack(fill_value=0) if len(fails) else pd.DataFrame()
    out["errors"] = err.reset_index() if len(err) else pd.DataFrame(columns=["ctype"])
    met = real.dropna(subset=["constraint_met"])
    out["constraint_met"] = pd.DataFrame([
        {"outcome": name, "n": len(g), "met": int(g["constraint_met"].astype(bool).sum()),
         "share_met": float(g["constraint_met"].astype(bool).mean()) if len(g) else np.nan}
        for name, g in (("success", met[met["success"]]), ("failure", met[~met["success"]]))])
    joint = [joint_row("all constraints (K=1)", single)]
    joint += [joint_row(f"{h} (K=1)", single[single["hardness"] == h]) for h in sorted(single["hardness"].unique())]
    joint += [joint_row(f"K={k}", real[(real["condition_kind"] == "set") & (real["k"] == k)])
              for k in sorted(real.loc[real["condition_kind"] == "set", "k"].unique())]
    out["joint"] = pd.DataFrame(joint)
    if "thinking_state" in con or "thinking_state" in base:
        out["thinking"] = thinking_summary(base, con)
        out["by_thinking_length"] = by_thinking_length(single)
    return out


def joint_row(group: str, df: pd.DataFrame) -> dict:
    """Task-correct x constraint-met 2x2 (counts over generations) and MathIF's hard / soft accuracy.

    hard_acc: share of generations meeting all their checked constraints; soft_acc: mean share of checked
    constraints met. Only generations with at least one checked constraint count (`n`); soft constraints are
    checked only with a judge, so without one these are over the hard constraints of each generation.
    """
    met = df.dropna(subset=["constraint_met"]) if "constraint_met" in df else df.iloc[0:0]
    ok, m = met["success"].astype(bool), met["constraint_met"].astype(bool)
    checks = met["constraint_checks"] if "constraint_checks" in met else [[{"ok": bool(x)}] for x in m]
    share = [float(np.mean([c["ok"] for c in cs])) for cs in checks if cs] if len(met) else []
    return {"group": group, "n": int(len(met)), "correct_met": int((ok & m).sum()),
            "correct_unmet": int((ok & ~m).sum()), "wrong_met": int((~ok & m).sum()),
            "wrong_unmet": int((~ok & ~m).sum()), "accuracy": float(ok.mean()) if len(met) else np.nan,
            "hard_acc": float(m.mean()) if len(met) else np.nan,
            "soft_acc": float(np.mean(share)) if share else np.nan}


def _thinking_cols(df: pd.DataFrame) -> pd.DataFrame:
    """Thinking fields with the values of a generation without a trace where absent (old or plain records)."""
    state = df["thinking_state"].fillna("none") if "thinking_state" in df else pd.Series("none", index=df.index)
    toks = df["thinking_tokens"].fillna(0) if "thinking_tokens" in df else pd.Series(0, index=df.index)
    forced = df["thinking_forced"].fillna(False) if "thinking_forced" in df else pd.Series(False, index=df.index)
    return pd.DataFrame({"state": state, "tokens": toks.astype(int), "forced": forced.astype(bool)})


def thinking_summary(base: pd.DataFrame, con: pd.DataFrame) -> pd.DataFrame:
    """Per stage: generations, share with a trace, unterminated / budget-forced counts, mean and median trace length."""
    rows = []
    for stage, df in (("baseline", base), ("constrained", con[con["condition_kind"] != "control"])):
        t = _thinking_cols(df)
        rows.append({"stage": stage, "n": len(t), "with_trace": int((t["state"] != "none").sum()),
                     "unterminated": int((t["state"] == "unterminated").sum()), "forced": int(t["forced"].sum()),
                     "mean_thinking_tokens": float(t["tokens"].mean()) if len(t) else np.nan,
                     "median_thinking_tokens": float(t["tokens"].median()) if len(t) else np.nan})
    return pd.DataFrame(rows)


def by_thinking_length(single: pd.DataFrame, n_bins: int = 4) -> pd.DataFrame:
    """SustainScore and constraint adherence of K=1 generations by thinking-trace length (quantile bins of tokens).

    Within one run this is observational (longer traces come with harder items); a causal reading needs the
    budget conditions (`think_budget`), one run each.
    """
    if single.empty:
        return pd.DataFrame()
    t = _thinking_cols(single)
    edges = np.unique(np.quantile(t["tokens"], np.linspace(0, 1, n_bins + 1)))
    idx = np.searchsorted(edges[1:-1], t["tokens"], side="right") if len(edges) > 1 else np.zeros(len(t), int)
    rows = []
    for b in sorted(set(idx)):
        sel = single[idx == b]
        lo, hi = int(t["tokens"][idx == b].min()), int(t["tokens"][idx == b].max())
        rows.append(_row(f"{lo}-{hi} thinking tokens", sel) | {k: v for k, v in joint_row("", sel).items()
                                                             if k in ("hard_acc", "soft_acc")})
    return pd.DataFrame(rows)


def _md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_(none)_\n"
    cols = list(df.columns)
    fmt = lambda v: "–" if isinstance(v, (float, np.floating)) and np.isnan(v) else f"{v:.3f}" if isinstance(v, (float, np.floating)) and not float(v).is_integer() else (
        str(int(v)) if isinstance(v, (float, np.floating)) and not np.isnan(v) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FailureExample:
    """One constrained failure shown in the report; `output` is the answer phase of an output with a finished trace."""

    error_type: str
    item_id: str
    condition: str
    key: str
    constraints: list[str]
    output: str
    constraint_met: Any


def _examples(con: pd.DataFrame, n: int = 3) -> list[FailureExample]:
    """Up to `n` failures per error type."""
    ex = []
    fails = con[(con["condition_kind"] != "control") & (~con["success"])]
    for et, g in fails.groupby("error_type"):
        for r in g.head(n).itertuples():
            a = getattr(r, "answer_text", None)
            ex.append(FailureExample(error_type=et, item_id=r.item_id, condition=r.condition, key=r.key,
                                     constraints=[c["text"] for c in r.constraints],
                                     output=(a if isinstance(a, str) and a else r.output_text)[:400],
                                     constraint_met=r.constraint_met))
    return ex


@dataclass(frozen=True)
class SustainReportMeta:
    """What a SustainScore report was computed from: the run's config, model revision, versions, record counts."""

    config: dict
    config_hash: str
    model_revision: str
    versions: dict[str, str]
    n_records: dict[str, int]
    skipped_lines: dict[str, list[int]]


TABLE_TITLES = {"baseline": "Baseline", "overall": "SustainScore (with controls)", "by_type": "By constraint type",
                "by_domain": "By domain", "scaling": "Constraint-count scaling",
                "errors": "Failure analysis (counts)", "constraint_met": "Did the output meet the added constraint?",
                "joint": "Task-correct x constraint-met, hard / soft constraint accuracy (MathIF)",
                "thinking": "Thinking traces", "by_thinking_length": "SustainScore by thinking length"}


@dataclass(frozen=True)
class SustainReport:
    """The result of `write_report`: typed meta, the tables as DataFrames (`sustain_tables`), example failures and
    the figure paths. `to_dict()` is ``report.json``; `markdown()` is ``report.md``."""

    meta: SustainReportMeta
    estimator: str
    tables: dict[str, pd.DataFrame]
    examples: list[FailureExample]
    figures: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"meta": asdict(self.meta), "estimator": self.estimator,
                "tables": {k: json.loads(v.to_json(orient="records")) for k, v in self.tables.items()},
                "examples": [asdict(e) for e in self.examples], "figures": self.figures}

    def __getitem__(self, key: str):  # the older dict access (``rep["tables"]["overall"]``)
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)

    def markdown(self) -> str:
        cfg = self.meta.config
        md = [f"# SustainScore report: {cfg['model']} on {cfg['task']}", "",
              f"Config hash `{self.meta.config_hash}`, model revision `{self.meta.model_revision}`, "
              f"seeds {cfg['seeds']}, temperature {cfg['temperature']}.", "", self.estimator, ""]
        for name, lines in self.meta.skipped_lines.items():
            md += [f"**Warning:** {len(lines)} unreadable line(s) of `{name}` were skipped (lines {lines[:20]}); "
                   "the tables below leave them out.", ""]
        for name, title in TABLE_TITLES.items():
            if name in self.tables:
                md += [f"## {title}", "", _md_table(self.tables[name])]
        for k, ps in self.figures.items():
            png = [p for p in ps if p.endswith(".png")]
            if png:
                md += [f"![{k}]({png[0]})", ""]
        if self.examples:
            md += ["## Example failures", ""]
            for e in self.examples:
                md += [f"- **{e.error_type}** item `{e.item_id}` ({e.condition}, record `{e.key}`), "
                       f"constraint met: {e.constraint_met}; constraints: {e.constraints}",
                       f"  > {e.output[:300]!r}"]
        return "\n".join(md) + "\n"


def plot_report(tables: dict[str, pd.DataFrame], d: Path) -> dict[str, list[str]]:
    """The report's figures (by type, scaling, error types) under d/figures; paths relative to d."""
    if "overall" not in tables:
        return {}
    from ..plots.sustain import plot_by_type, plot_error_types, plot_scaling

    fd = d / "figures"
    rel = lambda ps: [str(p.relative_to(d)) for p in ps]
    return {"by_type": rel(plot_by_type(tables["by_type"], tables["overall"], fd / "sustain_by_type")),
            "scaling": rel(plot_scaling(tables["scaling"], fd / "sustain_scaling")),
            "errors": rel(plot_error_types(tables["errors"], fd / "error_types"))}


def write_report(run_dir: str | Path, figures: bool = True) -> SustainReport:
    """Recompute all tables from the records and write report.md, report.json and figures/."""
    d = Path(run_dir)
    rd = RunDir(d)
    runs = rd.load_run()
    cfg = rd.read_config()
    tables = sustain_tables(runs)
    fig_paths = plot_report(tables, d) if figures else {}
    import torch
    import transformers

    base = runs["baseline"]
    meta = SustainReportMeta(
        config=cfg["config"], config_hash=cfg["config_hash"],
        model_revision=base["model_revision"].iloc[0] if "model_revision" in base else "",
        versions={"python": platform.python_version(), "torch": torch.__version__,
                  "transformers": transformers.__version__},
        n_records={k: len(v) for k, v in runs.items()},
        skipped_lines={f"{k}.jsonl": v for k, v in rd.skipped.items()})
    con = runs["constrained"]
    report = SustainReport(meta=meta, estimator=ESTIMATOR_NOTE, tables=tables,
                           examples=_examples(con) if len(con) else [], figures=fig_paths)
    (d / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (d / "report.md").write_text(report.markdown())
    return report
