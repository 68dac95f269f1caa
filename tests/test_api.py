"""The researcher API: `interp.generate(capture=, interventions=)`, hooks on any forward, `run_with_cache`, `trace`.

Checked against independent references on tiny random models (HF eager `output_attentions`, the lower-level
provider path, HF's own forward), and every silent no-op the API used to allow must now raise.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_conformance import CASES, make_prompts, tiny, tokenizer  # noqa: F401  (fixture)

import interp
from interp.attention.cas import CAS, CASCapture
from interp.errors import InterpError
from interp.interventions.spec import Intervention, InterventionProvider
from interp.api import generate, hook_names, run_with_cache, run_with_hooks, trace
from interp.models.generation import GenConfig
from interp.models.generation import generate as generate_low
from interp.models.loading import share_weights_clone

VOCAB = 512


@pytest.fixture(scope="module")
def llama(tokenizer):  # noqa: F811
    return tiny("llama", "base", tokenizer, VOCAB)


@pytest.mark.parametrize("model_type,variant", CASES)  # every supported family and its sliding/softcap/sink variant
def test_run_with_cache_patterns_equal_hf_eager_on_a_left_padded_batch(model_type, variant, tokenizer):  # noqa: F811
    m = tiny(model_type, variant, tokenizer, VOCAB)
    prompts = make_prompts(VOCAB)
    logits, cache = run_with_cache(m, prompts, "blocks.*.attn.hook_pattern")
    twin = share_weights_clone(m.hf)
    P = max(len(p.input_ids) for p in prompts)
    ids = torch.zeros(2, P, dtype=torch.long)
    mask = torch.zeros(2, P, dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, P - len(p.input_ids):] = torch.tensor(p.input_ids)
        mask[b, P - len(p.input_ids):] = 1
    with torch.no_grad():
        out = twin(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                   output_attentions=True)
    assert cache.pad == [0, 3]
    for l, ref in enumerate(out.attentions):
        got = cache[f"blocks.{l}.attn.hook_pattern"]
        for b, pad in enumerate(cache.pad):  # rows of real tokens (padding rows are not defined by HF either)
            assert torch.allclose(got[b, :, pad:], ref[b, :, pad:], atol=1e-5), (model_type, l, b)
    real = mask.bool()
    assert torch.allclose(logits[real], out.logits[real], atol=1e-4)


def test_run_with_cache_rows_are_per_prompt_positions(llama):
    prompts = make_prompts(VOCAB)
    _, full = run_with_cache(llama, prompts, "blocks.1.attn.hook_pattern")
    _, last = run_with_cache(llama, prompts, ["blocks.1.attn.hook_pattern"], rows=[-1, 0])
    got = last["blocks.1.attn.hook_pattern"]
    assert got.shape == (2, 4, 2, 17)
    assert torch.equal(got[:, :, 0], full["blocks.1.attn.hook_pattern"][:, :, -1])
    assert torch.equal(got[1, :, 1], full["blocks.1.attn.hook_pattern"][1, :, 3])  # prompt 1 starts after 3 pads
    with pytest.raises(KeyError):
        last["blocks.0.attn.hook_pattern"]
    with pytest.raises(InterpError, match="outside prompt"):
        run_with_cache(llama, prompts, "blocks.1.attn.hook_pattern", rows=[20])


def test_hooks_fire_on_a_plain_forward_and_are_removed_on_exit(llama):
    calls = []
    ids = torch.tensor([make_prompts(VOCAB)[0].input_ids])
    with llama.hooks([("blocks.*.attn.hook_pattern", lambda t, c: calls.append((c.layer, tuple(t.shape))))]):
        llama.hf(input_ids=ids)
    assert calls == [(0, (1, 4, 17, 17)), (1, (1, 4, 17, 17))]
    llama.hf(input_ids=ids)
    assert len(calls) == 2
    plain = llama.hf(input_ids=ids).logits
    with interp.hooks(llama, {"blocks.0.attn.hook_pattern": lambda t, c: torch.zeros_like(t)}):
        edited = llama.hf(input_ids=ids).logits
    assert not torch.allclose(plain, edited)  # an editing hook on a plain forward changes the output


def test_an_outer_hooks_block_keeps_firing_inside_generate(llama):
    steps = []
    prompts = make_prompts(VOCAB)
    with llama.hooks({"blocks.0.attn.hook_pattern": lambda t, c: steps.append(c.step)}):
        g = generate(llama, prompts, max_new_tokens=4, progress=False)
    assert len(g) == 2 and steps == [None, 1, 2, 3]  # prefill (the row that produces token 0), then 3 steps


def test_run_with_hooks_edits_like_a_knockout_mask(llama):
    prompts = make_prompts(VOCAB)[:1]
    hide = torch.zeros(1, 17, dtype=torch.bool)
    hide[0, 2:5] = True

    def ko(mask, call):
        return mask.masked_fill(call.key_slice(hide)[:, None, None, :], torch.finfo(mask.dtype).min)

    got = run_with_hooks(llama, prompts, [("blocks.*.attn.hook_attn_mask", ko)])
    ids = torch.tensor([prompts[0].input_ids])
    keep = torch.ones(1, 17, dtype=torch.long)
    keep[0, 2:5] = 0
    with torch.no_grad():  # HF eager with those keys hidden by its own attention mask, positions unchanged
        ref = share_weights_clone(llama.hf)(input_ids=ids, attention_mask=keep,
                                            position_ids=torch.arange(17)[None]).logits
    assert torch.allclose(got[0, 5:], ref[0, 5:], atol=1e-4)


def test_generate_with_specs_equals_the_provider_path(llama):
    prompts = make_prompts(VOCAB)
    iv = Intervention(target="constraints", op="scale", alpha=0.2)
    cfg = GenConfig(max_new_tokens=5)
    old = generate_low(llama, prompts, cfg, progress=False, row_extras=[{"interventions": [iv]}] * 2,
                   providers_for_batch=lambda b: [InterventionProvider(llama.n_layers, llama.n_heads),
                                                  CASCapture(llama.n_layers, llama.n_heads, 5)])
    new = generate(llama, prompts, max_new_tokens=5, capture=[CAS()], interventions=[iv], progress=False)
    for o, n in zip(old, new):
        assert o.output_ids == n.output_ids
        np.testing.assert_array_equal(o.extras["cas"], n.cas.values)
        assert n.interventions == [iv]
    c = new[0].cas
    assert c.dims == ("step", "layer", "span", "head")
    assert list(c.coords["span"].values) == ["task", "constraint_0", "filler", "constraint_1", "constraints",
                                             "__sink__", "__prompt__"]
    assert float(c.sel(span="constraints", step=0, layer=1, head=2)) == pytest.approx(
        float(c.sel(span="constraint_0", step=0, layer=1, head=2) + c.sel(span="constraint_1", step=0, layer=1,
                                                                            head=2)), abs=1e-6)


def test_per_prompt_interventions_act_only_on_their_row(llama):
    prompts = make_prompts(VOCAB)
    plain = generate(llama, prompts, max_new_tokens=5, capture=[CAS(spans=["constraints"])], progress=False)
    mixed = generate(llama, prompts, max_new_tokens=5, capture=[CAS(spans=["constraints"])], progress=False,
                     interventions=[[Intervention(target="constraints", op="knockout")], []])
    assert float(abs(mixed[0].cas.sel(span="constraints")).max()) == 0.0
    assert float(plain[0].cas.sel(span="constraints").min()) > 0.0
    assert mixed[1].output_ids == plain[1].output_ids
    np.testing.assert_allclose(mixed[1].cas.values, plain[1].cas.values, atol=1e-6)
    assert mixed[1].interventions == []


def test_trace_cas_equals_live_cas(llama):
    prompts = make_prompts(VOCAB)
    live = generate(llama, prompts, max_new_tokens=5, capture=[CAS()], progress=False)
    tf = trace(llama, prompts, [g.output_ids for g in live], capture=[CAS()])
    for g, t in zip(live, tf.generations):
        assert t.output_ids == g.output_ids
        np.testing.assert_allclose(t.cas.values, g.cas.values, atol=1e-5)
    assert tf.logits.shape[:2] == (2, 17 + 5)


def test_silent_no_ops_are_errors(llama):
    prompts = make_prompts(VOCAB)
    misnamed = [type(p)(p.text, p.input_ids, {("constraint" if k == "constraint_0" else k): v
                                              for k, v in p.spans.items() if k != "constraint_1"}) for p in prompts]
    with pytest.raises(InterpError, match="covers no token"):
        generate(llama, misnamed, max_new_tokens=2, interventions=[Intervention(op="knockout")], progress=False)
    with pytest.raises(InterpError, match="cover no token"):
        generate(llama, misnamed, max_new_tokens=2, capture=[CAS(spans=["constraints"])], progress=False)
    with pytest.raises(InterpError, match="never fire"):
        llama.hooks([("blocks.99.attn.hook_pattern", lambda t, c: None)])
    with pytest.raises(InterpError, match="never fire"):
        generate_low(llama, prompts, GenConfig(max_new_tokens=2), progress=False,
                     providers_for_batch=lambda b: [_AddHook("blocks.5.attn.hook_pattern")])
    with pytest.raises(InterpError, match="no provider"):
        generate_low(llama, prompts, GenConfig(max_new_tokens=2), progress=False,
                     row_extras=[{"interventions": [Intervention()]}] * 2,
                     providers_for_batch=lambda b: [CASCapture(llama.n_layers, llama.n_heads, 2)])
    with pytest.raises(InterpError, match="no provider"):  # no providers at all: the same silent no-op
        generate_low(llama, prompts, GenConfig(max_new_tokens=2), progress=False,
                     row_extras=[{"interventions": [Intervention()]}] * 2)
    with pytest.raises(InterpError, match="max_steps"):
        generate_low(llama, prompts, GenConfig(max_new_tokens=4), progress=False,
                     providers_for_batch=lambda b: [CASCapture(llama.n_layers, llama.n_heads, 2)])
    with pytest.raises(InterpError, match="outside the model"):
        generate(llama, prompts, max_new_tokens=2, progress=False,
                 interventions=[Intervention(op="knockout", heads=((0, 9),))])
    with pytest.raises(InterpError, match="unknown settings"):
        generate(llama, prompts, max_new_token=2, progress=False)
    with pytest.raises(InterpError, match="no CAS"):
        _ = generate(llama, prompts[:1], max_new_tokens=1, progress=False)[0].cas
    assert len(hook_names(llama)) == 2 * 4


class _AddHook:
    def __init__(self, name):
        self.name = name

    def attach(self, hooks, batch):
        hooks.add(self.name, lambda t, c: None)

    def collect(self, batch, n_tokens):
        return [{} for _ in range(batch.size)]


def test_string_prompts_use_the_chat_template(model):
    g = generate(model, ["What is 2+3?"], max_new_tokens=3, capture=[CAS()], progress=False)[0]
    assert "task" in g.prompt.spans and g.prompt.text.startswith("<|im_start|>")
    assert g.cas.sizes["layer"] == 30 and g.cas.sizes["head"] == 9


def test_trace_with_per_prompt_interventions(llama):
    prompts = make_prompts(VOCAB)
    outs = [g.output_ids for g in generate(llama, prompts, max_new_tokens=4, progress=False)]
    plain = trace(llama, prompts, outs, capture=[CAS(spans=["constraints"])])
    ko = trace(llama, prompts, outs, capture=[CAS(spans=["constraints"])],
               interventions=[[], [Intervention(target="constraints", op="knockout")]])
    assert float(abs(ko.generations[1].cas.sel(span="constraints")).max()) == 0.0
    np.testing.assert_allclose(ko.generations[0].cas.values, plain.generations[0].cas.values, atol=1e-6)
    assert torch.allclose(ko.logits[0], plain.logits[0], atol=1e-5)
    assert not torch.allclose(ko.logits[1], plain.logits[1], atol=1e-3)
    assert ko.generations[1].interventions[0].op == "knockout"


def test_cli_generate_with_cas_and_an_intervention(capsys):
    from interp.cli import main

    rc = main(["generate", "What is 2+3?", "--constraint", "Answer in one word.", "--cas", "--max-new-tokens", "3",
               "--intervention", '{"op": "knockout"}'])
    out = capsys.readouterr().out
    assert rc == 0 and "constraint_0=0.0000" in out and "task=" in out
    assert main(["generate", "Hi", "--intervention", "{not json"]) == 2
    assert "--intervention takes a JSON object" in capsys.readouterr().err
