"""RunDir: one writer per run directory (two real processes), read-only readers, legacy directories, bad inputs.

Run directories are hand-made (no model), so every test here takes well under a second of compute.
"""
import json
import os
import signal
import subprocess
import sys

import pytest

from interp.cli import main
from interp.errors import InterpError
from interp.experiments.config import SustainConfig
from interp.experiments.merge import merge_runs
from interp.experiments.report import write_report
from interp.experiments.sustain import SustainRun
from interp.rundir import FORMAT, RunDir
from interp.tasks import get_task

CFG = dict(task="smoke_arith", n_items=4, max_new_tokens=10, k_values=[2])


def _make_run(d, fmt=FORMAT, n_items=4):
    """A finished-looking run: every item solved at baseline, one single-constraint record each (half solved)."""
    cfg = SustainConfig(**CFG)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"config": cfg.to_dict(), "config_hash": cfg.hash()} | ({"format": fmt} if fmt else {})
    (d / "config.json").write_text(json.dumps(meta))
    base, cons, con = [], [], []
    for i, it in enumerate(get_task("smoke_arith").items(n_items)):
        bkey = f"b{i:015d}"
        base.append({"key": bkey, "stage": "baseline", "item_id": it.id, "seed": 0, "success": True,
                     "prompt_ids": [1, 2, 3], "prompt_text": it.input, "output_text": f"{it.target}",
                     "output_ids": [5], "model_revision": "test", "finish_reason": "eos", "lenient_success": True})
        cons.append({"key": f"c{i:015d}", "item_id": it.id, "baseline_key": bkey, "candidates": []})
        con.append({"key": f"k{i:015d}", "stage": "constrained", "item_id": it.id, "seed": 0, "domain": "math",
                    "condition": "single:keyword:x", "condition_kind": "single", "ctype": "keyword", "hardness": "hard",
                    "k": 1, "constraints": [{"text": "Use the word x."}], "success": i % 2 == 0,
                    "lenient_success": i % 2 == 0, "finish_reason": "eos", "prompt_ids": [1, 2, 3, 4],
                    "prompt_text": it.input + " Use the word x.", "baseline_key": bkey, "output_text": "x",
                    "constraint_met": True, "error_type": "none" if i % 2 == 0 else "reasoning"})
    for name, recs in (("baseline", base), ("constraints", cons), ("constrained", con)):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return d


HOLD = ("import sys, time; from interp.rundir import RunDir\n"
        "with RunDir(sys.argv[1]).lock('test holder'):\n"
        "    print('locked', flush=True); time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/'run' (exclusive), killed with SIGKILL at the end."""
    d = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    yield d, proc
    proc.kill()
    proc.wait()


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_second_writer_is_refused_with_the_holders_pid(holder, tmp_path, capsys):
    d, proc = holder
    _make_run(tmp_path / "shard")
    assert main(["sustain", "--task", "smoke_arith", "--n-items", "2", "--out", str(d)]) == 2
    assert f"PID {proc.pid}" in _one_error(capsys)
    assert main(["merge", str(tmp_path / "shard"), "--out", str(d)]) == 2
    assert f"PID {proc.pid}" in _one_error(capsys)
    assert not (d / "config.json").exists() and not (d / "baseline.jsonl").exists()  # nothing written
    assert proc.poll() is None


def test_ablate_is_refused_while_another_process_writes(tmp_path):
    from interp.interventions.experiments import AblationConfig, AblationRun

    d = _make_run(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        before = (d / "constrained.jsonl").read_bytes()
        with pytest.raises(InterpError, match=f"PID {proc.pid}"):
            AblationRun(d, AblationConfig(), model=None, log=lambda s: None).run()
        assert not (d / "ablations.jsonl").exists() and (d / "constrained.jsonl").read_bytes() == before
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(holder):
    d, proc = holder
    with pytest.raises(InterpError, match="in use"):
        with RunDir(d).lock():
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RunDir(d).lock("test") as rd:  # the kernel released the flock with the process
        assert (d / ".lock").read_text().startswith(f"{os.getpid()} ")
        with rd.lock():  # re-entrant within one process
            assert rd.locked
    assert not RunDir(d).locked and (d / ".lock").read_text() == ""


def test_merge_refuses_a_shard_that_is_being_written(holder, tmp_path):
    d, proc = holder
    _make_run(d)
    with pytest.raises(InterpError, match=f"PID {proc.pid}"):
        merge_runs([d], tmp_path / "merged", report=False)


def test_writes_need_the_lock(tmp_path):
    rd = RunDir(_make_run(tmp_path / "run"))
    with pytest.raises(InterpError, match="without holding its lock"):
        rd.store("baseline")
    with rd.lock():
        store = rd.store("baseline")
    with pytest.raises(InterpError, match="without holding its lock"):
        store.append({"key": "new"})


def test_report_and_merge_leave_their_inputs_untouched_and_count_bad_lines(tmp_path, capsys):
    d = _make_run(tmp_path / "run")
    con = d / "constrained.jsonl"
    lines = con.read_text().splitlines(keepends=True)
    damaged = "".join(lines[:1] + ['{"foo": 1}\n', "[1, 2]\n", "not json\n"] + lines[1:]) + '{"key": "half'
    con.write_text(damaged)
    rep = write_report(d, figures=False)
    assert con.read_text() == damaged  # the partial last line is not cut off by a reader
    assert rep["meta"]["skipped_lines"] == {"constrained.jsonl": [2, 3, 4]}
    assert rep["meta"]["n_records"]["constrained"] == 4
    assert "3 unreadable line(s) of `constrained.jsonl`" in (d / "report.md").read_text()
    assert "skipped 3 unreadable line(s) (line 2, 3, 4)" in capsys.readouterr().err
    row = {r["group"]: r for r in rep["tables"]["overall"]}["all constraints (K=1)"]
    assert (row["n_success"], row["n"]) == (2, 4)
    merged = merge_runs([d], tmp_path / "merged", report=False)
    assert con.read_text() == damaged
    assert len((merged / "constrained.jsonl").read_text().splitlines()) == 4


def test_cli_report_and_cas_with_garbage_lines_give_no_traceback(tmp_path, capsys):
    d = _make_run(tmp_path / "run")
    with open(d / "constrained.jsonl", "a") as f:
        f.write('{"foo": 1}\n[1, 2]\n')
    assert main(["report", str(d)]) == 0
    assert "skipped 2 unreadable line(s)" in capsys.readouterr().err
    assert main(["cas", str(d)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(line.startswith("warning:") for line in err.splitlines())
    notes = json.loads((d / "cas_report.json").read_text())["notes"]
    assert "skipped 2 unreadable line(s) of constrained.jsonl (lines [5, 6])" in notes


def test_legacy_directory_is_readable_but_not_resumed(tmp_path):
    d = _make_run(tmp_path / "run", fmt=None)
    assert RunDir(d).read_config()["format"] == 1
    rep = write_report(d, figures=False)
    assert rep["meta"]["n_records"] == {"baseline": 4, "constraints": 4, "constrained": 4}
    with pytest.raises(InterpError, match="older interp"):
        SustainRun(SustainConfig(**CFG), d, progress=False, log=lambda s: None)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((d / "config.json").read_text())
    SustainRun(SustainConfig(**CFG), empty, progress=False, log=lambda s: None)  # nothing stored: upgraded
    assert RunDir(empty).read_config()["format"] == FORMAT


@pytest.mark.parametrize("text, match", [
    ("n_items: abc\n", "'n_items' must be an integer"),
    ("5\n", "must hold a mapping"),
    ("seeds: 0\n", "'seeds' must be a list of integers"),
    ("task_kwargs: {bogus: 1}\n", "does not accept task_kwargs"),
    ("n_items: -3\n", "'n_items' must be at least 1"),
    ("temperature: hot\n", "'temperature' must be a number"),
    ("seeds: []\n", "'seeds' must be a non-empty list"),
    ("n_itmes: 3\n", "unknown config keys"),
    ("controls: [rerun, bogus]\n", "'controls' must be a list drawn from"),
    ("capture_cas: 1\n", "'capture_cas' must be true or false"),
    ("task: smoke_arithh\n", "unknown task 'smoke_arithh'"),
])
def test_bad_configs_are_one_error_line_and_write_nothing(tmp_path, capsys, text, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["sustain", "--config", str(cfg), "--out", str(out)]) == 2
    assert match in _one_error(capsys)
    assert not out.exists()


def test_bad_flags_and_run_directories_are_one_error_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sustain", "--task", "smoke_arith", "--n-items", "-3", "--out", str(out)]) == 2
    assert "'n_items' must be at least 1" in _one_error(capsys)
    assert main(["sustain", "--task", "smoke_arihm", "--out", str(out)]) == 2
    _one_error(capsys)
    assert not out.exists()
    SustainRun(SustainConfig(task="smoke_arith", n_items=2), out, progress=False, log=lambda s: None)  # typo fixed
    for bad, match in (("{garbage", "not valid JSON"), ('{"config": {}}', "lacks a config and config_hash"),
                       ("[1, 2]", "lacks a config and config_hash")):
        shard = tmp_path / "shard"
        shard.mkdir(exist_ok=True)
        (shard / "config.json").write_text(bad)
        assert main(["merge", str(shard), "--out", str(tmp_path / "merged")]) == 2
        assert match in _one_error(capsys)
        assert main(["sustain", "--task", "smoke_arith", "--out", str(shard)]) == 2
        assert match in _one_error(capsys)
        assert main(["report", str(shard)]) == 2
        _one_error(capsys)


def test_a_changed_prompt_is_never_answered_from_the_old_records(model, tmp_path):
    """Item 5: the key covers the prompt ids; resuming after the task's prompt parts changed is refused."""
    from interp.prompts import Part
    from interp.tasks.smoke import SmokeArith

    class Reworded(SmokeArith):
        def parts(self, item):
            return super().parts(item) + [Part("style", "Be brief.")]

    cfg = SustainConfig(task="smoke_arith", n_items=2, max_new_tokens=4)
    d = tmp_path / "run"
    first = SustainRun(cfg, d, model=model, progress=False, log=lambda s: None)
    first.run_baseline()
    stored = (d / "baseline.jsonl").read_bytes()
    SustainRun(cfg, d, model=model, progress=False, log=lambda s: None).run_baseline()  # same prompt: reused
    assert (d / "baseline.jsonl").read_bytes() == stored
    changed = SustainRun(cfg, d, model=model, task=Reworded(), progress=False, log=lambda s: None)
    it = changed.items()[0]
    old_job = first._job("baseline", it, "baseline", 0, first.task.parts(it))
    new_job = changed._job("baseline", it, "baseline", 0, changed.task.parts(it))
    assert old_job["key"] != new_job["key"]
    with pytest.raises(InterpError, match="prompt of baseline item .* changed"):
        changed.run_baseline()
    assert (d / "baseline.jsonl").read_bytes() == stored
