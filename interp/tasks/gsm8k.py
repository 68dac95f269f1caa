"""GSM8K: grade-school math word problems; the gold answer is the number after `####`.

The prediction is the final answer the model states ("The answer is N", `\\boxed{N}`, `#### N`,
"Final answer: N"), else the last number in the output; numbers are compared as values, so
"$1,234.50", "1234.5" and "1234.50 dollars." are the same answer.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from ..errors import InterpError
from ..prompts import Part
from .base import Item, Score, Task, register_task
from .io import get_field, read_jsonl, resolve_path

FORMAT_INSTRUCTION = "Solve step by step and end with 'The answer is N'."

_NUM = r"(?:[-−]?[$€£]\s?[-−]?|[-−])?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[-−]?\.\d+"
_NUM_RE = re.compile(_NUM)
_BOXED_RE = re.compile(r"\\boxed\s*\{")
_FRAC_RE = re.compile(r"\\d?frac\s*\{\s*(" + _NUM + r")\s*\}\s*\{\s*(" + _NUM + r")\s*\}")
_MARKER_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*(?:is)?|answer\s*[:=]|####)\s*[:=]?", re.IGNORECASE
)


def parse_number(text: str) -> Fraction | None:
    """The value of one number string such as "-$1,234.50" (sign, currency and thousands commas allowed)."""
    s = re.sub(r"[\s$€£,]", "", text).replace("−", "-")
    if s.startswith("--"):
        s = s[1:]
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_in(text: str) -> list[Fraction]:
    """All numbers in `text`, in order (thousands commas, decimals, signs and currency handled)."""
    vals = []
    for m in _NUM_RE.finditer(text):
        tok = m.group(0)
        if tok[0] in "-−" and m.start() > 0 and (text[m.start() - 1].isalnum()):
            tok = tok[1:]  # "3-4" is a range or subtraction, not "-4"
        v = parse_number(tok)
        if v is not None:
            vals.append(v)
    return vals


def _boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (braces balanced)."""
    starts = [m.end() for m in _BOXED_RE.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i: j - 1] if depth == 0 else text[i:]


def _value(fragment: str) -> Fraction | None:
    m = _FRAC_RE.search(fragment)
    if m:
        a, b = parse_number(m.group(1)), parse_number(m.group(2))
        if a is not None and b:
            return a / b
    nums = numbers_in(fragment)
    return nums[0] if nums else None


def extract_answer(output: str) -> tuple[Fraction | None, str]:
    """(value, how) of the final answer stated in `output`; `how` is boxed/marker/last-number/none."""
    box = _boxed(output)
    if box is not None:
        v = _value(box)
        if v is not None:
            return v, "boxed"
    for m in reversed(list(_MARKER_RE.finditer(output))):
        v = _value(output[m.end(): m.end() + 80].split("\n\n")[0])
        if v is not None:
            return v, "marker"
    nums = numbers_in(output)
    return (nums[-1], "last-number") if nums else (None, "none")


def same_number(a: Fraction | None, b: Fraction | None) -> bool:
    """Numeric equality with a tiny relative tolerance (for rounded decimals)."""
    if a is None or b is None:
        return False
    return abs(a - b) <= Fraction(1, 10**6) * max(1, abs(b))


def _fmt(v: Fraction | None) -> str | None:
    if v is None:
        return None
    return str(v.numerator) if v.denominator == 1 else f"{float(v):g}"


def score_number(gold: Fraction, output: str) -> Score:
    """Strict: the stated final answer equals `gold`."""
    pred, how = extract_answer(output)
    ok = same_number(pred, gold)
    return Score(success=ok, value=float(ok), prediction=_fmt(pred), detail={"gold": _fmt(gold), "extracted_by": how})


def lenient_score_number(gold: Fraction, output: str) -> Score:
    """Lenient: the stated answer or any number in the output equals `gold`."""
    pred = extract_answer(output)[0]
    ok = same_number(pred, gold) or any(same_number(v, gold) for v in numbers_in(output))
    return Score(success=ok, value=float(ok), prediction=_fmt(pred), detail={"gold": _fmt(gold)})


@register_task("gsm8k")
class GSM8K(Task):
    """GSM8K test set (1319 problems) from `<data>/gsm8k/test.jsonl` or `path=`."""

    domain = "math"
    max_new_tokens = 512
    description = "GSM8K grade-school math word problems; numeric final-answer match"
    default_file = "gsm8k/test.jsonl"

    def __init__(self, path: str | Path | None = None):
        self.path = path
        self._items: list[Item] | None = None

    def load_items(self) -> list[Item]:
        if self._items is None:
            path = resolve_path(self.path, self.default_file)
            items = []
            for lineno, row in read_jsonl(path, required=("question", "answer")):
                answer = get_field(row, "answer", path, lineno, str)
                if "####" not in answer:
                    raise InterpError(f"{path}:{lineno}: field 'answer' has no '#### N' gold answer line")
                gold = parse_number(answer.rsplit("####", 1)[1].strip())
                if gold is None:
                    raise InterpError(f"{path}:{lineno}: the text after '####' is not a number")
                items.append(Item(id=f"gsm8k-{lineno - 1}", input=get_field(row, "question", path, lineno, str).strip(),
                                  target=_fmt(gold), metadata={"solution": answer}))
            self._items = items
        return self._items

    def parts(self, item: Item) -> list[Part]:
        return [Part("task", item.input), Part("format", FORMAT_INSTRUCTION)]

    def score(self, item: Item, output: str) -> Score:
        return score_number(parse_number(str(item.target)), output)

    def lenient_score(self, item: Item, output: str) -> Score:
        return lenient_score_number(parse_number(str(item.target)), output)
