"""Tables and figures of the benchmark runs (analyses/benchmarks.py): IFEval, MathIF, the CoT CAS contrast and
the hard-type <-> IFEval mapping disagreements, with a manifest naming what produced every file."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import InterpError
from .evals import by_instruction, ifeval_table, mathif_table, records, score_records

COMMAND = "python -m analyses.benchmarks report"
SCRIPT = "analyses/benchmarks.py"
CONFIG = "analyses/benchmarks.py"  # the run settings are that script's constants (MAX_NEW_TOKENS, N_COT, ...)


def _md(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    return df.to_markdown(index=False, floatfmt=floatfmt)


def _run_info(d: Path) -> dict:
    from .rundir import RunDir

    cfg = RunDir(d).read_config()
    recs = records(d)
    return {"dir": str(d), "config_hash": cfg["config_hash"], "n_records": len(recs),
            "n_items": cfg["config"]["n_items"], "max_new_tokens": cfg["config"]["max_new_tokens"],
            "finish_length": sum(r["finish_reason"] == "length" for r in recs)}


def write_report(runs: Path, out: Path, run_dirs: dict[str, Path], mapping_n: int = 3000) -> dict:
    """Write every table (CSV + markdown) and figure (PNG + PDF) into `out`; returns the manifest."""
    from .constraints.ifeval import MAPPING_TABLE, mapping_disagreements
    from .plots.benchmarks import (plot_cot_cas, plot_ifeval_by_instruction, plot_mapping_disagreements,
                                   plot_mathif_breakdown)

    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    files: list[Path] = []
    present = {k: d for k, d in run_dirs.items() if (d / "config.json").exists() and records(d)}
    summary: list[str] = ["# Benchmarks on the embedded model (SmolLM2-135M-Instruct, greedy)", ""]
    manifest: dict = {"command": COMMAND, "script": SCRIPT, "config": CONFIG,
                      "runs": {k: _run_info(d) for k, d in present.items()}, "files": {}}
    ran = pd.DataFrame([{"run": k, **{c: v for c, v in info.items() if c != "config_hash"}}
                        for k, info in manifest["runs"].items()])
    summary += ["## What ran", "", "Greedy decoding; `n_records` of the run's `n_items` generated so far (runs resume "
                "where they stopped); `finish_length`: outputs cut at `max_new_tokens`.", "", _md(ran), ""]

    def table(df: pd.DataFrame, name: str, heading: str) -> None:
        df.to_csv(out / "tables" / f"{name}.csv", index=False)
        (out / "tables" / f"{name}.md").write_text(_md(df) + "\n")
        files.extend([out / "tables" / f"{name}.csv", out / "tables" / f"{name}.md"])
        summary.extend([f"## {heading}", "", _md(df), ""])

    if "ifeval" in present:
        df = score_records(present["ifeval"])
        table(ifeval_table(df), "ifeval", f"IFEval ({df['item_id'].nunique()} of 541 prompts)")
        bi = by_instruction(df)
        table(bi, "ifeval_by_instruction", "IFEval per instruction id")
        files += plot_ifeval_by_instruction(bi, out / "ifeval_by_instruction",
                                            f"IFEval, SmolLM2-135M ({df['item_id'].nunique()} prompts)")
    if "mathif" in present:
        df = score_records(present["mathif"])
        nc = score_records(present["mathif_nc"]) if "mathif_nc" in present else None
        table(mathif_table(df, nc), "mathif", f"MathIF ({df['item_id'].nunique()} of 420 problems)")
        per = df.groupby("item_id").agg(source=("source", "first"), n_constraints=("n_constraints", "first"),
                                        hard=("strict", "all"), soft=("strict", "mean"), correct=("correct", "first"))
        bys = []
        for by in ("source", "n_constraints"):
            g = per.groupby(by).agg(n=("hard", "size"), hacc=("hard", "mean"), sacc=("soft", "mean"),
                                    correct=("correct", "mean")).reset_index().rename(columns={by: "group"})
            g.insert(0, "by", by)
            bys.append(g)
        table(pd.concat(bys, ignore_index=True), "mathif_breakdown", "MathIF by source and by constraint count")
        files += plot_mathif_breakdown(per.reset_index(), out / "mathif_breakdown",
                                       f"MathIF, SmolLM2-135M ({len(per)} problems)")
    cot = {c: present[k] for c, k in (("none", "ifeval"), ("cot", "ifeval_cot"), ("neutral", "ifeval_neutral"))
           if k in present}
    if len(cot) == 3:
        from .thinking_fails import by_instruction as cas_by_inst
        from .thinking_fails import cas_frame, effects

        cf = cas_frame(cot)
        cf.to_csv(out / "tables" / "cot_cas_rows.csv", index=False)
        files.append(out / "tables" / "cot_cas_rows.csv")
        eff = effects(cf)
        table(eff, "cot_effects", f"CoT cue vs none vs length-matched neutral cue ({cf['item_id'].nunique()} "
                                  "paired prompts, answer phase)")
        bi = cas_by_inst(cf)
        table(bi, "cot_by_instruction", "CAS and accuracy per instruction id and condition")
        files += plot_cot_cas(eff, bi, out / "cot_cas", f"When Thinking Fails on SmolLM2-135M "
                                                        f"({cf['item_id'].nunique()} IFEval prompts)")
    mp = mapping_disagreements(n=mapping_n, seed=0)
    table(mp, "mapping_disagreements", f"Toolkit hard types vs nearest IFEval ids: disagreement on {mapping_n} "
                                       "random texts (seed 0)")
    table(pd.DataFrame([m.__dict__ for m in MAPPING_TABLE]), "mapping_table", "The mapping and its semantic differences")
    files += plot_mapping_disagreements(mp, out / "mapping_disagreements")
    if not files:
        raise InterpError(f"nothing to report under {runs}")
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    files.append(out / "summary.md")
    for f in files:
        manifest["files"][str(Path(f).relative_to(out))] = {"script": SCRIPT, "config": CONFIG, "command": COMMAND}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
