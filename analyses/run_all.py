"""Regenerate every paper figure and table: `python -m analyses.run_all --config analyses/configs/default.yaml`.

Finished run directories are reused (unfinished ones resumed); writes ``<out>/manifest.json``.
"""
from __future__ import annotations

import argparse
import time
from importlib import import_module

from .common import DEFAULT_CONFIG, Context

SCRIPTS = ("sustain_by_model_domain", "sustain_by_type", "constraint_scaling", "error_types",
           "cas_failed_vs_success", "post_training_comparison", "ablation_rescue_induce")


def run_all(config: str = DEFAULT_CONFIG, only: list[str] | None = None) -> dict:
    """Run the analysis scripts (all, or `only`) on one config; returns the manifest."""
    ctx = Context.load(config)
    for name in only or SCRIPTS:
        ctx.script = name
        t0 = time.perf_counter()
        import_module(f"analyses.{name}").run(ctx)
        ctx.log(f"done in {time.perf_counter() - t0:.0f} s")
    cmd = f"python -m analyses.run_all --config {config}" + (f" --only {' '.join(only)}" if only else "")
    return ctx.write_manifest(cmd, replace=not only)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m analyses.run_all", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"analysis YAML (default {DEFAULT_CONFIG})")
    p.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    a = p.parse_args(argv)
    man = run_all(a.config, a.only)
    print(f"{len(man['files'])} files; manifest: {Context.load(a.config).out / 'manifest.json'}")
    return man


if __name__ == "__main__":
    main()
