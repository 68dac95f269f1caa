"""The Probe protocol: a new probe (per-head attention entropy) is one class in one file, checked against a hand
computation from HF eager attention weights; probes serialise; capabilities are declared, not guessed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp.errors import InterpError
from interp.models.loading import share_weights_clone
from interp.probes import PROBES, AttentionEntropy, Capability, EntropyResult, HookProvider, Probe, has
from test_conformance import N_NEW, make_prompts, tiny, tokenizer  # noqa: F401  (fixture)


def hand_entropy(twin, prompt, out_ids) -> np.ndarray:
    """[steps, layers, heads] entropy of HF eager attention rows n_p-1+t of prompt + output (one unpadded row)."""
    ids = torch.tensor([list(prompt.input_ids) + list(out_ids)])
    with torch.no_grad():
        att = twin(input_ids=ids, output_attentions=True).attentions
    n_p = len(prompt.input_ids)
    A = np.stack([a[0].double().numpy() for a in att])[:, :, n_p - 1: n_p - 1 + len(out_ids)]  # [L, H, T, K]
    ent = np.zeros(A.shape[:3])
    for idx in np.ndindex(*A.shape[:3]):
        p = A[idx][A[idx] > 0]
        ent[idx] = -(p * np.log(p)).sum()
    return ent.transpose(2, 0, 1)


@pytest.mark.parametrize("model_type,variant", [("llama", "base"), ("mistral", "sliding")])
def test_attention_entropy_equals_hand_computation_from_hf_eager(model_type, variant, tokenizer):  # noqa: F811
    m = tiny(model_type, variant, tokenizer)
    prompts = make_prompts(m.config.vocab_size)
    gens = interp.generate(m, prompts, max_new_tokens=N_NEW, batch_size=2, capture=[AttentionEntropy(), interp.CAS()],
                           progress=False)
    twin = share_weights_clone(m.hf)
    tr = interp.trace(m, prompts, [g.output_ids for g in gens], capture=[AttentionEntropy()])
    for p, g, t in zip(prompts, gens, tr.generations):
        got = g.result(AttentionEntropy).entropy
        assert got.shape == (len(g.output_ids), m.n_layers, m.n_heads)
        ref = hand_entropy(twin, p, g.output_ids)
        assert np.abs(got - ref).max() <= 1e-5, np.abs(got - ref).max()
        assert np.abs(t.result(AttentionEntropy).entropy - got).max() <= 1e-5
        assert got.min() > 0.1  # random heads spread attention: not a vacuous zero
        assert isinstance(g.results.typed(EntropyResult), EntropyResult) and g.extras["attn_entropy"] is got


def test_probes_are_values_that_round_trip():
    for p in (AttentionEntropy(), AttentionEntropy(layers=(0, 1)), interp.CAS(spans=["task"])):
        d = p.to_dict()
        assert Probe.from_dict(d) == p and d["probe"] in PROBES
    with pytest.raises(InterpError, match="unknown probe"):
        Probe.from_dict({"probe": "nope"})
    with pytest.raises(InterpError, match="no AttentionEntropy"):
        interp.Generation(interp.Prompt("", [1], {}), "", [], "eos").result(AttentionEntropy)


def test_capabilities_are_declared(tokenizer):  # noqa: F811
    """A provider forces tokens only if it declares FORCES_TOKENS (no hasattr guessing)."""
    from interp.interventions import InterventionProvider
    from interp.models.thinking import ThinkingBudget

    assert has(InterventionProvider(1, 1), Capability.READS_INTERVENTIONS)
    assert Capability.FORCES_TOKENS in ThinkingBudget.capabilities

    class Forcer(HookProvider):
        capabilities = frozenset({Capability.FORCES_TOKENS})

        def attach(self, hooks, batch):
            pass

        def force(self, nxt, out_ids, done):
            return torch.full_like(nxt, 7)

        def collect(self, batch, n_tokens):
            return [{} for _ in range(batch.size)]

    class Undeclared(Forcer):
        capabilities = frozenset()

    m = tiny("llama", "base", tokenizer)
    p = make_prompts(m.config.vocab_size)[:1]
    forced = interp.generate(m, p, max_new_tokens=3, progress=False, providers_for_batch=lambda b: [Forcer()])
    plain = interp.generate(m, p, max_new_tokens=3, progress=False, providers_for_batch=lambda b: [Undeclared()])
    assert forced[0].output_ids == [7, 7, 7] and plain[0].output_ids != [7, 7, 7]


def test_stack_cas_and_top_heads_across_generations_of_different_lengths(tokenizer):  # noqa: F811
    m = tiny("llama", "base", tokenizer)
    p = make_prompts(m.config.vocab_size)
    short, = interp.generate(m, p[:1], max_new_tokens=2, capture=[interp.CAS()], progress=False)
    long, = interp.generate(m, p[1:], max_new_tokens=5, capture=[interp.CAS()], progress=False)
    st = interp.stack_cas([short, long], "constraints")
    assert st.dims == ("generation", "step", "layer", "head") and st.shape[1] == len(long.output_ids)
    assert np.isnan(st.values[0, len(short.output_ids):]).all()
    np.testing.assert_array_equal(st.values[1], long.cas.sel(span="constraints").values)
    by_hand = (short.cas_span("constraints").mean(0) + long.cas_span("constraints").mean(0)) / 2  # [layer, head]
    best = sorted(((by_hand[l, h], (l, h)) for l in range(m.n_layers) for h in range(m.n_heads)), reverse=True)
    assert interp.top_heads([short, long], "constraints", k=3) == [c for _, c in best[:3]]
