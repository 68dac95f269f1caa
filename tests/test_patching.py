"""Activation patching between an item's unconstrained and constrained runs (interp.patching).

References: TransformerLens's own hooks on `m.bridge` (the embedded model: clean cache from run_with_cache, the
patch by run_with_hooks), and on random models of several families a naive loop (one forward per patch, a
PyTorch pre-hook on the HF decoder layer).
"""
import numpy as np
import pytest
import torch
from conformance_checks import make_prompts, synthetic_tokenizer, tiny

from interp.errors import InterpError
from interp.models.hooked_resid import decoder_layers
from interp.patching import PatchResult, answer_logprob, patch_pair
from interp.prompts import Part, Prompt, build_prompt

pytestmark = pytest.mark.usefixtures("one_thread")
DIFFS: list[tuple[float, float]] = []


def _pair(vocab=512):
    """Unconstrained (task, filler) vs constrained (task, constraint_0, filler) prompts of random ids."""
    a, b = make_prompts(vocab)
    task, fill = a.input_ids[:4], a.input_ids[9:14]
    con = b.input_ids[:3]
    clean = Prompt("", task + fill, {"task": (0, 4), "format": (4, 9)})
    corrupt = Prompt("", task + con + fill, {"task": (0, 4), "constraint_0": (4, 7), "format": (7, 12)})
    return clean, corrupt, {"correct": a.input_ids[14:17], "failed": b.input_ids[5:7]}


def naive_patch(model, clean, corrupt, ans, layer, span_pos, direction):
    """One forward per patch: a forward pre-hook on the HF decoder layer swaps the residual at the positions."""
    hf = model.hf
    src, dst = (clean, corrupt) if direction == "denoise" else (corrupt, clean)
    (cs, ce), (ks, ke) = span_pos if direction == "denoise" else span_pos[::-1]
    got = {}
    lay = decoder_layers(hf)[layer]
    h = lay.register_forward_pre_hook(lambda m, args, kw: got.__setitem__("x", (args[0] if args else kw[
        "hidden_states"]).clone()), with_kwargs=True)
    with torch.no_grad():
        hf(input_ids=torch.tensor([list(src.input_ids) + ans]))
    h.remove()

    def swap(m, args, kw):
        x = (args[0] if args else kw["hidden_states"]).clone()
        x[0, ks:ke] = got["x"][0, cs:ce]
        return ((x, *args[1:]), kw) if args else (args, {**kw, "hidden_states": x})
    h = lay.register_forward_pre_hook(swap, with_kwargs=True)
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor([list(dst.input_ids) + ans])).logits
    h.remove()
    return float(answer_logprob(logits, len(dst.input_ids), ans)[0])


@pytest.mark.slow
@pytest.mark.parametrize("model_type,variant", [("llama", "base"), ("gemma2", "softcap+sliding"),
                                                ("gpt2", "base"), ("mistral", "sliding")])
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_patching_matches_naive_loop(model_type, variant, direction):
    model = tiny(model_type, variant, synthetic_tokenizer(512))
    clean, corrupt, answers = _pair()
    spans = ["task", "format", "last_prompt", "answer"]
    r = patch_pair(model, clean, corrupt, answers, spans=spans, direction=direction)
    assert r.patched.shape == (2, model.n_layers, 4)
    n_c, n_k = len(clean.input_ids), len(corrupt.input_ids)
    for a, ans in enumerate(answers.values()):
        pos = {"task": ((0, 4), (0, 4)), "format": ((4, 9), (7, 12)), "last_prompt": ((n_c - 1, n_c), (n_k - 1, n_k)),
               "answer": ((n_c, n_c + len(ans)), (n_k, n_k + len(ans)))}
        for li in range(model.n_layers):
            for si, s in enumerate(spans):
                ref = naive_patch(model, clean, corrupt, list(ans), li, pos[s], direction)
                assert abs(r.patched[a, li, si] - ref) < 1e-5, (s, li, r.patched[a, li, si], ref)
    # the task precedes the constraint: its residual is the same in both runs, so patching it does nothing;
    # the format part follows the constraint and carries a difference (the test can tell the two apart)
    assert np.abs(r.effect()[:, :, 0]).max() < 1e-5
    assert np.abs(r.effect()[:, 1:, 1]).max() > 1e-4
    assert PatchResult.from_dict(r.to_dict()).patched.tolist() == r.patched.tolist()


@pytest.mark.slow
def test_patching_matches_transformer_lens_on_embedded_model():
    """denoise/noise at resid_pre vs TransformerLens hooks on m.bridge (same weights) to 1e-5, in float64 (in
    float32 the bridge's and HF's kernels alone differ by ~1e-5 on these log-probabilities)."""
    import interp

    model = interp.load_model(dtype=torch.float64)
    tok = model.tokenizer
    clean = build_prompt(tok, [Part("task", "What is 7 times 8? Answer with a number.")])
    corrupt = build_prompt(tok, [Part("task", "What is 7 times 8? Answer with a number."),
                                 Part("constraint_0", " Write the answer in French words only.")])
    ans = tok.encode("56", add_special_tokens=False)
    layers, spans = [9, 20], ["last_prompt", "answer"]
    bridge = model.bridge
    for direction in ("denoise", "noise"):
        r = patch_pair(model, clean, corrupt, {"correct": ans}, layers=layers, spans=spans, direction=direction)
        src, dst = (clean, corrupt) if direction == "denoise" else (corrupt, clean)
        s_ids = torch.tensor([list(src.input_ids) + ans])
        d_ids = torch.tensor([list(dst.input_ids) + ans])
        n_s, n_d = len(src.input_ids), len(dst.input_ids)
        with torch.no_grad():
            _, cache = bridge.run_with_cache(s_ids, names_filter=lambda n: n.endswith("hook_resid_pre"))
            tl_base = float(answer_logprob(bridge(d_ids), n_d, ans)[0])
            own_base = r.corrupt[0] if direction == "denoise" else r.clean[0]
            for li, layer in enumerate(layers):
                for si, (sp, dp) in enumerate([((n_s - 1, n_s), (n_d - 1, n_d)),
                                               ((n_s, n_s + len(ans)), (n_d, n_d + len(ans)))]):
                    name = f"blocks.{layer}.hook_resid_pre"

                    def fn(x, hook, sp=sp, dp=dp, name=name, cache=cache):
                        x = x.clone()
                        x[0, dp[0]:dp[1]] = cache[name][0, sp[0]:sp[1]]
                        return x
                    logits = bridge.run_with_hooks(d_ids, fwd_hooks=[(name, fn)])
                    ref = float(answer_logprob(logits, n_d, ans)[0])
                    DIFFS.append((abs((r.patched[0, li, si] - own_base) - (ref - tl_base)),
                                  abs(r.patched[0, li, si] - ref)))
                    assert DIFFS[-1][1] < 1e-5, (direction, layer, spans[si], DIFFS[-1])
        assert abs(r.effect()).max() > 1e-3  # the patches do move the answer's log-probability
    print("TL max |effect diff|, |abs diff|:", max(d[0] for d in DIFFS), max(d[1] for d in DIFFS))


def test_patching_refuses_bad_input():
    model = tiny("llama", "base", synthetic_tokenizer(512))
    clean, corrupt, answers = _pair()
    with pytest.raises(InterpError, match="direction"):
        patch_pair(model, clean, corrupt, answers, direction="both")
    with pytest.raises(InterpError, match="not a part"):
        patch_pair(model, clean, corrupt, answers, spans=["constraint_0"])
    bad = Prompt("", corrupt.input_ids, {**corrupt.spans, "format": (7, 11)})
    with pytest.raises(InterpError, match="must match"):
        patch_pair(model, clean, bad, answers, spans=["format"])
    with pytest.raises(InterpError, match="layers"):
        patch_pair(model, clean, corrupt, answers, layers=[7])
    with pytest.raises(InterpError, match="answers"):
        patch_pair(model, clean, corrupt, [1, 2])


def test_patching_table_and_heatmap(tmp_path):
    """Mean and bootstrap CI over items per (layer, span) computed from the items' effects; the figure is
    written as PNG and PDF; mixed grids are refused."""
    from interp.plots.patching import patching_table, plot_patching_heatmap

    rng = np.random.default_rng(0)
    res = []
    for _ in range(12):
        p = rng.normal(0, 0.1, (2, 3, 2))
        p[0, 2, 1] += 2.0  # one cell carries the effect
        res.append(PatchResult("denoise", "hook_resid_pre", [0, 1, 2], ["last_prompt", "answer"],
                               ["correct", "failed"], p - 5.0, np.array([-1.0, -9.0]), np.array([-5.0, -5.0])))
    mean, lo, hi, n = patching_table(res, "correct")
    assert n == 12 and mean.shape == (3, 2)
    assert np.allclose(mean, np.mean([r.patched[0] + 5.0 for r in res], 0))
    assert lo[2, 1] > 1.5 and hi[2, 1] < 2.5 and lo[0, 0] < 0 < hi[0, 0]
    paths = plot_patching_heatmap(res, tmp_path / "heat")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    other = PatchResult("noise", "hook_resid_pre", [0, 1, 2], ["last_prompt", "answer"], ["correct", "failed"],
                        res[0].patched, res[0].clean, res[0].corrupt)
    with pytest.raises(InterpError, match="differ"):
        patching_table(res + [other])


@pytest.mark.slow
def test_patch_run_over_failed_items_resumes(tmp_path, monkeypatch):
    """patch_run reads a run's failed pairs, writes one line per item, and a rerun computes nothing new."""
    import json

    import interp.patching as P

    model = tiny("llama", "base", synthetic_tokenizer(512))
    clean, corrupt, answers = _pair()
    base = {"key": "b1", "stage": "baseline", "item_id": "i1", "prompt_ids": clean.input_ids,
            "spans": {k: list(v) for k, v in clean.spans.items()}, "output_ids": answers["correct"], "success": True}
    con = {"key": "c1", "stage": "constrained", "item_id": "i1", "prompt_ids": corrupt.input_ids,
           "spans": {k: list(v) for k, v in corrupt.spans.items()}, "output_ids": answers["failed"],
           "success": False, "baseline_key": "b1"}
    ok = {**con, "key": "c2", "success": True}
    (tmp_path / "baseline.jsonl").write_text(json.dumps(base) + "\n")
    (tmp_path / "constrained.jsonl").write_text("\n".join(json.dumps(x) for x in (con, ok)) + "\n")
    r = P.patch_run(model, tmp_path, spans=["format", "answer"], progress=False)
    ref = patch_pair(model, clean, corrupt, answers, spans=["format", "answer"])
    assert len(r) == 1 and np.array_equal(r[0].patched, ref.patched)
    lines = (tmp_path / "patching.jsonl").read_text().splitlines()
    assert len(lines) == 1
    calls = []
    orig = P.patch_pair
    P.patch_pair = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        again = P.patch_run(model, tmp_path, spans=["format", "answer"], progress=False)
    finally:
        P.patch_pair = orig
    assert calls == [] and np.array_equal(again[0].patched, ref.patched)
    # the CLI: same results (resumed from the file), heatmaps written
    import interp.models.loading as loading
    from interp.cli import main

    monkeypatch.setattr(loading, "load_model", lambda spec: model)
    assert main(["patch", str(tmp_path), "--model", "tiny", "--layers", "0", "1", "--spans", "format", "answer"]) == 0
    assert (tmp_path / "figures" / "patching_correct.png").exists()
    assert len((tmp_path / "patching.jsonl").read_text().splitlines()) == 1  # layers [0, 1] = the default: resumed
