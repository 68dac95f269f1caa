"""`python -m analyses.run_all` on a tiny slice: every script writes its files, the manifest lists them, runs are reused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
SCRIPTS = ("sustain_by_model_domain", "sustain_by_type", "constraint_scaling", "error_types", "cas_failed_vs_success",
           "post_training_comparison", "ablation_rescue_induce")


def tiny_config(tmp: Path) -> dict:
    return {
        "out": str(tmp / "figures"), "runs": str(tmp / "runs"),
        "sustain": {"n_items": 4, "offset": 4, "max_new_tokens": 40, "k_values": [2], "controls": ["rerun"], "batch_size": 8},
        "models": [{"label": "tiny", "model": "smollm2-135m"}],
        "tasks": {"smoke_arith": {}},
        "cas": {"tasks": ["smoke_arith"], "n_boot": 100},
        "comparison": {"tasks": ["smoke_arith"], "models": [
            {"label": "tiny", "model": "smollm2-135m"}, {"label": "tiny-b", "model": "smollm2-135m"}]},
        "ablation": {"tasks": ["smoke_arith"], "max_items": 1, "top_k": 2, "rescue_ops": ["damp"], "sweep_items": 0,
                     "sweep_top": 0},
    }


def run_all(config: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "analyses.run_all", "--config", str(config), *extra], cwd=ROOT, check=True,
                   timeout=900)


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyses")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp)))
    run_all(config)
    return tmp, config


@pytest.mark.slow
def test_every_script_writes_the_files_of_the_manifest(analysis):
    tmp, config = analysis
    man = json.loads((tmp / "figures" / "manifest.json").read_text())
    assert man["command"] == f"python -m analyses.run_all --config {config}"
    files = man["files"]
    assert all((tmp / "figures" / f).is_file() for f in files), [f for f in files if not (tmp / "figures" / f).is_file()]
    assert all(e["config"] == str(config) and e["command"].startswith("python -m analyses.") for e in files.values())
    for script in SCRIPTS:
        mine = [f for f, e in files.items() if e["script"] == f"analyses/{script}.py"]
        assert any(f.startswith("tables/") and f.endswith(".csv") for f in mine), script
        pngs = [f for f in mine if f.endswith(".png")]
        assert pngs, f"{script} wrote no figure"
        assert all(f[:-4] + ".pdf" in files for f in pngs)
    assert {"tiny/smoke_arith", "tiny-b/smoke_arith"} <= set(man["runs"])


@pytest.mark.slow
def test_run_all_reuses_finished_runs(analysis):
    tmp, config = analysis
    stores = sorted((tmp / "runs").rglob("*.jsonl"))
    before = {p: p.stat().st_mtime_ns for p in stores}
    run_all(config, "--only", "sustain_by_type")
    assert {p: p.stat().st_mtime_ns for p in stores} == before
    man = json.loads((tmp / "figures" / "manifest.json").read_text())
    assert {e["script"] for e in man["files"].values()} == {f"analyses/{s}.py" for s in SCRIPTS}
