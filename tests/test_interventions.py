"""Interventions on the embedded model: exactness of knockout, locality, replay, batched sweeps, attribution."""
import json

import numpy as np
import pytest
import torch

from interp.attention.cas import CASCapture
from interp.errors import InterpError
from interp.interventions import spec
from interp.interventions import (GateProvider, Intervention, InterventionProvider, RowInterventions,
                                  attribution_vs_actual, logp_rows, sweep_heads, sweep_heads_sequential)
from interp.interventions.sweep import PrefixCache, answer_logp
from interp.models.generation import GenConfig, forward_teacher_forced, generate
from interp.models.hooked_attention import AttentionHooks
from interp.prompts import Part, build_prompt
from interp.registry import Registry


pytestmark = pytest.mark.usefixtures("one_thread")


def _prompt(model, task="Tom has 5 apples and buys 7 more. How many apples does Tom have?"):
    return build_prompt(model.tokenizer, [Part("task", task), Part("constraint_0", "Answer in one short sentence."),
                                          Part("format", "End with 'The answer is N'.")])


@pytest.fixture(scope="module")
def item(model):
    p = _prompt(model)
    return p, model.tokenizer.encode("Tom has 12 apples. The answer is 12.", add_special_tokens=False)


def _gen(model, prompts, rows, n=8, cas=True):
    cfg = GenConfig(max_new_tokens=n, batch_size=len(prompts))

    def prov(batch):
        return [InterventionProvider(model.n_layers, model.n_heads)] + (
            [CASCapture(model.n_layers, model.n_heads, n)] if cas else [])

    return generate(model, prompts, cfg, providers_for_batch=prov, progress=False,
                    row_extras=[{"interventions": r} for r in rows])


def test_roundtrip_through_json():
    ivs = [Intervention(), Intervention(target=("constraint_0", "task"), op="knockout", heads=((3, 1), (7, 2)),
                                        steps=(2, 5), prefill=True, label="x"),
           Intervention(target="random:constraint_0", op="mean_ablate", layers=(0, 29), seed=3),
           Intervention(op="scale", alpha=0.25, steps=(1, None))]
    for iv in ivs:
        back = Intervention.from_dict(json.loads(json.dumps(iv.to_dict())))
        assert back == iv and back.key == iv.key and back.to_dict() == iv.to_dict()


def test_knockout_is_exact_and_local(model):
    ps = [_prompt(model), _prompt(model, "Anna has 9 books and gives 4 away. How many books are left?")]
    cells, lo, hi = ((5, 2), (5, 7), (9, 0)), 2, 6
    iv = Intervention(target="constraints", op="knockout", heads=cells, steps=(lo, hi))
    ref = _gen(model, ps, [[], []])
    hit = _gen(model, ps, [[iv], []])
    ci = ref[0].extras["cas_spans"].index("constraints")
    a, b = ref[0].extras["cas"], hit[0].extras["cas"]
    same = next((t for t in range(min(len(a), len(b))) if ref[0].output_ids[:t] != hit[0].output_ids[:t]),
                min(len(a), len(b)))  # steps whose inputs are identical in both runs
    for t in range(min(hi, len(b))):
        if t >= lo:
            for l, h in cells:
                assert b[t, l, ci, h] == 0.0
        else:
            assert np.array_equal(a[t], b[t])
    for t in range(lo, same):
        assert np.array_equal(a[t, :5], b[t, :5])  # below the first intervened layer
        keep = [h for h in range(model.n_heads) if h not in (2, 7)]
        assert np.array_equal(a[t, 5][..., keep], b[t, 5][..., keep])  # unchosen heads of that layer
    assert not np.array_equal(a[lo, 9:], b[lo, 9:])
    assert ref[1].output_ids == hit[1].output_ids
    assert np.array_equal(ref[1].extras["cas"], hit[1].extras["cas"])  # other rows untouched


def test_alpha_one_reproduces_unintervened_generation(model):
    ps = [_prompt(model)]
    plain = generate(model, ps, GenConfig(max_new_tokens=16), progress=False)
    same = _gen(model, ps, [[Intervention(op="scale", alpha=1.0)]], n=16, cas=False)
    assert plain[0].output_ids == same[0].output_ids


def test_batched_sweep_matches_one_at_a_time(model, item):
    p, out = item
    for op, alpha, layers, per_layer in (("knockout", 1.0, [0, 29], True), ("scale", 0.3, [13], False)):
        fast = sweep_heads(model, p, out, op=op, alpha=alpha, layers=layers, batch_size=8, per_layer=per_layer)
        slow = sweep_heads_sequential(model, p, out, op=op, alpha=alpha, layers=layers, per_layer=per_layer)
        assert list(fast.label) == list(slow.label)
        assert np.abs(fast.logp.to_numpy() - slow.logp.to_numpy()).max() <= 1e-4
        assert np.abs(fast.effect.to_numpy() - slow.effect.to_numpy()).max() <= 1e-4
    assert (fast.effect.abs() > 0).any()


def test_composition_equals_joint_intervention(model, item):
    p, out = item
    a = Intervention(op="knockout", heads=((4, 1), (12, 3)))
    b = Intervention(op="knockout", heads=((12, 5),))
    ab = Intervention(op="knockout", heads=((4, 1), (12, 3), (12, 5)))
    half = Intervention(op="scale", alpha=0.5, layers=(6,))
    quarter = Intervention(op="scale", alpha=0.25, layers=(6,))
    lp = logp_rows(model, p, out, [[a, b], [ab], [half, half], [quarter], [a]], PrefixCache(model, p))
    assert abs(float(lp[0] - lp[1])) <= 1e-5
    assert abs(float(lp[2] - lp[3])) <= 1e-4
    assert abs(float(lp[0] - lp[4])) > 0


def test_mean_ablate_changes_values_not_the_pattern_it_acts_on(model, item):
    p, out = item
    iv = Intervention(op="mean_ablate", layers=(3,))

    def run(rows):
        cap = CASCapture(model.n_layers, model.n_heads, len(out))
        provs = [RowInterventions(model.n_layers, model.n_heads, rows), cap] if rows[0] else [cap]
        logits, _, extras = forward_teacher_forced(model.hf, model.tokenizer, [p], [out], provs)
        return logits, extras[0]["cas"]

    l0, c0 = run([[]])
    l1, c1 = run([[iv]])
    assert np.array_equal(c0[:, :4], c1[:, :4])  # patterns up to the ablated layer are unchanged
    assert not np.allclose(c0[:, 4:], c1[:, 4:])
    assert not torch.allclose(l0, l1)


def test_attribution_gate_zero_is_knockout_and_tracks_the_sweep(model, item):
    p, out = item
    n_p = len(p.input_ids)
    gate = torch.ones(model.n_layers, model.n_heads)
    gate[13, 4] = 0.0
    logits, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [p], [out], [GateProvider(gate)])
    gated = float(answer_logp(logits[:, n_p - 1: n_p - 1 + len(out)], out)[0])
    ko = float(logp_rows(model, p, out, [[Intervention(op="knockout", heads=((13, 4),))]])[0])
    assert abs(gated - ko) <= 1e-4
    sweep = sweep_heads(model, p, out, layers=[13, 14], per_layer=False)
    rho, pval, df = attribution_vs_actual(model, p, out, sweep=sweep)
    assert len(df) == 2 * model.n_heads and np.isfinite(rho) and rho > 0


def test_bad_ops_are_one_clear_error():
    with pytest.raises(InterpError, match="unknown intervention op 'erase'"):
        Intervention(op="erase")
    with pytest.raises(InterpError, match="alpha > 0"):
        Intervention(op="scale", alpha=0.0)


def test_an_op_is_one_registered_class(model, item, monkeypatch):
    """Adding an op = one class + register_op; duplicate names are refused unless replace=True."""
    ops = Registry("intervention op")
    for name, op in spec.OPS.items():
        ops.register(name, op)
    monkeypatch.setattr(spec, "OPS", ops)

    @spec.register_op
    class Halve(spec.InterventionOp):
        name = "halve_test"

        def mask_bias(self, iv):
            return float(np.log(0.5))

    with pytest.raises(InterpError, match="already registered"):
        spec.register_op(type("Other", (spec.InterventionOp,), {"name": "halve_test"}))
    spec.register_op(Halve, replace=True)
    p, out = item
    iv = Intervention(op="halve_test", layers=(5, 6))
    assert Intervention.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    lp = logp_rows(model, p, out, [[iv], [Intervention(op="scale", alpha=0.5, layers=(5, 6))], []])
    assert abs(float(lp[0] - lp[1])) <= 1e-5 and abs(float(lp[0] - lp[2])) > 1e-3


def test_scale_on_the_mask_matches_an_eager_reference(model, item):
    """scale via hook_attn_mask (SDPA) == log(alpha) added by hand to the eager scores of generated rows."""
    p, out = item
    n_p, alpha, layers = len(p.input_ids), 0.25, (4, 9)
    iv = Intervention(op="scale", alpha=alpha, layers=layers)
    fast, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [p], [out],
                                        [RowInterventions(model.n_layers, model.n_heads, [[iv]])])
    s, e = p.spans["constraint_0"]

    class Ref:
        def attach(self, hooks: AttentionHooks, batch):
            for l in layers:
                hooks.add(f"blocks.{l}.attn.hook_attn_scores", self.hook)

        def hook(self, scores, call):
            bias = torch.zeros_like(scores)
            bias[..., s:e] = float(np.log(alpha))
            return scores + bias * (call.query_steps >= 0)[:, None, :, None]

        def collect(self, batch, n_tokens):
            return [{}]

    ref, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [p], [out], [Ref()])
    plain, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [p], [out])
    sl = slice(n_p - 1, n_p - 1 + len(out))
    assert (fast[:, sl] - ref[:, sl]).abs().max() <= 1e-4
    assert (fast[:, sl] - plain[:, sl]).abs().max() > 1e-2
