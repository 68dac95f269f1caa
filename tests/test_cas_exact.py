"""CAS exactness: live capture in a KV-cached, left-padded batch equals full eager attention of a teacher-forced pass.

Checked on the embedded model (llama, GQA 9/3) and on a random tiny Qwen2 built from a config (GQA 4/2,
qkv biases), for every step, layer, head and span (two constraints, their union, sink and prompt).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.attention.cas import CASCapture, teacher_forced_cas
from interp.models.generation import GenConfig, generate
from interp.models.hooked_attention import install
from interp.models.loading import LoadedModel, share_weights_clone
from interp.prompts import Part, build_prompt

TOL = 1e-5
N_NEW = 12
TASKS = ["What is 7 + 5?", "Tom has 3 apples and buys 4 more. How many apples does he have now? Show your work.",
         "Name a colour."]
CONSTRAINTS = [("Answer in one sentence.", "Do not use the letter z."),
               ("Use at most twenty words in your whole reply.", "End with the word done."),
               ("Be brief.", "Write your answer in lower case letters only, with no punctuation at all.")]


@pytest.fixture(scope="module")
def embedded():
    """The embedded model, run on one thread: on a shared, oversubscribed CPU that is several times faster."""
    from interp.models import load_model

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model()
    torch.set_num_threads(n)


def tiny_qwen2(tokenizer) -> LoadedModel:
    """A random 3-layer Qwen2 (GQA 4 query / 2 kv heads) sharing the embedded tokenizer; no download."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=0.15, tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(cfg).eval()
    install(hf)
    return LoadedModel(hf=hf, tokenizer=tokenizer, model_id="tiny-qwen2", source="config", revision="random")


def prompts_for(tokenizer):
    ps = [build_prompt(tokenizer, [Part("task", t), Part("constraint_0", a), Part("constraint_1", b)])
          for t, (a, b) in zip(TASKS, CONSTRAINTS)]
    assert len({len(p.input_ids) for p in ps}) == len(ps), "prompts must differ in length (left padding)"
    return ps


def eager_cas(twin, prompt, output_ids, spans, n_prompt) -> np.ndarray:
    """[steps, layers, spans, heads] from HF eager attention weights of prompt + output, unpadded."""
    ids = torch.tensor([list(prompt.input_ids) + list(output_ids)])
    with torch.no_grad():
        att = twin(input_ids=ids, output_attentions=True).attentions
    A = torch.stack([a[0] for a in att]).double()  # [layers, heads, q, k]
    rows = A[:, :, n_prompt - 1: n_prompt - 1 + len(output_ids)]  # queries producing each output token
    masks = torch.zeros(len(spans), ids.shape[1], dtype=torch.float64)
    for i, parts in enumerate(spans):
        for s, e in parts:
            masks[i, s:e] = 1
    return torch.einsum("lhtk,sk->tlsh", rows, masks).numpy()


def span_positions(prompt, names):
    """Half-open token ranges of each CAS span name (groups, sink, whole prompt) in the unpadded prompt."""
    groups = {"constraints": ["constraint_0", "constraint_1"]}
    out = []
    for n in names:
        if n == "__sink__":
            out.append([(0, 1)])
        elif n == "__prompt__":
            out.append([(0, len(prompt.input_ids))])
        else:
            out.append([prompt.spans[p] for p in groups.get(n, [n])])
    return out


@pytest.mark.parametrize("which", ["embedded", "tiny_qwen2"])
def test_live_cas_equals_eager_attention(which, embedded):
    model = embedded if which == "embedded" else tiny_qwen2(embedded.tokenizer)
    prompts = prompts_for(model.tokenizer)
    L, H = model.n_layers, model.n_heads
    cfg = GenConfig(max_new_tokens=N_NEW, batch_size=len(prompts))
    gens = generate(model, prompts, cfg, providers_for_batch=lambda b: [CASCapture(L, H, N_NEW)], progress=False)
    names = gens[0].extras["cas_spans"]
    assert {"constraint_0", "constraint_1", "constraints", "__sink__", "__prompt__"} <= set(names)
    assert sum(len(g.output_ids) for g in gens) >= 2 * N_NEW
    tf = teacher_forced_cas(model, prompts, [g.output_ids for g in gens], batch_size=len(prompts))
    # the twin shares the config object and so switches `model` to eager too: build it after all hooked passes
    twin = share_weights_clone(model.hf)
    try:
        for p, g, t in zip(prompts, gens, tf):
            live = g.extras["cas"]
            assert live.shape == (len(g.output_ids), L, len(names), H)
            ref = eager_cas(twin, p, g.output_ids, span_positions(p, names), len(p.input_ids))
            assert np.abs(live - ref).max() < TOL, f"{which}: live vs eager max diff {np.abs(live - ref).max():.2e}"
            assert t["cas_spans"] == names
            assert np.abs(live - t["cas"]).max() < TOL, f"{which}: live vs teacher-forced {np.abs(live - t['cas']).max():.2e}"
            assert ref[0, :, names.index("__prompt__")] == pytest.approx(1.0, abs=1e-5)  # step 0 sees only the prompt
    finally:
        install(model.hf)
    assert max(np.abs(g.extras["cas"][:, :, names.index("constraints")]).max() for g in gens) > 1e-3


def test_share_weights_clone_keeps_hooked_attention(embedded):
    model = tiny_qwen2(embedded.tokenizer)
    try:
        share_weights_clone(model.hf)
        assert model.hf.config._attn_implementation == "interp"
    finally:
        install(model.hf)


def test_token_attention_rows_sum_to_cas(embedded, tmp_path):
    """The token view's row sums are the step's CAS, averaged over the chosen layers and heads; figures render."""
    import matplotlib

    matplotlib.use("Agg")
    from interp.attention.analysis import token_attention
    from interp.plots.cas import plot_token_attention, token_attention_plotly

    model = tiny_qwen2(embedded.tokenizer)
    p = prompts_for(model.tokenizer)[1]
    g = generate(model, [p], GenConfig(max_new_tokens=8), progress=False)[0]
    rec = {"key": "r", "prompt_text": p.text, "prompt_ids": p.input_ids, "output_ids": g.output_ids,
           "spans": {k: list(v) for k, v in p.spans.items()}, "success": False}
    cas = teacher_forced_cas(model, [p], [g.output_ids])[0]
    i = cas["cas_spans"].index("constraints")
    for layer, head in ((None, None), (1, 2), ([0, 2], [1, 3])):
        df = token_attention(model, rec, span="constraints", layer=layer, head=head)
        ls = range(model.n_layers) if layer is None else [layer] if isinstance(layer, int) else layer
        hs = range(model.n_heads) if head is None else [head] if isinstance(head, int) else head
        want = cas["cas"][:, list(ls)][:, :, i][:, :, list(hs)].mean((1, 2))
        assert df.shape == (len(g.output_ids), sum(e - s for s, e in (p.spans["constraint_0"], p.spans["constraint_1"])))
        assert np.abs(df.to_numpy().sum(1) - want).max() < TOL
    assert all(x.exists() for x in plot_token_attention(df, tmp_path / "tok"))
    assert len(token_attention_plotly(df).data) == 1


def test_stored_cas_keeps_float32(tmp_path):
    """Stored CAS is the live float32 capture bit for bit (float16 files were off by up to ~2e-4)."""
    from interp.attention.storage import read_cas, save_cas

    cas = np.random.default_rng(0).random((5, 3, 4, 2), dtype=np.float32)
    rel = save_cas(tmp_path, "k", cas, ["a", "b", "__sink__", "__prompt__"], [3, 2, 1, 9])
    back, spans, _ = read_cas(tmp_path, rel)
    assert back.dtype == np.float32 and np.array_equal(back, cas) and spans[0] == "a"
