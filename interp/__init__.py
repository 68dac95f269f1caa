"""interp: instruction/task interference toolkit (SustainScore, Constraint Attention Score, causal ablations).

Notebook entry points (imported lazily so `import interp` stays fast):

    m = interp.load_model()                                  # embedded SmolLM2-135M-Instruct
    run = interp.SustainRun(interp.SustainConfig(task="smoke_arith", n_items=16), "runs/demo"); run.run()
    interp.load_records("runs/demo/constrained.jsonl")       # pandas DataFrame
    interp.cas_report("runs/demo")                           # failed vs successful CAS
    interp.run_ablation("runs/demo", interp.AblationConfig())
"""
from importlib import import_module

__version__ = "0.1.0"

_API = {
    "load_model": "interp.models", "LoadedModel": "interp.models",
    "GenConfig": "interp.models.generation", "generate": "interp.models.generation",
    "forward_teacher_forced": "interp.models.generation",
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
    "run_comparison": "interp.experiments.compare", "merge_runs": "interp.experiments.merge",
    "CASCapture": "interp.attention", "teacher_forced_cas": "interp.attention", "cas_report": "interp.attention.analysis",
    "load_cas": "interp.attention.storage",
    "Intervention": "interp.interventions", "InterventionProvider": "interp.interventions",
    "AblationConfig": "interp.interventions.experiments", "run_ablation": "interp.interventions.experiments",
}


def __getattr__(name):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
