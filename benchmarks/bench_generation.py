"""Load times (cold GGUF conversion vs cached) and greedy tokens/s at batch 1 and 8 on the embedded model.

Run: .venv/bin/python benchmarks/bench_generation.py [--cold]
--cold converts the GGUF again into a fresh cache folder (takes ~20 s). Results: benchmarks/results/generation.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--tokens", type=int, default=64)
    a = ap.parse_args()
    res: dict = {"threads": torch.get_num_threads()}
    if a.cold:
        with tempfile.TemporaryDirectory() as d:
            os.environ["INTERP_CACHE_DIR"] = d
            from interp.models import load_model

            t = time.perf_counter()
            load_model()
            res["cold_load_s"] = time.perf_counter() - t
            os.environ.pop("INTERP_CACHE_DIR")
    from interp.models import load_model
    from interp.models.generation import GenConfig, generate
    from interp.prompts import Part, build_prompt

    load_model()
    t = time.perf_counter()
    m = load_model()
    res["cached_load_s"] = time.perf_counter() - t
    qs = [f"Write a long story about a {w} who learns to sail." for w in
          ("cat", "dog", "fox", "owl", "bear", "frog", "goat", "hare")]
    prompts = [build_prompt(m.tokenizer, [Part("task", q)]) for q in qs]
    import interp.models.generation as g

    orig = g.eos_ids
    g.eos_ids = lambda tok, model: set()  # force exactly `tokens` new tokens per row
    try:
        for bs in (1, 8):
            generate(m, prompts[:bs], GenConfig(max_new_tokens=4, batch_size=bs), progress=False)
            t = time.perf_counter()
            out = generate(m, prompts[:bs], GenConfig(max_new_tokens=a.tokens, batch_size=bs), progress=False)
            dt = time.perf_counter() - t
            n = sum(len(o.output_ids) for o in out)
            res[f"batch{bs}_tokens_per_s"] = n / dt
            res[f"batch{bs}_seconds"] = dt
    finally:
        g.eos_ids = orig
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "generation.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
