"""Time to open a run of the study's size in `interp view`, and the server's memory.

Writes a synthetic run directory with the record counts of the 135M study (STUDY.md: 360 baseline, 1391
constrained generations, ~2000 ablation arms) times `--scale`, with realistic record shapes (prompt/output token
ids, texts, constraint checks, ablation CAS summaries; CAS arrays [96 steps, 30 layers, 10 spans, 9 heads] shared
from a pool of files, since opening a run never reads them). Then, side by side per scale:

- `interp view RUN` is started as its own process; `ready`: seconds until it answers;
- `first page`: seconds from opening the page in headless Chromium until the first records page is drawn;
- `report`: seconds from the server's start until the report tables are on the page (computed in the background);
- RSS of the server after the first page and its peak (VmHWM) once the tables are done, and the largest RSS
  seen of the child process that computes the tables (sampled every 0.1 s).

    python -m benchmarks.bench_viewer --scale 1 20
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STUDY = {"baseline": 360, "constrained": 1391, "ablations": 2000}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CTYPES = ["keyword", "length", "ends_with", "paragraphs", "lowercase", "no_comma"]
TASKS = [("smoke_arith", "math"), ("smoke_capital_qa", "qa"), ("smoke_code", "code")]


def make_run(d: Path, scale: int, n_cas_files: int = 32) -> dict[str, int]:
    """A synthetic run directory with the study's record counts x `scale`; returns the counts written."""
    from interp.attention.storage import save_cas
    from interp.experiments.config import SustainConfig

    rng = random.Random(0)
    d.mkdir(parents=True, exist_ok=True)
    cfg = SustainConfig(task="smoke_arith", n_items=120 * scale)
    (d / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "config_hash": cfg.hash(), "format": 2}))
    arr = np.random.default_rng(0).random((96, 30, 10, 9)).astype(np.float32) * 0.1
    spans = ["task", "connective", "constraint_0", "format", "label_0", "label_1", "constraint_1", "constraints",
             "__sink__", "__prompt__"]
    pool = [save_cas(d, f"pool{i}", arr, spans, [20, 6, 14, 8, 0, 0, 0, 14, 1, 82]) for i in range(n_cas_files)]
    ids = lambda n: [rng.randrange(49152) for _ in range(n)]
    words = "the answer is bags shells total each has with more how many does left gives friend".split()
    text = lambda n: " ".join(rng.choice(words) for _ in range(n))
    gen = {"max_new_tokens": 96, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stop": []}
    counts = {s: n * scale for s, n in STUDY.items()}
    n_items = counts["baseline"]
    common = lambda i: {"schema_version": 1, "model": "smollm2-135m", "model_label": "smollm2-135m",
                        "model_revision": "gguf:synthetic", "task": TASKS[i % 3][0], "domain": TASKS[i % 3][1],
                        "item_id": f"{TASKS[i % 3][0]}-{i}", "item_input": text(25), "seed": 0,
                        "prompt_text": "<|im_start|>user\n" + text(90) + "<|im_end|>\n<|im_start|>assistant\n",
                        "spans": {"task": [5, 40], "constraint_0": [44, 60], "format": [62, 70]},
                        "prompt_ids": ids(120), "output_text": text(70), "output_ids": ids(96),
                        "finish_reason": "eos", "score_detail": {"gold": "8", "extracted_by": "last-number"},
                        "gen_config": gen}
    with open(d / "baseline.jsonl", "w") as f:
        for i in range(n_items):
            ok = rng.random() < 0.6
            f.write(json.dumps({"key": f"b{i:08d}", "stage": "baseline", **common(i), "success": ok,
                                "lenient_success": ok, "score_value": float(ok), "prediction": "8",
                                "cas_file": pool[i % n_cas_files]}) + "\n")
    con_keys = []
    with open(d / "constrained.jsonl", "w") as f:
        for j in range(counts["constrained"]):
            i = j % n_items
            kind = ("single", "single", "single", "set", "control")[j % 5]
            ctype = CTYPES[j % len(CTYPES)] if kind == "single" else "mixed" if kind == "set" else "neutral"
            ok, met = rng.random() < 0.55, rng.random() < 0.7
            c = {"type": ctype, "kind": "hard", "text": "Include the word " + text(3) + ".", "params": {}}
            key = f"c{j:08d}"
            con_keys.append(key)
            f.write(json.dumps({"key": key, "stage": "constrained", **common(i), "success": ok, "lenient_success": ok,
                                "score_value": float(ok), "prediction": "8", "cas_file": pool[j % n_cas_files],
                                "condition": f"{kind}:{ctype}:{j % 7}", "condition_kind": kind, "ctype": ctype,
                                "hardness": "control" if kind == "control" else "hard",
                                "k": 2 if kind == "set" else 1, "constraints": [] if kind == "control" else [c],
                                "insert_texts": None, "task_text": None, "baseline_key": f"b{i:08d}",
                                "constraint_checks": [] if kind == "control" else [{"ok": met, "reason": "x"}],
                                "constraint_met": None if kind == "control" else met,
                                "error_type": "none" if ok else rng.choice(["reasoning", "truncated", "output_spec"])})
                    + "\n")
    summary = [[round(rng.random() * 0.1, 5) for _ in range(9)] for _ in range(30)]
    with open(d / "ablations.jsonl", "w") as f:
        for j in range(counts["ablations"]):
            base = con_keys[(j // 10) % len(con_keys)]
            f.write(json.dumps({"key": f"a{j:08d}", "schema_version": 1, "stage": "rescue", "arm": f"damp:arm{j % 10}",
                                "role": "main", "base_key": base, "baseline_key": None,
                                "item_id": f"{TASKS[0][0]}-{(j // 10) % n_items}", "interventions": [{"op": "scale"}],
                                "output_text": text(70), "output_ids": ids(96), "success": rng.random() < 0.3,
                                "flipped": False, "cas": {"constraints": summary, "task": summary, "__random__": summary}})
                    + "\n")
    return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(run: Path) -> dict[str, float]:
    """Start `interp view` on `run`, open it in headless Chromium; times (s) and server memory (MB)."""
    import psutil
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "interp.cli", "view", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode()[-2000:]) from None
                time.sleep(0.05)
        ready = time.perf_counter() - t0
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 900})
            t1 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/#/records")
            page.wait_for_selector("#records tbody tr", timeout=300000)
            first = time.perf_counter() - t1
            rss_first = psutil.Process(proc.pid).memory_info().rss / 2**20
            page.goto(f"http://127.0.0.1:{port}/#/report")
            child_peak = 0.0  # the tables are computed in a child process of the server: its largest RSS seen
            while page.query_selector("a.cell") is None:
                if time.perf_counter() - t0 > 900:
                    raise TimeoutError("the report tables did not appear within 900 s")
                for c in psutil.Process(proc.pid).children(recursive=True):
                    try:
                        child_peak = max(child_peak, c.memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
                page.wait_for_timeout(100)
            report = time.perf_counter() - t0
            t2 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/#/records?outcome=failure&ctype=keyword")
            page.wait_for_selector("#count", timeout=60000)
            n_filtered = int(page.get_attribute("#count", "data-total"))
            filtered = time.perf_counter() - t2
            b.close()
        return {"ready_s": ready, "first_page_s": first, "server_to_first_page_s": ready + first, "report_s": report,
                "filtered_page_s": filtered, "n_filtered": n_filtered, "rss_first_page_mb": rss_first, "peak_rss_mb": _hwm_mb(proc.pid),
                "tables_child_rss_mb": child_peak}
    finally:
        proc.terminate()
        proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--out", default="benchmarks/results/viewer.json")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in a.scale:
            run = Path(tmp) / f"x{s}"
            t = time.perf_counter()
            counts = make_run(run, s)
            size = sum(p.stat().st_size for p in run.glob("*.jsonl")) / 2**20
            print(f"scale {s}: wrote {counts} ({size:.0f} MB of JSONL) in {time.perf_counter() - t:.0f} s", flush=True)
            row = {"scale": s, "records": counts, "jsonl_mb": round(size, 1)} | {k: round(v, 2) for k, v in
                                                                                 measure(run).items()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    res = {"rows": rows, "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(f"load average {res['load_average']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
