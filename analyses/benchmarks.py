"""MathIF and IFEval on the embedded model, and the "When Thinking Fails" CAS measurement on IFEval.

    python -m analyses.benchmarks run      # generate (resumable: re-running skips what is stored)
    python -m analyses.benchmarks report   # tables + figures into figures/benchmarks/ (from the stored runs)

Runs:
  ifeval          all 541 prompts, CAS captured
  mathif          all 420 problems with their constraints
  ifeval_cot      stratified subset (N_COT), a chain-of-thought cue appended, CAS captured
  ifeval_neutral  same subset, a length-matched neutral cue appended, CAS captured
  mathif_nc       stratified subset (N_MATHIF_NC) of MathIF without its constraints
generated in waves (`waves`): complete stratified subsets first, then the rest of IFEval and MathIF.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp.evals import EvalSpec, run_eval, stratified_ids
from interp.tasks import get_task

RUNS = Path("runs/benchmarks")
OUT = Path("figures/benchmarks")
MAX_NEW_TOKENS = 64  # chosen from measured throughput (see README of figures/benchmarks); all runs share it
N_COT = 72  # IFEval prompts in each cue condition (about 3 per instruction id; CPU budget)
N_MATHIF_NC = 45  # MathIF problems in the run without constraints (3 per source x n_constraints)
N_SHARDS = 4


def cot_ids() -> list[str]:
    items = get_task("ifeval").load_items()
    return stratified_ids(items, N_COT, lambda it: it.metadata["instruction_id_list"][0], seed=0)


def mathif_nc_ids() -> list[str]:
    items = get_task("mathif").load_items()
    return stratified_ids(items, N_MATHIF_NC, lambda it: f"{it.metadata['source']}-{it.metadata['n_constraints']}",
                          seed=0)


def specs() -> dict[str, EvalSpec]:
    ids = cot_ids()
    return {
        "ifeval": EvalSpec("ifeval", "ifeval", {}, RUNS / "ifeval", MAX_NEW_TOKENS, capture_cas=True),
        "mathif": EvalSpec("mathif", "mathif", {}, RUNS / "mathif", MAX_NEW_TOKENS),
        "ifeval_cot": EvalSpec("ifeval_cot", "ifeval", {"cue": "cot", "ids": ids}, RUNS / "ifeval_cot",
                               MAX_NEW_TOKENS, capture_cas=True),
        "ifeval_neutral": EvalSpec("ifeval_neutral", "ifeval", {"cue": "neutral", "ids": ids},
                                   RUNS / "ifeval_neutral", MAX_NEW_TOKENS, capture_cas=True),
        "mathif_nc": EvalSpec("mathif_nc", "mathif", {"constraints": False, "ids": mathif_nc_ids()},
                              RUNS / "mathif_nc", MAX_NEW_TOKENS),
    }


def waves() -> list[tuple[str, list[str] | None, tuple[int, int] | None]]:
    """(run, item ids or None for the rest, shard) in the order they are generated.

    Wave 1 is complete stratified subsets of every run (the CoT triple on the same prompts, MathIF with and
    without constraints on the same problems), interleaved by hash shard so an interruption leaves pairs;
    wave 2 completes IFEval and MathIF. All runs share their run directories between waves."""
    cot, nc = cot_ids(), mathif_nc_ids()
    out: list[tuple[str, list[str] | None, tuple[int, int] | None]] = []
    for shard in range(N_SHARDS):
        for name in ("ifeval", "ifeval_cot", "ifeval_neutral"):
            out.append((name, cot, (shard, N_SHARDS)))
        for name in ("mathif", "mathif_nc"):
            out.append((name, nc, (shard, N_SHARDS)))
    out += [("ifeval", None, None), ("mathif", None, None)]
    return out


def cmd_run(a) -> int:
    from interp.models import load_model

    sp = specs()
    only = set(a.only.split(",")) if a.only else set(sp)
    model = load_model("smollm2-135m")
    for name, ids, shard in waves():
        if name in only:
            what = f"{len(ids)} stratified ids" if ids is not None else "all"
            print(f"== {name}: {what}, shard {shard}", flush=True)
            run_eval(sp[name], model=model, only=ids, shard=shard)
    return 0


def cmd_report(a) -> int:
    from interp.benchmarks_report import write_report

    write_report(RUNS, OUT, {name: s.out for name, s in specs().items()})
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analyses.benchmarks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate (or resume) the benchmark runs")
    r.add_argument("--only", help="comma-separated run names (default: all)")
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("report", help="tables and figures from the stored runs")
    s.set_defaults(fn=cmd_report)
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
