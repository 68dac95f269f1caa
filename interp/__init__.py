"""interp: instruction/task interference toolkit (SustainScore, Constraint Attention Score, causal ablations).

Notebook entry points (imported lazily so `import interp` stays fast):

    m = interp.load_model()                                  # embedded SmolLM2-135M-Instruct
    g, = interp.generate(m, ["What is 2+3?"], max_new_tokens=16, capture=[interp.CAS()],
                         interventions=[interp.Intervention(op="scale", alpha=0.1, target="task")])
    g.cas                                                    # xarray (step, layer, span, head)
    with m.hooks([("blocks.*.attn.hook_pattern", fn)]): m.hf(**inputs)   # hooks on any forward
    run = interp.SustainRun(interp.SustainConfig(task="smoke_arith", n_items=16), "runs/demo"); run.run()
    interp.RunDir("runs/demo").typed("constrained")          # typed records; interp.load_records -> pandas
    interp.cas_report("runs/demo")                           # failed vs successful CAS
    interp.run_ablation("runs/demo", interp.AblationConfig())

IDEs and type checkers read the `TYPE_CHECKING` imports below; `_API` maps each name to its module.
"""
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time each name is imported on first use (_API)
    from interp.attention import CASCapture, teacher_forced_cas
    from interp.attention.cas import CAS, stack_cas, top_heads
    from interp.probes import AttentionEntropy, Probe
    from interp.attention.analysis import cas_report
    from interp.attention.storage import load_cas
    from interp.constraints import (
        Constraint, ConstraintType, extract_constraints, insert_constraints, register_constraint)
    from interp.experiments import run_sustain, SustainConfig, SustainRun
    from interp.experiments.compare import run_comparison
    from interp.experiments.merge import merge_runs
    from interp.experiments.report import load_run, sustain_tables, write_report
    from interp.interventions import Intervention, InterventionProvider
    from interp.interventions.experiments import AblationConfig, run_ablation
    from interp.models import load_model, LoadedModel
    from interp.api import Cache, generate, hook_names, hooks, run_with_cache, run_with_hooks, trace, TraceResult
    from interp.models.generation import forward_teacher_forced, GenConfig, Generation
    from interp.models.hooked_attention import AttentionHooks
    from interp.prompts import build_prompt, Part, Prompt
    from interp.records import (AblationRecord, BaselineRecord, ConstrainedRecord, ConstraintsRecord, Record,
                                SCHEMA_VERSION, SweepRecord)
    from interp.registry import Registry
    from interp.rundir import RunDir
    from interp.store import load_records, ResultStore
    from interp.tasks import get_task, Item, register_task, Score, Task

__version__ = "0.1.0"

_API = {
    "load_model": "interp.models", "LoadedModel": "interp.models",
    "GenConfig": "interp.models.generation", "generate": "interp.api",
    "forward_teacher_forced": "interp.models.generation", "Generation": "interp.models.generation",
    "CAS": "interp.attention.cas", "stack_cas": "interp.attention.cas", "top_heads": "interp.attention.cas",
    "Probe": "interp.probes", "AttentionEntropy": "interp.probes", "hooks": "interp.api", "hook_names": "interp.api",
    "run_with_hooks": "interp.api", "run_with_cache": "interp.api",
    "trace": "interp.api", "Cache": "interp.api", "TraceResult": "interp.api",
    "AttentionHooks": "interp.models.hooked_attention",
    "Part": "interp.prompts", "Prompt": "interp.prompts", "build_prompt": "interp.prompts",
    "ResultStore": "interp.store", "load_records": "interp.store",
    "RunDir": "interp.rundir",
    "get_task": "interp.tasks", "register_task": "interp.tasks", "Task": "interp.tasks", "Item": "interp.tasks",
    "Score": "interp.tasks",
    "Constraint": "interp.constraints", "ConstraintType": "interp.constraints",
    "register_constraint": "interp.constraints", "extract_constraints": "interp.constraints",
    "insert_constraints": "interp.constraints",
    "SustainConfig": "interp.experiments", "SustainRun": "interp.experiments", "run_sustain": "interp.experiments",
    "write_report": "interp.experiments.report", "load_run": "interp.experiments.report",
    "sustain_tables": "interp.experiments.report",
    "run_comparison": "interp.experiments.compare", "merge_runs": "interp.experiments.merge",
    "CASCapture": "interp.attention", "teacher_forced_cas": "interp.attention", "cas_report": "interp.attention.analysis",
    "load_cas": "interp.attention.storage",
    "Intervention": "interp.interventions", "InterventionProvider": "interp.interventions",
    "AblationConfig": "interp.interventions.experiments", "run_ablation": "interp.interventions.experiments",
    "Registry": "interp.registry",
    **{n: "interp.records" for n in ("Record", "BaselineRecord", "ConstraintsRecord", "ConstrainedRecord",
                                     "AblationRecord", "SweepRecord", "SCHEMA_VERSION")},
}

__all__ = ["AblationConfig", "AblationRecord", "AttentionEntropy", "AttentionHooks", "BaselineRecord", "build_prompt", "Cache",
    "CAS", "cas_report", "CASCapture", "ConstrainedRecord", "Constraint", "ConstraintsRecord",
    "ConstraintType", "extract_constraints", "forward_teacher_forced", "GenConfig", "generate", "Generation",
    "get_task", "hook_names", "hooks", "insert_constraints", "Intervention", "InterventionProvider", "Item",
    "load_cas", "load_model", "load_records", "load_run", "LoadedModel", "merge_runs", "Part", "Probe", "Prompt",
    "Record", "register_constraint", "register_task", "Registry", "ResultStore", "run_ablation",
    "run_comparison", "run_sustain", "run_with_cache", "run_with_hooks", "RunDir", "SCHEMA_VERSION", "Score",
    "stack_cas", "SustainConfig", "SustainRun", "sustain_tables", "SweepRecord", "Task", "teacher_forced_cas", "top_heads", "trace", "TraceResult",
    "write_report"]  # = the names of _API (a test keeps them equal)


def __getattr__(name):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
