"""Interventions on attention: declarative specs, hook provider, and the causal experiments built on them."""
from .spec import OPS, Intervention, InterventionOp, InterventionProvider, get_op, random_span, register_op, target_positions
from .sweep import RowInterventions, logp_rows, sweep_heads, sweep_heads_sequential, sweep_interventions
from .attribution import GateProvider, attribution_scores, attribution_vs_actual
from .experiments import AblationConfig, run_ablation

__all__ = ["OPS", "Intervention", "InterventionOp", "InterventionProvider", "get_op", "register_op", "random_span", "target_positions",
           "RowInterventions", "logp_rows", "sweep_heads", "sweep_heads_sequential", "sweep_interventions",
           "GateProvider", "attribution_scores", "attribution_vs_actual", "AblationConfig", "run_ablation"]
