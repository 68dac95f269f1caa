"""Scorers on hand-written outputs (right, wrong, and right-but-misformatted) and on reference solutions."""
import re

import pytest

from interp.errors import InterpError
from interp.tasks import TASKS, Item, get_task, list_tasks
from interp.tasks.gsm8k import GSM8K, extract_answer
from interp.tasks.hotpotqa import HotpotQA, extract_short_answer, f1_score, normalize_answer
from interp.tasks.humaneval import HumanEval, assemble, extract_code, strip_prose, check_program
from interp.tasks.sandbox import run_many


def _data_or_skip(task):
    try:
        return task.items()
    except InterpError as e:
        pytest.skip(str(e))


# ---------------------------------------------------------------- GSM8K

GSM = [  # (output, gold, strict, lenient)
    ("She makes 9 * 2 = 18 dollars.\nThe answer is 18.", "18", True, True),
    ("The answer is $1,234.50", "1234.5", True, True),
    ("so she pays \\$1,234.50 in total. The answer is 1234.5 dollars.", "1234.5", True, True),
    ("Thus x = 4.\n\\boxed{42}", "42", True, True),
    ("$\\boxed{\\frac{3}{4}}$", "0.75", True, True),
    ("Adding up: 10 + 5 = 15\n#### 15", "15", True, True),
    ("Final answer: 1,000 apples.", "1000", True, True),
    ("**Answer:** 72%", "72", True, True),
    ("The temperature dropped to -5 degrees. The answer is -5.", "-5", True, True),
    ("The answer is −3", "-3", True, True),
    ("The answer is 0.25 kg.", "0.25", True, True),
    ("18 eggs", "18", True, True),
    ("There are 3 groups of 6, so 18 in all", "18", True, True),
    ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18. The answer is 9.", "18", False, True),  # states a wrong final answer
    ("The answer is 18.5", "18", False, False),
    ("The answer is 180", "18", False, False),
    ("I don't know.", "18", False, False),
    ("The answer is 1,8", "18", False, False),
    ("10 - 5 = 5", "-5", False, False),  # a minus sign with spaces is subtraction, not a negative number
]


@pytest.mark.parametrize("output,gold,strict,lenient", GSM)
def test_gsm8k_scoring(output, gold, strict, lenient):
    task = GSM8K()
    item = Item(id="x", input="q", target=gold)
    s, l = task.score(item, output), task.lenient_score(item, output)
    assert s.success is strict, (s, output)
    assert l.success is lenient, (l, output)
    assert s.value == float(strict)


def test_gsm8k_extraction_prefers_the_last_stated_answer():
    assert extract_answer("The answer is 3. Wait, no. The answer is 4.")[0] == 4
    assert extract_answer("\\boxed{7} and the answer is 9")[1] == "boxed"
    assert extract_answer("nothing here") == (None, "none")


def test_gsm8k_reference_solutions_score_100_percent():
    task = GSM8K()
    items = _data_or_skip(task)
    assert len(items) == 1319
    bad = []
    for it in items:
        body, _, gold = it.metadata["solution"].rpartition("####")
        spoken = re.sub(r"<<[^>]*>>", "", body).strip() + f"\nThe answer is {gold.strip()}."
        if not task.score(it, spoken).success or not task.lenient_score(it, spoken).success:
            bad.append(it.id)
    assert not bad


def test_gsm8k_prompt_parts():
    task = GSM8K()
    parts = task.parts(Item(id="x", input="How many?", target="1"))
    assert [p.name for p in parts] == ["task", "format"]
    assert parts[0].text == "How many?" and "The answer is" in parts[1].text
    assert task.domain == "math" and task.max_new_tokens >= 256


# ---------------------------------------------------------------- HotpotQA

def test_hotpotqa_normalization_is_official():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("A cat, an apple") == "cat apple"
    assert normalize_answer("Theatre") == "theatre"


def test_hotpotqa_f1():
    assert f1_score("Chief of Protocol", "chief of protocol") == 1.0
    assert f1_score("the Chief of Protocol of the US", "Chief of Protocol") == pytest.approx(2 * 0.6 * 1 / 1.6)
    assert f1_score("yes", "no") == 0.0
    assert f1_score("no way", "no") == 0.0  # yes/no golds need an exact answer
    assert f1_score("Paris", "London") == 0.0


HOTPOT = [  # (output, golds, em, lenient)
    ("Shirley Temple served as Chief of Protocol.\nAnswer: Chief of Protocol", ["Chief of Protocol"], True, True),
    ("Answer: chief of protocol.", ["Chief of Protocol"], True, True),
    ("**Answer:** \"Chief of Protocol\"", ["Chief of Protocol"], True, True),
    ("The answer is Chief of Protocol.", ["Chief of Protocol"], True, True),
    ("Reasoning first.\nChief of Protocol", ["Chief of Protocol"], True, True),
    ("Answer: NYC", ["New York City", "NYC"], True, True),  # max over aliases
    ("Answer: yes", ["yes"], True, True),
    ("She was the Chief of Protocol of the United States.", ["Chief of Protocol"], False, True),
    ("Answer: Chief of Protocol\nAnswer: ambassador", ["Chief of Protocol"], False, True),
    ("Answer: ambassador to Ghana", ["Chief of Protocol"], False, False),
    ("Answer: no", ["yes"], False, False),
    ("It is not known.", ["no"], False, False),  # "no" only as a whole word
]


@pytest.mark.parametrize("output,golds,em,lenient", HOTPOT)
def test_hotpotqa_scoring(output, golds, em, lenient):
    task = HotpotQA()
    item = Item(id="x", input="q", target=golds)
    s = task.score(item, output)
    assert s.success is em and s.detail["em"] == float(em), (s, output)
    assert 0.0 <= s.detail["f1"] <= 1.0 and (s.detail["f1"] == 1.0) is em
    assert task.lenient_score(item, output).success is lenient


def test_hotpotqa_f1_success_mode():
    item = Item(id="x", input="q", target=["Chief of Protocol"])
    out = "Answer: the Chief of Protocol of the US"
    assert not HotpotQA().score(item, out).success
    s = HotpotQA(success="f1", f1_threshold=0.5).score(item, out)
    assert s.success and s.value == pytest.approx(s.detail["f1"])
    assert not HotpotQA(success="f1", f1_threshold=0.9).score(item, out).success
    with pytest.raises(InterpError):
        HotpotQA(success="bleu")


def test_hotpotqa_extraction():
    assert extract_short_answer("blah\nAnswer: Paris.\n") == "Paris"
    assert extract_short_answer("answer: Paris\nsome trailing note") == "Paris"
    assert extract_short_answer("line one\n\nLast line.") == "Last line"


def test_hotpotqa_prompt_has_context_task_format():
    task = HotpotQA()
    items = _data_or_skip(task)
    parts = task.parts(items[0])
    assert [p.name for p in parts] == ["context", "task", "format"]
    assert "Shirley Temple" in parts[0].text and items[0].input in parts[1].text and "Answer: X" in parts[2].text
    sup = HotpotQA(context="supporting").parts(items[0])[0].text
    assert len(sup) < len(parts[0].text) and "Shirley Temple" in sup
    assert [p.name for p in HotpotQA(context="none").parts(items[0])] == ["task", "format"]


# ---------------------------------------------------------------- HumanEval / code extraction

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
ADD = Item(id="add", input=PROMPT, target={"prompt": PROMPT, "entry_point": "add",
                                          "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"})

CODE_OUTPUTS = [  # (output, strict, lenient)
    ("```python\ndef add(a, b):\n    return a + b\n```\nThis adds the numbers.", True, True),
    ("Here you go:\n```py\ndef add(a: int, b: int) -> int:\n    return a + b\n```", True, True),
    ("```python\nimport math\n\ndef helper(x):\n    return x\n\ndef add(a, b):\n    return helper(a) + b\n```",
     True, True),
    ("def add(a, b):\n    return a + b", True, True),  # bare full definition
    ("    return a + b", True, True),  # bare body
    ("return a + b", True, True),  # flush-left body is indented under the prompt
    ("```python\n    return a + b\n```", True, True),
    ("```\ndef add(a, b):\n    return a + b", True, True),  # unclosed fence
    ("```python\nprint('hi')\n```\n```python\ndef add(a, b):\n    return a + b\n```", True, True),
    ("Sure! Here is the function:\ndef add(a, b):\n    return a + b\nIt returns the sum.", False, True),
    ("```python\ndef add(a, b):\n    return a - b\n```", False, False),
    ("I cannot write code.", False, False),
    ("```python\ndef add(a, b):\n    import os\n    os.system('true')\n    return a + b\n```", False, False),
]


@pytest.mark.parametrize("output,strict,lenient", CODE_OUTPUTS)
def test_code_scoring(output, strict, lenient):
    task = HumanEval()
    s = task.score(ADD, output)
    assert s.success is strict, (s.detail, s.prediction)
    assert task.lenient_score(ADD, output).success is lenient


def test_code_scoring_batches_match_single_calls():
    task = HumanEval()
    outs = [o for o, _, _ in CODE_OUTPUTS]
    assert [s.success for s in task.score_many([ADD] * len(outs), outs)] == [s for _, s, _ in CODE_OUTPUTS]
    assert [s.success for s in task.lenient_score_many([ADD] * len(outs), outs)] == [l for _, _, l in CODE_OUTPUTS]


def test_code_extraction_helpers():
    assert extract_code("```python\nx = 1\n```\n```python\ndef add(a, b): pass\n```", "add").startswith("def add")
    assert strip_prose("Here it is:\ndef f():\n    return 1\nDone.") == "def f():\n    return 1"
    assert assemble(PROMPT, "return 1", "add").endswith('"""\n    return 1\n')
    assert assemble("", "    def add(a, b):\n        return 1", "add").startswith("def add")


def test_humaneval_items_and_parts():
    task = HumanEval()
    items = task.items()
    assert len(items) == 164 and items[0].id == "HumanEval/0"
    parts = task.parts(items[0])
    assert [p.name for p in parts] == ["task", "format"]
    assert "def has_close_elements" in parts[0].text and "```python" in parts[1].text
    assert task.domain == "code"


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail():
    task = HumanEval()
    items = task.items()
    good = [check_program(i.input + i.metadata["canonical_solution"], i.target["test"], i.target["entry_point"])
            for i in items]
    broken = [check_program(i.input + "    return None\n", i.target["test"], i.target["entry_point"]) for i in items]
    raising = [check_program(i.input + "    raise NotImplementedError\n", i.target["test"], i.target["entry_point"])
               for i in items[::4]]
    res = run_many(good + broken + raising)
    good_res, bad_res = res[:164], res[164:]
    assert [i.id for i, r in zip(items, good_res) if not r.passed] == []
    assert not any(r.passed for r in bad_res)
    # the task's own scorer reads a body-only completion the same way
    assert all(s.success for s in task.score_many(items[:20], [i.metadata["canonical_solution"] for i in items[:20]]))


# ---------------------------------------------------------------- smoke tasks and registry

def test_smoke_tasks_are_deterministic_and_sized():
    for name in ("smoke_arith", "smoke_capital_qa"):
        a, b = get_task(name).items(), get_task(name).items()
        assert len(a) == 40 and [i.input for i in a] == [i.input for i in b]
        assert [i.input for i in get_task(name, seed=1).items()] != [i.input for i in a]
        assert len(get_task(name, n=5).items()) == 5
    assert len(get_task("smoke_code").items()) >= 20


def test_smoke_arith_scoring():
    task = get_task("smoke_arith")
    item = task.items()[0]
    gold = int(item.target)
    assert task.score(item, f"{gold - 1} + 1 = {gold}. The answer is {gold}.").success
    assert not task.score(item, f"The answer is {gold + 1}.").success
    assert task.lenient_score(item, f"It is {gold}, so the answer is {gold + 1}.").success
    assert [p.name for p in task.parts(item)] == ["task", "format"]


def test_smoke_capital_qa_scoring():
    task = get_task("smoke_capital_qa")
    item = task.items()[0]
    city, other = item.target[0], item.metadata["distractor"]
    assert city in item.metadata["context"] and other in item.metadata["context"]
    assert task.score(item, f"Answer: {city}").success
    assert task.score(item, f"The capital is given in the context. The capital of X is {city}.").success
    assert not task.score(item, f"Answer: {other}").success
    assert not task.score(item, f"I think {city}, the capital.").success
    assert task.lenient_score(item, f"I think {city}, the capital.").success
    assert not task.lenient_score(item, f"Either {city} or {other}.").success
    assert [p.name for p in task.parts(item)] == ["context", "task", "format"]


SMOKE_CODE_SOLUTIONS = {
    "add": "return a + b", "subtract": "return a - b", "square": "return n * n", "is_even": "return n % 2 == 0",
    "is_positive": "return n > 0", "max_of_two": "return max(a, b)", "min_of_list": "return min(xs)",
    "sum_list": "return sum(xs)", "count_items": "return len(xs)", "first_element": "return xs[0]",
    "last_element": "return xs[-1]", "reverse_string": "return s[::-1]", "concat": "return a + b",
    "repeat_string": "return s * n", "is_empty": "return len(xs) == 0", "contains": "return x in xs",
    "average": "return sum(xs) / len(xs)", "count_vowels": "return sum(c in 'aeiou' for c in s)",
    "factorial": "import math\n    return math.factorial(n)", "is_palindrome": "return s == s[::-1]",
    "count_char": "return s.count(c)", "clamp": "return max(lo, min(x, hi))",
    "is_prime": "return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))",
    "fibonacci": "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    "second_largest": "return sorted(set(xs))[-2]", "word_count": "return len(s.split())",
    "digit_sum": "return sum(int(d) for d in str(n))",
}


def test_smoke_code_reference_solutions_pass_and_wrong_ones_fail():
    task = get_task("smoke_code")
    items = task.items()
    assert {i.target["entry_point"] for i in items} == set(SMOKE_CODE_SOLUTIONS)
    good = [f"```python\n{i.target['signature']}\n    {SMOKE_CODE_SOLUTIONS[i.target['entry_point']]}\n```"
            for i in items]
    wrong = [f"```python\n{i.target['signature']}\n    return None\n```" for i in items]
    assert all(s.success for s in task.score_many(items, good))
    assert not any(s.success for s in task.score_many(items, wrong))
    body_only = f"    {SMOKE_CODE_SOLUTIONS['add']}"
    assert not task.score(items[0], body_only).success  # strict: no function defined
    assert task.lenient_score(items[0], body_only).success  # lenient: placed under the signature


def test_registry_and_list_tasks():
    names = {"gsm8k", "hotpotqa", "humaneval", "smoke_arith", "smoke_capital_qa", "smoke_code"}
    assert names <= set(TASKS)
    rows = {r["name"]: r for r in list_tasks()}
    assert names <= set(rows)
    for name in names:
        task = get_task(name)
        assert task.name == name and task.domain in ("math", "qa", "code") and task.description
        assert rows[name]["domain"] == task.domain
        assert rows[name]["n"] is None or rows[name]["n"] > 0
        item = task.items(n=1)[0] if rows[name]["n"] else None
        if item is not None:
            assert any(p.name == "task" and p.text for p in task.parts(item))
    assert rows["smoke_arith"]["n"] == 40 and rows["humaneval"]["n"] == 164
    for name in ("smoke_arith", "smoke_capital_qa", "smoke_code"):
        assert 32 <= get_task(name).max_new_tokens <= 128
    with pytest.raises(InterpError, match="unknown task"):
        get_task("nope")
