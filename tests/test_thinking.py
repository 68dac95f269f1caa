"""Reasoning models without one: thinking-trace segmentation, think on/off, budget forcing, answer-phase scoring and
checks, the joint 2x2 / hard-soft tables and phase-split CAS, each against hand-computed values.

A tiny random Qwen2 with a thinking chat template (and `<think>`/`</think>` added as tokens, as in Qwen3) covers
the generation loop; a scripted generator covers a whole SustainScore run with scripted traces and answers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from interp.errors import InterpError
from interp.models.thinking import (PRESETS, ThinkingBudget, answer_text, phase_boundary, segment_ids, segment_text,
                                    starts_in_thinking, template_kwargs, thinking_spec)
from interp.prompts import Part, build_prompt

THINK = PRESETS["think"]
# Qwen3-style: `enable_thinking=false` pre-fills an empty trace; R1-style (`opens`) starts the answer inside <think>.
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n"
            "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
            "{% endif %}")
R1_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")


@pytest.fixture(scope="module")
def plain_tok():
    from interp.models.loading import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def think_tok():
    """The embedded tokenizer with <think> / </think> as single added tokens and a thinking chat template."""
    from interp.models.loading import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = TEMPLATE
    return tok


def enc(tok, s):
    return tok(s, add_special_tokens=False)["input_ids"]


# ---- segmentation -------------------------------------------------------------------------------
def test_segment_text_hand_cases():
    s = segment_text("<think>\nadd 2 and 3\n</think>\n\nThe answer is 5.", THINK)
    assert (s.state, s.thinking_text, s.answer_text) == ("complete", "add 2 and 3", "The answer is 5.")
    s = segment_text("<think>\nadd 2 and", THINK)
    assert (s.state, s.thinking_text, s.answer_text) == ("unterminated", "add 2 and", "")
    s = segment_text("The answer is 5.", THINK)
    assert (s.state, s.thinking_text, s.answer_text) == ("none", "", "The answer is 5.")
    # a trace opened by the prompt (R1 template): only the end delimiter is generated
    s = segment_text("hmm 7\n</think>\nIt is 5.", THINK, in_thinking=True)
    assert (s.state, s.thinking_text, s.answer_text) == ("complete", "hmm 7", "It is 5.")
    assert segment_text("hmm 7\n</think>\nIt is 5.", THINK).answer_text == "It is 5."  # end without start
    assert segment_text("still thinking", THINK, in_thinking=True).state == "unterminated"
    assert segment_text("<think>x</think>y", None).answer_text == "<think>x</think>y"  # thinking: none
    oss = PRESETS["gpt-oss"]
    s = segment_text("<|channel|>analysis<|message|>User asks 2+3.<|end|><|start|>assistant<|channel|>final"
                     "<|message|>5", oss)
    assert (s.state, s.thinking_text, s.answer_text) == ("complete", "User asks 2+3.", "5")


def test_segment_ids_token_ranges(think_tok, plain_tok):
    """Token ranges by hand: with single-token delimiters, and with delimiters split over several BPE tokens."""
    for tok in (think_tok, plain_tok):
        a, t, e, b = enc(tok, "<think>"), enc(tok, "\nadd two and three"), enc(tok, "</think>"), \
            enc(tok, "\n\nThe answer is 5.")
        ids = a + t + e + b
        seg = segment_ids(ids, tok, THINK)
        assert seg.state == "complete"
        assert seg.thinking_range == (len(a), len(a) + len(t))
        assert seg.answer_range == (len(a) + len(t) + len(e), len(ids))
        assert seg.answer_start == len(ids) - len(b) and seg.thinking_tokens == len(t)
        assert (seg.thinking_text, seg.answer_text) == ("add two and three", "The answer is 5.")
        cut = segment_ids(a + t, tok, THINK)
        assert (cut.state, cut.thinking_range, cut.answer_range) == ("unterminated", (len(a), len(a + t)),
                                                                     (len(a + t), len(a + t)))
    assert len(enc(think_tok, "</think>")) == 1 and len(enc(plain_tok, "</think>")) == 3
    ids = enc(plain_tok, "The answer is 5.")
    seg = segment_ids(ids, plain_tok, THINK, output_text="The answer is 5.")
    assert (seg.state, seg.answer_text, seg.thinking_range, seg.answer_range) == \
        ("none", "The answer is 5.", (0, 0), (0, len(ids)))


def test_old_records_and_default_config_hash():
    from interp.experiments.config import ADDED_DEFAULTS, THINKING_DEFAULTS, SustainConfig

    old = {"output_text": "The answer is 5.", "output_ids": [1, 2]}
    assert answer_text(old) == "The answer is 5." and phase_boundary(old) == 0
    d = asdict(SustainConfig())
    for k in ("batch_size", "device", "backend_concurrency", "backend_api_key_env", *THINKING_DEFAULTS,
              *ADDED_DEFAULTS):
        d.pop(k)
    assert SustainConfig().hash() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    assert SustainConfig(think_budget=64).hash() != SustainConfig().hash()


def test_thinking_spec_and_template_switch(think_tok, plain_tok):
    assert thinking_spec("none") is None and thinking_spec("auto") == THINK
    assert thinking_spec(delimiters=["<r>", "</r>"]).end == "</r>"
    for bad in ({"mode": "deep"}, {"delimiters": ["<r>"]}, {"delimiters": ["", "</r>"]}):
        with pytest.raises(InterpError):
            thinking_spec(**bad)
    parts = [Part("task", "What is 2 + 3?")]
    off = build_prompt(think_tok, parts, template_kwargs=template_kwargs(think_tok, False))
    on = build_prompt(think_tok, parts, template_kwargs=template_kwargs(think_tok, True))
    assert off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.text.endswith("<|im_start|>assistant\n") and not starts_in_thinking(off.text, THINK)
    assert off.spans["task"] == on.spans["task"]
    assert template_kwargs(plain_tok, None) == {}
    with pytest.raises(InterpError, match="enable_thinking"):
        template_kwargs(plain_tok, False)


# ---- budget forcing -----------------------------------------------------------------------------
class _Prompt:
    def __init__(self, text):
        self.text = text


class _Batch:
    def __init__(self, texts):
        self.prompts = [_Prompt(t) for t in texts]


def test_budget_state_machine(think_tok):
    """Row 0's prompt opened the trace; row 1 opens it itself at step 1; row 2 closes it before the budget."""
    start, end = enc(think_tok, "<think>")[0], enc(think_tok, "</think>")[0]
    force = enc(think_tok, "</think>\n\n")
    fb = ThinkingBudget(think_tok, THINK, budget=3)
    fb.attach(None, _Batch(["...assistant\n<think>\n", "...assistant\n", "...assistant\n<think>\n"]))
    scripted = [[7, 8, 9, 10, 11, 12, 13], [5, start, 7, 8, 9, 10, 11], [7, end, 9, 10, 11, 12, 13]]
    out = [[], [], []]
    done = torch.zeros(3, dtype=torch.bool)
    for step in range(7):
        nxt = fb.force(torch.tensor([s[step] for s in scripted]), out, done)
        for b in range(3):
            out[b].append(int(nxt[b]))
    assert len(force) == 2 and out[0] == [7, 8, 9] + force + scripted[0][3 + len(force):]
    assert out[1] == [5, start, 7, 8, 9] + force[: 2]
    assert out[2] == scripted[2]
    assert [c["thinking_forced"] for c in fb.collect(None, [7, 7, 7])] == [True, True, False]
    with pytest.raises(InterpError):
        ThinkingBudget(think_tok, THINK, budget=-1)


def _tiny_model(tok):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from interp.models.hooked_attention import install
    from interp.models.loading import LoadedModel

    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(cfg).eval()
    install(hf)
    return LoadedModel(hf=hf, tokenizer=tok, model_id="tiny-think", source="config", revision="random")


@pytest.mark.parametrize("budget", [0, 4])
def test_budget_forcing_in_generation(think_tok, budget):
    """R1-style template: the trace is open from the first token; after `budget` tokens the end delimiter and a
    blank line are forced, the answer follows, and CAS is captured for every step of the same loop."""
    from interp.attention.cas import CASCapture
    from interp.models.generation import GenConfig, generate
    from interp.models.thinking import segment_generation

    tok = think_tok
    old, tok.chat_template = tok.chat_template, R1_TEMPLATE
    try:
        model = _tiny_model(tok)
        prompts = [build_prompt(tok, [Part("task", t), Part("constraint_0", "Be brief.")])
                   for t in ("What is 2 + 3?", "Name a colour please.")]
        n_new = 10
        gens = generate(model, prompts, GenConfig(max_new_tokens=n_new, batch_size=2), progress=False,
                        providers_for_batch=lambda b: [CASCapture(model.n_layers, model.n_heads, n_new),
                                                       ThinkingBudget(tok, THINK, budget)])
    finally:
        tok.chat_template = old
    force = enc(tok, "</think>\n\n")
    eos_end = {tok.eos_token_id, enc(tok, "</think>")[0]}
    for g in gens:
        assert starts_in_thinking(g.prompt.text, THINK)
        assert not eos_end & set(g.output_ids[:budget]), "precondition: the random model closed its trace itself"
        assert g.output_ids[budget: budget + len(force)] == force and g.extras["thinking_forced"]
        seg = segment_generation(g, tok, THINK)
        assert seg.state == "complete" and seg.forced
        assert seg.thinking_range == (0, budget) and seg.answer_start == budget + 1  # just after </think>
        assert g.extras["cas"].shape[0] == len(g.output_ids)


# ---- a scripted SustainScore run ------------------------------------------------------------------
def _script(items):
    """Baselines: trace + "The answer is G." (item 4: the answer part has no number, only its trace has).
    Constrained (the ends_with constraint "The answer is"): item 0 correct & met, 1 correct & unmet,
    2 wrong & met, 3 unterminated trace that states the right answer (wrong & unmet on the answer), 4 (constrained
    only when the whole output is read) a numberless answer."""
    def script(conv):
        text = conv[-1]["content"]
        i, it = next((i, it) for i, it in enumerate(items) if it.input in text)
        g = int(it.target)
        if "End your response" not in text:
            if i == 4:
                return f"<think>\nThe answer is {g}.\n</think>\n\nI am not sure."
            return f"<think>\nMaybe {g + 7}? No: {g}.\n</think>\n\nThe answer is {g}."
        return [f"<think>\nSure.\n</think>\n\nThe answer is {g}.", f"<think>\nok\n</think>\n\nSo {g} it is.",
                f"<think>\nok\n</think>\n\nThe answer is {g + 1}.",
                (f"<think>\nThe answer is {g}. Let me double-check that", "length"),
                "<think>\nok\n</think>\n\nI am not sure."][i]
    return script


def _scripted_run(tmp_path, scope):
    from interp.backends.scripted import ScriptedGenerator
    from interp.experiments.config import SustainConfig
    from interp.experiments.sustain import SustainRun
    from interp.tasks import get_task

    cfg = SustainConfig(task="smoke_arith", n_items=5, types=["ends_with"], k_values=[], controls=[],
                        capture_cas=False, backend="scripted", phase_scope=scope)
    items = get_task("smoke_arith").items(5)
    run = SustainRun(cfg, tmp_path / scope, progress=False, log=lambda m: None,
                     backend_client=ScriptedGenerator(_script(items)))
    return run, run.run()


def test_scripted_run_answer_phase(tmp_path):
    run, rep = _scripted_run(tmp_path, "answer")
    base = {r["item_id"]: r for r in run.records("baseline")}
    assert [base[f"smoke_arith-{i}"]["success"] for i in range(5)] == [True] * 4 + [False]
    assert all(r["thinking_state"] == "complete" for r in base.values())
    cons = run.records("constraints")
    assert len(cons) == 4
    for c in cons:
        phrases = {x["constraint"]["params"]["phrase"] for x in c["candidates"] if x["accepted"]}
        assert phrases == {"The answer is"}
    by_item = {r["item_id"]: r for r in run.records("constrained")}
    got = [(by_item[f"smoke_arith-{i}"]["success"], by_item[f"smoke_arith-{i}"]["constraint_met"]) for i in range(4)]
    assert got == [(True, True), (True, False), (False, True), (False, False)]
    r3 = by_item["smoke_arith-3"]
    assert (r3["thinking_state"], r3["answer_text"], r3["error_type"]) == ("unterminated", "", "unfinished_thinking")
    t = {tb: rep["tables"][tb] for tb in ("joint", "thinking", "errors", "overall")}
    j = t["joint"][0]
    assert (j["n"], j["correct_met"], j["correct_unmet"], j["wrong_met"], j["wrong_unmet"]) == (4, 1, 1, 1, 1)
    assert (j["accuracy"], j["hard_acc"], j["soft_acc"]) == (0.5, 0.5, 0.5)
    assert t["overall"][0]["score"] == 0.5
    assert [(r["stage"], r["n"], r["with_trace"], r["unterminated"]) for r in t["thinking"]] == \
        [("baseline", 5, 5, 0), ("constrained", 4, 4, 1)]
    assert t["errors"][0]["unfinished_thinking"] == 1
    cons_tokens = sorted(r["thinking_tokens"] for r in by_item.values())
    bins = rep["tables"]["by_thinking_length"]
    assert sum(b["n"] for b in bins) == 4 and sum(b["n_success"] for b in bins) == 2
    assert bins[0]["group"].startswith(f"{cons_tokens[0]}-") and bins[-1]["group"].endswith(f"-{cons_tokens[-1]} "
                                                                                           "thinking tokens")
    longest = max(by_item.values(), key=lambda r: r["thinking_tokens"])
    assert longest["item_id"] == "smoke_arith-3" and bins[-1]["score"] == 0.0  # the unterminated trace
    md = (run.dir / "report.md").read_text()
    assert "hard / soft constraint accuracy" in md and "Thinking traces" in md


def test_scripted_run_whole_output_scope(tmp_path):
    """phase_scope: output reads traces too: item 4's baseline and item 3's unterminated trace now count as solved,
    and item 3's trace meets the constraint."""
    run, rep = _scripted_run(tmp_path, "output")
    assert all(r["success"] for r in run.records("baseline"))
    by_item = {r["item_id"]: r for r in run.records("constrained")}
    assert (by_item["smoke_arith-3"]["success"], by_item["smoke_arith-3"]["constraint_met"]) == (True, True)
    j = rep["tables"]["joint"][0]
    assert (j["n"], j["correct_met"], j["correct_unmet"], j["wrong_met"], j["wrong_unmet"]) == (5, 2, 1, 2, 0)


def test_thinking_settings_refused(tmp_path):
    from interp.experiments.config import SustainConfig
    from interp.experiments.sustain import SustainRun

    for i, kw in enumerate(({"think_budget": 8, "thinking": "none"}, {"think_budget": 8, "think": False},
                            {"think_budget": 8, "backend": "http://localhost:1/v1"},
                            {"think": True, "backend": "http://localhost:1/v1"}, {"phase_scope": "trace"})):
        with pytest.raises(InterpError):
            SustainRun(SustainConfig(**kw), tmp_path / str(i), progress=False)
        assert not (tmp_path / str(i)).exists()  # refused before anything is written


# ---- CAS by phase ---------------------------------------------------------------------------------
def test_cas_by_phase_and_distance(tmp_path):
    """Two failed and two successful generations with constant CAS per phase: every number by hand."""
    from interp.attention.analysis import cas_report
    from interp.attention.storage import save_cas

    spans = ["constraint_0", "constraints", "__sink__", "__prompt__"]
    # (failed?, steps, answer start, CAS while thinking, CAS while answering)
    gens = [(True, 8, 6, 0.1, 0.4), (True, 6, 2, 0.1, 0.4), (False, 8, 4, 0.3, 0.2), (False, 4, 4, 0.3, 0.2)]
    recs = []
    for i, (failed, T, a, ct, ca) in enumerate(gens):
        cas = np.zeros((T, 2, len(spans), 2), np.float32)
        cas[:a, :, :2], cas[a:, :, :2], cas[:, :, 2], cas[:, :, 3] = ct, ca, 0.5, 0.9
        recs.append({"key": f"k{i}", "item_id": f"it{i}", "condition": "single:x", "condition_kind": "single",
                     "ctype": "keyword", "success": not failed, "baseline_key": "b", "prompt_text": "p",
                     "prompt_ids": list(range(10)), "spans": {"constraint_0": [2, 5]}, "output_ids": list(range(T)),
                     "phase_ranges": {"thinking": [1, a - 1], "answer": [a, T]},
                     "cas_file": save_cas(tmp_path, f"k{i}", cas, spans, [3, 3, 1, 10])})
    (tmp_path / "constrained.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "baseline.jsonl").write_text("")
    res = cas_report(tmp_path, reference=False, n_boot=50, n_bins=4)
    ph = res["phases"]["phases"]
    assert (ph["thinking"]["n_failed"], ph["thinking"]["n_success"]) == (2, 2)
    assert (ph["answer"]["n_failed"], ph["answer"]["n_success"]) == (2, 1)  # the last one never answered
    assert ph["thinking"]["mean_cas_failed"] == pytest.approx(0.1, abs=1e-3)
    assert ph["thinking"]["mean_cas_success"] == pytest.approx(0.3, abs=1e-3)
    assert ph["answer"]["mean_cas_failed"] == pytest.approx(0.4, abs=1e-3)
    assert ph["thinking"]["effect"]["diff"] == pytest.approx(-0.2, abs=1e-3) and "effect" not in ph["answer"]
    cf = res["phases"]["curves"]["failed"]
    assert cf["boundary_bin"] == 4 and np.allclose(cf["mean"], [0.1] * 4 + [0.4] * 4, atol=1e-3)
    cs = res["phases"]["curves"]["success"]
    assert np.allclose(cs["mean"][:4], 0.3, atol=1e-3) and np.allclose(cs["mean"][4:], 0.2, atol=1e-3)
    # distance from the prompt: 4 bins of width 2 tokens (longest output 8)
    d = res["distance_curves"]["failed"]
    assert d["width"] == 2 and d["n_per_bin"] == [2, 2, 2, 1]
    assert np.allclose(d["mean"], [0.1, (0.1 + 0.4) / 2, (0.1 + 0.4) / 2, 0.4], atol=1e-3)
    assert np.allclose(res["distance_curves"]["success"]["mean"], [0.3, 0.3, 0.2, 0.2], atol=1e-3)
    assert [g["answer_start"] for g in res["per_generation"]] == [6, 2, 4, 4]
    for name in ("phase_curves", "distance"):
        assert all((tmp_path / p).exists() for p in res["figures"][name])
    assert "## By phase" in (tmp_path / "cas_report.md").read_text()


def test_local_generator_returns_the_answer_phase(think_tok):
    """An extractor/judge that thinks is read on its answer: a trace the prompt opened and the (random) model never
    closed leaves no answer; with thinking=None the raw output comes back."""
    from interp.backends.local import LocalGenerator

    tok = think_tok
    old, tok.chat_template = tok.chat_template, R1_TEMPLATE
    try:
        model = _tiny_model(tok)
        conv = [[{"role": "user", "content": "Is this polite?"}]]
        raw = LocalGenerator(model, thinking=None).generate_texts(conv, max_new_tokens=6)[0]
        ans = LocalGenerator(model).generate_texts(conv, max_new_tokens=6)[0]
    finally:
        tok.chat_template = old
    assert "</think>" not in raw and raw != "", "precondition: the random model wrote an unclosed trace"
    assert ans == ""
