"""benchmarks/gpu_check.py end to end on the CPU at its tiniest setting, and its sync guard biting.

The GPU run itself needs a lent device; this keeps the prepared script runnable (every section executes and the
JSON has the structure the summary and the README table read).
"""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

import interp

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses resolve their annotations through it
    spec.loader.exec_module(mod)
    n = torch.get_num_threads()
    yield mod
    torch.set_num_threads(n)


def test_dry_run_writes_every_section(gpu_check, tmp_path):
    new, batches = 4, [1, 2]
    gpu_check.main(["--dry-run", "--models", "llama", "--batches", *map(str, batches), "--new-tokens", str(new),
                    "--prompt-tokens", "16", "--reps", "1", "--conformance", "llama", "--sweep-layers", "1",
                    "--exact-rows", "1", "--out", str(tmp_path)])
    d = json.loads((tmp_path / "gpu_check_cpu_dryrun.json").read_text())
    assert "CPU DRY RUN" in (tmp_path / "gpu_check_cpu_dryrun.txt").read_text()
    assert d["meta"]["dry_run"] is True and d["errors"] == [] and d["skipped"] == []
    assert {(t["batch"], t["path"]) for t in d["timings"]} == {(b, p) for b in batches for p in gpu_check.PATHS}
    for t in d["timings"]:
        assert t["tokens"] == t["batch"] * new and all(w > 0 for w in t["wall_s"])
    assert {(r["batch"], r["path"]) for r in d["ratios"]} == {(b, p) for b in batches for p in gpu_check.HOOKED}
    assert all(math.isfinite(r["time_ratio"]) and r["time_ratio"] > 0 for r in d["ratios"])
    assert [s["path"] for s in d["sync"]] == list(gpu_check.PATHS)
    assert all(s["decode_forwards"] == new - 1 for s in d["sync"])  # the guard saw every decode step
    assert all(s["ok"] for s in d["sync"] if s["path"] in gpu_check.HOOKED)
    (e,) = d["exactness"]
    assert 0 < e["live_bf16_vs_fp32_max"] < 0.05 and e["knockout_cas_max"] == 0.0 and e["scaled_task_cas_ratio"] > 1
    (s,) = d["sweep"]
    # 4 heads + the layer of layer 1; bf16 rounding differs between the batched and one-at-a-time passes
    assert s["n_interventions"] == 4 + 1 and s["speedup"] > 0 and s["max_abs_diff_logp"] < 0.05
    assert [c["ok"] for c in d["conformance"]] == [True]
    assert d["goals"]["sweep_speedup"] == s["speedup"] and d["goals"]["conformance_passed"] == "1/1"


def test_sync_guard_sees_a_host_copy_in_a_hook(gpu_check):
    """A pattern hook that reads a value on the host is counted in every decode-step forward; without it, none."""
    name, cfg = gpu_check.make_config("llama", tiny=True)
    model = gpu_check.random_model(cfg, gpu_check.synthetic_tokenizer(cfg.vocab_size))
    prompts = gpu_check.make_prompts(2, cfg.vocab_size, 16)

    def run(hook):
        guard = gpu_check.DecodeSyncGuard(model.hf, cuda=False)
        with guard, interp.hooks(model, [("blocks.1.attn.hook_pattern", hook)]):
            interp.generate(model, prompts, max_new_tokens=4, batch_size=2, progress=False)
        return guard.forwards, guard.counter.count

    assert run(lambda t, call: None) == (3, 0)
    assert run(lambda t, call: float(t.sum()) and None) == (3, 3)
