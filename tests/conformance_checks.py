"""Random-weight models from a config and the per-family conformance check of hooked attention.

Shared by tests/test_conformance.py (CPU, every supported family) and benchmarks/gpu_check.py (the same check
on CUDA, and the 7B-class random models it times). `check_family` runs on any device; it raises
AssertionError on a failed check and returns the measured differences.
"""
from __future__ import annotations

import numpy as np
import torch

from interp.attention.cas import CASCapture, teacher_forced_cas
from interp.interventions.spec import Intervention, InterventionProvider
from interp.models.generation import GenConfig, eos_ids, forward_teacher_forced, generate, make_batch
from interp.models.hooked_attention import install
from interp.models.loading import LoadedModel, share_weights_clone
from interp.prompts import Prompt

W = 6  # sliding window: shorter than every prompt
N_NEW = 6
CAS_TOL, LOGIT_TOL = 1e-5, 1e-4
COMMON = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 128, "initializer_range": 0.2,
          "tie_word_embeddings": False, "pad_token_id": 0}
MOE = {"num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
       "shared_expert_intermediate_size": 32, "decoder_sparse_step": 1}
SLIDING = {"sliding_window": W}
ALTERNATING = {"sliding_window": W, "layer_types": ["sliding_attention", "full_attention"]}
QWEN_SLIDING = {"use_sliding_window": True, "sliding_window": W, "max_window_layers": 1}  # layer 1 slides
# model type -> variants (name, config overrides). Softcap far below the random models' logits so it matters.
FAMILIES: dict[str, list[tuple[str, dict]]] = {
    "llama": [("base", {})],
    "mistral": [("base", {"sliding_window": None}), ("sliding", SLIDING)],
    "mixtral": [("sliding", {**MOE, **SLIDING})],
    "qwen2": [("base", {}), ("sliding", QWEN_SLIDING)],
    "qwen3": [("sliding", QWEN_SLIDING)],
    "qwen2_moe": [("base", MOE)],
    "qwen3_moe": [("base", MOE)],
    "gemma": [("base", {})],
    "gemma2": [("softcap+sliding", {**ALTERNATING, "attn_logit_softcapping": 1.5, "final_logit_softcapping": 5.0,
                                    "query_pre_attn_scalar": 9})],
    "gemma3_text": [("sliding", {**ALTERNATING, "query_pre_attn_scalar": 9})],
    "phi3": [("sliding", SLIDING)],
    "phi": [("base", {"partial_rotary_factor": 0.5, "qk_layernorm": True})],
    "olmo": [("base", {})],
    "olmo2": [("base", {})],
    "granite": [("base", {"attention_multiplier": 0.3, "embedding_multiplier": 2.0, "logits_scaling": 2.0})],
    "starcoder2": [("sliding", SLIDING)],
    "smollm3": [("base", {"no_rope_layer_interval": 2})],
    "gpt_neox": [("base", {"num_key_value_heads": None, "rotary_pct": 0.5})],
    "gpt_oss": [("sinks+sliding", {**ALTERNATING, **MOE, "num_key_value_heads": 2})],
    "gpt2": [("base", {"n_inner": 96})],
}
CASES = [(mt, name) for mt in sorted(FAMILIES) for name, _ in FAMILIES[mt]]


def synthetic_tokenizer(vocab_size: int, pad_id: int = 0):
    """A word-level tokenizer over ids ``t0 .. t{vocab_size-1}`` (no EOS, no chat template, no files): enough for
    generation and span bookkeeping on random models where no real tokenizer is at hand (e.g. an offline GPU)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=f"t{pad_id}"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=f"t{pad_id}", unk_token=f"t{pad_id}")
    tok.padding_side = "left"
    return tok


def random_model(cfg, tokenizer, *, device="cpu", dtype: torch.dtype | None = None,
                 model_id: str = "random") -> LoadedModel:
    """A model of `cfg`'s architecture with random weights (seed 0), built directly on `device` (no hub, no file),
    switched to hooked attention: what `interp.load_model` returns, minus the weights."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                              **({"dtype": dtype} if dtype is not None else {})).eval()
    install(hf)
    return LoadedModel(hf=hf, tokenizer=tokenizer, model_id=model_id, source="config", revision="random")


def tiny(model_type: str, variant: str, tokenizer, vocab: int = 512, device="cpu") -> LoadedModel:
    """A random model of `model_type` from its config (built on the CPU, so its weights do not depend on
    `device`); learned sinks (gpt-oss) get a visible size."""
    from transformers import AutoConfig

    over = dict(FAMILIES[model_type])[variant]
    cfg = AutoConfig.for_model(model_type, **{**COMMON, "vocab_size": vocab, "bos_token_id": 1,
                                              "eos_token_id": 2, **over})
    model = random_model(cfg, tokenizer, model_id=f"tiny-{model_type}-{variant}")
    for m in model.hf.modules():
        if isinstance(getattr(m, "sinks", None), torch.nn.Parameter):
            torch.nn.init.normal_(m.sinks, 0.0, 1.5)
    model.hf.to(device)
    return model


def make_prompts(vocab: int) -> list[Prompt]:
    """Two prompts of different lengths, each longer than W + N_NEW: constraint_0 slides out of the window."""
    g = torch.Generator().manual_seed(1)
    out = []
    for n in (17, 14):
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        spans = {"task": (0, 2), "constraint_0": (2, 5), "filler": (5, n - 3), "constraint_1": (n - 3, n - 1)}
        out.append(Prompt(text="", input_ids=ids, spans=spans))
    return out


def eager_cas(twin, prompt, output_ids, names) -> np.ndarray:
    """[steps, layers, spans, heads] from HF eager attention weights of prompt + output (one unpadded row)."""
    dev = next(twin.parameters()).device
    ids = torch.tensor([list(prompt.input_ids) + list(output_ids)], device=dev)
    with torch.no_grad():
        att = twin(input_ids=ids, output_attentions=True).attentions
    A = torch.stack([a[0] for a in att]).double()
    n_p = len(prompt.input_ids)
    rows = A[:, :, n_p - 1: n_p - 1 + len(output_ids)]
    masks = torch.zeros(len(names), ids.shape[1], dtype=torch.float64, device=dev)
    groups = {"constraints": ["constraint_0", "constraint_1"]}
    for i, n in enumerate(names):
        if n == "__sink__":
            masks[i, 0] = 1
        elif n == "__prompt__":
            masks[i, :n_p] = 1
        else:
            for part in groups.get(n, [n]):
                s, e = prompt.spans[part]
                masks[i, s:e] = 1
    return torch.einsum("lhtk,sk->tlsh", rows, masks).cpu().numpy()


def hidden_keys_reference(twin, ids, mask, hide, n_steps=0):
    """HF eager logits of a padded batch whose attention mask also hides `hide` ([B, T] bool), positions kept;
    with n_steps > 0 also greedy-decodes n_steps tokens by full recomputation (hidden keys stay hidden)."""
    ids, mask, hide = ids.clone(), mask.clone(), hide.clone()
    out = []
    with torch.no_grad():
        while True:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = twin(input_ids=ids, attention_mask=mask * ~hide, position_ids=pos).logits
            if len(out) == n_steps:
                return logits, torch.stack(out, 1) if out else None
            nxt = logits[:, -1].argmax(-1)
            out.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, mask.new_ones(len(ids), 1)], 1)
            hide = torch.cat([hide, hide.new_zeros(len(ids), 1)], 1)


def until_eos(ids, eos) -> list[int]:
    out = []
    for t in ids:
        if int(t) in eos:
            break
        out.append(int(t))
    return out


class MaskKnockout:
    """Hook provider: knockout of `hide` keys through `hook_attn_mask` only (stays on SDPA), all rows, all layers."""

    def __init__(self, n_layers, hide):
        self.n_layers, self.hide = n_layers, hide
        self.calls = 0

    def attach(self, hooks, batch):
        for l in range(self.n_layers):
            hooks.add(f"blocks.{l}.attn.hook_attn_mask", self._hook)

    def _hook(self, mask, call):
        self.calls += 1
        assert call.query_steps.shape[1] == mask.shape[2]
        sel = call.key_slice(self.hide.to(mask.device))[:, None, None, :]
        return mask.masked_fill(sel, torch.finfo(mask.dtype).min)

    def collect(self, batch, n_tokens):
        return [{} for _ in range(batch.size)]


def check_family(model_type: str, variant: str, tokenizer, device="cpu") -> dict:
    """The conformance checks of one family variant on `device` (fp32); AssertionError names the failed check.

    Returns the measured worst differences: live CAS vs HF eager, knockout logits vs HF eager with the keys
    hidden (intervention and mask-hook paths)."""
    model = tiny(model_type, variant, tokenizer, device=device)
    vocab = model.config.vocab_size
    prompts = make_prompts(vocab)
    cfg = model.config
    if "sliding" in variant:
        assert getattr(cfg, "sliding_window", None) == W
        assert all(len(p.input_ids) > W for p in prompts)
    L, H = model.n_layers, model.n_heads
    eos = eos_ids(tokenizer, model.hf)
    gens = generate(model, prompts, GenConfig(max_new_tokens=N_NEW, batch_size=len(prompts)),
                    providers_for_batch=lambda b: [CASCapture(L, H, N_NEW)], progress=False)
    assert sum(len(g.output_ids) for g in gens) >= N_NEW + 2, "too few tokens generated to test decoding steps"
    names = gens[0].extras["cas_spans"]
    outs = [g.output_ids for g in gens]
    tf = teacher_forced_cas(model, prompts, outs, batch_size=len(prompts))
    twin = share_weights_clone(model.hf)
    assert twin.config._attn_implementation == "eager" and model.hf.config._attn_implementation == "interp"

    # greedy ids == HF generate (eager) on the same left-padded batch
    batch = make_batch(tokenizer, prompts, model.device)
    with torch.no_grad():
        hf_out = twin.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                               max_new_tokens=N_NEW, eos_token_id=sorted(eos), pad_token_id=tokenizer.pad_token_id)
    for b, g in enumerate(gens):
        assert g.output_ids == until_eos(hf_out[b, batch.prompt_len:], eos), f"{model_type}/{variant} row {b}"

    # live CAS == HF eager attention; teacher-forced == live
    worst = 0.0
    for p, g, t in zip(prompts, gens, tf):
        live = g.extras["cas"]
        ref = eager_cas(twin, p, g.output_ids, names)
        worst = max(worst, float(np.abs(live - ref).max()))
        assert np.abs(live - t["cas"]).max() <= CAS_TOL
    assert worst <= CAS_TOL, f"{model_type}/{variant}: max |CAS - eager| = {worst:.2e}"
    c0 = names.index("constraint_0")
    sliding = []
    if "sliding" in variant:  # constraint_0 has slid out of the window by step 0 on sliding layers: exactly 0
        types = getattr(cfg, "layer_types", None) or ["sliding_attention"] * L
        sliding = [l for l, t in enumerate(types) if t == "sliding_attention"]
        assert sliding
        for g in gens:
            assert np.all(g.extras["cas"][:, sliding, c0] == 0)
    if len(sliding) < L:  # full-attention layers still see it
        assert max(float(g.extras["cas"][:, :, c0].max()) for g in gens) > 1e-3

    # knockout == HF eager with the target keys hidden by the attention mask (teacher-forced, all rows)
    target = ("constraint_0", "constraint_1")
    ko = Intervention(target=target, op="knockout", layers=None, prefill=True)
    cap = CASCapture(L, H, N_NEW)
    prov = InterventionProvider(L, H, shared=[ko])
    logits, tbatch, extras = forward_teacher_forced(model.hf, tokenizer, prompts, outs, [prov, cap])
    hide = tbatch.span_mask(list(target)).bool()
    hide = torch.nn.functional.pad(hide, (0, tbatch.input_ids.shape[1] - hide.shape[1]))
    ref_logits, _ = hidden_keys_reference(twin, tbatch.input_ids, tbatch.attention_mask, hide)
    real = tbatch.attention_mask.bool()
    ko_diff = float((logits - ref_logits)[real].abs().max())
    assert ko_diff <= LOGIT_TOL, f"{model_type}/{variant}: knockout vs hidden-key eager {ko_diff:.2e}"
    for e in extras:
        for s in target:
            assert np.all(e["cas"][:, :, names.index(s)] == 0)
        assert np.all(e["cas"][:, :, names.index("__prompt__")] > 0)

    # the same knockout through hook_attn_mask (SDPA path), teacher-forced
    mk = MaskKnockout(L, hide)
    logits_m, _, _ = forward_teacher_forced(model.hf, tokenizer, prompts, outs, [mk])
    assert mk.calls == L
    mask_diff = float((logits_m - ref_logits)[real].abs().max())
    assert mask_diff <= LOGIT_TOL, f"{model_type}/{variant}: mask-hook knockout vs hidden-key eager {mask_diff:.2e}"

    # live knockout in KV-cached decoding (sliding caches: keys mapped by key_offset) == eager greedy with hidden keys
    pb = make_batch(tokenizer, prompts, model.device)
    hide_p = pb.span_mask(list(target)).bool()
    _, ref_ids = hidden_keys_reference(twin, pb.input_ids, pb.attention_mask, hide_p, N_NEW)
    for mode in ("intervention", "mask_hook"):
        def providers(b, mode=mode):
            if mode == "intervention":
                return [InterventionProvider(L, H, shared=[ko]), CASCapture(L, H, N_NEW)]
            total = torch.nn.functional.pad(b.span_mask(list(target)).bool(), (0, N_NEW))  # generate's batch order
            return [MaskKnockout(L, total), CASCapture(L, H, N_NEW)]

        kg = generate(model, prompts, GenConfig(max_new_tokens=N_NEW, batch_size=len(prompts)),
                      providers_for_batch=providers, progress=False)
        for b, g in enumerate(kg):
            assert g.output_ids == until_eos(ref_ids[b], eos), f"{model_type}/{variant} {mode} row {b}"
            for s in target:
                assert np.all(g.extras["cas"][:, :, names.index(s)] == 0)

    # scale with alpha = 1 is a no-op (hooked eager path vs plain path)
    one = InterventionProvider(L, H, shared=[Intervention(target=target, op="scale", alpha=1.0, prefill=True)])
    base, _, _ = forward_teacher_forced(model.hf, tokenizer, prompts, outs)
    same, _, _ = forward_teacher_forced(model.hf, tokenizer, prompts, outs, [one])
    assert float((base - same)[real].abs().max()) <= CAS_TOL
    return {"max_abs_cas_vs_eager": worst, "knockout_logits_diff": ko_diff, "mask_hook_logits_diff": mask_diff}
