"""Soft constraints with a canned TextGenerator, the self-evidence filter, constraint sets and task paraphrases."""
import re

import pytest

from interp.constraints import (SOFT_TYPE_NAMES, Candidate, Constraint, ProposeContext, accepted_constraints,
                                extract_constraints, extract_constraints_many, filter_self_evident, get_constraint_type,
                                load_template, paraphrase_task, paraphrase_task_info, parse_instruction, parse_yes_no,
                                propose_candidates, sample_constraint_set)
from interp.errors import InterpError

TASK = "Janet has 16 eggs. She eats 3 and bakes with 4. She sells the rest for $2 each. How much does she make?"
OUTPUT = "She has 16 - 3 - 4 = 9 eggs left.\nShe makes 9 * 2 = $18.\nThe answer is 18."


class CannedGenerator:
    """Deterministic TextGenerator: canned extractor reply, judge reply, or an exception; records its calls."""

    model_id = "canned"

    def __init__(self, extract="Solve it by subtracting what she uses, then multiplying by the price.",
                 judge="Yes", error: Exception | None = None):
        self.extract, self.judge, self.error, self.calls = extract, judge, error, []

    def generate_texts(self, conversations, max_new_tokens=256, temperature=0.0, seed=0, stop=()):
        self.calls.append(len(conversations))
        if self.error is not None:
            raise self.error
        out = []
        for conv in conversations:
            content = conv[-1]["content"]
            if "Does the response follow the instruction?" in content:
                out.append(self.judge(content) if callable(self.judge) else self.judge)
            else:
                out.append(self.extract(content) if callable(self.extract) else self.extract)
        return out


def ctx(**extra):
    return ProposeContext(task_text=TASK, domain="math", seed=1, extra=extra)


def by_type(cands, name):
    return [c for c in cands if c.type == name]


@pytest.mark.parametrize("raw,expected", [
    ('"solve it by subtracting first, then multiplying"', "Solve it by subtracting first, then multiplying."),
    ("Instruction: Solve it by working backwards.\nExtra line.", "Solve it by working backwards."),
    ("\n\n- Write in a terse, formal tone. It is short.", "Write in a terse, formal tone."),
    ("Instruction:\n**Structure your response as three short lines.**",
     "Structure your response as three short lines."),
])
def test_parse_instruction_cleans(raw, expected):
    assert parse_instruction(raw) == (expected, "ok")


@pytest.mark.parametrize("raw,why", [
    (None, "empty"), ("   \n ", "empty"), ("!!! ### 42 ???", "garbage"), ("Solve it.", "too short"),
    ("Solve it by " + "adding " * 50, "too long"), ("Sorry, I cannot help with that request.", "refused"),
])
def test_parse_instruction_rejects(raw, why):
    text, reason = parse_instruction(raw)
    assert text is None and why in reason


@pytest.mark.parametrize("raw,expected", [
    ("Yes", True), ("yes.", True), ("**No**", False), ("No, it does not.", False), ("The answer is yes", True),
    ("maybe", None), ("", None), (None, None), ("Yes and no", True), ("It is no and yes", None),
])
def test_parse_yes_no(raw, expected):
    assert parse_yes_no(raw) is expected


def test_templates_are_versioned_package_data():
    for name in SOFT_TYPE_NAMES:
        tpl = load_template(get_constraint_type(name).template)
        assert "$output" in tpl and "$task" in tpl and get_constraint_type(name).template.endswith("_v1")
    assert "Answer Yes or No" in load_template("judge_v1")
    with pytest.raises(InterpError):
        load_template("nope_v9")


def test_soft_propose_and_judge():
    gen = CannedGenerator()
    [c] = get_constraint_type("method").propose(OUTPUT, ctx(extractor=gen))
    assert c.kind == "soft" and c.type == "method" and c.text.startswith("Solve it by")
    assert c.params["template"] == "extract_method_v1" and c.params["extractor"] == "canned"
    ok = c.check(OUTPUT, judge=CannedGenerator(judge="Yes."))
    assert ok.ok and ok.judge_output == "Yes."
    no = c.check(OUTPUT, judge=CannedGenerator(judge="No"))
    assert not no.ok and no.judge_output == "No"
    odd = c.check(OUTPUT, judge=CannedGenerator(judge="Perhaps"))
    assert not odd.ok and "unparseable" in odd.reason and odd.judge_output == "Perhaps"
    err = c.check(OUTPUT, judge=CannedGenerator(error=TimeoutError("slow")))
    assert not err.ok and err.reason.startswith("judge error: TimeoutError")
    with pytest.raises(InterpError):
        c.check(OUTPUT)


def test_extract_soft_accepts_with_judge_and_records_failures():
    gen = CannedGenerator(extract=lambda p: "Write in a short, plain style." if "writing style" in p else
                          ("%%%%" if "organised" in p else "Solve it by subtracting, then multiplying."))
    cands = extract_constraints(OUTPUT, ctx(), types=SOFT_TYPE_NAMES, extractor=gen, judge=CannedGenerator())
    [m], [s], [st] = (by_type(cands, n) for n in SOFT_TYPE_NAMES)
    assert m.accepted and m.judge_output == "Yes" and s.accepted
    assert st.constraint is None and not st.accepted and "garbage" in st.reason
    # the extractor can come from ctx.extra, and rejection by the judge is kept with its reason
    cands = extract_constraints(OUTPUT, ctx(extractor=gen), types=["method"], judge=CannedGenerator(judge="No"))
    assert [(c.accepted, c.reason, c.judge_output) for c in cands] == [(False, "judge said No", "No")]
    # without a judge a soft candidate is proposed but not accepted
    cands = extract_constraints(OUTPUT, ctx(extractor=gen), types=["method"])
    assert cands[0].constraint is not None and not cands[0].accepted and "no judge" in cands[0].reason


def test_extractor_exception_and_missing_extractor_are_recorded():
    cands = extract_constraints(OUTPUT, ctx(), types=["method", "length"],
                                extractor=CannedGenerator(error=TimeoutError("timed out")))
    [m] = by_type(cands, "method")
    assert m.constraint is None and m.reason == "extractor error: TimeoutError: timed out"
    assert any(c.accepted for c in by_type(cands, "length"))
    [m] = by_type(propose_candidates(OUTPUT, ctx(), types=["method"]), "method")
    assert m.constraint is None and "no extractor" in m.reason
    assert not any(c.kind == "soft" for c in get_constraint_type("length").propose(OUTPUT, ctx()))


def test_method_rejects_answer_leaks():
    gen = CannedGenerator(extract="Solve it by computing 9 eggs and multiplying to get 18.")
    [m] = propose_candidates(OUTPUT, ctx(), types=["method"], extractor=gen)
    assert m.constraint is None and "answer leak" in m.reason
    gen = CannedGenerator(extract="Solve it by subtracting 3 and 4 from 16, then multiplying.")
    [m] = propose_candidates(OUTPUT, ctx(), types=["method"], extractor=gen)
    assert m.constraint is not None


def test_batched_extraction_calls_models_once_per_type():
    ext, judge = CannedGenerator(), CannedGenerator()
    outs = [OUTPUT, "", "Step 1. Add.\nStep 2. Multiply.\nThe answer is 5."]
    res = extract_constraints_many(outs, [ctx()] * 3, types=["method", "style", "numbered_steps"], extractor=ext,
                                   judge=judge)
    assert ext.calls == [2, 2] and judge.calls == [4]
    assert all(c.constraint is None and c.reason == "empty output" for c in res[1]) and len(res[1]) == 3
    assert [c.type for c in res[2] if c.accepted] == ["method", "style", "numbered_steps"]


def test_default_types_are_hard_without_extractor():
    cands = extract_constraints(OUTPUT, ctx())
    assert {c.type for c in cands}.isdisjoint(SOFT_TYPE_NAMES) and accepted_constraints(cands)
    assert {c.type for c in extract_constraints(OUTPUT, ctx(), extractor=CannedGenerator())} >= set(SOFT_TYPE_NAMES)


def test_filter_rejects_unsatisfied_and_duplicates():
    bad = Constraint("length", "hard", "Answer in at most 1 word.", {"unit": "words", "relation": "at_most", "n": 1})
    good = Constraint("answer_marker", "hard", "x", {"marker": "answer_is"})
    out = filter_self_evident([Candidate(bad), Candidate(good), Candidate(good), Candidate(None, reason="r", type="t")],
                              OUTPUT)
    assert [c.accepted for c in out] == [False, True, False, False]
    assert "needs at most 1" in out[0].reason and out[2].reason == "duplicate" and out[3].reason == "r"


def _accepted():
    return accepted_constraints(extract_constraints(OUTPUT, ctx()))


def test_sample_constraint_set_is_deterministic_and_jointly_satisfied():
    acc = _accepted()
    assert len({c.type for c in acc}) >= 5
    for k in range(1, 6):
        for mode in (None, "mixed"):
            a = sample_constraint_set(acc, k, seed=7, by_type=mode, output=OUTPUT)
            assert a is not None and len(a) == k and len({c.key for c in a}) == k
            assert a == sample_constraint_set(list(reversed(acc)), k, seed=7, by_type=mode)
            assert all(c.check(OUTPUT).ok for c in a)
            if mode == "mixed":
                assert len({c.type for c in a}) == k
    draws = {tuple(c.key for c in sample_constraint_set(acc, 2, seed=s)) for s in range(20)}
    assert len(draws) > 1
    only = sample_constraint_set(acc, 3, seed=0, by_type="length")
    assert {c.type for c in only} == {"length"}


def test_sample_constraint_set_impossible_and_invalid():
    acc = _accepted()
    assert sample_constraint_set(acc[:1], 2, seed=0) is None
    assert sample_constraint_set(acc, 2, seed=0, by_type="numbered_steps") is None
    two_types = [c for c in acc if c.type in ("length", "keyword")]
    assert sample_constraint_set(two_types, 3, seed=0, by_type="mixed") is None
    assert sample_constraint_set(two_types, 3, seed=0) is not None
    assert sample_constraint_set(acc, 1, seed=0, by_type="answer_marker", output="no marker here") is None
    with pytest.raises(InterpError):
        sample_constraint_set(acc, 6, seed=0)
    with pytest.raises(InterpError):
        sample_constraint_set(acc, 0, seed=0)


def test_rule_paraphrase_keeps_numbers_and_is_deterministic():
    p = paraphrase_task(TASK, seed=3)
    assert p == paraphrase_task(TASK, seed=3) and p != TASK
    assert sorted(re.findall(r"\d+", p)) == sorted(re.findall(r"\d+", TASK))
    assert "Janet" in p
    assert len({paraphrase_task(TASK, seed=s) for s in range(10)}) > 1
    code = 'def f(x):\n    """Find the large value."""\n'
    assert code.strip() in paraphrase_task(code, seed=0)


def test_model_paraphrase_is_validated():
    good = "Janet owns 16 eggs. She eats 3 and uses 4 for baking. Each of the rest sells for $2. What does she earn?"
    info = paraphrase_task_info(TASK, 0, CannedGenerator(extract="Rewritten problem:\n" + good))
    assert (info.method, info.text) == ("model", good)
    info = paraphrase_task_info(TASK, 0, CannedGenerator(extract=good.replace("16", "15")))
    assert info.method == "rule" and "numbers" in info.reason and info.text == paraphrase_task(TASK, 0)
    info = paraphrase_task_info(TASK, 0, CannedGenerator(error=ConnectionError("down")))
    assert info.method == "rule" and "ConnectionError" in info.reason
    assert paraphrase_task_info(TASK, 0, CannedGenerator(extract="")).reason == "empty model paraphrase"
