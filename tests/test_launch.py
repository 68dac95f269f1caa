"""`interp launch` on a local Ray with 2 CPUs (one Ray for the module): a 2-shard launch equals the unsharded
run record for record, a SIGKILLed worker is retried without losing or duplicating a record, a failing shard
stops the launch in one line, and `interp merge` refuses shard sets that are not one complete, disjoint set."""
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from interp.errors import InterpError
from interp.shards import Shard, read_mark, shard_index, write_mark
from interp.store import ResultStore

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

# batch_size 1: every prompt is generated alone in both runs, so CAS can be compared to float32 identity
# items 0 and 2 of smoke_capital_qa are solved at 12 tokens and fall in different shards (item 1 is not solved)
SUSTAIN = {"n_items": 3, "max_new_tokens": 12, "k_values": [], "controls": [], "types": ["ends_with", "keyword"],
           "batch_size": 1}
TASK = "smoke_capital_qa"
ABLATION = {"tasks": [TASK], "max_items": 3, "top_k": 2, "n_random_heads": 2, "rescue_ops": ["knockout"],
            "sweep_items": 1, "sweep_top": 1, "sweep_batch_size": 64}
STORES = ("baseline", "constraints", "constrained", "ablations", "ablation_sweep")


def _study(root: Path, tasks: dict | None = None, **sections) -> Path:
    cfg = {"runs": str(root / "runs"), "out": str(root / "fig"), "sustain": SUSTAIN,
           "models": [{"label": "smollm2-135m", "model": "smollm2-135m"}], "tasks": tasks or {TASK: {}},
           **sections}
    p = root / "study.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _records(d: Path, stages=STORES) -> dict:
    return {s: {r["key"]: r for r in ResultStore(d / f"{s}.jsonl").records()} for s in stages}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def launched(local_ray, tmp_path_factory):
    from interp.launch import Study, launch

    root = tmp_path_factory.mktemp("launch")
    cfg = _study(root, cas={"tasks": [TASK], "reference": True}, ablation=ABLATION)
    rep = launch(cfg, shards=2, progress=False, log=lambda s: None)
    (pipe,) = Study.load(cfg).pipelines()
    return root, cfg, pipe, rep


@pytest.fixture(scope="module")
def reference(model, launched, tmp_path_factory):
    """The same study unsharded, in this process: sustain, the teacher-forced reference CAS, the ablations."""
    from interp.attention.analysis import cas_report
    from interp.experiments.sustain import SustainRun
    from interp.interventions.experiments import run_ablation
    from interp.launch import Study

    _, cfg, pipe, _ = launched
    d = tmp_path_factory.mktemp("unsharded")
    SustainRun(pipe.config, d, model=model, progress=False, log=lambda s: None).run(report=False)
    cas_report(d, reference=True, model=model, figures=False)
    run_ablation(d, Study.load(cfg).ablation_config(), model=model, log=lambda s: None)
    return d


def test_two_shards_equal_the_unsharded_run_record_for_record(launched, reference):
    _, _, pipe, rep = launched
    assert len(rep.ran) == 8 and not rep.skipped  # 4 stages x 2 shards
    got, ref = _records(pipe.run_dir), _records(reference)
    for s in STORES:
        assert ref[s], f"the tiny study has no {s} records: the comparison would be empty"
        assert got[s].keys() == ref[s].keys(), s
        assert got[s] == ref[s], s  # outputs, scores, checks, ablation CAS means: every field
    for sub in ("cas", "cas_tf/cas"):
        names = sorted(p.name for p in (reference / sub).glob("*.npz"))
        assert names and names == sorted(p.name for p in (pipe.run_dir / sub).glob("*.npz")), sub
        for f in names:
            a, b = (np.load(d / sub / f)["cas"] for d in (reference, pipe.run_dir))
            assert a.shape == b.shape and np.abs(a - b).max() <= 1e-6, f


def test_a_sigkilled_worker_is_retried_and_nothing_is_lost_or_duplicated(local_ray, launched, reference, tmp_path):
    from interp.launch import Study, launch

    cfg = _study(tmp_path)
    (pipe,) = Study.load(cfg).pipelines()
    shard_dirs = [Path(f"{pipe.run_dir}.shards") / f"sustain-{i}of2" for i in range(2)]
    killed: list = []

    def killer():  # SIGKILL the worker writing a shard once its first record is on disk, before it finishes
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            for d in shard_dirs:
                lock, base = d / ".lock", d / "baseline.jsonl"
                pid = lock.read_text().split(" ")[0] if lock.is_file() else ""
                mark = read_mark(d) if (d / "shard.json").is_file() else None
                if pid.isdigit() and base.is_file() and base.read_text().count("\n") >= 1 and mark and not mark.done:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append((d, int(pid)))
                    return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    rep = launch(cfg, shards=2, stages=["sustain"], progress=False, log=lambda s: None)
    t.join()
    assert killed, "no worker was killed mid-shard"
    d, pid = killed[0]
    assert Path(f"{d}.log").read_text().count(f"== smollm2-135m/{TASK} sustain shard") == 2  # ran, retried
    assert len(rep.ran) == 2 and all(r["pid"] != pid for r in rep.ran)
    ref = _records(reference, STORES[:3])
    for s in STORES[:3]:
        lines = [json.loads(x)["key"] for x in (pipe.run_dir / f"{s}.jsonl").read_text().splitlines() if x.strip()]
        assert len(lines) == len(set(lines)), f"duplicated {s} records"
        assert set(lines) == set(ref[s]), f"lost or extra {s} records"
        assert _records(pipe.run_dir, (s,))[s] == ref[s]


def test_a_failing_shard_stops_the_launch_in_one_line_and_keeps_finished_shards(launched, capsys):
    from interp.cli import main

    root, _, pipe, _ = launched
    before = {p: p.read_bytes() for p in sorted(Path(f"{pipe.run_dir}.shards").rglob("*")) if p.is_file()}
    before |= {p: p.read_bytes() for p in sorted(pipe.run_dir.glob("*.json*"))}
    bad = _study(root, tasks={TASK: {}, "smoke_arith": {"n_items": 1000}},
                 cas={"tasks": [TASK], "reference": True}, ablation=ABLATION)
    assert main(["launch", str(bad), "--shards", "2"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, err
    assert "launch stopped: smollm2-135m/smoke_arith sustain shard" in err[0]
    assert "has only 40 items" in err[0] and "(log: " in err[0] and ".log)" in err[0]
    assert before == {p: p.read_bytes() for p in before}  # the finished study's shards and run untouched


def _copy(src: Path, dst: Path, **mark) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    m = read_mark(dst)
    for k, v in mark.items():
        setattr(m, k, v)
    write_mark(dst, m)
    return dst


def test_merge_refuses_other_configs_overlaps_gaps_unfinished_and_misplaced_records(launched, tmp_path):
    from interp.backends.scripted import ScriptedGenerator
    from interp.experiments.config import SustainConfig
    from interp.experiments.merge import merge_runs
    from interp.experiments.sustain import SustainRun

    _, _, pipe, _ = launched
    s0, s1 = (Path(f"{pipe.run_dir}.shards") / f"sustain-{i}of2" for i in range(2))
    other = tmp_path / "other-1of2"  # shard 1/2 of another config (scripted answers: no model needed)
    SustainRun(SustainConfig(**{**SUSTAIN, "max_new_tokens": 11, "backend": "scripted", "capture_cas": False}), other,
               backend_client=ScriptedGenerator(lambda conv: "42"), shard=(1, 2), progress=False,
               log=lambda s: None).run(report=False)
    cases = {
        "different configs": [s0, other],
        "overlapping shards": [s0, _copy(s0, tmp_path / "dup")],
        "incomplete set": [s0],
        "unfinished shards": [s0, _copy(s1, tmp_path / "unfinished", done=False)],
        "does not belong to sustain shard": [_copy(s1, tmp_path / "a", index=0), _copy(s0, tmp_path / "b", index=1)],
        "different stages": [s0, Path(f"{pipe.run_dir}.shards") / "ablation-1of2"],
        "not shards": [s0, pipe.run_dir],
    }
    for why, dirs in cases.items():
        with pytest.raises(InterpError, match=why):
            merge_runs(dirs, tmp_path / f"m-{why[:5]}")
    assert not (tmp_path / "m-diffe" / "baseline.jsonl").exists()
    merge_runs([s1, s0], tmp_path / "ok")  # the real set, in any order, merges
    assert _records(tmp_path / "ok", STORES[:3]) == _records(pipe.run_dir, STORES[:3])


def test_the_shard_rule_partitions_items_and_matches_the_recorded_rule():
    import hashlib

    ids = [f"item-{i}" for i in range(200)]
    for n in (1, 2, 3, 8):
        parts = [Shard(i, n).select(ids, lambda x: x) for i in range(n)]
        assert sorted(sum(parts, [])) == sorted(ids)  # disjoint and complete
        assert all(shard_index(x, n) == int(hashlib.sha1(f"shard|{x}".encode()).hexdigest()[:8], 16) % n for x in ids)
    for bad in ("2/2", "a/b", "1", "-1/2"):
        with pytest.raises(InterpError):
            Shard.parse(bad)
