"""Attention measurement: Constraint Attention Score capture, storage and failed-vs-successful comparison."""
from .analysis import cas_report, ranked_cells, salient_cells, token_attention
from .cas import CASCapture, default_span_groups, normalise, teacher_forced_cas
from .storage import LabelledCAS, load_cas, read_cas, save_cas

__all__ = ["CASCapture", "LabelledCAS", "cas_report", "default_span_groups", "load_cas", "normalise", "ranked_cells",
           "read_cas", "salient_cells", "save_cas", "teacher_forced_cas", "token_attention"]
