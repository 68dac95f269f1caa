"""Experiment configuration: one dataclass, loadable from YAML/JSON, hashed to guard resumed runs."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InterpError

# Fields added for reasoning models; at these values they are left out of the hash, so older runs still resume.
THINKING_DEFAULTS = {"thinking": "auto", "thinking_delimiters": None, "think": None, "think_budget": None,
                     "phase_scope": "answer"}


@dataclass
class SustainConfig:
    """Everything that defines a SustainScore run (and so its record keys)."""

    model: str = "smollm2-135m"
    label: str = ""
    task: str = "smoke_arith"
    task_kwargs: dict = field(default_factory=dict)
    n_items: int = 16
    offset: int = 0
    max_new_tokens: int | None = None
    temperature: float = 0.0
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_size: int = 8
    types: list[str] | None = None
    soft: bool = False
    extractor: str = "self"
    per_type: int = 1
    k_values: list[int] = field(default_factory=lambda: [2, 3])
    position: str = "after"
    controls: list[str] = field(default_factory=lambda: ["neutral", "paraphrase", "rerun"])
    capture_cas: bool = True
    dtype: str = "auto"
    device: str = "auto"
    backend: str = "local"
    backend_model: str = ""
    backend_concurrency: int = 8
    backend_api_key_env: str = "OPENAI_API_KEY"
    # reasoning models (interp.models.thinking); the defaults leave a model without thinking traces untouched
    thinking: str = "auto"  # auto (detect <think> traces) | none | think | gpt-oss
    thinking_delimiters: list[str] | None = None  # [start, end] or [start, end, answer_start]; overrides `thinking`
    think: bool | None = None  # chat-template thinking switch (enable_thinking); None = the template's default
    think_budget: int | None = None  # cap the trace at N tokens, then force the end delimiter
    phase_scope: str = "answer"  # what scoring, constraint proposal and checks read: answer | output

    @property
    def model_label(self) -> str:
        return self.label or self.model

    def to_dict(self) -> dict:
        return asdict(self)

    def load_model(self):
        """The local hooked model this config names (dtype and device applied)."""
        from ..models import load_model

        return load_model(self.model, dtype=self.dtype, device=self.device)

    def hash(self) -> str:
        d = self.to_dict()
        d.pop("batch_size")
        d.pop("device")
        d.pop("backend_concurrency")
        d.pop("backend_api_key_env")
        for k, v in THINKING_DEFAULTS.items():
            if d[k] == v:
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> "SustainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InterpError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file into a dict, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"config file not found: {p}")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        return json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line
        raise InterpError(f"cannot parse config {p}: {str(e).splitlines()[0]}") from None
