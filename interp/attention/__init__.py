"""Attention measurement: Constraint Attention Score capture, storage and failed-vs-successful comparison."""
from .cas import CASCapture, default_span_groups, normalise, teacher_forced_cas

__all__ = ["CASCapture", "default_span_groups", "normalise", "teacher_forced_cas"]
