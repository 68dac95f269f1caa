"""Generation on the embedded model: batched == unbatched greedy, stop strings, seeded sampling."""
from interp.models.generation import GenConfig, generate
from interp.prompts import Part, build_prompt

QUESTIONS = ["What is 2+3?", "Name the capital of France.", "Write one sentence about rain.",
             "What is 7 times 8? Answer briefly.", "List two colours."]


def _prompts(model):
    return [build_prompt(model.tokenizer, [Part("task", q)]) for q in QUESTIONS]


def test_batched_equals_unbatched_greedy(model):
    ps = _prompts(model)
    one = generate(model, ps, GenConfig(max_new_tokens=24, batch_size=1), progress=False)
    many = generate(model, ps, GenConfig(max_new_tokens=24, batch_size=5), progress=False)
    assert [g.output_ids for g in one] == [g.output_ids for g in many]
    assert all(g.finish_reason in ("eos", "length") for g in one)
    assert any(g.output_ids for g in one)


def test_stop_string_cuts_output(model):
    p = build_prompt(model.tokenizer, [Part("task", "Count from 1 to 20 separated by commas.")])
    g = generate(model, [p], GenConfig(max_new_tokens=40, stop=("5",)), progress=False)[0]
    assert g.finish_reason == "stop" and "5" not in g.output_text


def test_seeded_sampling_is_reproducible_and_batch_independent(model):
    ps = _prompts(model)[:3]
    cfg = GenConfig(max_new_tokens=16, temperature=1.0, seed=7, batch_size=3)
    keys = ["a", "b", "c"]
    a = generate(model, ps, cfg, progress=False, row_keys=keys)
    b = generate(model, ps[:1], GenConfig(max_new_tokens=16, temperature=1.0, seed=7, batch_size=1),
                 progress=False, row_keys=keys[:1])
    assert a[0].output_ids == b[0].output_ids
    c = generate(model, ps, GenConfig(max_new_tokens=16, temperature=1.0, seed=8, batch_size=3), progress=False,
                 row_keys=keys)
    assert [g.output_ids for g in a] != [g.output_ids for g in c]


def test_bridge_shares_weights_and_leaves_hf_model_plain(model):
    import torch

    bridge = model.bridge
    assert type(model.hf.model.layers[0].self_attn).__name__.endswith("Attention")
    assert "Bridge" not in type(model.hf.model.layers[0].self_attn).__name__
    w = model.hf.model.embed_tokens.weight
    assert any(p.data_ptr() == w.data_ptr() for p in bridge.parameters())
    ids = torch.tensor([build_prompt(model.tokenizer, [Part("task", "Hi")]).input_ids])
    with torch.no_grad():
        assert torch.allclose(bridge(ids), model.hf(ids).logits, atol=1e-4)
