"""GPU check (issue 26): the hooked paths on 7B-class random-weight models in bf16, in one prepared run.

    python benchmarks/gpu_check.py --device cuda --out DIR     # the H200 run: stops itself within --budget s
    python benchmarks/gpu_check.py --dry-run                   # CPU, 2-layer variants of the same shapes, tiny sizes

Models are built from configs with random weights (no download): Llama-3.1-8B, Qwen2.5-7B and Gemma-2-9B shapes
(GQA; Qwen2/Gemma-2 sliding-window settings; Gemma-2 logit softcapping), or a 2-layer variant of each (`--tiny`).
Per model, per batch size, greedy decoding of exactly `--new-tokens` tokens (EOS disabled) after ~`--prompt-tokens`
prompts with constraint spans, five paths side by side:

- ``hf``: HF `generate` on the same module switched to SDPA (eager for Gemma-2: SDPA cannot softcap);
- ``plain``: `interp.generate`; ``cas``: with ``capture=[CAS()]``; ``ivs``: with one scale (task span, alpha 2)
  and one knockout (constraint spans) intervention; ``cas+ivs``: both.

Measured: CUDA-synchronised wall time, tokens/s, peak allocated memory (total and above the weights), ratios to
``hf`` of the same batch in the same run. Then: host syncs (every decode-step forward of every path under
``torch.cuda.set_sync_debug_mode("error")``; on CPU the host-copy calls are counted instead), exactness in bf16
(live CAS vs HF eager fp32 attention of the same tokens, next to HF's own bf16 eager attention vs fp32),
the batched head sweep vs one-at-a-time (first model), and the conformance checks of tests/test_conformance.py
on the device. A time budget stops the run cleanly (what is done is kept); the JSON is rewritten after every
section. Writes DIR/<name>.json and DIR/<name>.txt.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import signal
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import interp  # noqa: E402
from interp.models.generation import make_batch  # noqa: E402
from interp.interventions import sweep_heads, sweep_heads_sequential  # noqa: E402

from bench_sweep import ideal_macs_ratio  # noqa: E402
from conformance_checks import CASES, check_family, eager_cas, random_model, synthetic_tokenizer  # noqa: E402

# Public config.json values of each model (weights random). EOS disabled so every row decodes exactly N tokens.
SHAPES: dict[str, tuple[str, dict]] = {
    "llama": ("Llama-3.1-8B", dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}, tie_word_embeddings=False)),
    "qwen2": ("Qwen2.5-7B", dict(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, max_position_embeddings=131072, rms_norm_eps=1e-6, rope_theta=1000000.0,
        use_sliding_window=False, sliding_window=131072, max_window_layers=28, tie_word_embeddings=False)),
    "gemma2": ("Gemma-2-9B", dict(
        vocab_size=256000, hidden_size=3584, intermediate_size=14336, num_hidden_layers=42, num_attention_heads=16,
        num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0, max_position_embeddings=8192, rms_norm_eps=1e-6,
        rope_theta=10000.0, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True)),
}
# 2-layer variants: same family code paths (GQA 4:2, softcap, a sliding layer whose window the prompts exceed)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)
TINY_OVER = {"gemma2": dict(sliding_window=8, query_pre_attn_scalar=16), "qwen2": dict(sliding_window=8, max_window_layers=2)}
PATHS = ("hf", "plain", "cas", "ivs", "cas+ivs")
HOOKED = PATHS[1:]
BF16_HALF_ULP = 2.0 ** -9  # relative rounding error of one bf16 value (8 significant bits)


class OutOfTime(Exception):
    """Raised by the hard alarm: the run stops and writes what it has."""


@dataclass
class Timing:
    model: str
    batch: int
    path: str
    wall_s: list[float] = field(default_factory=list)  # one per rep
    tokens: int = 0  # generated tokens per run (all rows)
    peak_bytes: int | None = None  # peak allocated during the run (weights included)
    peak_above_start_bytes: int | None = None  # peak minus what was allocated at its start
    same_tokens_as_hf: float | None = None  # plain/cas: share of rows whose greedy ids equal HF's (first rep)

    @property
    def best_s(self) -> float:
        return min(self.wall_s)


@dataclass
class SyncCheck:
    model: str
    path: str
    mode: str  # "cuda-error": decode-step forwards under set_sync_debug_mode("error"); "cpu-count": host copies counted
    decode_forwards: int  # decode-step forwards the guard saw (0 = the check did not happen)
    host_syncs: int | None  # cpu-count: host-copy calls inside them; cuda-error: None
    error: str | None  # cuda-error: the sync that raised (message and where), else None
    ok: bool


@dataclass
class LoopSyncs:
    model: str
    path: str
    mode: str  # "cuda-warn" | "cpu-count"
    per_step: float  # host syncs per decoding step of the whole call (loop bookkeeping included)


@dataclass
class Exactness:
    model: str
    rows: int
    steps: int
    live_bf16_vs_fp32_max: float  # live CAS (bf16 run) vs HF eager fp32 attention of the same tokens
    live_bf16_vs_fp32_by_span: dict  # the same per span (constraints, task, __sink__, ...)
    hf_bf16_vs_fp32_max: float  # HF's own bf16 eager attention vs fp32: what bf16 itself costs here
    cas_max: float
    rounding_floor: float  # one bf16 rounding of the largest CAS value
    knockout_cas_max: float | None  # CAS on the knocked-out constraint spans in the cas+ivs run (must be 0)
    scaled_task_cas_ratio: float | None  # mean task CAS with scale alpha=2 / without (must be > 1)
    statement: str


@dataclass
class Sweep:
    model: str
    layers: list[int]
    n_interventions: int
    prompt_tokens: int
    output_tokens: int
    batch_size: int
    batched_s: list[float]
    sequential_s: float
    speedup: float
    max_abs_diff_logp: float  # batched vs sequential, over all interventions
    unablated_diff_logp: float  # the same for the unablated row: the two code paths' own numeric noise
    effect_corr: float
    ideal_macs_ratio: float


@dataclass
class Conformance:
    case: str
    ok: bool
    seconds: float
    diffs: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Report:
    meta: dict
    timings: list[Timing] = field(default_factory=list)
    sync: list[SyncCheck] = field(default_factory=list)
    loop_syncs: list[LoopSyncs] = field(default_factory=list)
    exactness: list[Exactness] = field(default_factory=list)
    sweep: list[Sweep] = field(default_factory=list)
    conformance: list[Conformance] = field(default_factory=list)
    ratios: list[dict] = field(default_factory=list)
    goals: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Budget:
    """Wall-clock budget of the whole run; sections ask before they start."""

    def __init__(self, seconds: float):
        self.t0, self.total = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.total - self.elapsed()


class Device:
    """Synchronisation and peak-memory bookkeeping of the run's device (memory is not measured on CPU)."""

    def __init__(self, name: str):
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def start(self) -> int | None:
        if not self.cuda:
            return None
        gc.collect()  # last run's tensors freed before its peak is reset
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.memory_allocated())

    def peak(self) -> int | None:
        return int(torch.cuda.max_memory_allocated()) if self.cuda else None


SYNC_METHODS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "cpu", "numpy")


class CpuSyncCounter:
    """Counts calls of the tensor methods that copy to the host (the CPU stand-in for a CUDA sync check)."""

    def __init__(self):
        self.count, self._orig = 0, {}

    def __enter__(self):
        for name in SYNC_METHODS:
            orig = self._orig[name] = getattr(torch.Tensor, name)

            def counted(t, *a, _orig=orig, **k):
                self.count += 1
                return _orig(t, *a, **k)

            setattr(torch.Tensor, name, counted)
        return self

    def __exit__(self, *exc):
        for name, orig in self._orig.items():
            setattr(torch.Tensor, name, orig)
        self._orig = {}
        return False


class DecodeSyncGuard:
    """Forward hooks on the HF module: every decode-step forward (one query token per row) runs under
    ``torch.cuda.set_sync_debug_mode("error")`` (CPU: host-copy calls counted). Everything the attention hooks
    do happens inside these forwards; the loop's own per-step bookkeeping (EOS checks) is outside them."""

    def __init__(self, hf, cuda: bool):
        self.hf, self.cuda = hf, cuda
        self.forwards, self.counter, self._handles = 0, CpuSyncCounter(), []
        self._on = False

    def _pre(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None or ids.shape[1] != 1:
            return None
        self.forwards += 1
        self._on = True
        if self.cuda:
            torch.cuda.set_sync_debug_mode("error")
        else:
            self.counter.__enter__()
        return None

    def _post(self, module, args, kwargs, output):
        self._off()
        return None

    def _off(self):
        if self._on:
            if self.cuda:
                torch.cuda.set_sync_debug_mode("default")
            else:
                self.counter.__exit__()
            self._on = False

    def __enter__(self):
        self._handles = [self.hf.register_forward_pre_hook(self._pre, with_kwargs=True),
                         self.hf.register_forward_hook(self._post, with_kwargs=True)]
        return self

    def __exit__(self, *exc):
        self._off()
        for h in self._handles:
            h.remove()
        return False


def count_host_syncs(dev: Device, fn: Callable[[], Any]) -> int:
    """Host synchronisations during `fn()`: CUDA sync-debug warnings, or host-copy calls on CPU."""
    if not dev.cuda:
        with CpuSyncCounter() as c:
            fn()
        return c.count
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def make_config(key: str, tiny: bool):
    from transformers import AutoConfig

    name, shape = SHAPES[key]
    over = {**TINY, **TINY_OVER.get(key, {})} if tiny else {}
    cfg = AutoConfig.for_model(key, **{**shape, **over, "eos_token_id": None, "bos_token_id": 1, "pad_token_id": 0})
    return (f"{name} (2-layer)" if tiny else name), cfg


def make_prompts(n: int, vocab: int, length: int, seed: int = 0) -> list[interp.Prompt]:
    """`n` random prompts of about `length` tokens (spread +-length/16, so batches are left-padded) with the parts
    task, constraint_0, filler, constraint_1 (the conformance suite's layout; ``constraints`` = both)."""
    rng = np.random.default_rng(seed)
    spread = max(1, length // 16)
    out = []
    for i in range(n):
        m = length - spread + (i * 7) % (2 * spread + 1)
        ids = rng.integers(1, vocab, m).tolist()
        a, b, c = m // 10, m // 5, m - m // 10
        out.append(interp.Prompt(text="", input_ids=ids, spans={"task": (0, a), "constraint_0": (a, b),
                                                               "filler": (b, c), "constraint_1": (c, m - 1)}))
    return out


class attn_impl:
    """``with attn_impl(hf, "sdpa"):`` the module runs transformers' own attention, then its previous one again."""

    def __init__(self, hf, impl: str):
        self.hf, self.impl, self.prev = hf, impl, None

    def __enter__(self):
        self.prev = self.hf.config._attn_implementation
        self.hf.set_attn_implementation(self.impl)
        return self.hf

    def __exit__(self, *exc):
        self.hf.set_attn_implementation(self.prev)
        return False


def hf_impl(hf) -> str:
    """HF's attention for the baseline: SDPA, or eager where SDPA cannot compute the model (logit softcapping:
    recent transformers refuse SDPA for Gemma-2, older ones such as 5.17 silently drop the softcap)."""
    if getattr(hf.config, "attn_logit_softcapping", None) is not None or not getattr(hf, "_supports_sdpa", False):
        return "eager"
    return "sdpa"


def run_path(model, path: str, prompts, new: int, ivs) -> tuple[list[list[int]], list]:
    """One generation of `prompts` (one batch) along `path`; (generated ids per row, interp Generations or [])."""
    if path == "hf":
        from transformers import GenerationConfig

        batch = make_batch(model.tokenizer, prompts, model.device)
        gc_ = GenerationConfig(max_new_tokens=new, min_new_tokens=new, do_sample=False, eos_token_id=None,
                               pad_token_id=model.tokenizer.pad_token_id)
        with attn_impl(model.hf, hf_impl(model.hf)), torch.no_grad():
            out = model.hf.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                    generation_config=gc_)
        return out[:, batch.prompt_len:].tolist(), []
    capture = [interp.CAS()] if "cas" in path else []
    gens = interp.generate(model, prompts, capture=capture, interventions=ivs if "ivs" in path else None,
                           max_new_tokens=new, batch_size=len(prompts), progress=False)
    return [g.output_ids for g in gens], gens


def timed(dev: Device, fn: Callable[[], Any]) -> tuple[Any, float, int | None, int | None]:
    start = dev.start()
    t = time.perf_counter()
    r = fn()
    dev.sync()
    wall = time.perf_counter() - t
    peak = dev.peak()
    return r, wall, peak, (None if peak is None or start is None else peak - start)


def where(e: BaseException) -> str:
    """The exception's message and the innermost frames of interp / transformers code that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/interp/" in f.filename or "transformers" in f.filename]
    loc = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-3:])
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200]} [{loc}]"


def check_model(key: str, a, dev: Device, budget: Budget, rep: Report, write: Callable[[], None],
                slice_s: float) -> None:
    """Timings, sync checks, exactness (and the sweep for the first model) of one model, within `slice_s`."""
    t_model = time.perf_counter()
    name, cfg = make_config(key, a.tiny)
    tok = synthetic_tokenizer(cfg.vocab_size)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    model = random_model(cfg, tok, device=dev.name, dtype=dtype, model_id=name)
    model.hf.generation_config.eos_token_id = None
    weights = sum(p.numel() * p.element_size() for p in model.hf.parameters())
    rep.meta.setdefault("models", {})[key] = {
        "name": name, "params": sum(p.numel() for p in model.hf.parameters()), "weight_bytes": weights,
        "layers": model.n_layers, "heads": model.n_heads, "kv_heads": model.n_kv_heads, "vocab": cfg.vocab_size,
        "sliding_window": getattr(cfg, "sliding_window", None) if getattr(cfg, "use_sliding_window", True) else None,
        "softcap": getattr(cfg, "attn_logit_softcapping", None), "hf_attention": hf_impl(model.hf),
        "build_s": round(time.perf_counter() - t_model, 2)}
    ivs = [interp.Intervention(op="scale", alpha=2.0, target=("task",)),
           interp.Intervention(op="knockout", target=("constraints",))]
    prompts = {B: make_prompts(B, cfg.vocab_size, a.prompt_tokens, seed=B) for B in a.batches}
    left = lambda: slice_s - (time.perf_counter() - t_model)  # noqa: E731
    print(f"[{budget.elapsed():6.1f}s] {name}: built in {rep.meta['models'][key]['build_s']}s, "
          f"{weights / 2**30:.1f} GiB, slice {slice_s:.0f}s", flush=True)

    for B in a.batches:  # warm-up: kernels, allocator, first-call costs of every path and shape
        for p in PATHS:
            try:
                run_path(model, p, prompts[B], 2, ivs)
            except RuntimeError as e:  # e.g. out of memory: its timed runs will say so too
                rep.errors.append(f"{key} B={B} {p} warm-up: {where(e)}")
    dev.sync()
    rep.meta["models"][key]["host_costs"] = host_costs(model, prompts[max(a.batches)], a.new_tokens)
    rows: dict[tuple[int, str], Timing] = {}
    keep: dict[tuple[int, str], list] = {}
    exact_b = max([b for b in a.batches if b <= 8] or [min(a.batches)])
    t_rep = 0.0  # duration of the first rep's timings: what another rep needs
    for r in range(a.reps):
        if r > 0 and left() < t_rep + a.reserve_model:
            rep.skipped.append(f"{key}: reps {r + 1}..{a.reps} (model time slice spent)")
            break
        t_r = time.perf_counter()
        for B in a.batches:
            order = PATHS[r % len(PATHS):] + PATHS[:r % len(PATHS)]
            hf_ids = None
            for p in order:
                try:
                    (ids, gens), wall, peak, above = timed(
                        dev, lambda p=p, B=B: run_path(model, p, prompts[B], a.new_tokens, ivs))
                except RuntimeError as e:  # e.g. out of memory: this run is lost, the others go on
                    rep.errors.append(f"{key} B={B} {p} rep {r + 1}: {where(e)}")
                    continue
                t = rows.setdefault((B, p), Timing(key, B, p))
                t.wall_s.append(round(wall, 4))
                t.tokens = sum(len(x) for x in ids)
                if t.tokens != B * a.new_tokens:
                    rep.errors.append(f"{key} B={B} {p}: {t.tokens} tokens, expected {B * a.new_tokens} (EOS?)")
                t.peak_bytes = peak if t.peak_bytes is None or peak is None else max(t.peak_bytes, peak)
                t.peak_above_start_bytes = (above if t.peak_above_start_bytes is None or above is None
                                            else max(t.peak_above_start_bytes, above))
                if p == "hf":
                    hf_ids = ids
                keep[(B, p)] = ids
                if B in (exact_b, min(a.batches)) and p in ("cas", "cas+ivs", "plain"):
                    keep[(B, p, "gens")] = gens
                print(f"[{budget.elapsed():6.1f}s]   rep {r + 1} B={B:<3} {p:<8} {wall:8.3f}s "
                      f"{t.tokens / wall:9.1f} tok/s", flush=True)
            for p in ("plain", "cas"):  # interventions change the output by design
                t = rows.get((B, p))
                if t is not None and t.same_tokens_as_hf is None and hf_ids is not None and (B, p) in keep:
                    t.same_tokens_as_hf = float(np.mean([x == y for x, y in zip(keep[(B, p)], hf_ids)]))
        t_rep = t_rep or time.perf_counter() - t_r
        rep.timings = [t for t in rep.timings if t.model != key] + list(rows.values())
        rep.ratios = ratios(rep.timings)
        write()
        if r == 0:
            model_checks(key, a, dev, budget, rep, write, model, prompts, ivs, exact_b, keep, left)


def host_costs(model, prompts, new: int) -> dict:
    """CPU work of `interp.generate` that HF `generate` does not do, inside every interp path's time: the
    tokenizer's ``get_vocab()`` (called per batch to find EOS ids) and decoding the outputs to text."""
    tok = model.tokenizer
    calls = [0]
    orig = tok.get_vocab

    def counted(*args, **kw):
        calls[0] += 1
        return orig(*args, **kw)

    tok.get_vocab = counted
    try:
        interp.generate(model, prompts[:1], max_new_tokens=2, batch_size=1, progress=False)
    finally:
        del tok.get_vocab
    t = time.perf_counter()
    tok.get_vocab()
    t_vocab = time.perf_counter() - t
    ids = [p.input_ids[:new] for p in prompts]
    t = time.perf_counter()
    tok.batch_decode(ids, skip_special_tokens=True)
    return {"get_vocab_s": round(t_vocab, 4), "get_vocab_calls_per_batch": calls[0],
            f"decode_{len(ids)}x{new}_tokens_s": round(time.perf_counter() - t, 4)}


def model_checks(key, a, dev, budget, rep, write, model, prompts, ivs, exact_b, keep, left) -> None:
    """After the first timing rep: sync checks, exactness and (first model) the sweep."""
    n_sync = min(a.new_tokens, 16)
    ps = prompts[exact_b]
    for p in PATHS:
        guard = DecodeSyncGuard(model.hf, dev.cuda)
        err = None
        try:
            with guard:
                run_path(model, p, ps, n_sync, ivs)
        except RuntimeError as e:
            err = where(e)
        ok = err is None and guard.forwards > 0
        rep.sync.append(SyncCheck(key, p, "cuda-error" if dev.cuda else "cpu-count", guard.forwards,
                                  None if dev.cuda else guard.counter.count, err, ok))
    if not dev.cuda:  # hooked paths may add no host copies per decode forward over the plain path
        base = {c.path: c for c in rep.sync if c.model == key}
        per = lambda c: c.host_syncs / max(1, c.decode_forwards)  # noqa: E731
        for c in base.values():
            if c.path in HOOKED:
                c.ok = c.ok and per(c) == per(base["plain"])
    for p in ("plain", "hf"):
        n1, n2 = max(2, n_sync // 4), n_sync
        c1, c2 = (count_host_syncs(dev, lambda p=p, n=n: run_path(model, p, ps, n, ivs)) for n in (n1, n2))
        rep.loop_syncs.append(LoopSyncs(key, p, "cuda-warn" if dev.cuda else "cpu-count", (c2 - c1) / (n2 - n1)))
    print(f"[{budget.elapsed():6.1f}s]   sync: " + ", ".join(f"{c.path}={'ok' if c.ok else 'FAIL'}"
                                                       for c in rep.sync if c.model == key), flush=True)
    write()
    try:
        rep.exactness.append(exactness(key, a, model, keep, exact_b))
        e = rep.exactness[-1]
        print(f"[{budget.elapsed():6.1f}s]   exactness: live {e.live_bf16_vs_fp32_max:.2e}, HF bf16 "
              f"{e.hf_bf16_vs_fp32_max:.2e} (vs fp32 eager)", flush=True)
    except Exception as ex:  # a failed check is reported, the run goes on
        rep.errors.append(f"{key} exactness: {where(ex)}")
    write()
    if key == a.sweep_model:
        if left() < a.reserve_model:
            rep.skipped.append(f"{key}: sweep (model time slice spent)")
        else:
            try:
                rep.sweep.append(sweep(key, a, dev, model, prompts, keep))
                s = rep.sweep[-1]
                print(f"[{budget.elapsed():6.1f}s]   sweep: {s.speedup:.1f}x, max|dlogp| {s.max_abs_diff_logp:.2e}",
                      flush=True)
            except Exception as ex:
                rep.errors.append(f"{key} sweep: {where(ex)}")
        write()


def exactness(key, a, model, keep, B) -> Exactness:
    """Live bf16 CAS of the first `a.exact_rows` rows vs HF eager attention in fp32 (a float copy of the same
    weights) and, for scale, HF eager attention in bf16 vs the same fp32 reference."""
    gens = keep[(B, "cas", "gens")][: a.exact_rows]
    names = [str(s) for s in gens[0].cas.coords["span"].values]
    with attn_impl(model.hf, "eager"):
        hf16 = [eager_cas(model.hf, g.prompt, g.output_ids, names) for g in gens]
    ref = copy.deepcopy(model.hf).float()
    ref.set_attn_implementation("eager")
    ref32 = [eager_cas(ref, g.prompt, g.output_ids, names) for g in gens]
    del ref
    gc.collect()
    live = [np.asarray(g.cas.values, dtype=np.float64) for g in gens]
    d_live = max(float(np.abs(x - y).max()) for x, y in zip(live, ref32))
    by_span = {n: max(float(np.abs(x[:, :, i] - y[:, :, i]).max()) for x, y in zip(live, ref32))
               for i, n in enumerate(names)}
    d_hf = max(float(np.abs(x - y).max()) for x, y in zip(hf16, ref32))
    cas_max = max(float(x.max()) for x in ref32)
    ko = scaled = None
    both = keep.get((B, "cas+ivs", "gens"))
    if both:
        ci, ti = names.index("constraints"), names.index("task")
        ko = max(float(g.cas.values[:, :, ci].max()) for g in both)
        scaled = float(np.mean([g.cas.values[:, :, ti].mean() for g in both]) /
                       max(1e-30, float(np.mean([g.cas.values[:, :, ti].mean() for g in keep[(B, "cas", "gens")]]))))
    verdict = "within" if d_live <= 2 * max(d_hf, BF16_HALF_ULP * cas_max) else "OUTSIDE"
    statement = (f"live bf16 CAS differs from fp32 eager attention by at most {d_live:.2e}; HF's own bf16 eager "
                 f"attention of the same tokens differs by {d_hf:.2e}, and one bf16 rounding of the largest CAS "
                 f"value ({cas_max:.3f}) is {BF16_HALF_ULP * cas_max:.1e}: the live capture is {verdict} what bf16 "
                 f"allows (2x the larger of the two)")
    return Exactness(key, len(gens), len(gens[0].output_ids), d_live, by_span, d_hf, cas_max, BF16_HALF_ULP * cas_max,
                     ko, scaled, statement)


def sweep(key, a, dev, model, prompts, keep) -> Sweep:
    """`sweep_heads` (batched) vs `sweep_heads_sequential` on one prompt and its generated output."""
    B = min(a.batches)
    prompt = prompts[B][0]
    out = keep[(B, "plain")][0]
    L = model.n_layers
    layers = sorted(set(a.sweep_layers if a.sweep_layers is not None else [0, L // 3, 2 * L // 3, L - 1]))
    layers = [l for l in layers if 0 <= l < L]
    sweep_heads(model, prompt, out, layers=layers[:1], batch_size=a.sweep_batch)  # warm-up
    fast, t_fast, _, _ = timed(dev, lambda: sweep_heads(model, prompt, out, layers=layers, batch_size=a.sweep_batch))
    slow, t_slow, _, _ = timed(dev, lambda: sweep_heads_sequential(model, prompt, out, layers=layers))
    _, t_fast2, _, _ = timed(dev, lambda: sweep_heads(model, prompt, out, layers=layers, batch_size=a.sweep_batch))
    f, s = fast.logp.to_numpy(), slow.logp.to_numpy()
    ef, es = fast.effect.to_numpy()[1:], slow.effect.to_numpy()[1:]
    corr = float(np.corrcoef(ef, es)[0, 1]) if ef.std() > 0 and es.std() > 0 else float("nan")
    from interp.interventions import sweep_interventions

    macs = ideal_macs_ratio(model, sweep_interventions(L, model.n_heads, layers=layers), len(prompt.input_ids), len(out))
    return Sweep(key, layers, len(fast) - 1, len(prompt.input_ids), len(out), a.sweep_batch,
                 [round(t_fast, 4), round(t_fast2, 4)], round(t_slow, 4), t_slow / min(t_fast, t_fast2),
                 float(np.abs(f - s).max()), float(abs(f[0] - s[0])), corr, macs)


def ratios(timings: list[Timing]) -> list[dict]:
    """Per model, batch and hooked path: time and memory ratios to ``hf`` of the same batch in the same run."""
    by = {(t.model, t.batch, t.path): t for t in timings}
    out = []
    for (m, B, p), t in by.items():
        hf = by.get((m, B, "hf"))
        if p == "hf" or hf is None:
            continue
        mem = (t.peak_bytes / hf.peak_bytes) if t.peak_bytes and hf.peak_bytes else None
        above = (t.peak_above_start_bytes / hf.peak_above_start_bytes
                 if t.peak_above_start_bytes and hf.peak_above_start_bytes else None)
        out.append({"model": m, "batch": B, "path": p, "time_ratio": t.best_s / hf.best_s,
                    "peak_ratio": mem, "peak_above_start_ratio": above})
    return out


def goals(rep: Report, batches: list[int]) -> dict:
    """The issue's goals, evaluated on what was measured (None = not measured)."""
    lo, hi = min(batches), max(batches)
    r = rep.ratios

    def worst(b, k):
        v = [x[k] for x in r if x["batch"] == b and x[k] is not None]
        return max(v) if v else None

    w_hi, w_lo, mem = worst(hi, "time_ratio"), worst(lo, "time_ratio"), worst(hi, "peak_ratio")
    sw = rep.sweep[0].speedup if rep.sweep else None
    return {
        f"time_ratio_max_at_batch_{hi}": w_hi, f"time_le_1.10_at_batch_{hi}": None if w_hi is None else w_hi <= 1.10,
        f"time_ratio_max_at_batch_{lo}": w_lo, f"time_le_1.2_at_batch_{lo}": None if w_lo is None else w_lo <= 1.2,
        "zero_syncs_in_decode_forwards": all(c.ok for c in rep.sync if c.path in HOOKED) if rep.sync else None,
        f"peak_ratio_max_at_batch_{hi}": mem, "peak_within_5pct": None if mem is None else mem <= 1.05,
        "sweep_speedup": sw, "sweep_ge_10x": None if sw is None else sw >= 10,
        "conformance_passed": f"{sum(c.ok for c in rep.conformance)}/{len(rep.conformance)}" if rep.conformance else None,
    }


def clean(x):
    """JSON-safe: NaN/inf become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


def summary(rep: Report) -> str:
    m = rep.meta
    gib = lambda b: "-" if b is None else f"{b / 2**30:.2f}"  # noqa: E731
    lines = [f"gpu_check: {m['device_name']} | torch {m['torch']} | transformers {m['transformers']} | {m['dtype']} | "
             f"{m['new_tokens']} new tokens after ~{m['prompt_tokens']}-token prompts | {m['elapsed_s']:.0f}s of "
             f"{m['budget_s']:.0f}s budget"]
    if m["dry_run"]:
        lines.append("CPU DRY RUN with 2-layer random models: these are not GPU numbers (no memory measured on CPU).")
    ratio = {(x["model"], x["batch"], x["path"]): x for x in rep.ratios}
    for key, info in m.get("models", {}).items():
        lines.append(f"\n{info['name']}: {info['params'] / 1e9:.2f}B params, HF baseline attention {info['hf_attention']}")
        if "host_costs" in info:
            lines.append("interp.generate host work per call (not in HF generate): "
                         + ", ".join(f"{k} {v}" for k, v in info["host_costs"].items()))
        lines.append(f"{'batch':>5} {'path':<8} {'best s':>8} {'tok/s':>9} {'x hf':>6} {'peak GiB':>9} {'above GiB':>9}"
                     f" {'same ids':>8}")
        for t in [t for t in rep.timings if t.model == key]:
            x = ratio.get((key, t.batch, t.path), {})
            same = "" if t.same_tokens_as_hf is None else f"{t.same_tokens_as_hf:.2f}"
            xr = f"{x['time_ratio']:.2f}" if x else ""
            lines.append(f"{t.batch:>5} {t.path:<8} {t.best_s:>8.3f} {t.tokens / t.best_s:>9.1f} {xr:>6} "
                         f"{gib(t.peak_bytes):>9} {gib(t.peak_above_start_bytes):>9} {same:>8}")
        sc = [c for c in rep.sync if c.model == key]
        if sc:
            lines.append("sync in decode-step forwards (hf: reference, not a goal): " + ", ".join(
                f"{c.path} {'ok' if c.ok else 'FAIL'}" + (f" ({c.host_syncs} host copies/{c.decode_forwards} fwd)"
                                                          if c.host_syncs is not None else f" ({c.decode_forwards} fwd)")
                for c in sc))
            lines += [f"  {c.path}: {c.error}" for c in sc if c.error]
        ls = [x for x in rep.loop_syncs if x.model == key]
        if ls:
            lines.append("host syncs per decoding step, whole call: " + ", ".join(f"{x.path} {x.per_step:.1f}" for x in ls))
        for e in [e for e in rep.exactness if e.model == key]:
            lines.append(f"exactness ({e.rows} rows x {e.steps} steps): {e.statement}")
            lines.append("  live vs fp32 by span: " + ", ".join(f"{k} {v:.1e}" for k, v in e.live_bf16_vs_fp32_by_span.items()))
            if e.scaled_task_cas_ratio is not None:
                lines.append(f"  cas+ivs run: CAS on the knocked-out constraints max {e.knockout_cas_max} (must be 0); "
                             f"task CAS with scale alpha=2 x{e.scaled_task_cas_ratio:.2f} of the cas run")
    for s in rep.sweep:
        lines.append(f"\nsweep ({s.model}, layers {s.layers}, {s.n_interventions} interventions, batch {s.batch_size}): "
                     f"batched {min(s.batched_s):.2f}s vs sequential {s.sequential_s:.2f}s = {s.speedup:.1f}x; max |dlogp| "
                     f"{s.max_abs_diff_logp:.2e} (unablated row {s.unablated_diff_logp:.2e}), effect corr {s.effect_corr:.4f}, "
                     f"ideal MAC ratio {s.ideal_macs_ratio:.1f}x")
    if rep.conformance:
        bad = [c for c in rep.conformance if not c.ok]
        lines.append(f"\nconformance on {m['device']}: {len(rep.conformance) - len(bad)}/{len(rep.conformance)} passed"
                     + "".join(f"\n  FAIL {c.case}: {c.error}" for c in bad))
    lines.append(("\ngoals (dry run: format only, these numbers say nothing about the GPU goals): " if m["dry_run"]
                  else "\ngoals: ") + ", ".join(f"{k}={v if not isinstance(v, float) else round(v, 3)}" for k, v in rep.goals.items()))
    lines += [f"skipped: {s}" for s in rep.skipped] + [f"error: {e}" for e in rep.errors]
    return "\n".join(lines) + "\n"


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--tiny", action="store_true", help="2-layer variants of the model shapes")
    ap.add_argument("--dry-run", action="store_true", help="= --device cpu --tiny with tiny sizes (CPU smoke run)")
    ap.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 8 64 (dry run: 1 4)")
    ap.add_argument("--new-tokens", type=int, default=None, help="default 128 (dry run: 8)")
    ap.add_argument("--prompt-tokens", type=int, default=None, help="default 400 (dry run: 24)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per path (best reported)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--budget", type=float, default=400.0, help="seconds for the whole run (default 400)")
    ap.add_argument("--reserve-conformance", type=float, default=None, help="seconds kept for the conformance checks")
    ap.add_argument("--reserve-model", type=float, default=None, help="seconds a model keeps for its checks")
    ap.add_argument("--conformance", nargs="*", default=None,
                    help="model types to run the conformance checks of ('all', or none; default: all on CUDA, the "
                         "three families on CPU)")
    ap.add_argument("--sweep-model", default="llama")
    ap.add_argument("--sweep-layers", type=int, nargs="*", default=None, help="default: 0, L/3, 2L/3, L-1")
    ap.add_argument("--sweep-batch", type=int, default=32)
    ap.add_argument("--exact-rows", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on CPU)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--name", default=None, help="file stem (default gpu_check, or gpu_check_cpu_dryrun)")
    a = ap.parse_args(argv)
    if a.dry_run:
        a.device, a.tiny = a.device or "cpu", True
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device (use --dry-run on CPU)")
    small = a.tiny
    a.batches = a.batches or ([1, 4] if small else [1, 8, 64])
    a.new_tokens = a.new_tokens or (8 if small else 128)
    a.prompt_tokens = a.prompt_tokens or (24 if small else 400)
    if min(a.batches) < 1 or a.new_tokens < 4 or a.prompt_tokens < 12 or a.reps < 1 or a.exact_rows < 1:
        ap.error("batches >= 1, --new-tokens >= 4, --prompt-tokens >= 12, --reps >= 1, --exact-rows >= 1")
    a.batches = sorted(set(a.batches))
    cuda = a.device.startswith("cuda")
    a.reserve_conformance = a.reserve_conformance if a.reserve_conformance is not None else (45.0 if cuda else 0.0)
    a.reserve_model = a.reserve_model if a.reserve_model is not None else (30.0 if cuda else 0.0)
    if a.conformance is None:
        a.conformance = ["all"] if cuda else ["llama", "qwen2", "gemma2"]
    a.name = a.name or ("gpu_check" if cuda and not a.tiny else f"gpu_check_{a.device.split(':')[0]}_dryrun")
    return a


def main(argv=None) -> Report:
    a = parse(argv)
    budget = Budget(a.budget)
    dev = Device(a.device)
    if not dev.cuda:
        torch.set_num_threads(a.threads or 1)
    elif a.threads:
        torch.set_num_threads(a.threads)
    import transformers

    rep = Report(meta={
        "issue": 26, "dry_run": not dev.cuda or a.tiny, "device": a.device,
        "device_name": torch.cuda.get_device_name() if dev.cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "dtype": a.dtype, "tiny": a.tiny, "batches": a.batches, "new_tokens": a.new_tokens,
        "prompt_tokens": a.prompt_tokens, "reps": a.reps, "budget_s": a.budget, "paths": list(PATHS),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg_1m": os.getloadavg()[0], "cpu_count": os.cpu_count(), "elapsed_s": 0.0,
        "timing": "wall time of one whole generate call, torch.cuda.synchronize() before and after; best of reps"})
    a.out.mkdir(parents=True, exist_ok=True)
    js, txt = a.out / f"{a.name}.json", a.out / f"{a.name}.txt"

    def write():
        rep.meta["elapsed_s"] = round(budget.elapsed(), 1)
        rep.goals = goals(rep, a.batches)
        tmp = js.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(clean(asdict(rep)), indent=1, allow_nan=False))
        tmp.replace(js)
        txt.write_text(summary(rep))

    def alarm(*_):
        raise OutOfTime()

    hard = int(a.budget + 30)
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(hard)
    try:
        for i, key in enumerate(a.models):
            share = (budget.left() - a.reserve_conformance) / (len(a.models) - i)
            if share < a.reserve_model:
                rep.skipped.append(f"{key}: not run (budget spent)")
                continue
            try:
                check_model(key, a, dev, budget, rep, write, share)
            except OutOfTime:
                raise
            except Exception as e:
                rep.errors.append(f"{key}: {where(e)}")
            gc.collect()  # the model is gone with check_model's frame
            if dev.cuda:
                torch.cuda.empty_cache()
            write()
        run_conformance(a, dev, budget, rep, write)
    except OutOfTime:
        rep.skipped.append(f"stopped by the hard time limit ({hard}s)")
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
        write()
    print(summary(rep), flush=True)
    print(f"wrote {js} and {txt}")
    return rep


def run_conformance(a, dev: Device, budget: Budget, rep: Report, write) -> None:
    wanted = [c for c in CASES if "all" in a.conformance or c[0] in a.conformance]
    tok = synthetic_tokenizer(512)
    for mt, variant in wanted:
        if budget.left() < 5:
            rep.skipped.append(f"conformance {mt}/{variant} (budget spent)")
            continue
        t = time.perf_counter()
        try:
            d = check_family(mt, variant, tok, device=a.device)
            rep.conformance.append(Conformance(f"{mt}/{variant}", True, round(time.perf_counter() - t, 2), d))
        except Exception as e:  # a failed check (AssertionError) or a crash: recorded, the next family runs
            rep.conformance.append(Conformance(f"{mt}/{variant}", False, round(time.perf_counter() - t, 2), {}, where(e)))
    write()


if __name__ == "__main__":
    main()
