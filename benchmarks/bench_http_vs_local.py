"""Local batched generation vs the HTTP backend against our OpenAI-compatible server, same items, one run.

    python benchmarks/bench_http_vs_local.py [--n 16] [--max-new-tokens 32] [--repeats 3] [--threads 1]

Local: `interp.models.generation.generate` with batch_size 8 in this process. HTTP: `OpenAIChatBackend`
(concurrency 8, no cache) against `python -m interp.backends.server` started here on a free port. Both
use greedy decoding and the same torch thread count; runs alternate and the median is reported, because
the machine may be shared. Writes benchmarks/results/http_vs_local.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import torch

from interp.backends import OpenAIChatBackend
from interp.models.generation import GenConfig, generate
from interp.models.loading import load_model
from interp.prompts import build_prompt, messages_from_parts
from interp.tasks import get_task

OUT = Path(__file__).resolve().parent / "results" / "http_vs_local.json"


def start_server(model: str, threads: int) -> tuple[subprocess.Popen, str, float]:
    """Start the server on a free port; return the process, its base URL and seconds until it answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "interp.backends.server", "--model", model, "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            sys.exit("server exited during startup")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return proc, f"http://127.0.0.1:{port}/v1", time.perf_counter() - t0
        except requests.ConnectionError:
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="smoke_arith")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    parts = [task.parts(it) for it in task.items(args.n)]
    model = load_model(args.model)
    prompts = [build_prompt(model.tokenizer, p) for p in parts]
    convs = [messages_from_parts(p)[0] for p in parts]
    cfg = GenConfig(max_new_tokens=args.max_new_tokens, batch_size=8)
    proc, url, startup_s = start_server(args.model, args.threads)
    try:
        backend = OpenAIChatBackend(url, model.model_id, api_key_env="", max_concurrency=8, timeout=600)
        generate(model, prompts[:2], GenConfig(max_new_tokens=4), progress=False)
        backend.generate_texts(convs[:2], max_new_tokens=4)
        local_s, http_s = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            local = generate(model, prompts, cfg, progress=False)
            local_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            http = backend.generate(convs, max_new_tokens=args.max_new_tokens)
            http_s.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(10)
    local_med, http_med = statistics.median(local_s), statistics.median(http_s)
    n_tokens = sum(len(g.output_ids) for g in local)
    result = {
        "model": model.model_id, "task": args.task, "n_items": len(convs), "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats, "torch_threads": args.threads, "local_batch_size": 8, "http_concurrency": 8,
        "local_seconds": local_s, "http_seconds": http_s, "local_median_s": local_med, "http_median_s": http_med,
        "http_over_local": http_med / local_med, "local_tokens_per_s": n_tokens / local_med,
        "http_tokens_per_s": sum(r["usage"]["completion_tokens"] for r in http) / http_med,
        "server_startup_s": startup_s, "same_texts": sum(g.output_text == r["text"] for g, r in zip(local, http)),
        "cpu_count": os.cpu_count(), "load_avg_1m_after": os.getloadavg()[0], "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(convs)} items x {args.max_new_tokens} new tokens, {args.threads} torch thread(s), "
          f"median of {args.repeats}:")
    print(f"  local generate (batch 8):      {local_med:7.2f} s  ({result['local_tokens_per_s']:.1f} tok/s)")
    print(f"  HTTP backend (concurrency 8):  {http_med:7.2f} s  ({result['http_tokens_per_s']:.1f} tok/s)")
    print(f"  http/local = {result['http_over_local']:.2f}x; same texts {result['same_texts']}/{len(convs)}; "
          f"server startup {startup_s:.1f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
