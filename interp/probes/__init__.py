"""Probes: values that record or change what happens inside a forward pass (see `interp.probes.base`)."""
from .base import PROBES, Capability, HookProvider, Probe, RowResult, RowResults, has, register_probe
from .entropy import AttentionEntropy, EntropyResult
from .resid import Resid, ResidResult

__all__ = ["PROBES", "AttentionEntropy", "Capability", "EntropyResult", "HookProvider", "Probe", "RowResult",
           "RowResults", "has", "register_probe", "Resid", "ResidResult"]
