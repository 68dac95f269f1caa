"""Tiny built-in tasks for smoke runs: a 135M instruct model solves a fair share, and runs take seconds.

Items are generated deterministically from `seed`, need no data files, and keep outputs short.
"""
from __future__ import annotations

import random
import re
from fractions import Fraction

from ..prompts import Part
from .base import Item, Score, Task, register_task
from .gsm8k import lenient_score_number, score_number
from .hotpotqa import ANSWER_RE, lenient_score_short_answer, score_short_answer
from .humaneval import CodeTask
from .sandbox import Limits

_NAMES = ["Tom", "Anna", "Ben", "Lucy", "Sam", "Mia", "Leo", "Emma", "Max", "Zoe", "Jack", "Lily"]
_THINGS = ["apples", "books", "pencils", "cookies", "marbles", "stickers", "cards", "balloons", "shells", "coins"]


class _Generated(Task):
    """A task whose items come from a seeded generator: `n` items, identical for the same seed."""

    def __init__(self, n: int = 40, seed: int = 0):
        self.n, self.seed = n, seed
        self._items: list[Item] | None = None

    def generate(self, rng: random.Random, k: int) -> Item:
        raise NotImplementedError

    def load_items(self) -> list[Item]:
        if self._items is None:
            rng = random.Random(f"{self.name}:{self.seed}")
            self._items = [self.generate(rng, k) for k in range(self.n)]
        return self._items


@register_task("smoke_arith")
class SmokeArith(_Generated):
    """One-step arithmetic word problems (add, subtract, multiply) with small numbers."""

    domain = "math"
    max_new_tokens = 96
    description = "smoke: one-step arithmetic word problems (generated, 40 items)"
    format_instruction = "End with 'The answer is N'."

    def generate(self, rng: random.Random, k: int) -> Item:
        name, things = rng.choice(_NAMES), rng.choice(_THINGS)
        op = ("add", "sub", "mul")[k % 3]
        if op == "add":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            q, ans = f"{name} has {a} {things} and buys {b} more. How many {things} does {name} have now?", a + b
        elif op == "sub":
            a = rng.randint(6, 20)
            b = rng.randint(2, a - 2)
            q = f"{name} has {a} {things} and gives {b} to a friend. How many {things} does {name} have left?"
            ans = a - b
        else:
            a, b = rng.randint(2, 5), rng.randint(2, 5)
            q, ans = f"{name} has {a} bags with {b} {things} in each bag. How many {things} does {name} have?", a * b
        return Item(id=f"smoke_arith-{k}", input=q, target=str(ans), metadata={"op": op})

    def parts(self, item: Item) -> list[Part]:
        return [Part("task", item.input), Part("format", self.format_instruction)]

    def score(self, item: Item, output: str) -> Score:
        return score_number(Fraction(item.target), output)

    def lenient_score(self, item: Item, output: str) -> Score:
        return lenient_score_number(Fraction(item.target), output)


_ONSETS = ["Zor", "Bel", "Kav", "Mir", "Tal", "Dren", "Os", "Vel", "Quen", "Hal", "Ser", "Lun", "Tor", "Fen"]
_COUNTRY_ENDS = ["via", "land", "aria", "ostan", "onia", "mark", "ea"]
_CITY_ENDS = ["lin", "dor", "ford", "ka", "ton", "heim", "port", "mere"]
_CAPITAL_IS_RE = re.compile(r"capital of [^\s.,;:!?]+ is\s+([^\s.,;:!?]+)", re.IGNORECASE)


@register_task("smoke_capital_qa")
class SmokeCapitalQA(_Generated):
    """Invented-country capital questions answered from a two-sentence context (the answer is in the text)."""

    domain = "qa"
    max_new_tokens = 64
    description = "smoke: capital-city QA over a short invented context (generated, 40 items)"
    format_instruction = "Answer with the city name only, as 'Answer: X'."

    def generate(self, rng: random.Random, k: int) -> Item:
        used: set[str] = set()

        def fresh(ends: list[str]) -> str:
            while True:
                w = rng.choice(_ONSETS) + rng.choice(ends)
                if w not in used:
                    used.add(w)
                    return w

        country, city = fresh(_COUNTRY_ENDS), fresh(_CITY_ENDS)
        other, other_city = fresh(_COUNTRY_ENDS), fresh(_CITY_ENDS)
        facts = [f"The capital of {country} is {city}.", f"The capital of {other} is {other_city}."]
        rng.shuffle(facts)
        return Item(id=f"smoke_capital_qa-{k}", input=f"What is the capital of {country}?", target=[city],
                    metadata={"context": " ".join(facts), "distractor": other_city})

    def parts(self, item: Item) -> list[Part]:
        return [Part("context", f"Context: {item.metadata['context']}"), Part("task", f"Question: {item.input}"),
                Part("format", self.format_instruction)]

    def score(self, item: Item, output: str) -> Score:
        """EM of the "Answer: X" answer, or of X in a final "The capital of C is X." when there is no "Answer:"."""
        if not ANSWER_RE.search(output):
            stated = list(_CAPITAL_IS_RE.finditer(output))
            if stated:
                output = f"Answer: {stated[-1].group(1)}"
        return score_short_answer(item.target, output)

    def lenient_score(self, item: Item, output: str) -> Score:
        """The city is named anywhere in the output, but not together with the distractor city."""
        s = lenient_score_short_answer(item.target, output)
        if self.score(item, output).success:
            s.success, s.value = True, 1.0
        elif s.success and lenient_score_short_answer([item.metadata["distractor"]], output).success:
            s.success, s.value = False, 0.0
        return s


# (entry point, signature, description, test body): tiny functions a small model can write.
_CODE_SPECS = [
    ("add", "a, b", "returns the sum of a and b", ["add(2, 3) == 5", "add(-1, 1) == 0", "add(10, 5) == 15"]),
    ("subtract", "a, b", "returns a minus b", ["subtract(5, 3) == 2", "subtract(0, 4) == -4"]),
    ("square", "n", "returns n squared", ["square(3) == 9", "square(-2) == 4", "square(0) == 0"]),
    ("is_even", "n", "returns True if n is even and False otherwise",
     ["is_even(4) is True", "is_even(7) is False", "is_even(0) is True"]),
    ("is_positive", "n", "returns True if n is greater than zero, else False",
     ["is_positive(5) is True", "is_positive(-2) is False", "is_positive(0) is False"]),
    ("max_of_two", "a, b", "returns the larger of a and b", ["max_of_two(3, 7) == 7", "max_of_two(9, 2) == 9"]),
    ("min_of_list", "xs", "returns the smallest number in the list xs",
     ["min_of_list([3, 1, 2]) == 1", "min_of_list([5]) == 5", "min_of_list([-1, -5, 0]) == -5"]),
    ("sum_list", "xs", "returns the sum of the numbers in the list xs",
     ["sum_list([1, 2, 3]) == 6", "sum_list([]) == 0"]),
    ("count_items", "xs", "returns the number of items in the list xs",
     ["count_items([1, 2, 3]) == 3", "count_items([]) == 0"]),
    ("first_element", "xs", "returns the first element of the list xs",
     ["first_element([4, 5, 6]) == 4", "first_element(['a']) == 'a'"]),
    ("last_element", "xs", "returns the last element of the list xs",
     ["last_element([4, 5, 6]) == 6", "last_element(['a']) == 'a'"]),
    ("reverse_string", "s", "returns the string s reversed",
     ["reverse_string('abc') == 'cba'", "reverse_string('') == ''"]),
    ("concat", "a, b", "returns the two strings a and b joined together",
     ["concat('ab', 'cd') == 'abcd'", "concat('', 'x') == 'x'"]),
    ("repeat_string", "s, n", "returns the string s repeated n times",
     ["repeat_string('ab', 3) == 'ababab'", "repeat_string('x', 0) == ''"]),
    ("is_empty", "xs", "returns True if the list xs is empty, else False",
     ["is_empty([]) is True", "is_empty([1]) is False"]),
    ("contains", "xs, x", "returns True if x is in the list xs, else False",
     ["contains([1, 2, 3], 2) is True", "contains([1, 2, 3], 5) is False"]),
    ("average", "xs", "returns the average of the numbers in the non-empty list xs",
     ["average([1, 2, 3]) == 2", "average([4]) == 4", "abs(average([1, 2]) - 1.5) < 1e-9"]),
    ("count_vowels", "s", "returns how many vowels (a, e, i, o, u) the lowercase string s contains",
     ["count_vowels('hello') == 2", "count_vowels('xyz') == 0", "count_vowels('aei') == 3"]),
    ("factorial", "n", "returns n factorial (n! for n >= 0)",
     ["factorial(0) == 1", "factorial(1) == 1", "factorial(5) == 120"]),
    ("is_palindrome", "s", "returns True if the string s reads the same backwards, else False",
     ["is_palindrome('level') is True", "is_palindrome('abc') is False", "is_palindrome('') is True"]),
    ("count_char", "s, c", "returns how many times the character c occurs in the string s",
     ["count_char('banana', 'a') == 3", "count_char('xyz', 'a') == 0"]),
    ("clamp", "x, lo, hi", "returns x limited to the range from lo to hi",
     ["clamp(5, 0, 10) == 5", "clamp(-3, 0, 10) == 0", "clamp(42, 0, 10) == 10"]),
    ("is_prime", "n", "returns True if the integer n is a prime number, else False",
     ["is_prime(2) is True", "is_prime(13) is True", "is_prime(1) is False", "is_prime(15) is False"]),
    ("fibonacci", "n", "returns the n-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1",
     ["fibonacci(0) == 0", "fibonacci(1) == 1", "fibonacci(7) == 13"]),
    ("second_largest", "xs", "returns the second largest distinct number in the list xs",
     ["second_largest([1, 5, 3]) == 3", "second_largest([4, 4, 2]) == 2"]),
    ("word_count", "s", "returns the number of words in the sentence s",
     ["word_count('the cat sat') == 3", "word_count('hello') == 1", "word_count('') == 0"]),
    ("digit_sum", "n", "returns the sum of the decimal digits of the non-negative integer n",
     ["digit_sum(123) == 6", "digit_sum(0) == 0", "digit_sum(909) == 18"]),
]


@register_task("smoke_code")
class SmokeCode(CodeTask):
    """Tiny Python functions described in one sentence, checked by asserts in the sandbox (27 items)."""

    max_new_tokens = 128
    description = "smoke: tiny Python functions with asserts, run in the sandbox (27 items)"
    format_instruction = "Write the function in one ```python code block."

    def __init__(self, n: int | None = None, timeout_s: float = 5.0, max_workers: int | None = None,
                 unsafe_no_jail: bool = False):
        self.n = n
        self.limits = Limits(timeout_s=timeout_s, memory_mb=512, jail=not unsafe_no_jail)
        self.max_workers = max_workers

    def load_items(self) -> list[Item]:
        items = []
        for k, (fn, args, what, asserts) in enumerate(_CODE_SPECS[: self.n]):
            test = "def check(candidate):\n" + "".join(
                f"    assert {a.replace(fn + '(', 'candidate(', 1)}\n" for a in asserts)
            items.append(Item(id=f"smoke_code-{k}", input=f"Write a Python function {fn}({args}) that {what}.",
                              target={"test": test, "entry_point": fn, "signature": f"def {fn}({args}):"}))
        return items

    def parts(self, item: Item) -> list[Part]:
        return [Part("task", item.input), Part("format", self.format_instruction)]
