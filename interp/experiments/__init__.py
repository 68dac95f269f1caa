"""Experiments: the SustainScore pipeline, its report, model comparisons and shard merging."""
from .config import SustainConfig, load_config_file
from .sustain import Condition, SustainRun, run_sustain

__all__ = ["Condition", "SustainConfig", "SustainRun", "load_config_file", "run_sustain"]
