"""The `interp` command line: every subcommand is a thin wrapper over the Python API."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import InterpError


def _add_sustain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON SustainConfig file; flags below override it")
    p.add_argument("--model", help="embedded default 'smollm2-135m', a hub name, a local folder or a .gguf path")
    p.add_argument("--task", help="task name (see `interp tasks`)")
    p.add_argument("--n-items", type=int, help="number of items")
    p.add_argument("--offset", type=int, help="first item index")
    p.add_argument("--max-new-tokens", type=int, help="generation budget (default: the task's)")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--seeds", type=int, nargs="+", help="sampling seeds")
    p.add_argument("--batch-size", type=int, help="generation batch size (0 = as large as free GPU memory allows)")
    p.add_argument("--k-values", type=int, nargs="+", help="constraint-set sizes K>1 for the scaling curve")
    p.add_argument("--soft", action="store_true", default=None, help="also derive soft constraints with an extractor")
    p.add_argument("--extractor", help="'self', a model spec, or an OpenAI-compatible URL 'http://host:port/v1#model'")
    p.add_argument("--backend", help="generate on an OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM)")
    p.add_argument("--backend-model", help="model name the server serves (default: --model)")
    p.add_argument("--dtype", help="float32 | bfloat16 | float16 | auto")
    p.add_argument("--device", help="cpu | cuda | auto (several GPUs: the model is sharded with device_map=auto)")
    p.add_argument("--no-cas", action="store_true", help="do not capture Constraint Attention Scores")
    p.add_argument("--shard", help="run shard i of n, written as i/n")
    p.add_argument("--out", help="run directory (default runs/<task>-<model>-<confighash>)")


def _sustain_config(a):
    from .experiments.config import SustainConfig, load_config_file

    d = load_config_file(a.config) if a.config else {}
    for flag, key in (("model", "model"), ("task", "task"), ("n_items", "n_items"), ("offset", "offset"),
                      ("max_new_tokens", "max_new_tokens"), ("temperature", "temperature"), ("seeds", "seeds"),
                      ("batch_size", "batch_size"), ("k_values", "k_values"), ("soft", "soft"),
                      ("extractor", "extractor"), ("backend", "backend"), ("backend_model", "backend_model"),
                      ("dtype", "dtype"), ("device", "device")):
        v = getattr(a, flag, None)
        if v is not None:
            d[key] = v
    if getattr(a, "no_cas", False):
        d["capture_cas"] = False
    return SustainConfig.from_dict(d | _settings(a, SustainConfig))


# the settings dataclass (or function) behind each command's `--set`, and an example key=value of it
SETTINGS_OF = {"sustain": ("interp.experiments.config:SustainConfig", "per_type=2"),
               "cas": ("interp.attention.analysis:cas_report", "n_boot=200"),
               "ablate": ("interp.interventions.experiments:AblationConfig", "top_k=5"),
               "compare": ("interp.experiments.config:SustainConfig", "per_type=2")}


def settings_of(command: str):
    """The dataclass or function whose fields `interp <command> --set` takes."""
    from .registry import resolve_ref

    return resolve_ref(SETTINGS_OF[command][0])


def _add_plugin_args(p: argparse.ArgumentParser, command: str | None = None) -> None:
    """`--import MODULE` (every command) and, for commands with a config dataclass, `--set key=value`."""
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module (or .py file) first, e.g. one that registers your tasks or constraint "
                        "types; repeatable")
    if command:
        ref, example = SETTINGS_OF[command]
        over = " --config and" if command in ("sustain",) else ""
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help=f"any {ref.split(':')[1]} setting, e.g. --set {example} (lists: a,b or JSON); "
                            f"repeatable; wins over{over} the flags")


def _settings(a, cls) -> dict:
    """The `--set key=value` pairs of a command, typed by the fields of dataclass `cls`."""
    from .plugins import parse_sets

    return parse_sets(getattr(a, "sets", []), cls)


def _parse_shard(s: str | None):
    if not s:
        return None
    try:
        i, n = (int(x) for x in s.split("/"))
        assert 0 <= i < n
    except Exception:  # noqa: BLE001
        raise InterpError(f"--shard must look like i/n with 0 <= i < n, got {s!r}") from None
    return i, n


def cmd_sustain(a) -> int:
    from .experiments.sustain import SustainRun

    cfg = _sustain_config(a)
    shard = _parse_shard(a.shard)
    out = Path(a.out or f"runs/{cfg.task}-{Path(cfg.model).name}-{cfg.hash()}" + (f"-shard{shard[0]}of{shard[1]}" if shard else ""))
    t0 = time.perf_counter()
    run = SustainRun(cfg, out, shard=shard)
    rep = run.run(report=shard is None)
    if rep is None:
        print(f"shard written to {out} (merge shards with `interp merge`)")
        return 0
    if cfg.capture_cas:
        from .attention.analysis import cas_report

        cas_report(out)
    print(f"done in {time.perf_counter() - t0:.0f} s; report: {out / 'report.md'}")
    for row in rep["tables"].get("overall", []):
        score = "n/a" if row["score"] is None else f"{row['score']:.3f}"
        ci = "(no CI: n < 3)" if row["lo"] is None or row["hi"] is None else f"[{row['lo']:.3f}, {row['hi']:.3f}]"
        print(f"  {row['group']:<28} SustainScore {score} {ci} n={row['n']}")
    return 0


def cmd_tasks(a) -> int:
    from .tasks import list_tasks

    for t in list_tasks():
        print(f"{t['name']:<18} {t['domain']:<6} {t.get('description', '')}")
    return 0


def cmd_generate(a) -> int:
    from .api import generate
    from .attention.cas import CAS
    from .interventions.ops import Intervention
    from .models import load_model
    from .models.generation import GenConfig
    from .prompts import Part, build_prompt

    if a.max_new_tokens < 1:
        raise InterpError(f"--max-new-tokens must be at least 1, got {a.max_new_tokens}")
    try:
        ivs = [Intervention.from_dict(json.loads(x)) for x in a.intervention]
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise InterpError(f"--intervention takes a JSON object like '{{\"op\": \"scale\", \"alpha\": 0.1}}': {e}") from None
    m = load_model(a.model)
    parts = [Part("task", a.prompt)] + ([Part("constraint_0", a.constraint)] if a.constraint else [])
    g, = generate(m, [build_prompt(m.tokenizer, parts)], GenConfig(max_new_tokens=a.max_new_tokens), progress=False,
                  capture=[CAS()] if a.cas else [], interventions=ivs or None)
    print(g.output_text)
    if a.cas:
        mean = g.cas.mean(["step", "layer", "head"]).to_pandas()
        print("mean CAS per span: " + ", ".join(f"{k}={v:.4f}" for k, v in mean.items() if not k.startswith("__")))
    return 0


def cmd_report(a) -> int:
    from .experiments.report import write_report

    write_report(a.run_dir)
    print(f"report: {Path(a.run_dir) / 'report.md'}")
    return 0


def cmd_cas(a) -> int:
    from .attention.analysis import cas_report
    from .attention.cas import NORMALISATIONS

    if a.normalisation not in NORMALISATIONS:
        raise InterpError(f"--normalisation must be one of {', '.join(NORMALISATIONS)}, got {a.normalisation!r}")
    if a.shard:
        return _cas_shard(a)
    sets = _settings(a, cas_report)
    res = cas_report(a.run_dir, **({"span": a.span, "normalisation": a.normalisation, "teacher_forced": a.teacher_forced}
                           | sets))
    print(json.dumps(res.get("summary", {}), indent=2, default=str))
    print(f"CAS report: {Path(a.run_dir) / 'cas_report.md'}")
    return 0


def cmd_ablate(a) -> int:
    from .interventions.experiments import AblationConfig, run_ablation

    flags = {k: getattr(a, k) for k in ("alpha_damp", "alpha_boost", "top_k", "n_random_heads", "max_items", "seed",
                                         "rescue_ops", "sweep_items", "sweep_top", "sweep_batch_size", "batch_size")}
    cfg = AblationConfig(**({k: v for k, v in flags.items() if v is not None} | _settings(a, AblationConfig)))
    if a.shard:
        return _ablate_shard(a, cfg)
    res = run_ablation(a.run_dir, cfg)
    assert res is not None  # an unsharded ablation writes its report
    print(f"ablation report: {res['report']}")
    return 0


def cmd_merge(a) -> int:
    from .experiments.merge import merge_runs

    merge_runs(a.shards, a.out)
    print(f"merged {len(a.shards)} shards into {a.out}")
    return 0


def cmd_compare(a) -> int:
    from .experiments.compare import run_comparison

    from .experiments.config import SustainConfig, load_config_file

    res = run_comparison(load_config_file(a.config) | _settings(a, SustainConfig), a.out)
    print(f"comparison: {res['report']}")
    return 0


def cmd_info(a) -> int:
    from .models import load_model

    m = load_model(a.model)
    print(json.dumps(m.info() | {"load_seconds": round(m.load_seconds, 2)}, indent=2))
    return 0


def cmd_view(a) -> int:
    from .viewer import export_html, serve

    if a.export:
        out = export_html(a.run_dir, a.export, cas_limit=a.cas_limit, progress=True)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; opens offline)")
        return 0
    serve(a.run_dir, port=a.port, open_browser=a.open)
    return 0


def cmd_patch(a) -> int:
    """Activation patching over a run's failed items (interp.patching.patch_run), resumable; heatmaps."""
    from .experiments.config import SustainConfig
    from .models.loading import load_model
    from .patching import patch_run, single_answer
    from .plots.patching import patching_table, plot_patching_heatmap

    model = load_model(a.model or SustainConfig.of_run(a.run_dir).model)
    layers = a.layers if a.layers else list(range(0, model.n_layers, max(1, model.n_layers // 8)))
    res = patch_run(model, a.run_dir, layers=layers, spans=a.spans, hook=a.hook, direction=a.direction,
                    max_answer_tokens=a.answer_tokens, max_items=a.max_items)
    for ans in ("correct", "failed"):
        rs = [single_answer(r, ans) for r in res if ans in r.answers]
        if rs:
            mean, _, _, n = patching_table(rs, ans)
            paths = plot_patching_heatmap(rs, Path(a.run_dir) / "figures" / f"patching_{ans}", answer=ans)
            print(f"{ans}: n={n} items, largest |mean effect| {float(abs(mean).max()):.3f}; figure {paths[0]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interp", description=(
        "Instruction/task interference toolkit: SustainScore runs, Constraint Attention Scores (CAS) and causal "
        "attention ablations on open-weight LLMs. Every command has a Python API twin (see README)."))
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    s = sub.add_parser("sustain", help="run or resume a SustainScore experiment (baseline -> constraints -> constrained runs -> report)")
    _add_sustain_args(s)
    _add_plugin_args(s, "sustain")
    s.set_defaults(fn=cmd_sustain)
    s = sub.add_parser("tasks", help="list registered tasks")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_tasks)
    s = sub.add_parser("generate", help="generate once from a prompt (quick check of a model)")
    s.add_argument("prompt")
    s.add_argument("--constraint", help="a constraint sentence appended as its own span")
    s.add_argument("--model", default="smollm2-135m")
    s.add_argument("--max-new-tokens", type=int, default=64)
    s.add_argument("--cas", action="store_true", help="also print the mean CAS on every prompt part")
    s.add_argument("--intervention", action="append", default=[], metavar="JSON",
                   help="an Intervention as JSON, e.g. '{\"op\": \"scale\", \"alpha\": 0.1}'; repeatable")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_generate)
    s = sub.add_parser("info", help="load a model and print its shape, revision and load time")
    s.add_argument("--model", default="smollm2-135m")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_info)
    s = sub.add_parser("report", help="recompute the SustainScore report of a run directory from its records")
    s.add_argument("run_dir")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("cas", help="compare CAS of failed vs successful constrained generations of a run")
    s.add_argument("run_dir")
    s.add_argument("--span", default="constraints", help="span to analyse (default: union of constraints)")
    s.add_argument("--normalisation", default="raw", help="raw | no_sink | density | prompt_share | control_ratio (with --set control=<span>)")
    s.add_argument("--teacher-forced", action="store_true", help="recompute CAS from stored outputs first")
    _add_plugin_args(s, "cas")
    _add_shard_args(s, "teacher-forced CAS", "computes the files only; `interp merge` them into the run")
    s.set_defaults(fn=cmd_cas)
    s = sub.add_parser("ablate", help="causal ablations of constraint attention over a run (rescue/induce/sweep)")
    s.add_argument("run_dir")
    s.add_argument("--alpha-damp", type=float, help="attention scale of the damp (rescue) arms (default 0.1)")
    s.add_argument("--alpha-boost", type=float, help="attention scale of the induce arms (default 5.0)")
    s.add_argument("--top-k", type=int, help="heads in the top-k arms (default 10)")
    s.add_argument("--n-random-heads", type=int, help="heads in the random-head controls (default: top-k)")
    s.add_argument("--max-items", type=int, help="cap on items (seeded pick; default all)")
    s.add_argument("--seed", type=int, help="seed of the item pick and random controls (default 0)")
    s.add_argument("--rescue-ops", nargs="+", help="rescue operations: knockout damp (default both)")
    s.add_argument("--sweep-items", type=int, help="failures swept head by head (default 4)")
    s.add_argument("--sweep-top", type=int, help="top sweep heads knocked out in real generations (default 3)")
    s.add_argument("--sweep-batch-size", type=int, help="teacher-forced batch size of the sweep (default 32)")
    s.add_argument("--batch-size", type=int, help="generation batch size (default: the run's)")
    _add_plugin_args(s, "ablate")
    s.set_defaults(fn=cmd_ablate)
    _add_shard_args(s, "ablation", "--stage sweep|arms: every shard's sweep, merged, then every shard's arms")
    s.add_argument("--stage", choices=("sweep", "arms"), help="with --shard: which half of the ablation")
    s = sub.add_parser("merge", help="merge sharded run directories into one (refuses different configs)")
    s.add_argument("shards", nargs="+")
    s.add_argument("--out", required=True)
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_merge)
    _add_launch_parser(sub)
    s = sub.add_parser("compare", help="run several models (e.g. base/SFT/RL) on the same items and compare")
    s.add_argument("config", help="YAML/JSON with `models: [{label, model}]` and SustainConfig fields")
    s.add_argument("--out", required=True)
    _add_plugin_args(s, "compare")
    s.set_defaults(fn=cmd_compare)
    s = sub.add_parser("view", help="browse a run directory in a browser (read-only), or --export it as one HTML file")
    s.add_argument("run_dir")
    s.add_argument("--port", type=int, default=8765, help="local port to serve on (default 8765; 0 = any free)")
    s.add_argument("--open", action="store_true", help="also open the page in the default browser")
    s.add_argument("--export", metavar="OUT.html", help="write one self-contained offline HTML file instead of serving")
    s.add_argument("--cas-limit", type=int, default=300,
                   help="with --export: generations whose token CAS is embedded (default 300)")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_view)
    s = sub.add_parser("patch", help="activation patching (unconstrained -> constrained) over a run's failed items")
    s.add_argument("run_dir")
    s.add_argument("--model", default=None, help="default: the run's model")
    s.add_argument("--layers", type=int, nargs="*", default=None, help="default: 8 evenly spaced layers")
    s.add_argument("--spans", nargs="+", default=["last_prompt", "answer"])
    s.add_argument("--hook", default="hook_resid_pre")
    s.add_argument("--direction", choices=["denoise", "noise"], default="denoise")
    s.add_argument("--answer-tokens", type=int, default=16)
    s.add_argument("--max-items", type=int, default=None)
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_patch)
    return p


# ---- sharded stages and the Ray launcher (interp.shards, interp.launch) ----------------------------------------
def _add_shard_args(p: argparse.ArgumentParser, what: str, how: str) -> None:
    p.add_argument("--shard", help=f"run the {what} of shard i/n of the items only, written as i/n; {how}")
    p.add_argument("--out", help="with --shard: the shard's own folder (default <run_dir>.shards/<stage>-<i>of<n>)")


def _shard_out(a, stage: str, shard) -> Path:
    return Path(a.out or f"{a.run_dir.rstrip('/')}.shards/{stage}-{shard.name}")


def _cas_shard(a) -> int:
    from .attention.analysis import cas_report, teacher_forced_shard
    from .shards import Shard

    shard = Shard.parse(a.shard)
    out = _shard_out(a, "cas_tf", shard)
    n = teacher_forced_shard(a.run_dir, out, shard, teacher_forced=a.teacher_forced,
                             reference=bool(_settings(a, cas_report).get("reference", True)))
    print(f"{n} teacher-forced CAS files written to {out} (merge the shards into {a.run_dir} with `interp merge`)")
    return 0


def _ablate_shard(a, cfg) -> int:
    from .interventions.experiments import run_ablation
    from .shards import Shard

    if not a.stage:
        raise InterpError("a sharded ablation needs --stage sweep (every shard, then `interp merge` them into the "
                          "run) and then --stage arms (every shard, merged the same way)")
    shard = Shard.parse(a.shard)
    out = _shard_out(a, "ablation_sweep" if a.stage == "sweep" else "ablation", shard)
    run_ablation(a.run_dir, cfg, shard=shard, out=out, only=a.stage)
    print(f"ablation {a.stage} shard {shard} written to {out} (merge the shards into {a.run_dir} with `interp merge`)")
    return 0


def cmd_launch(a) -> int:
    from .launch import launch

    rep = launch(a.config, shards=a.shards, address=a.address, num_cpus=a.num_cpus, cpus_per_shard=a.cpus_per_shard,
                 gpus_per_shard=a.gpus_per_shard, max_retries=a.max_retries, stages=a.stages, imports=a.imports)
    o = rep.overhead()
    print(f"launched {len(rep.ran)} shards ({rep.shards} per stage) in {rep.wall_s:.0f} s; "
          f"{len(rep.skipped)} stages already merged; launcher overhead per shard: dispatch {o['dispatch_s']:.2f} s, "
          f"return {o['return_s']:.2f} s; now `python -m analyses.run_all --config {a.config}` reuses the runs")
    return 0


def _add_launch_parser(sub) -> None:
    from .shards import SHARD_STAGES

    s = sub.add_parser("launch", help="run every model stage of a study config, sharded, on Ray (local by default)")
    s.add_argument("config", help="study YAML (models, tasks, sustain / cas / ablation sections), as analyses/ reads")
    s.add_argument("--shards", type=int, help="shards per stage (default: as many as run at once)")
    s.add_argument("--address", help="Ray cluster to join (ray://host:10001, auto; default $RAY_ADDRESS, else a "
                                      "local Ray started here)")
    s.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all cores)")
    s.add_argument("--cpus-per-shard", type=float, default=1, help="CPUs (and torch threads) per shard (default 1)")
    s.add_argument("--gpus-per-shard", type=float, help="GPUs per shard (default 1 when the cluster has GPUs, else 0)")
    s.add_argument("--max-retries", type=int, default=3, help="retries of a shard whose worker dies (default 3)")
    s.add_argument("--stages", nargs="+", choices=SHARD_STAGES, help="only these stages (default: all the config asks)")
    _add_plugin_args(s)
    s.set_defaults(fn=cmd_launch)


def markdown_reference() -> str:
    """The CLI reference section of the README, generated from the parser (a test keeps them in sync)."""
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    lines = []
    for choice in sub._choices_actions:
        lines.append(f"- `interp {choice.dest}`: {choice.help}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .plugins import import_modules

        import_modules(args.imports)
        return args.fn(args)
    except InterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
