"""Residual / attention-output / MLP-output hook points and the `Resid` capture probe, on every supported family.

References: HF ``output_hidden_states`` of an unhooked forward (residual stream, left padding and sliding windows
included, during KV-cached generation and teacher forcing); a hand computation from the output projection's
weights (per-head output ``z_h @ W_O[h]``, summing with the bias to HF's own projection output); ``pattern @ v``
from the attention hooks (already checked against HF eager attention) for ``hook_z``.
"""
import numpy as np
import pytest
import torch
from conformance_checks import CASES, N_NEW, make_prompts, tiny

from interp.errors import InterpError
from interp.models.generation import GenConfig, forward_teacher_forced, generate_batch, make_batch
from interp.models.hooked_attention import AttentionHooks
from interp.models.hooked_resid import block_modules, decoder_layers, parallel_blocks
from interp.probes.resid import Resid, hook_name

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-5
ALL = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "hook_z",
       "hook_result")
MAXDIFF: dict[str, float] = {}


@pytest.fixture(scope="module")
def tokenizer():
    from conformance_checks import synthetic_tokenizer

    return synthetic_tokenizer(512)


def _final_norm(hf):
    base = hf.base_model
    for n in ("norm", "ln_f", "final_layer_norm", "final_layernorm"):
        if hasattr(base, n):
            return getattr(base, n)
    raise AssertionError("no final norm")


def _kinds(model):
    return [k for k in ALL if not (k == "hook_resid_mid" and parallel_blocks(model.config))]


def _plain_capture(model, ids, mask, pos, kinds):
    """Every hook kind at every layer on a plain (padded) forward; also HF's own o_proj outputs."""
    got: dict[str, torch.Tensor] = {}
    h = AttentionHooks()
    for l in range(model.n_layers):
        for name in (hook_name(k, l) for k in kinds):
            h.add(name, lambda x, call, n=name: got.__setitem__(n, x.detach().clone()))
        h.add(f"blocks.{l}.attn.hook_pattern", lambda x, call, n=f"p{l}": got.__setitem__(n, x.detach().clone()))
        h.add(f"blocks.{l}.attn.hook_v", lambda x, call, n=f"v{l}": got.__setitem__(n, x.detach().clone()))
    o_out, handles = {}, []
    for l, lay in enumerate(decoder_layers(model.hf)):
        mods = block_modules(model.hf, lay)
        handles.append(mods.o_proj.register_forward_hook(
            lambda mod, a, out, l=l: o_out.__setitem__(l, out.detach().clone())))
    with torch.no_grad(), h:
        model.hf(input_ids=ids, attention_mask=mask, position_ids=pos)
    for x in handles:
        x.remove()
    return got, o_out


def check_resid_family(model, prompts) -> dict[str, float]:
    hf = model.hf
    L, H = model.n_layers, model.n_heads
    batch = make_batch(model.tokenizer, prompts, "cpu")
    ids, mask = batch.input_ids, batch.attention_mask
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
    hs = ref.hidden_states
    kinds = _kinds(model)
    got, o_out = _plain_capture(model, ids, mask, pos, kinds)
    real = mask.bool()
    d: dict[str, float] = {}

    def diff(key, a, b):
        d[key] = max(d.get(key, 0.0), float((a[real] - b[real]).abs().max()))

    for l in range(L):
        pre, post = got[hook_name("hook_resid_pre", l)], got[hook_name("hook_resid_post", l)]
        attn, mlp = got[hook_name("hook_attn_out", l)], got[hook_name("hook_mlp_out", l)]
        diff("resid_pre", pre, hs[l])
        if l < L - 1:
            diff("resid_post", post, hs[l + 1])
        else:
            with torch.no_grad():
                diff("resid_post", _final_norm(hf)(post), hs[L])
        diff("attn_out+mlp_out", post - pre, attn + mlp)
        if "hook_resid_mid" in kinds:
            diff("resid_mid", got[hook_name("hook_resid_mid", l)] + mlp, post)
        # per-head output by hand from the projection weights (Linear [out, in] or gpt2 Conv1D [in, out])
        mods = block_modules(hf, decoder_layers(hf)[l])
        W = mods.o_proj.weight.detach()
        W = W if mods.conv1d else W.T  # [H * d_head, d_model]
        z = got[hook_name("hook_z", l)]
        D = z.shape[-1]
        hand = torch.stack([z[:, :, h] @ W[h * D:(h + 1) * D] for h in range(H)], 2)
        diff("result", got[hook_name("hook_result", l)], hand)
        bias = mods.o_proj.bias.detach() if mods.o_proj.bias is not None else 0
        diff("sum(result)+b_O", hand.sum(2) + bias, o_out[l])
        pv = torch.matmul(got[f"p{l}"], got[f"v{l}"]).transpose(1, 2)  # [B, T, H, D]
        diff("z", z, pv)
    for k, v in d.items():
        assert v < TOL, f"{model.model_id}: {k} differs by {v:.2e}"
    return d


def check_resid_generation(model, prompts) -> dict[str, float]:
    """Resid during KV-cached generation and teacher forcing == HF hidden states of an unpadded recompute."""
    spec = Resid(hooks=("hook_resid_pre", "hook_resid_post"))
    batch = make_batch(model.tokenizer, prompts, "cpu")
    prov = spec.provider(model, N_NEW)
    gens = generate_batch(model.hf, model.tokenizer, batch, GenConfig(max_new_tokens=N_NEW), [prov])
    outs = [g.output_ids for g in gens]
    runs = {"generate": prov.collect(batch, [len(o) for o in outs])}
    tf = spec.provider(model, N_NEW)
    _, tf_batch, _ = forward_teacher_forced(model, prompts, outs, [tf])
    runs["teacher_forced"] = tf.collect(tf_batch, [len(o) for o in outs])
    d = dict.fromkeys(runs, 0.0)
    for b, (p, o) in enumerate(zip(prompts, outs)):
        assert len(o) == N_NEW
        with torch.no_grad():
            hs = model.hf(input_ids=torch.tensor([list(p.input_ids) + list(o)]), output_hidden_states=True
                          ).hidden_states
        n_p = len(p.input_ids)
        for l in range(model.n_layers):
            for kind, ref_l in (("hook_resid_pre", l), ("hook_resid_post", l + 1)):
                if ref_l == model.n_layers:  # HF's last hidden state is after the final norm
                    continue
                ref = hs[ref_l][0, n_p - 1: n_p - 1 + len(o)].numpy()
                for run, rows in runs.items():
                    d[run] = max(d[run], float(np.abs(rows[b].acts[hook_name(kind, l)] - ref).max()))
    for k, v in d.items():
        assert v < 1e-4, f"{model.model_id}: Resid during {k} differs from HF hidden states by {v:.2e}"
    return d


@pytest.mark.slow
@pytest.mark.parametrize("model_type,variant", CASES)
def test_resid_hook_points_match_hf(model_type, variant, tokenizer):
    model = tiny(model_type, variant, tokenizer)
    prompts = make_prompts(512)
    d = check_resid_family(model, prompts)
    d.update(check_resid_generation(model, prompts))
    MAXDIFF[f"{model_type}/{variant}"] = max(d.values())


@pytest.mark.slow
def test_resid_mid_edit_equals_attn_out_edit(tokenizer):
    """Editing resid_mid by delta changes the logits exactly as adding delta to attn_out (the MLP and the
    residual both see it); and a no-op edit (returning the same values) changes nothing. Bites: an
    implementation that only fed the MLP norm would differ."""
    model = tiny("llama", "base", tokenizer)
    batch = make_batch(tokenizer, make_prompts(512), "cpu")
    ids, mask = batch.input_ids, batch.attention_mask
    delta = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(3))

    def run(name, fn):
        h = AttentionHooks().add(name, fn) if name else AttentionHooks()
        with torch.no_grad(), h:
            return model.hf(input_ids=ids, attention_mask=mask).logits

    base = run(None, None)
    a = run("blocks.0.hook_resid_mid", lambda x, c: x + delta)
    b = run("blocks.0.hook_attn_out", lambda x, c: x + delta)
    c = run("blocks.0.hook_resid_pre", lambda x, c: x + delta)
    assert (a - base).abs().max() > 1e-2
    assert (a - b).abs().max() < 1e-5
    assert (c - a).abs().max() > 1e-3  # resid_pre edits also change attention's input
    assert (run("blocks.1.hook_resid_mid", lambda x, c: x.clone()) - base).abs().max() < 1e-6


def test_resid_values_are_checked():
    with pytest.raises(InterpError, match="unknown hook kind"):
        Resid(hooks=("hook_resid",))
    with pytest.raises(InterpError, match="positions"):
        Resid(positions="everything")
    with pytest.raises(InterpError, match="reduce"):
        Resid(reduce="max")
    with pytest.raises(InterpError, match="layers"):
        Resid(layers=(-1,))


@pytest.mark.slow
def test_resid_mid_refused_on_parallel_blocks(tokenizer):
    model = tiny("phi", "base", tokenizer)
    with pytest.raises(InterpError, match="parallel"):
        Resid(hooks=("hook_resid_mid",)).provider(model, 4)
    with pytest.raises(InterpError, match="out of range"):
        Resid(layers=(5,)).provider(model, 4)


@pytest.mark.slow
def test_resid_prompt_positions_and_mean(tokenizer):
    model = tiny("mistral", "sliding", tokenizer)
    prompts = make_prompts(512)
    batch = make_batch(tokenizer, prompts, "cpu")
    p1, p2 = Resid(positions="prompt", layers=(0,)), Resid(positions="prompt", layers=(0,), reduce="mean")
    provs = [p1.provider(model, 3), p2.provider(model, 3)]
    generate_batch(model.hf, tokenizer, batch, GenConfig(max_new_tokens=3), provs)
    r1, r2 = (p.collect(batch, [3, 3]) for p in provs)
    for b, p in enumerate(prompts):
        with torch.no_grad():
            hs = model.hf(input_ids=torch.tensor([p.input_ids]), output_hidden_states=True).hidden_states
        a = r1[b].acts["blocks.0.hook_resid_post"]
        assert a.shape == (len(p.input_ids), model.config.hidden_size)
        assert np.abs(a - hs[1][0].numpy()).max() < 1e-4
        assert np.abs(r2[b].acts["blocks.0.hook_resid_post"] - a.mean(0)).max() < 1e-6


@pytest.mark.slow
def test_granite_residual_multiplier(tokenizer):
    """attn_out / mlp_out are what is added to the residual: granite scales both branches by
    residual_multiplier (not in the conformance variant, whose multiplier is 1)."""
    from transformers import AutoConfig

    from conformance_checks import COMMON, random_model

    cfg = AutoConfig.for_model("granite", **{**COMMON, "vocab_size": 512, "residual_multiplier": 0.5,
                                             "attention_multiplier": 0.3})
    model = random_model(cfg, tokenizer)
    check_resid_family(model, make_prompts(512))
    for lh in model.hf._interp_resid_hooks:  # bites: without the multiplier the branch outputs are wrong
        lh.mult = 1.0
    with pytest.raises(AssertionError, match="attn_out"):
        check_resid_family(model, make_prompts(512))


@pytest.mark.slow
def test_resid_through_the_public_api(tokenizer):
    """interp.generate(capture=[Resid(...)]) -> g.result(Resid).acts; the value round-trips by name."""
    from interp.api import generate
    from interp.probes import Probe

    model = tiny("qwen2", "sliding", tokenizer)
    spec = Resid(hooks=("hook_mlp_out", "hook_z"), layers=(1,))
    gens = generate(model, make_prompts(512), max_new_tokens=4, capture=[spec], progress=False)
    for g in gens:
        r = g.result(Resid)
        assert r.acts["blocks.1.hook_mlp_out"].shape == (len(g.output_ids), model.config.hidden_size)
        assert r.acts["blocks.1.attn.hook_z"].shape == (len(g.output_ids), model.n_heads, 16)
    assert Probe.from_dict(spec.to_dict()) == spec
