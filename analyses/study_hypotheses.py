"""The pre-registered study (STUDY.md): H1-H6 as supported / not supported / inconclusive, in one table.

    python -m analyses.study_hypotheses --config analyses/configs/study_135m.yaml

Reads (never re-runs) the finished run directories of the config (`interp launch`, then
`analyses.run_all` for the CAS reference and the ablations), pools the three task families and writes, under
``<out>/tables/``: ``hypotheses.csv`` (every planned comparison: effect, CI, n, p, test, verdict; hard
constraints, soft ones as separate rows), ``robustness.csv`` (H2 and H6 under every CAS normalisation and
with function words excluded), ``heads.csv`` (sweep, attribution and CAS difference per head),
``causal_heads.csv`` (their agreement), ``soft_judge_agreement.csv`` (the judge against the hand check), and
``study_hypotheses.md`` beside the figure ``study_hypotheses.png``/``.pdf``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from interp.attention.analysis import record_prompt
from interp.attention.cas import normalise
from interp.attention.robustness import cas_variants
from interp.attention.storage import read_cas
from interp.plots.study import plot_hypotheses
from interp.rundir import RunDir
from interp.stats import aggregate_effect, benjamini_hochberg, mann_whitney_by_cell, paired_bootstrap_diff
from interp.stats.hypotheses import (Verdict, clustered_slope, paired_rate_test, stratified_diff, stratified_rank_test,
                                     top_overlap, verdict)

from .common import Context, main

ALPHA, SESOI_RATE, SESOI_D = 0.05, 0.05, 0.1
N_BOOT = 2000
HANDCHECK = Path("analyses/study_135m_handcheck.csv")
ROBUST = ("raw", "no_sink", "density", "prompt_share", "control_ratio", "content")


def _rows(v: Verdict, scale: str, **extra) -> dict:
    return {**v.to_dict(), "scale": scale, **extra}


# ---- data --------------------------------------------------------------------------------------------------
def load(ctx: Context) -> dict:
    """Pooled records of every task run (item ids prefixed by task), with each record's run directory."""
    entry = ctx.models()[0]
    dirs = ctx.runs(entry)
    base, con, abl, sweep = [], [], [], []
    for task, d in dirs.items():
        rd = RunDir(d)
        for stage, out in (("baseline", base), ("constrained", con), ("ablations", abl), ("ablation_sweep", sweep)):
            for r in rd.records(stage) if rd.has(stage) else []:
                out.append({**r, "family": task, "run_dir": str(d), "item": f"{task}:{r['item_id']}"})
    return {"entry": entry, "dirs": dirs, "baseline": base, "constrained": con, "ablations": abl, "sweep": sweep}


# ---- H1 and H5 ---------------------------------------------------------------------------------------------
def h1(con: list[dict], hardness: str) -> list[dict]:
    """Per item: mean success over its K = 1 conditions of `hardness` minus the control's success."""
    df = pd.DataFrame(con)
    single = df[(df.condition_kind == "single") & (df.hardness == hardness)]
    rate = single.groupby("item")["success"].mean()
    out = []
    for ctl in ("neutral", "paraphrase"):
        c = df[df.condition == f"control:{ctl}"].groupby("item")["success"].mean()
        both = pd.concat([rate.rename("a"), c.rename("b")], axis=1).dropna()
        diff, lo, hi, p = paired_rate_test(both.a.to_numpy(), both.b.to_numpy(), n_boot=N_BOOT)
        tag = "H1" if hardness == "hard" else "H1 (soft)"
        out.append(_rows(verdict(tag, f"constrained K=1 vs {ctl}", "baseline-solved items", len(both), diff, lo, hi,
                                 p, "paired bootstrap + McNemar (majority)", -1, SESOI_RATE, ALPHA),
                         "rate difference", rate_a=float(both.a.mean()) if len(both) else math.nan,
                         rate_b=float(both.b.mean()) if len(both) else math.nan))
    return out


def h5(con: list[dict]) -> tuple[list[dict], dict]:
    df = pd.DataFrame(con)
    use = df[(df.condition_kind.isin(["single", "set"])) & (df.hardness == "hard")]
    s = clustered_slope(use["item"].to_numpy(), use["k"].to_numpy(), use["success"].astype(float).to_numpy(),
                        n_boot=N_BOOT)
    row = _rows(verdict("H5", "SustainScore slope over K (hard)", "constrained generations", s.n_obs, s.slope, s.lo,
                        s.hi, s.p, "linear probability, item-clustered bootstrap", -1, SESOI_RATE, ALPHA),
                "slope per K", logistic_slope=s.logistic_slope, n_items=s.n_items,
                rates_by_k=", ".join(f"K={int(k)}: {v:.3f}" for k, v in s.rates.items()))
    return [row], {"by_k": s.rates}


# ---- CAS: H2, H6 and robustness ----------------------------------------------------------------------------
def cas_data(ctx: Context, data: dict) -> dict:
    """Per hard constrained generation: live CAS (stored), and teacher-forced variants of its output and, for
    failures, of the baseline output in the same prompt (the H6 reference)."""
    base = {r["key"]: r for r in data["baseline"]}
    recs = [r for r in data["constrained"] if r.get("condition_kind") in ("single", "set")
            and r.get("hardness") == "hard" and r.get("cas_file") and r["output_ids"]]
    model = ctx.model(ctx.sustain_config(data["entry"], recs[0]["family"])) if recs else None
    live, var, ref = {}, {}, {}
    for d in sorted({r["run_dir"] for r in recs}):
        rs = [r for r in recs if r["run_dir"] == d]
        for r in rs:
            live[r["key"]] = read_cas(d, r["cas_file"])
        jobs = [(f"out_{r['key']}", record_prompt(r), r["output_ids"]) for r in rs]
        jobs += [(f"ref_{r['key']}", record_prompt(r), base[r["baseline_key"]]["output_ids"]) for r in rs
                 if not r["success"] and r.get("baseline_key") in base]
        got = cas_variants(d, model, jobs)
        var.update({k[4:]: v for k, v in got.items() if k.startswith("out_")})
        ref.update({k[4:]: v for k, v in got.items() if k.startswith("ref_")})
    return {"recs": recs, "live": live, "var": var, "ref": ref}


def _span(cas_tuple, how: str) -> np.ndarray:
    """[steps, layers, heads] of the constraint span under a normalisation, or of the content span ("content")."""
    cas, spans, span_len = cas_tuple
    if how == "content":
        return normalise(cas, spans, "content", "raw")
    if how == "control_ratio":
        return normalise(cas, spans, "constraints", how, span_len, control="control")
    return normalise(cas, spans, "constraints", how, span_len)


def h2_aggregate(vals: np.ndarray, failed: np.ndarray, family: np.ndarray, comparison: str) -> Verdict:
    """Failed vs successful per-generation values, stratified by family (van Elteren; effect: the within-family
    difference of means, Mantel-Haenszel weights, stratified bootstrap CI)."""
    ok = np.isfinite(vals)
    vals, failed, family = vals[ok], failed[ok], family[ok]
    _, p = stratified_rank_test(vals, failed, family)
    d, lo, hi = stratified_diff(vals, failed, family, n_boot=N_BOOT)
    sd = _pooled_sd(vals[failed], vals[~failed])
    return verdict("H2", comparison, "constrained generations (failed / successful)", len(vals), d, lo, hi, p,
                   "van Elteren (stratified by family)", 1, SESOI_D * sd, ALPHA)


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(np.sqrt((a.var(ddof=1) * (len(a) - 1) + b.var(ddof=1) * (len(b) - 1)) / (len(a) + len(b) - 2)))


def h2(cd: dict) -> tuple[list[dict], pd.DataFrame, pd.DataFrame, str]:
    """H2 stratified by family (pre-registered: "stratified by family where a test allows"), then the pooled
    Mann-Whitney and each family on its own; per layer and per head with BH on the stratified p."""
    recs, live = cd["recs"], cd["live"]
    per = np.stack([normalise(*live[r["key"]][:2], "constraints").mean(0) for r in recs])  # [gen, layers, heads]
    failed = np.array([not r["success"] for r in recs])
    family = np.array([r["family"] for r in recs])
    agg = per.mean((1, 2))
    main = h2_aggregate(agg, failed, family, "CAS failed vs successful (aggregate)")
    rows = [_rows(main, "CAS difference", n_failed=int(failed.sum()), n_success=int((~failed).sum()))]
    e = aggregate_effect(agg[failed], agg[~failed], n_boot=N_BOOT)
    sd = _pooled_sd(agg[failed], agg[~failed])
    rows.append(_rows(verdict("H2 (pooled)", "aggregate, families pooled (confounds family with outcome)",
                              "constrained generations", len(agg), e.diff, e.diff_lo, e.diff_hi, e.p,
                              "Mann-Whitney U", 1, SESOI_D * sd, ALPHA), "CAS difference",
                      rank_biserial=e.rank_biserial, rb_lo=e.rb_lo, rb_hi=e.rb_hi))
    for fam in sorted(set(family)):
        m = family == fam
        ef = aggregate_effect(agg[m & failed], agg[m & ~failed], n_boot=N_BOOT)
        rows.append(_rows(verdict(f"H2 ({fam})", "aggregate, this family", "constrained generations", int(m.sum()),
                                  ef.diff, ef.diff_lo, ef.diff_hi, ef.p, "Mann-Whitney U", 1,
                                  SESOI_D * _pooled_sd(agg[m & failed], agg[m & ~failed]), ALPHA), "CAS difference",
                          n_failed=int((m & failed).sum()), n_success=int((m & ~failed).sum())))
    L, H = per.shape[1:]
    z_l, p_l = stratified_rank_test(per.mean(-1), failed, family)
    layers = pd.DataFrame({"layer": np.arange(L), "z": z_l, "p": p_l,
                           "diff": [stratified_diff(per[:, l].mean(-1), failed, family, n_boot=0)[0] for l in range(L)]})
    layers["p_bh"] = benjamini_hochberg(layers["p"])
    z_c, p_c = stratified_rank_test(per.reshape(len(per), -1), failed, family)
    cells = mann_whitney_by_cell(per[failed], per[~failed], alpha=ALPHA, n_boot=0)  # pooled means, for the tables
    cells["z_stratified"], cells["p_stratified"] = z_c, p_c
    cells["p_bh_stratified"] = benjamini_hochberg(p_c)
    for unit, df, zcol, pcol in (("layers", layers, "z", "p_bh"), ("heads", cells, "z_stratified", "p_bh_stratified")):
        pos = int(((df[pcol] < ALPHA) & (df[zcol] > 0)).sum())
        neg = int(((df[pcol] < ALPHA) & (df[zcol] < 0)).sum())
        rows.append(_rows(Verdict("H2", f"per {unit[:-1]}, BH: {pos} of {len(df)} higher in failures, {neg} lower",
                                  unit, len(df), float(main.effect), math.nan, math.nan, float(df[pcol].min()),
                                  f"van Elteren per {unit[:-1]}, BH", 1, main.sesoi, count_verdict(pos, neg)),
                          "CAS difference", n_higher=pos, n_lower=neg))
    n_cells = int((cells["p_bh_stratified"] < ALPHA).sum())
    return rows, layers, cells, f"{n_cells} of {len(cells)} heads significant after BH (stratified by family)"


def count_verdict(pos: int, neg: int) -> str:
    """Per-layer / per-head H2: supported when some units are significantly higher in failures and none lower,
    not supported when some are lower and none higher, inconclusive when none or both directions are."""
    if pos and not neg:
        return "supported"
    if neg and not pos:
        return "not supported"
    return "inconclusive"


def _agg(arr: np.ndarray) -> float:
    return float(np.nanmean(arr))


def _variant(cas_tuple, how: str) -> float:
    """One generation's CAS under a robustness variant. control_ratio is the ratio of the generation's mean
    constraint CAS to its mean control-span CAS (a per-step ratio is dominated by near-zero control steps)."""
    if how == "control_ratio":
        cas, spans, _ = cas_tuple
        return _agg(normalise(cas, spans, "constraints")) / max(_agg(normalise(cas, spans, "control")), 1e-12)
    return _agg(_span(cas_tuple, how))


def robustness(cd: dict) -> pd.DataFrame:
    """H2 and H6 under every normalisation and with the constraint's function words excluded (teacher-forced)."""
    recs, var, ref = cd["recs"], cd["var"], cd["ref"]
    rows = []
    for how in ROBUST:
        rs = [r for r in recs if r["key"] in var]
        v = h2_aggregate(np.array([_variant(var[r["key"]], how) for r in rs]), np.array([not r["success"] for r in rs]),
                         np.array([r["family"] for r in rs]), f"aggregate, {how}")
        rows.append({**v.to_dict(), "variant": how})
        keys = [r["key"] for r in recs if not r["success"] and r["key"] in ref and r["key"] in var]
        a = np.array([_variant(var[k], how) for k in keys])
        b = np.array([_variant(ref[k], how) for k in keys])
        ok = np.isfinite(a) & np.isfinite(b)
        rows.append({**h6_test(a[ok], b[ok], f"failed vs reference, {how}").to_dict(), "variant": how})
    return pd.DataFrame(rows)


def h6_test(a: np.ndarray, b: np.ndarray, comparison: str) -> Verdict:
    d = a - b
    diff, lo, hi = paired_bootstrap_diff(a, b, n_boot=N_BOOT)
    p = float(sps.wilcoxon(d).pvalue) if len(d) and np.any(d != 0) else math.nan
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    return verdict("H6", comparison, "failed generations", len(d), diff, lo, hi, p, "Wilcoxon signed-rank", 0,
                   SESOI_D * sd, ALPHA)


def h6(cd: dict) -> list[dict]:
    keys = [r["key"] for r in cd["recs"] if not r["success"] and r["key"] in cd["ref"]]
    a = np.array([_agg(normalise(*cd["live"][k][:2], "constraints")) for k in keys])
    b = np.array([_agg(_span(cd["ref"][k], "raw")) for k in keys])
    return [_rows(h6_test(a, b, "CAS failed (live) vs teacher-forced reference"), "CAS difference",
                  mean_failed=float(a.mean()) if len(a) else math.nan,
                  mean_reference=float(b.mean()) if len(b) else math.nan)]


# ---- H3 and H4 ---------------------------------------------------------------------------------------------
ARMS = (("rescue", "H3", "damp:constraints:all"), ("rescue", "H3 (knockout)", "knockout:constraints:all"),
        ("rescue", "H3 (top-10 heads)", "damp:constraints:top10"), ("induce", "H4", "boost:constraints:all"),
        ("induce", "H4 (top-10 heads)", "boost:constraints:top10"))  # the pre-registered arm first, then secondaries


def h3_h4(abl: list[dict]) -> list[dict]:
    """Each main arm against every control of its operation, paired over the same generations; the primary H3
    and H4 verdict is the intersection-union over their controls."""
    if not abl:
        return [_rows(Verdict(h, "ablations", "", 0, math.nan, math.nan, math.nan, math.nan, "", 1, SESOI_RATE,
                              "not run"), "rate difference") for h in ("H3", "H4")]
    df = pd.DataFrame(abl).drop_duplicates(["base_key", "arm"], keep="last")
    out = []
    for stage, hyp, main_arm in ARMS:
        g = df[df.stage == stage]
        flips = g.pivot(index="base_key", columns="arm", values="flipped").astype(float)
        if main_arm not in flips.columns:
            continue
        op = main_arm.split(":")[0]
        controls = {"replay": "none", "random span": f"{op}:random_span:all", "task": f"{op}:task:all",
                    "random heads": next((a for a in flips.columns if a.startswith(f"{op}:constraints:random")), None)}
        if not main_arm.endswith(":all"):  # a head subset: only the controls on as many heads (or none) compare
            controls = {k: v for k, v in controls.items() if k in ("replay", "random heads")}
        verdicts = []
        for name, arm in controls.items():
            if arm is None or arm not in flips.columns:
                continue
            both = flips[[main_arm, arm]].dropna()
            diff, lo, hi, p = paired_rate_test(both[main_arm].to_numpy(), both[arm].to_numpy(), n_boot=N_BOOT)
            v = verdict(hyp, f"{main_arm} vs {name}", f"constrained {'failures' if stage == 'rescue' else 'successes'}",
                        len(both), diff, lo, hi, p, "paired bootstrap + McNemar", 1, SESOI_RATE, ALPHA)
            verdicts.append(v)
            out.append(_rows(v, "rate difference", rate_main=float(both[main_arm].mean()),
                             rate_control=float(both[arm].mean())))
        if verdicts and hyp in ("H3", "H4"):
            names = {v.verdict for v in verdicts}
            overall = ("supported" if names == {"supported"} else "not supported" if "not supported" in names
                       else "inconclusive")
            out.append(_rows(Verdict(hyp, "all controls (intersection-union)", "", min(v.n for v in verdicts),
                                     min(v.effect for v in verdicts), math.nan, math.nan, max(v.p for v in verdicts),
                                     "every control beaten", 1, SESOI_RATE, overall), "rate difference"))
    return out


# ---- causal heads ------------------------------------------------------------------------------------------
def heads(sweep: list[dict], cells: pd.DataFrame, shape: tuple[int, int]) -> tuple[pd.DataFrame, dict]:
    L, H = shape
    cas_diff = np.zeros((L, H))
    for r in cells.itertuples():  # failed vs successful, stratified by family (van Elteren z)
        cas_diff[int(r.layer), int(r.head)] = r.z_stratified
    if not sweep:
        return pd.DataFrame(), {"n_sweeps": 0}
    eff = np.sum([np.asarray(s["head_effect"]) for s in sweep], 0)
    att = np.sum([np.asarray(s["attribution"]) for s in sweep], 0)
    df = pd.DataFrame({"layer": np.repeat(np.arange(L), H), "head": np.tile(np.arange(H), L),
                       "sweep_effect": eff.ravel(), "attribution": att.ravel(), "cas_diff": cas_diff.ravel()})
    rho, p = sps.spearmanr(eff.ravel(), cas_diff.ravel())
    rho_a, p_a = sps.spearmanr(att.ravel(), eff.ravel())
    hit, p_hit = top_overlap(eff, cas_diff, 10)
    top = df.sort_values("sweep_effect", ascending=False).head(10)
    return df, {"n_sweeps": len(sweep), "spearman_sweep_vs_cas_diff": float(rho), "p": float(p),
                "spearman_attribution_vs_sweep": float(rho_a), "p_attribution": float(p_a),
                "top10_overlap_sweep_cas_diff": hit, "p_overlap": p_hit,
                "top10_sweep_heads": [f"L{int(r.layer)}H{int(r.head)}" for r in top.itertuples()],
                "top10_cas_diff_heads": [f"L{int(r.layer)}H{int(r.head)}" for r in
                                         df.sort_values("cas_diff", ascending=False).head(10).itertuples()],
                "layer_effect": [float(x) for x in np.sum([np.asarray(s["layer_effect"]) for s in sweep], 0)]}


# ---- soft constraints: the judge against a hand check ------------------------------------------------------
def soft_sample(con: list[dict], n_per_family: int = 10, seed: int = 0) -> pd.DataFrame:
    """A seeded draw of judged soft K = 1 generations, 10 per family, for the hand check."""
    df = pd.DataFrame(con)
    soft = df[(df.condition_kind == "single") & (df.hardness == "soft") & df.constraint_met.notna()]
    parts = [g.sample(min(n_per_family, len(g)), random_state=seed) for _, g in soft.groupby("family")]
    if not parts:
        return pd.DataFrame()
    s = pd.concat(parts)
    return pd.DataFrame({"key": s.key, "family": s.family, "ctype": s.ctype,
                         "constraint": [" | ".join(c["text"] for c in cs) for cs in s.constraints],
                         "judge_output": [" | ".join(str(c.get("judge_output")) for c in ch) for ch in s.constraint_checks],
                         "output_text": s.output_text,
                         "judge_ok": s.constraint_met.astype(bool), "hand_ok": ""})


def judge_agreement(path: Path) -> dict:
    if not path.exists():
        return {"n": 0}
    df = pd.read_csv(path)
    df = df[df.hand_ok.astype(str).str.lower().isin(["true", "false"])]
    if df.empty:
        return {"n": 0}
    j = df.judge_ok.astype(str).str.lower() == "true"
    h = df.hand_ok.astype(str).str.lower() == "true"
    po = float((j == h).mean())
    pe = float(j.mean() * h.mean() + (1 - j.mean()) * (1 - h.mean()))
    kappa = (po - pe) / (1 - pe) if pe < 1 else math.nan
    return {"n": int(len(df)), "agreement": po, "cohens_kappa": kappa, "judge_yes": float(j.mean()),
            "hand_yes": float(h.mean())}


# ---- report ------------------------------------------------------------------------------------------------
def _fmt(x, nd=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{nd}f}"


def markdown(table: pd.DataFrame, rob: pd.DataFrame, causal: dict, judge: dict, notes: list[str]) -> str:
    lines = ["# Study results (generated by analyses/study_hypotheses.py)", "",
             "| hypothesis | comparison | n | effect [95% CI] | p | test | verdict |", "|---|---|--:|---|--:|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.hypothesis} | {r.comparison} | {r.n} | {_fmt(r.effect)} [{_fmt(r.lo)}, {_fmt(r.hi)}] | "
                     f"{_fmt(r.p)} | {r.test} | **{r.verdict}** |")
    lines += ["", "## Robustness (H2, H6; teacher-forced CAS)", "",
              "| variant | comparison | n | effect [95% CI] | p | verdict |", "|---|---|--:|---|--:|---|"]
    for r in rob.itertuples():
        lines.append(f"| {r.variant} | {r.hypothesis} {r.comparison} | {r.n} | {_fmt(r.effect)} "
                     f"[{_fmt(r.lo)}, {_fmt(r.hi)}] | {_fmt(r.p)} | {r.verdict} |")
    lines += ["", "## Which heads carry the causal effect", ""]
    lines += [f"- {k}: {v}" for k, v in causal.items() if k != "layer_effect"]
    lines += ["", "## Soft-constraint judge vs hand check", ""] + [f"- {k}: {_fmt(v) if isinstance(v, float) else v}"
                                                                    for k, v in judge.items()]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def run(ctx: Context) -> None:
    """Every pre-registered hypothesis with its verdict, the robustness table and the causal-head comparison."""
    data = load(ctx)
    if not data["constrained"]:
        ctx.log("no constrained records: run `interp launch` on the config first")
        return
    rows = h1(data["constrained"], "hard") + h1(data["constrained"], "soft")
    cd = cas_data(ctx, data)
    h2_rows, layers, cells, cells_note = h2(cd)
    rows += h2_rows
    rows += h3_h4(data["ablations"])
    h5_rows, _ = h5(data["constrained"])
    rows += h5_rows + h6(cd)
    table = pd.DataFrame(rows)
    rob = robustness(cd)
    tf_diff = max(float(np.abs(normalise(*cd["var"][k][:2], "constraints")
                               - normalise(*cd["live"][k][:2], "constraints")).max()) for k in cd["var"])
    shape = cells["layer"].max() + 1, cells["head"].max() + 1
    head_df, causal = heads(data["sweep"], cells, (int(shape[0]), int(shape[1])))
    sample_path = ctx.out / "tables" / "soft_handcheck_sample.csv"
    if not HANDCHECK.exists():
        sample = soft_sample(data["constrained"])
        if len(sample):
            ctx.table(sample, "soft_handcheck_sample")
            ctx.log(f"hand-check sample written to {sample_path}: label hand_ok and save it as {HANDCHECK}")
    judge = judge_agreement(HANDCHECK)
    n_by = pd.DataFrame(data["constrained"]).groupby(["family", "condition_kind"]).size()
    notes = ["baseline items per family: " + ", ".join(
        f"{t}: {sum(r['family'] == t for r in data['baseline'])} ({sum(r['family'] == t and r['success'] for r in data['baseline'])} solved)"
        for t in data["dirs"]),
             "constrained generations per family and kind: " + ", ".join(f"{a}/{b}: {v}" for (a, b), v in n_by.items()),
             f"H2 per head: {cells_note}",
             f"teacher-forced vs live CAS, max abs difference over {len(cd['var'])} generations: {tf_diff:.2e}",
             f"SESOI: {SESOI_RATE} for rates and slopes per K; d = {SESOI_D} (x pooled SD) for CAS"]
    ctx.table(table, "hypotheses")
    ctx.table(rob, "robustness")
    ctx.table(layers, "h2_layers")
    ctx.table(head_df, "heads")
    ctx.table(pd.DataFrame([{k: v for k, v in causal.items() if k != "layer_effect"}]), "causal_heads")
    ctx.table(pd.DataFrame([judge]), "soft_judge_agreement")
    md = ctx.out / "study_hypotheses.md"
    md.write_text(markdown(table, rob, causal, judge, notes))
    ctx._register([md])
    ctx.figure(plot_hypotheses(table[table.verdict != "not run"], ctx.path("study_hypotheses")))


if __name__ == "__main__":
    main(run, __file__)
