"""Shared machinery of the analysis scripts: YAML config, run directories (run or reuse), outputs, manifest.

A config names the models, the tasks and the shared SustainConfig fields (see configs/default.yaml).
Each (model, task) gets its own run directory ``<runs>/<label>/<task>-<config hash>``; a finished one
is reused and a partial one resumed, so re-running an analysis only redoes what is missing. Every
script registers the figures and tables it writes, and `write_manifest` records them in
``<out>/manifest.json`` (file -> producing script, config, command).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from interp.errors import InterpError
from interp.experiments.config import SustainConfig
from interp.launch.study import Study, slug

DEFAULT_CONFIG = "analyses/configs/default.yaml"
__all__ = ["Context", "DEFAULT_CONFIG", "main", "script_command", "slug"]


def script_command(script: str, config: str) -> str:
    return f"python -m analyses.{script} --config {config}"


@dataclass
class Context(Study):
    """One analysis session: the study config (`interp.launch.Study`: models, tasks, sections, run directories),
    where outputs go, loaded models and everything written so far."""

    script: str = ""
    entries: dict[str, dict] = field(default_factory=dict)
    run_dirs: dict[str, dict] = field(default_factory=dict)
    _models: dict = field(default_factory=dict)
    _done: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.get("out", "figures"))

    # ---- models and runs -----------------------------------------------------------------------
    def model(self, scfg: SustainConfig):
        """The loaded model of a run's config, loaded once per (model, dtype, device)."""
        key = (scfg.model, scfg.dtype, scfg.device)
        if key not in self._models:
            from interp.models import load_model

            self._models[key] = load_model(scfg.model, dtype=scfg.dtype, device=scfg.device)
        return self._models[key]

    def run(self, entry: dict, task: str) -> Path | None:
        """Run or resume the SustainScore run of (model entry, task); None when SustainScore is undefined."""
        from interp.experiments.sustain import SustainRun

        scfg = self.sustain_config(entry, task)
        d = self.run_dir(scfg)
        if d not in self._done:
            self.log(f"{scfg.model_label} on {task}: {d}")
            try:
                SustainRun(scfg, d, model=self.model(scfg), progress=False, log=self.log).run(report=False)
                self.run_dirs[f"{scfg.model_label}/{task}"] = {"dir": str(d), "config_hash": scfg.hash()}
                self._done[d] = d
            except InterpError as e:
                self.log(f"skipping {scfg.model_label} on {task}: {e}")
                self._done[d] = None
        return self._done[d]

    def runs(self, entry: dict, tasks: list[str] | None = None) -> dict[str, Path]:
        """task -> run directory of one model (tasks without a defined SustainScore left out)."""
        dirs = {t: self.run(entry, t) for t in (tasks or self.tasks())}
        return {t: d for t, d in dirs.items() if d is not None}

    def per_model_tables(self, key: str):
        """(label, pooled tables) for every model whose pooled tables include `key`."""
        for entry in self.models():
            t = self.pooled_tables(entry)
            if t is not None and key in t:
                yield self.label(entry), t

    def pooled_tables(self, entry: dict, tasks: list[str] | None = None) -> dict[str, pd.DataFrame] | None:
        """`sustain_tables` over the records of all of a model's task runs pooled together."""
        from interp.experiments.report import load_run, sustain_tables

        loaded = {t: load_run(d) for t, d in self.runs(entry, tasks).items()}
        if not loaded:
            return None
        pooled = {}
        for stage in ("baseline", "constrained"):
            dfs = [r[stage].assign(item_id=f"{t}:" + r[stage]["item_id"]) for t, r in loaded.items() if len(r[stage])]
            pooled[stage] = pd.concat(dfs, ignore_index=True) if dfs else pd.DataFrame()
        return sustain_tables(pooled)

    # ---- outputs -------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Stem of a figure under `out` (the plotting functions add .png and .pdf)."""
        return self.out / slug(name)

    def _register(self, paths) -> list[Path]:
        for p in map(Path, paths):
            self.entries[p.relative_to(self.out).as_posix()] = {
                "script": f"analyses/{self.script}.py", "config": self.config_path,
                "command": script_command(self.script, self.config_path)}
        return [Path(p) for p in paths]

    def figure(self, paths) -> list[Path]:
        """Register figure files written by an interp plotting function."""
        return self._register(paths)

    def copy_figures(self, src_paths, name: str) -> list[Path]:
        """Copy figure files (e.g. written by a report into its run directory) to `out` as <name>.<ext>."""
        out = []
        for p in map(Path, src_paths):
            dst = self.path(name).with_suffix(p.suffix)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
            out.append(dst)
        return self._register(out)

    def table(self, df: pd.DataFrame, name: str) -> Path:
        """Write a results table to ``<out>/tables/<name>.csv``."""
        p = self.out / "tables" / f"{slug(name)}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(p, index=False, float_format="%.4g")
        self._register([p])
        return p

    def log(self, msg: str) -> None:
        print(f"[{self.script or 'analyses'}] {msg}", file=sys.stderr, flush=True)

    def write_manifest(self, command: str, replace: bool = True) -> dict:
        """Write ``<out>/manifest.json``; `replace` drops (and deletes) files of an older manifest not made now."""
        path = self.out / "manifest.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        files = dict(self.entries)
        if replace:
            for f in set(old.get("files", {})) - set(files):
                (self.out / f).unlink(missing_ok=True)
        else:
            mine = {e["script"] for e in files.values()}
            files = {f: e for f, e in old.get("files", {}).items() if e["script"] not in mine} | files
        man = {"config": self.config_path, "command": command,
               "runs": {**(old.get("runs", {}) if not replace else {}), **self.run_dirs},
               "files": dict(sorted(files.items()))}
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(man, indent=2) + "\n")
        return man


def main(run, file: str, argv=None) -> dict:
    """Command line of one analysis script: `python -m analyses.<script> --config <yaml>`."""
    script = Path(file).stem
    p = argparse.ArgumentParser(prog=f"python -m analyses.{script}", description=(run.__doc__ or "").strip())
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"analysis YAML (default {DEFAULT_CONFIG})")
    a = p.parse_args(argv)
    ctx = Context.load(a.config)
    ctx.script = script
    run(ctx)
    man = ctx.write_manifest(script_command(script, a.config), replace=False)
    for f in ctx.entries:
        print(ctx.out / f)
    return man
