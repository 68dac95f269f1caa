"""Batched, KV-cached generation with hook providers that observe/edit attention at every step.

A lean decoding loop over the transformers model (left padding, greedy or seeded sampling, stop
strings, EOS, progress bar). Hook providers (CAS capture, interventions) attach to an `AttentionHooks` set
per batch; the same hooks run in a teacher-forced pass (`forward_teacher_forced`). The researcher-facing calls
(`interp.generate(capture=..., interventions=...)`, `interp.trace`) are in `interp.api`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

import torch

from ..errors import InterpError
from ..probes.base import PROBES, Capability, HookProvider, RowResults, has
from ..probes.base import RowResult as _RowResult
from ..prompts import Prompt
from .hooked_attention import AttentionHooks, require_hooked


@dataclass
class GenConfig:
    """Decoding settings; `temperature == 0` means greedy. Part of every record's key."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    batch_size: int = 8  # 0 = choose from free GPU memory (auto_batch_size)

    def key_dict(self) -> dict:
        d = asdict(self)
        d.pop("batch_size")
        d["stop"] = list(self.stop)
        return d

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class Batch:
    """A left-padded batch: what hook providers need to map prompt spans to padded key positions."""

    prompts: list[Prompt]
    input_ids: torch.Tensor  # [B, P]
    attention_mask: torch.Tensor  # [B, P]
    pad: list[int]  # left-pad length per row
    row_keys: list[str] = field(default_factory=list)
    interventions: list[list] = field(default_factory=list)  # per row: the `Intervention` values it runs

    @property
    def extras(self) -> list[dict]:
        """Older per-row form of `interventions` (``[{"interventions": [...]}, ...]``)."""
        return [{"interventions": list(r)} for r in self.interventions]

    @extras.setter
    def extras(self, rows: Sequence[dict]) -> None:
        self.interventions = [list(r.get("interventions", [])) for r in rows]

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1]

    def span_mask(self, names: Sequence[str] | str, device=None) -> torch.Tensor:
        """[B, P] float mask of the padded key positions of the named span(s) (union over names)."""
        names = [names] if isinstance(names, str) else list(names)
        m = torch.zeros(self.size, self.prompt_len, device=device or self.input_ids.device)
        for b, p in enumerate(self.prompts):
            for n in names:
                if n in p.spans:
                    s, e = p.spans[n]
                    m[b, self.pad[b] + s: self.pad[b] + e] = 1.0
        return m


class CaptureSpec(Protocol):
    """A stateless description of something to record (a `interp.probes.Probe`): builds a batch's hook provider."""

    def provider(self, model, max_steps: int) -> HookProvider: ...


@dataclass
class Generation:
    """One generated output with everything needed to reproduce and analyse it.

    `results` holds each probe's typed per-row result (``g.result(interp.CAS)``); `cas` and `interventions`
    are the common ones. ``extras`` is the older flat, read-only view of the same results.
    """

    prompt: Prompt
    output_text: str
    output_ids: list[int]
    finish_reason: str  # "eos" | "stop" | "length" | "teacher_forced"
    results: RowResults = field(default_factory=RowResults)

    @property
    def extras(self) -> RowResults:
        return self.results

    def result(self, probe):
        """The typed result of `probe` (a `Probe` class or value, or a `RowResult` class) for this row."""
        asked = probe if isinstance(probe, type) else type(probe)
        cls = asked if issubclass(asked, _RowResult) else getattr(asked, "result", asked)
        r = self.results.typed(cls)
        if r is None:
            have = [type(x).__name__ for x in self.results.results()]
            raise InterpError(f"this generation has no {asked.__name__} result: pass capture=[{asked.__name__}()] "
                              f"to interp.generate (it has: {have or 'nothing'})")
        return r

    def __repr__(self) -> str:
        text = self.output_text if len(self.output_text) <= 60 else self.output_text[:57] + "..."
        got = ", ".join(k for k in self.extras if not k.startswith("cas_")) or "nothing"
        return (f"Generation({text!r}, {len(self.output_ids)} tokens, finish={self.finish_reason!r}, "
                f"recorded: {got})")

    def cas_span(self, span: str):
        """CAS of one span as a numpy array ``[step, layer, head]``; an unknown span names the recorded ones."""
        spans = list(self.cas.span.values)
        if span not in spans:
            raise InterpError(f"span {span!r} was not recorded; recorded spans: {spans} ('constraints' is recorded "
                              "when the prompt has parts named constraint_<i>)")
        return self.cas.sel(span=span).values

    @property
    def cas(self):
        """CAS as an `xarray.DataArray` with dims (step, layer, span, head), span names as coordinates
        (``g.cas.sel(span="constraints")``); needs ``capture=[interp.CAS()]``."""
        r = self.results.typed(PROBES["cas"].result) if "cas" in PROBES else None
        if r is None:
            raise InterpError("this generation has no CAS: pass capture=[interp.CAS()] to interp.generate")
        return r.to_xarray()  # type: ignore[attr-defined]

    @property
    def interventions(self) -> list:
        """The interventions this row ran (as `interp.Intervention` values, in the order they composed)."""
        r = self.results.typed(PROBES["intervention"].result) if "intervention" in PROBES else None
        return list(r.interventions) if r is not None else []  # type: ignore[attr-defined]


def cache_kwargs(hf, cache) -> dict:
    """The KV cache as the keyword this transformers version's forward takes (``cache``; ``past_key_values``
    before 5.2x, whose later versions warn on it)."""
    import inspect

    params = _FORWARD_PARAMS.get(type(hf))
    if params is None:
        params = _FORWARD_PARAMS[type(hf)] = frozenset(inspect.signature(hf.forward).parameters)
    return {"cache" if "cache" in params else "past_key_values": cache}


_FORWARD_PARAMS: dict[type, frozenset] = {}


def auto_batch_size(model, prompt_len: int, max_new_tokens: int, default: int = 8, budget: float = 0.5) -> int:
    """Largest batch whose KV cache (plus eager attention rows) fits in `budget` of free GPU memory.

    On CPU returns `default`. Counts 2 (K and V) x layers x KV heads x head dim per token and sequence.
    """
    dev = next(model.hf.parameters()).device
    if dev.type != "cuda":
        return default
    free, _ = torch.cuda.mem_get_info(dev)
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    dtype_bytes = next(model.hf.parameters()).element_size()
    total = prompt_len + max_new_tokens
    per_seq = 2 * model.n_layers * model.n_kv_heads * head_dim * dtype_bytes * total
    per_seq += model.n_heads * total * 4 * 4 + cfg.vocab_size * 4
    return max(1, min(256, int(free * budget // per_seq)))


def make_batch(tokenizer, prompts: Sequence[Prompt], device) -> Batch:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    P = max(len(p.input_ids) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    pads = []
    for b, p in enumerate(prompts):
        n = len(p.input_ids)
        ids[b, P - n:] = torch.tensor(p.input_ids, dtype=torch.long)
        mask[b, P - n:] = 1
        pads.append(P - n)
    return Batch(list(prompts), ids.to(device), mask.to(device), pads)


def eos_ids(tokenizer, model) -> set[int]:
    ids = set()
    for src in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif src:
            ids.update(int(x) for x in src)
    for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(t) if t in tokenizer.get_vocab() else None
        if isinstance(tid, int):
            ids.add(tid)
    return ids


def row_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _sample(logits: torch.Tensor, cfg: GenConfig, gens: list[torch.Generator | None]) -> torch.Tensor:
    if cfg.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, -1)
    if cfg.top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < cfg.top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
        probs = probs / probs.sum(-1, keepdim=True)
    out = [torch.multinomial(probs[b].cpu(), 1, generator=g).item() for b, g in enumerate(gens)]
    return torch.tensor(out, device=logits.device)


class StopMatcher:
    """Incremental stop-string detection for one row: each step decodes only the tokens since the last
    complete character (not the whole output), and searches only the new tail for the stop strings.

    Detokenisation follows the prefix/read-offset scheme of streaming decoders: text is appended only once the
    new tokens decode to complete characters (no trailing U+FFFD). A hit is confirmed on the full decode, so
    the stop decision is the full-decode one whenever the incremental text finds it.
    """

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer, self.stops = tokenizer, tuple(stops)
        self.longest = max(len(s) for s in self.stops)
        self.text, self._prefix, self._read = "", 0, 0

    def push(self, ids: list[int]) -> bool:
        """`ids`: the row's whole output so far (one token longer than last time). True when a stop string occurs."""
        dec = self.tokenizer.decode
        before = dec(ids[self._prefix: self._read], skip_special_tokens=True)
        now = dec(ids[self._prefix:], skip_special_tokens=True)
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return False
        new = now[len(before):]
        self.text += new
        self._prefix, self._read = self._read, len(ids)
        tail = self.text[-(len(new) + self.longest - 1):]
        if not any(s in tail for s in self.stops):
            return False
        return any(s in dec(ids, skip_special_tokens=True) for s in self.stops)


@torch.no_grad()
def generate_batch(model, tokenizer, batch: Batch, cfg: GenConfig,
                   providers: Sequence[HookProvider] = ()) -> list[Generation]:
    """Generate for one left-padded batch; providers' hooks see every step of this KV-cached loop."""
    from transformers import DynamicCache

    require_hooked(model)
    device = batch.input_ids.device
    B = batch.size
    stops_eos = eos_ids(tokenizer, model)
    hooks = AttentionHooks()
    for p in providers:
        p.attach(hooks, batch)
    hooks.check_layers(int(model.config.num_hidden_layers))
    forcers = [p for p in providers if has(p, Capability.FORCES_TOKENS)]  # e.g. a thinking budget
    gens = _row_generators(batch, cfg)
    attn = batch.attention_mask
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    out_ids: list[list[int]] = [[] for _ in range(B)]
    finish = [None] * B
    matchers = [StopMatcher(tokenizer, cfg.stop) for _ in range(B)] if cfg.stop else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    P = batch.prompt_len
    steps = torch.full((B, P), -1, dtype=torch.long, device=device)
    steps[:, -1] = 0
    inp, cur_pos = batch.input_ids, pos
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with hooks:
        for step in range(cfg.max_new_tokens):
            hooks.query_steps = steps
            hooks.step = step if step > 0 else None
            hooks.seq_len = P + step
            logits = model(input_ids=inp, attention_mask=attn, position_ids=cur_pos, **cache_kwargs(model, cache),
                           use_cache=True, logits_to_keep=1).logits[:, -1, :]
            nxt = _sample(logits, cfg, gens)
            for p in forcers:
                nxt = p.force(nxt, out_ids, done)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            for b in range(B):
                if done[b]:
                    continue
                t = int(nxt[b])
                if t in stops_eos:
                    finish[b] = "eos"
                    done[b] = True
                    continue
                out_ids[b].append(t)
                if matchers is not None and matchers[b].push(out_ids[b]):
                    finish[b] = "stop"
                    done[b] = True
            if bool(done.all()):
                break
            attn = torch.cat([attn, attn.new_ones(B, 1)], dim=-1)
            cur_pos = cur_pos[:, -1:] + 1
            inp = nxt.unsqueeze(-1)
            steps = torch.full((B, 1), step + 1, dtype=torch.long, device=device)
    results = [_finished(tokenizer, batch.prompts[b], out_ids[b], finish[b], cfg.stop) for b in range(B)]
    for p in providers:
        for r, res in zip(results, p.collect(batch, [len(o) for o in out_ids])):
            r.results.add(res)
    return results


def _row_generators(batch: Batch, cfg: GenConfig) -> list[torch.Generator] | None:
    """One seeded generator per row when sampling (seeded by the row's key, so a row's sample does not depend
    on its batch), None when greedy."""
    if cfg.greedy:
        return None
    gens = []
    for k in batch.row_keys or [json.dumps(p.input_ids) for p in batch.prompts]:
        g = torch.Generator()
        g.manual_seed(row_seed(cfg.seed, k))
        gens.append(g)
    return gens


def _finished(tokenizer, prompt: Prompt, ids: list[int], finish: str | None, stop: Sequence[str]) -> Generation:
    """The `Generation` of one row: decoded text, cut at the first stop string when a stop string ended it."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    reason = finish or "length"
    if reason == "stop":
        text = text[:min(text.find(s) for s in stop if s in text)]
    return Generation(prompt, text, ids, reason)


@torch.no_grad()
def forward_teacher_forced(model, tokenizer, prompts: Sequence[Prompt], outputs: Sequence[Sequence[int]] | None = None,
                           providers: Sequence[HookProvider] = (), grad: bool = False):
    """One forward pass over prompt + stored output tokens (right-aligned batch) with the providers' hooks.

    Row b's query at prompt_len-1+t produces output token t, exactly as in generation. Returns
    (logits, batch, extras). Call it as ``(loaded_model, prompts, outputs, providers)`` or, as before,
    ``(hf_model, tokenizer, prompts, outputs, providers)``.
    """
    if hasattr(model, "hf") and hasattr(model, "tokenizer"):  # (LoadedModel, prompts, outputs, providers)
        model, tokenizer, prompts, outputs, providers = (
            model.hf, model.tokenizer, tokenizer, prompts, providers if outputs is None else outputs)
    if outputs is None:
        raise InterpError("forward_teacher_forced needs the output token ids of every prompt")
    require_hooked(model)
    device = next(model.parameters()).device
    full = [list(p.input_ids) + list(o) for p, o in zip(prompts, outputs)]
    L = max(len(f) for f in full)
    B = len(full)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    steps = torch.full((B, L), -1, dtype=torch.long)
    pads = []
    for b, f in enumerate(full):
        pad = L - len(f)
        ids[b, pad:] = torch.tensor(f)
        mask[b, pad:] = 1
        n_p, n_o = len(prompts[b].input_ids), len(outputs[b])
        start = pad + n_p - 1
        steps[b, start: start + n_o] = torch.arange(n_o)
        pads.append(pad)
    batch = Batch(list(prompts), ids.to(device), mask.to(device), pads)
    hooks = AttentionHooks()
    for p in providers:
        p.attach(hooks, batch)
    hooks.check_layers(int(model.config.num_hidden_layers))
    hooks.query_steps = steps.to(device)
    hooks.seq_len = L
    pos = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
    with hooks, torch.set_grad_enabled(grad):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos,
                       use_cache=False).logits
    n_tokens = [len(o) for o in outputs]
    extras = [RowResults() for _ in prompts]
    for p in providers:
        for e, x in zip(extras, p.collect(batch, n_tokens)):
            e.add(x)
    return logits, batch, extras


def generate(model, prompts: Sequence[Prompt], cfg: GenConfig | None = None,
             providers_for_batch=None, progress: bool = True, row_keys: Sequence[str] | None = None,
             row_interventions: Sequence[Sequence] | None = None,
             row_extras: Sequence[dict] | None = None) -> list[Generation]:
    """Generate for many prompts in batches of `cfg.batch_size` (prompts of similar length together).

    The low-level loop under `interp.generate` (`interp.api`): `model` is a LoadedModel,
    `providers_for_batch(batch) -> list[HookProvider]` builds the hook providers of each batch and
    `row_interventions[i]` are prompt i's `Intervention` values (``batch.interventions`` for the providers;
    ``row_extras=[{"interventions": [...]}]`` is the older spelling). Interventions that no provider applies
    (`Capability.READS_INTERVENTIONS`) are an error. Results come back in input order.
    """
    from ..progress import progress_bar

    cfg = cfg or GenConfig()
    if not prompts:
        return []
    if row_extras is not None:
        if row_interventions is not None:
            raise InterpError("pass row_interventions or (the older) row_extras, not both")
        row_interventions = [list(e.get("interventions", [])) for e in row_extras]
    wants_iv = bool(row_interventions) and any(row_interventions)  # type: ignore[arg-type]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
    results: list[Generation | None] = [None] * len(prompts)
    bar = progress_bar(total=len(prompts), desc="generate", disable=not progress, leave=False)
    bs = cfg.batch_size if cfg.batch_size > 0 else auto_batch_size(
        model, max(len(p.input_ids) for p in prompts), cfg.max_new_tokens)
    for s in range(0, len(order), bs):
        idx = order[s: s + bs]
        batch = make_batch(model.tokenizer, [prompts[i] for i in idx], model.device)
        batch.row_keys = [row_keys[i] for i in idx] if row_keys else []
        batch.interventions = [list(row_interventions[i]) for i in idx] if row_interventions else [[] for _ in idx]
        providers = list(providers_for_batch(batch)) if providers_for_batch else []
        if wants_iv and not any(has(p, Capability.READS_INTERVENTIONS) for p in providers):
            raise InterpError("the rows carry interventions but no provider of this batch applies them; use "
                              "interp.generate(..., interventions=[...]) or add an InterventionProvider")
        for i, g in zip(idx, generate_batch(model.hf, model.tokenizer, batch, cfg, providers)):
            results[i] = g
        bar.update(len(idx))
    bar.close()
    return results  # type: ignore[return-value]
