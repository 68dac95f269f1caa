"""Steering (interp.probes.steering): KV-cached steered generation vs an independent full recompute, the
difference-of-means direction vs HF hidden states, no host synchronisation per step, values stored/replayable."""
import numpy as np
import pytest
import torch
from conformance_checks import make_prompts, synthetic_tokenizer, tiny

from interp.errors import InterpError
from interp.models.generation import GenConfig, generate_batch, make_batch
from interp.probes import Probe
from interp.probes.steering import Steer, mean_difference, random_direction

pytestmark = pytest.mark.usefixtures("one_thread")
N = 6


def _recompute_steered(model, prompts, vec):
    """Greedy decoding by full recomputation with `vec` added to the input embeddings (= resid_pre of layer 0
    for llama/mistral, whose embeddings are not rescaled), left-padded like generate_batch."""
    batch = make_batch(model.tokenizer, prompts, "cpu")
    ids, mask = batch.input_ids, batch.attention_mask
    emb = model.hf.get_input_embeddings()
    out = []
    with torch.no_grad():
        for _ in range(N):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            e = emb(ids) + vec
            nxt = model.hf(inputs_embeds=e, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1)
            out.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, mask.new_ones(len(ids), 1)], 1)
    return torch.stack(out, 1).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("model_type,variant", [("llama", "base"), ("mistral", "sliding")])
def test_steered_generation_matches_recompute(model_type, variant):
    model = tiny(model_type, variant, synthetic_tokenizer(512))
    prompts = make_prompts(512)
    d = np.random.default_rng(0).standard_normal(model.config.hidden_size)
    spec = Steer(layer=0, direction=tuple(d), alpha=1.5)
    batch = make_batch(model.tokenizer, prompts, "cpu")
    gens = generate_batch(model.hf, model.tokenizer, batch, GenConfig(max_new_tokens=N),
                          [spec.provider(model, N)])
    plain = generate_batch(model.hf, model.tokenizer, make_batch(model.tokenizer, prompts, "cpu"),
                           GenConfig(max_new_tokens=N))
    ref = _recompute_steered(model, prompts, torch.tensor(d, dtype=torch.float32) * 1.5)
    assert [g.output_ids for g in gens] == ref
    assert [g.output_ids for g in plain] != ref  # the steering changes the output (the test can fail)
    assert Probe.from_dict(gens[0].extras["steer"]) == spec  # stored with the record, replayable


@pytest.mark.slow
def test_mean_difference_and_random_control():
    model = tiny("llama", "base", synthetic_tokenizer(512))
    a, b = make_prompts(512)
    diff = mean_difference(model, [a], [b], layers=(1,))
    with torch.no_grad():
        ha = model.hf(input_ids=torch.tensor([a.input_ids]), output_hidden_states=True).hidden_states[1][0, -1]
        hb = model.hf(input_ids=torch.tensor([b.input_ids]), output_hidden_states=True).hidden_states[1][0, -1]
    assert np.abs(diff[0] - (ha - hb).numpy()).max() < 1e-5
    r = random_direction(diff[0], seed=1)
    assert abs(np.linalg.norm(r) - np.linalg.norm(diff[0])) < 1e-6 and abs(np.dot(r, diff[0])) < np.dot(
        diff[0], diff[0])
    with pytest.raises(InterpError, match="d_model"):
        Steer(layer=0, direction=(1.0, 2.0)).provider(model, 4)
    with pytest.raises(InterpError, match="layers"):
        Steer(layer=9, direction=tuple(diff[0])).provider(model, 4)


def test_steer_values_are_checked():
    with pytest.raises(InterpError, match="direction"):
        Steer(layer=0, direction=())
    with pytest.raises(InterpError, match="finite"):
        Steer(layer=0, direction=(1.0, float("nan")))
    with pytest.raises(InterpError, match="positions"):
        Steer(layer=0, direction=(1.0,), positions="prompt")
    with pytest.raises(InterpError, match="per-head"):
        Steer(layer=0, direction=(1.0,), hook="hook_z")


def test_steering_table_and_curve(tmp_path):
    import pandas as pd

    from interp.plots.steering import plot_steering_curve, steering_table

    rows = pd.DataFrame([{"label": lab, "alpha": al, "solved": i < k, "constraint_met": i % 2 == 0}
                         for lab in ("constraint", "random") for al, k in ((-1.0, 6), (0.0, 3)) for i in range(10)])
    t = steering_table(rows)
    r = t[(t.label == "constraint") & (t.alpha == -1.0)].set_index("outcome")
    assert r.loc["solved", "k"] == 6 and r.loc["constraint_met", "k"] == 5 and r.loc["both", "k"] == 3
    assert r.loc["solved", "lo"] < 0.6 < r.loc["solved", "hi"] and (t.n == 10).all()
    paths = plot_steering_curve(rows, tmp_path / "curve")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    with pytest.raises(InterpError, match="columns"):
        steering_table(rows.drop(columns=["solved"]))


def test_arm_table_and_curve_with_attention_arms(tmp_path):
    import pandas as pd

    from interp.plots.steering import arm_table, plot_steering_curve

    curve = pd.DataFrame([{"label": lab, "alpha": al, "solved": i < 5, "constraint_met": i < 2}
                          for lab in ("constraint", "random") for al in (-1.0, 1.0) for i in range(8)])
    arms = pd.DataFrame([{"arm": arm, "item": i, "solved": i < k, "constraint_met": i % 4 == 0}
                         for arm, k in (("none", 4), ("attn damp 0.1: constraint", 7), ("steer -1: constraint dir", 1))
                         for i in range(8)])
    t = arm_table(arms)
    assert list(dict.fromkeys(t.arm)) == ["none", "attn damp 0.1: constraint", "steer -1: constraint dir"]
    damp = t[t.arm == "attn damp 0.1: constraint"].set_index("outcome")
    # hand count: solved i < 7 -> 7; met i in {0, 4} -> 2; both -> 2 (0 and 4 are < 7)
    assert (damp.loc["solved", "k"], damp.loc["constraint_met", "k"], damp.loc["both", "k"]) == (7, 2, 2)
    assert (t.n == 8).all() and damp.loc["solved", "lo"] < 7 / 8 < damp.loc["solved", "hi"]
    paths = plot_steering_curve(curve, tmp_path / "curve", arms=arms)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(InterpError, match="arm"):
        arm_table(arms.drop(columns=["arm"]))
