"""End to end on the embedded model: every stage, report recount, SIGKILL + resume, shards + merge."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from interp.errors import InterpError
from interp.experiments import SustainConfig, SustainRun
from interp.experiments.merge import merge_runs
from interp.records import SCHEMA_VERSION
from interp.rundir import RunDir
from interp.store import ResultStore

TINY = dict(task="smoke_arith", n_items=5, max_new_tokens=40, k_values=[2], controls=["neutral", "rerun"],
            batch_size=8)


def _records(d):
    return {stage: {r["key"]: r for r in ResultStore(d / f"{stage}.jsonl").records()}
            for stage in ("baseline", "constraints", "constrained")}


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    report = SustainRun(SustainConfig(**TINY), d, model=model, progress=False, log=lambda s: None).run()
    return d, report


def test_every_stage_and_report_recount(reference):
    d, report = reference
    recs = _records(d)
    assert recs["baseline"] and recs["constraints"] and recs["constrained"]
    single = [r for r in recs["constrained"].values() if r["condition_kind"] == "single"]
    overall = {row["group"]: row for row in report["tables"]["overall"]}
    row = overall["all constraints (K=1)"]
    assert row["n"] == len(single) and row["n_success"] == sum(r["success"] for r in single)
    rerun = [r for r in recs["constrained"].values() if r["condition"] == "control:rerun"]
    assert overall["control: rerun"]["n_success"] == len(rerun)  # greedy re-run reproduces every baseline success
    base = {r["key"]: r for r in recs["baseline"].values()}
    assert all(r["output_ids"] == base[r["baseline_key"]]["output_ids"] for r in rerun)
    for r in recs["constrained"].values():
        assert r["error_type"] in ("none", "reasoning", "output_spec", "truncated")
        assert (r["error_type"] == "none") == r["success"]
        assert (d / r["cas_file"]).is_file()
    rd = RunDir(d)
    for stage in ("baseline", "constraints", "constrained"):  # the typed schema names every field writers write
        typed = rd.typed(stage)
        assert len(typed) == len(recs[stage]) and all(r.schema_version == SCHEMA_VERSION and not r.extra
                                                      for r in typed), stage
    assert (d / "report.md").read_text().count("SustainScore") >= 1
    assert all((d / p).is_file() for ps in report["figures"].values() for p in ps)


def test_sigkill_and_resume_gives_identical_records(reference, tmp_path):
    ref_dir, ref_report = reference
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "interp.cli", "sustain", "--config", str(cfg), "--out", str(out), "--no-cas"]
    cmd = cmd[:-1]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    target = out / "constrained.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if target.exists() and target.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = target.read_text().count("\n")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ref, got = _records(ref_dir), _records(out)
    for stage in ref:
        assert ref[stage].keys() == got[stage].keys(), stage
        for k in ref[stage]:
            a, b = dict(ref[stage][k]), dict(got[stage][k])
            assert a == b, (stage, k)
    assert n_before < len(got["constrained"])
    rep = json.loads((out / "report.json").read_text())
    assert rep["tables"] == json.loads((ref_dir / "report.json").read_text())["tables"]


def test_shards_merge_to_the_unsharded_run(model, reference, tmp_path):
    ref_dir, _ = reference
    shards = []
    for i in range(2):
        d = tmp_path / f"shard{i}"
        SustainRun(SustainConfig(**TINY), d, model=model, progress=False, log=lambda s: None, shard=(i, 2)).run(report=False)
        shards.append(d)
    merged = merge_runs(shards, tmp_path / "merged")
    ref, got = _records(ref_dir), _records(merged)
    for stage in ref:
        assert ref[stage] == got[stage], stage


def test_merge_refuses_different_configs(model, reference, tmp_path):
    ref_dir, _ = reference
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"config": {}, "config_hash": "different"}))
    with pytest.raises(InterpError, match="different configs"):
        merge_runs([ref_dir, other], tmp_path / "m")


def test_no_baseline_success_is_a_clear_error(model, tmp_path):
    cfg = SustainConfig(**{**TINY, "max_new_tokens": 1, "n_items": 2})
    with pytest.raises(InterpError, match="no baseline successes"):
        SustainRun(cfg, tmp_path, model=model, progress=False, log=lambda s: None).run()
