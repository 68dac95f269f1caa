"""Conformance of hooked attention on every supported model type, against transformers' own eager attention.

One tiny random model per family (and a sliding-window variant where the family has one) built from a
config (no hub), a left-padded batch of two prompts longer than the window, several decoding steps:

- live CAS (KV-cached generation) == CAS from HF eager attention weights of prompt + output (<= 1e-5);
- teacher-forced CAS == live CAS; greedy ids == HF `generate` on the same padded batch;
- a knockout (intervention, and a `hook_attn_mask` hook on the SDPA path) puts exactly 0 attention on the
  target keys and equals HF eager attention whose attention mask hides those keys (logits <= 1e-4; greedy ids);
- scale with alpha = 1 is a no-op.

`FAMILIES` must list every entry of `SUPPORTED_MODEL_TYPES`: supporting a family means adding it there. The
models, `FAMILIES` and the checks are in tests/conformance_checks.py (benchmarks/gpu_check.py runs them on CUDA).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import InterpError
from interp.interventions.spec import Intervention, InterventionProvider
from interp.models.generation import GenConfig, forward_teacher_forced, generate
from interp.models.hooked_attention import install
from interp.models.loading import SUPPORTED_MODEL_TYPES, load_model, load_tokenizer

from conformance_checks import CASES, FAMILIES, LOGIT_TOL, N_NEW, check_family, make_prompts, tiny


@pytest.fixture(scope="module")
def tokenizer():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU
    yield load_tokenizer()
    torch.set_num_threads(n)


def test_every_supported_family_is_in_the_suite():
    assert set(FAMILIES) == set(SUPPORTED_MODEL_TYPES), (
        f"not in the conformance suite: {sorted(set(SUPPORTED_MODEL_TYPES) - set(FAMILIES))}; "
        f"in the suite but not supported: {sorted(set(FAMILIES) - set(SUPPORTED_MODEL_TYPES))}")


@pytest.mark.parametrize("model_type,variant", CASES)
def test_family_conformance(model_type, variant, tokenizer):
    d = check_family(model_type, variant, tokenizer)
    print(f"\n{model_type}/{variant}: max|CAS-eager|={d['max_abs_cas_vs_eager']:.2e} knockout logits diff="
          f"{d['knockout_logits_diff']:.2e} (mask hook, SDPA: {d['mask_hook_logits_diff']:.2e})")


def test_unsupported_model_type_is_refused(tmp_path):
    from transformers import AutoConfig

    AutoConfig.for_model("bloom", n_layer=1, hidden_size=32, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(InterpError) as e:
        load_model(str(tmp_path))
    msg = str(e.value)
    assert "'bloom'" in msg and "gpt_oss" in msg and "llama" in msg and "tests/test_conformance.py" in msg

    class Fake:
        config = AutoConfig.for_model("bloom")

    with pytest.raises(InterpError, match="not supported"):
        install(Fake())


def test_gemma2_loads_from_a_folder(tmp_path, tokenizer):
    """Gemma 2 has no SDPA: `load_model` must load it (eager) and switch it to hooked attention."""
    m = tiny("gemma2", "softcap+sliding", tokenizer)
    m.hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    assert loaded.hf.config._attn_implementation == "interp"
    ids = torch.tensor([make_prompts(512)[0].input_ids])
    with torch.no_grad():
        assert torch.allclose(loaded.hf(input_ids=ids).logits, m.hf(input_ids=ids).logits, atol=1e-5)


@pytest.mark.parametrize("model_type,variant", [c for c in CASES if "sliding" in c[1]])
def test_sweep_and_attribution_on_sliding_windows(model_type, variant, tokenizer):
    """The batched sweep (shared prefix cache, sliding cache layers) equals one teacher-forced pass per head,
    and an attribution gate of 0 equals a knockout on generated rows."""
    from interp.interventions.attribution import GateProvider
    from interp.interventions.sweep import sweep_heads, sweep_heads_sequential

    model = tiny(model_type, variant, tokenizer)
    p = make_prompts(model.config.vocab_size)[0]
    out = generate(model, [p], GenConfig(max_new_tokens=N_NEW), progress=False)[0].output_ids
    assert len(out) >= 3
    target = ("constraint_0", "constraint_1")
    fast = sweep_heads(model, p, out, target=target, op="knockout", batch_size=8)
    slow = sweep_heads_sequential(model, p, out, target=target, op="knockout")
    assert np.abs(fast.logp.to_numpy() - slow.logp.to_numpy()).max() <= LOGIT_TOL
    assert np.abs(fast.effect.to_numpy()).max() > 1e-4  # the knockouts do something
    gate = torch.zeros(model.n_layers, model.n_heads)
    g_logits, _, _ = forward_teacher_forced(model.hf, tokenizer, [p], [out], [GateProvider(gate, target)])
    ko = InterventionProvider(model.n_layers, model.n_heads, shared=[Intervention(target=target, op="knockout")])
    k_logits, _, _ = forward_teacher_forced(model.hf, tokenizer, [p], [out], [ko])
    assert float((g_logits - k_logits).abs().max()) <= LOGIT_TOL


def test_key_slice_maps_absolute_positions():
    """`AttnCall.key_slice`: columns key_offset : key_offset + kv_len of a [B, T] mask, zero/False past T."""
    from interp.models.hooked_attention import AttentionHooks, AttnCall

    m = torch.arange(1, 11, dtype=torch.float).expand(2, -1)  # positions 0..9 hold 1..10
    call = AttnCall(layer=0, query_steps=torch.zeros(2, 1, dtype=torch.long), kv_len=4, hooks=AttentionHooks())
    assert call.key_slice(m)[0].tolist() == [1, 2, 3, 4]
    call.key_offset = 8
    assert call.key_slice(m)[1].tolist() == [9, 10, 0, 0]
    call.key_offset = 12
    assert not call.key_slice(m.bool()).any() and call.key_slice(m.bool()).shape == (2, 4)
    AttentionHooks().add("blocks.3.attn.hook_attn_mask", lambda m, c: None)
    with pytest.raises(ValueError):
        AttentionHooks().add("blocks.3.attn.hook_mask", lambda m, c: None)
