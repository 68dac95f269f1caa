"""A study config (the YAML of `analyses/`): models, tasks and their SustainScore, CAS and ablation settings.

One place for what the analysis scripts and the launcher both need: the SustainConfig of each (model, task),
its run directory ``<runs>/<label>/<task>-<config hash>``, and the model stages a study asks for.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InterpError
from ..experiments.config import SustainConfig, load_config_file


def slug(s: str) -> str:
    """A file-name-safe version of a label ("Qwen/Qwen2.5-7B" -> "Qwen_Qwen2.5-7B")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


@dataclass(frozen=True)
class Stage:
    """One model stage of a (model, task): its kind (an `interp.shards.SHARD_STAGES` name) and own settings."""

    kind: str
    options: tuple[tuple[str, object], ...] = ()

    @property
    def settings(self) -> dict:
        return dict(self.options)


@dataclass(frozen=True)
class Pipeline:
    """The model stages of one (model, task), in dependency order, over one run directory."""

    label: str
    task: str
    config: SustainConfig
    run_dir: Path
    stages: tuple[Stage, ...]

    @property
    def name(self) -> str:
        return f"{self.label}/{self.task}"


DEPENDS = {"sustain": (), "cas_tf": ("sustain",), "ablation_sweep": ("sustain",), "ablation": ("ablation_sweep",)}


@dataclass
class Study:
    """A loaded study config (`models`, `tasks` and the `sustain`, `cas`, `ablation` sections)."""

    cfg: dict
    config_path: str

    @classmethod
    def load(cls, config_path: str | Path) -> "Study":
        cfg = load_config_file(config_path)
        missing = {"models", "tasks"} - set(cfg)
        if missing:
            raise InterpError(f"analysis config {config_path} lacks {sorted(missing)}")
        return cls(cfg, str(config_path))

    @property
    def runs_root(self) -> Path:
        return Path(self.cfg.get("runs", "runs/analyses"))

    def section(self, name: str) -> dict:
        return dict(self.cfg.get(name) or {})

    def models(self, section: str | None = None) -> list[dict]:
        """Model entries ({label, model, ...SustainConfig overrides}) of the config or of one section."""
        return list((self.section(section).get("models") if section else None) or self.cfg["models"])

    def tasks(self, section: str | None = None) -> list[str]:
        names = (self.section(section).get("tasks") if section else None) or list(self.cfg["tasks"])
        return list(names)

    @staticmethod
    def label(entry: dict) -> str:
        return entry.get("label") or entry["model"]

    def sustain_config(self, entry: dict, task: str) -> SustainConfig:
        over = (self.cfg["tasks"].get(task) if isinstance(self.cfg["tasks"], dict) else None) or {}
        d = {**self.section("sustain"), **over, **{k: v for k, v in entry.items() if k != "label"},
             "task": task, "label": self.label(entry)}
        return SustainConfig.from_dict(d)

    def run_dir(self, scfg: SustainConfig) -> Path:
        """Where the run of a config lives (and where `analyses` looks for it)."""
        return self.runs_root / slug(scfg.model_label) / f"{scfg.task}-{scfg.hash()}"

    def ablation_config(self):
        from ..interventions.experiments import AblationConfig

        opts = self.section("ablation")
        opts.pop("tasks", None)
        try:
            return AblationConfig(**opts)
        except TypeError as e:
            raise InterpError(f"{self.config_path}: bad ablation section: {e}") from None

    def pipelines(self, kinds: tuple[str, ...] | None = None) -> list[Pipeline]:
        """Every (model, task) with its model stages (all of them, or only `kinds`), configs checked first."""
        from ..shards import SHARD_STAGES

        bad = set(kinds or ()) - set(SHARD_STAGES)
        if bad:
            raise InterpError(f"unknown stages {sorted(bad)}; choose from {', '.join(SHARD_STAGES)}")
        cas, abl = self.section("cas"), self.section("ablation")
        tf = {"teacher_forced": bool(cas.get("teacher_forced", False)), "reference": bool(cas.get("reference", True))}
        acfg = asdict(self.ablation_config()) if abl else None
        out = []
        for entry in self.models():
            for task in self.tasks():
                scfg = self.sustain_config(entry, task)
                stages = [Stage("sustain")]
                if cas and task in self.tasks("cas") and any(tf.values()):
                    stages.append(Stage("cas_tf", tuple(tf.items())))
                if acfg is not None and task in self.tasks("ablation"):
                    opts = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in acfg.items())
                    stages += [Stage("ablation_sweep", opts), Stage("ablation", opts)]
                stages = [s for s in stages if kinds is None or s.kind in kinds]
                out.append(Pipeline(self.label(entry), task, scfg, self.run_dir(scfg), tuple(stages)))
        return out
