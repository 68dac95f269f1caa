"""Hard constraint verifiers (pass/fail cases) and the self-evidence property on random and GSM8K texts."""
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interp.constraints import (HARD_TYPE_NAMES, Constraint, NoConstraint, ProposeContext, default_types,
                                extract_constraints, get_constraint_type)
from interp.constraints.hard import NUMBERED_RE, _phrase_re

GSM8K = Path(__file__).parents[1] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"


def C(type_, **params):
    return Constraint(type=type_, kind="hard", text="", params=params)


CODE = "```python\ndef add(a, b):\n    total = a + b\n    return abs(total)\n```"
CASES = [
    # (constraint, text, expected)
    (C("length", unit="words", relation="at_most", n=3), "one two three", True),
    (C("length", unit="words", relation="at_most", n=3), "one two three four", False),
    (C("length", unit="words", relation="at_least", n=3), "one two - three", True),
    (C("length", unit="words", relation="at_least", n=3), "one - two", False),
    (C("length", unit="sentences", relation="at_most", n=2), "It is 2.5 m. Done!", True),
    (C("length", unit="sentences", relation="at_most", n=2), "A. B. C.", False),
    (C("length", unit="lines", relation="at_least", n=2), "a\n\nb", True),
    (C("length", unit="lines", relation="at_least", n=2), "a b", False),
    (C("length", unit="characters", relation="at_most", n=5), "  abcde \n", True),
    (C("length", unit="characters", relation="at_most", n=5), "abcdef", False),
    (C("keyword", word="eggs", mode="include"), "She sells EGGS daily.", True),
    (C("keyword", word="egg", mode="include"), "She sells eggs daily.", False),
    (C("keyword", word="farmers market", mode="include"), "at the Farmers\nMarket", True),
    (C("keyword", word="breakfast", mode="exclude"), "She sells eggs.", True),
    (C("keyword", word="breakfast", mode="exclude"), "Breakfast, then eggs.", False),
    (C("numbered_steps", min=2), "1. Add.\n2) Multiply.", True),
    (C("numbered_steps", min=2), "Step 1: add\nStep 2: multiply", True),
    (C("numbered_steps", min=2), "1. Add.\nThen multiply.", False),
    (C("numbered_steps", min=2), "In 2020. we 1. add", False),
    (C("bullet_list", min=2), "- a\n* b\n• c", True),
    (C("bullet_list", min=2), "- a\n-b\n**bold**", False),
    (C("paragraphs", relation="exactly", n=2), "a\nb\n\n  \nc", True),
    (C("paragraphs", relation="exactly", n=2), "a\nb\nc", False),
    (C("paragraphs", relation="at_most", n=2), "a", True),
    (C("paragraphs", relation="at_most", n=2), "a\n\nb\n\nc", False),
    (C("ends_with", phrase="The answer is", mode="final_line_prefix"), "x\nthe  answer is 18.\n", True),
    (C("ends_with", phrase="The answer is", mode="final_line_prefix"), "The answer is 18.\nBye", False),
    (C("ends_with", phrase="The answer", mode="final_line_prefix"), "The answers are 1, 2.", False),
    (C("ends_with", phrase="####", mode="final_line_prefix"), "So 9.\n#### 18", True),
    (C("ends_with", phrase="every day.", mode="suffix"), "She earns $18 every   day.", True),
    (C("ends_with", phrase="every day.", mode="suffix"), "She earns $18 everyday.", False),
    (C("ends_with", phrase="every day.", mode="suffix"), "Every day. Then 5.", False),
    (C("answer_marker", marker="boxed"), "so \\boxed{18}", True),
    (C("answer_marker", marker="boxed"), "so boxed{18}", False),
    (C("answer_marker", marker="hashes"), "x\n#### 18", True),
    (C("answer_marker", marker="hashes"), "x #### 18", False),
    (C("answer_marker", marker="answer_is"), "Thus the final answer is 4.", True),
    (C("answer_marker", marker="answer_is"), "The answers is 4.", False),
    (C("answer_marker", marker="answer_colon"), "Final Answer: 4", True),
    (C("answer_marker", marker="answer_colon"), "Answer = 4", False),
    (C("code_name", role="function", name="add"), CODE, True),
    (C("code_name", role="function", name="total"), CODE, False),
    (C("code_name", role="variable", name="total"), CODE, True),
    (C("code_name", role="builtin", name="abs"), CODE, True),
    (C("code_name", role="builtin", name="len"), CODE, False),
    (C("code_name", role="builtin", name="len"), "def len(x):\n    return len(x)", False),
    (C("code_name", role="function", name="add"), "Define add(a, b) returning a + b, then done.", False),
]


@pytest.mark.parametrize("constraint,text,expected", CASES, ids=[f"{c.type}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_verifier_cases(constraint, text, expected):
    chk = get_constraint_type(constraint.type).check(constraint, text)
    assert chk.ok is expected, chk.reason
    assert chk.reason


def test_length_slack_and_text():
    [most, *_] = get_constraint_type("length").propose(" ".join(["w"] * 100), ProposeContext())
    assert most.text == "Answer in at most 120 words." and most.params["n"] == 120
    wide = get_constraint_type("length").propose(" ".join(["w"] * 100), ProposeContext(extra={"length_slack": 0.5}))
    assert wide[0].params["n"] == 150


def test_keyword_is_informative():
    ctx = ProposeContext(task_text="How many muffins does the bakery sell?")
    props = get_constraint_type("keyword").propose("The bakery sells the muffins; the bakery is big.", ctx)
    inc = [c.params["word"] for c in props if c.params["mode"] == "include"]
    exc = [c.params["word"] for c in props if c.params["mode"] == "exclude"]
    assert inc[0] == "bakery" and "the" not in inc
    assert exc and exc[0] not in "the bakery sells the muffins"
    with pytest.raises(NoConstraint):
        get_constraint_type("numbered_steps").propose("no steps here", ProposeContext())


# ---------------------------------------------------------------- self-evidence property


def _remove_all(pattern: re.Pattern, text: str, repl: str = "") -> str:
    while pattern.search(text):
        text = pattern.sub(repl, text)
    return text


def perturb(c: Constraint, text: str) -> str:
    """A variant of `text` that must violate `c` (which `text` satisfies)."""
    p = c.params
    if c.type == "length":
        return "" if p["relation"] == "at_least" else "\n".join([text] * 3)
    if c.type == "keyword":
        return _remove_all(_phrase_re(p["word"]), text) if p["mode"] == "include" else text + " " + p["word"]
    if c.type == "numbered_steps":
        prefix = re.compile(r"^([ \t]*)(?:step[ \t]*)?\d{1,3}[.):]", re.IGNORECASE | re.MULTILINE)
        while NUMBERED_RE.search(text):
            text = prefix.sub(r"\1", text)
        return text
    if c.type == "bullet_list":
        return _remove_all(re.compile(r"^([ \t]*)[-*•+](?=[ \t]+\S)", re.MULTILINE), text, r"\1")
    if c.type == "paragraphs":
        return text + "\n\n" + text
    if c.type == "ends_with":
        return text + "\n0"
    if c.type == "answer_marker":
        return re.sub(r"\\boxed|#|answer", "", text, flags=re.IGNORECASE)
    if c.type == "code_name":
        return re.sub(r"(?<!\w)" + re.escape(p["name"]) + r"(?!\w)", p["name"] + "_zq", text)
    raise AssertionError(f"no perturbation for {c.type}")


def assert_self_evident(text: str, ctx: ProposeContext) -> list[Constraint]:
    proposed = []
    for name in default_types():
        ct = get_constraint_type(name)
        try:
            props = ct.propose(text, ctx)
        except NoConstraint as e:
            assert str(e)
            continue
        assert props
        for c in props:
            assert c.type == name and c.kind == "hard" and c.text
            assert ct.check(c, text).ok, (c, text)
            assert not ct.check(c, perturb(c, text)).ok, (c, text, perturb(c, text))
        proposed += props
    cands = extract_constraints(text, ctx)
    kept = [c.constraint for c in cands if c.accepted]
    assert all(c.check(text).ok for c in kept)
    assert {c.key for c in kept} == ({c.key for c in proposed} if text.strip() else set())
    return proposed


FRAGMENTS = st.sampled_from([
    "1. First we add 3 and 4.", "Step 2: multiply 3 by 4.", "2) then divide", "- apples", "* pears", "• plums",
    "The answer is 42.", "#### 18", "Answer: 7", "So the answer is \\boxed{12}.", "", "  ",
    "def foo(x):\n    total = len(x)\n    return total", "```python\nresult = sorted([3, 1])\nprint(result)\n```",
    "Janet buys eggs at the farmers' market.", "So she makes $18 every day.", "x = 5", "Therefore, 9 * 2 = 18",
])
STRUCTURED = st.lists(st.one_of(FRAGMENTS, st.text(max_size=25)), max_size=10).flatmap(
    lambda parts: st.sampled_from(["\n", "\n\n", " "]).map(lambda sep: sep.join(parts)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), STRUCTURED), task=st.one_of(st.text(max_size=60), FRAGMENTS))
def test_proposals_are_self_evident_on_random_text(text, task):
    assert_self_evident(text, ProposeContext(task_text=task))


def gsm8k_answers(n=200):
    if not GSM8K.exists():
        pytest.skip(f"GSM8K data not found at {GSM8K}")
    with open(GSM8K, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def test_proposals_are_self_evident_on_gsm8k():
    rows = gsm8k_answers()
    assert len(rows) == 200
    seen = set()
    for row in rows:
        seen |= {c.type for c in assert_self_evident(row["answer"], ProposeContext(task_text=row["question"]))}
        variants = [
            "\n".join(f"{i + 1}. {line}" for i, line in enumerate(row["answer"].splitlines())),
            "\n".join(f"- {line}" for line in row["answer"].splitlines()) + "\n\nThe answer is \\boxed{1}.",
        ]
        for text in variants:
            seen |= {c.type for c in assert_self_evident(text, ProposeContext(task_text=row["question"]))}
    for text in [CODE, "```python\nresult = sorted([3, 1])\n```"]:
        seen |= {c.type for c in assert_self_evident(text, ProposeContext())}
    assert seen == set(default_types()) == set(HARD_TYPE_NAMES)
