"""Interventions on attention: declarative specs, hook provider, and the causal experiments built on them."""
from .spec import OPS, Intervention, InterventionProvider, random_span, target_positions

__all__ = ["OPS", "Intervention", "InterventionProvider", "random_span", "target_positions"]
