"""Hard constraints: facts about an output that a program can read (length, keywords, format, code names).

Each type proposes only constraints that its own `check` accepts on the same output, so a proposal is
self-evident by construction; `tests/test_constraints_hard.py` checks this property on random texts.
"""
from __future__ import annotations

import ast
import builtins
import math
import re
import textwrap
import warnings
from collections import Counter

from .base import Check, Constraint, ConstraintType, ProposeContext, register_constraint


class NoConstraint(Exception):
    """Raised by a proposer that has nothing to offer for an output; the message is the recorded reason."""


class HardConstraint(ConstraintType):
    """Base of rule-verified types: `make` builds a Constraint of this type."""

    kind = "hard"

    def make(self, text: str, **params) -> Constraint:
        return Constraint(type=self.name, kind=self.kind, text=text, params=params)


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit[:-1] if n == 1 else unit}"


# ---------------------------------------------------------------- length

def count_units(text: str, unit: str) -> int:
    """Words (whitespace tokens with a letter or digit), sentences, non-empty lines or stripped characters."""
    if unit == "words":
        return sum(1 for w in text.split() if any(ch.isalnum() for ch in w))
    if unit == "sentences":
        return sum(1 for s in re.split(r"(?<=[.!?])\s+|\n", text) if any(ch.isalnum() for ch in s))
    if unit == "lines":
        return sum(1 for line in text.splitlines() if line.strip())
    if unit == "characters":
        return len(text.strip())
    raise ValueError(f"unknown length unit {unit!r}")


@register_constraint
class LengthConstraint(HardConstraint):
    """At most ceil(n*(1+slack)) or at least floor(n*(1-slack)) units, n counted on the output."""

    name = "length"
    units = ("words", "sentences", "lines", "characters")
    slack = 0.2
    min_at_least = 2

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        slack = float(ctx.extra.get("length_slack", self.slack))
        out = []
        for unit in self.units:
            n = count_units(output, unit)
            if n < 1:
                continue
            hi = math.ceil(n * (1 + slack))
            out.append(self.make(f"Answer in at most {_plural(hi, unit)}.", unit=unit, relation="at_most",
                                 n=hi, observed=n))
            lo = math.floor(n * (1 - slack))
            if lo >= self.min_at_least:
                out.append(self.make(f"Answer in at least {_plural(lo, unit)}.", unit=unit, relation="at_least",
                                     n=lo, observed=n))
        if not out:
            raise NoConstraint("output has no countable words")
        return out

    def check(self, constraint, output, judge=None) -> Check:
        p = constraint.params
        n = count_units(output, p["unit"])
        ok = n <= p["n"] if p["relation"] == "at_most" else n >= p["n"]
        return Check(ok, f"{n} {p['unit']}; needs {p['relation'].replace('_', ' ')} {p['n']}")


# ---------------------------------------------------------------- keyword

STOP_WORDS = frozenset("""
a about above after again against all almost along already also although always am among an and another any
anyone anything are around as at away back be became because become been before being below between both but
by can cannot could did does doing done down during each either else enough even ever every few first for
from further get gets getting give given goes going gone got had has have having he her here hers herself him
himself his how however i if in into is it its itself just keep know last least less let like made make
makes many may me might more most much must my myself need next no none nor not nothing now of off often on
once one only onto or other others our ours ourselves out over own per put quite rather really same second
see seem several shall she should since so some something still such take than that the their theirs them
themselves then there therefore these they thing things this those though through thus to together too
took toward under until up upon us use used using very want was way we well were what whatever when where
whether which while who whole whom whose why will with within without would yes yet you your yours yourself
yourselves answer answers total step steps first second third zero two three four five six seven eight nine
ten hundred thousand
""".split())

EXCLUDE_FALLBACK = ("approximately", "basically", "obviously", "unfortunately", "definitely", "actually",
                    "certainly", "essentially")


def _phrase_re(phrase: str) -> re.Pattern:
    """Case-insensitive whole-word pattern of a word or phrase (any whitespace between its words)."""
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(r"(?<!\w)" + body + r"(?!\w)", re.IGNORECASE)


def has_phrase(text: str, phrase: str) -> bool:
    return bool(phrase.strip()) and _phrase_re(phrase).search(text) is not None


def content_words(text: str, min_len: int = 4) -> list[str]:
    """Lower-cased letter runs of at least `min_len` letters that are not stop-words, in text order."""
    return [w for w in (m.lower() for m in re.findall(r"[^\W\d_]+", text))
            if len(w) >= min_len and w not in STOP_WORDS]


@register_constraint
class KeywordConstraint(HardConstraint):
    """Must include a frequent content word of the output, or must avoid a related word the output lacks
    (a task word, else a filler adverb; never one sharing a stem with an output word, e.g. "sell" vs "sells")."""

    name = "keyword"
    max_include = 2

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        counts = Counter(content_words(re.sub(r"```[^\n`]*", " ", output)))
        ranked = sorted(counts, key=lambda w: (-counts[w], -len(w), w))
        include = [w for w in ranked if has_phrase(output, w)][: self.max_include]
        out = [self.make(f'Include the word "{w}" in your response.', word=w, mode="include") for w in include]
        related = sorted(set(content_words(ctx.task_text)), key=lambda w: (-len(w), w))
        used = {m.lower() for m in re.findall(r"[^\W\d_]+", output)}
        for w in [*related, *EXCLUDE_FALLBACK]:
            stem = w[: max(4, len(w) - 2)]
            if (not has_phrase(output, w) and re.fullmatch(r"[^\W\d_]+", w)
                    and not any(u.startswith(stem) for u in used)):
                out.append(self.make(f'Do not use the word "{w}" in your response.', word=w, mode="exclude"))
                break
        if not out:
            raise NoConstraint("no usable keyword")
        return out

    def check(self, constraint, output, judge=None) -> Check:
        w, mode = constraint.params["word"], constraint.params["mode"]
        found = has_phrase(output, w)
        ok = found if mode == "include" else not found
        return Check(ok, f'"{w}" {"found" if found else "not found"}; mode {mode}')


# ---------------------------------------------------------------- format / structure

NUMBERED_RE = re.compile(r"^[ \t]*(?:step[ \t]*)?\d{1,3}[.):][ \t]+\S", re.IGNORECASE | re.MULTILINE)
BULLET_RE = re.compile(r"^[ \t]*[-*•+][ \t]+\S", re.MULTILINE)


@register_constraint
class NumberedStepsConstraint(HardConstraint):
    """At least N numbered lines ("1.", "2)", "Step 3:"), N counted on the output."""

    name = "numbered_steps"
    min_steps = 2

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        n = len(NUMBERED_RE.findall(output))
        if n < self.min_steps:
            raise NoConstraint(f"output has {n} numbered lines (< {self.min_steps})")
        return [self.make(f"Write your answer as at least {n} numbered steps (1., 2., ...).", min=n)]

    def check(self, constraint, output, judge=None) -> Check:
        n = len(NUMBERED_RE.findall(output))
        return Check(n >= constraint.params["min"], f"{n} numbered lines; needs at least {constraint.params['min']}")


@register_constraint
class BulletListConstraint(HardConstraint):
    """At least N bullet lines ("- ", "* ", "• "), N counted on the output."""

    name = "bullet_list"
    min_items = 2

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        n = len(BULLET_RE.findall(output))
        if n < self.min_items:
            raise NoConstraint(f"output has {n} bullet lines (< {self.min_items})")
        return [self.make(f"Format your answer as a bulleted list with at least {n} items.", min=n)]

    def check(self, constraint, output, judge=None) -> Check:
        n = len(BULLET_RE.findall(output))
        return Check(n >= constraint.params["min"], f"{n} bullet lines; needs at least {constraint.params['min']}")


def count_paragraphs(text: str) -> int:
    return sum(1 for p in re.split(r"\n\s*\n", text) if p.strip())


@register_constraint
class ParagraphsConstraint(HardConstraint):
    """Exactly N (or at most N) paragraphs separated by blank lines."""

    name = "paragraphs"

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        n = count_paragraphs(output)
        if n < 1:
            raise NoConstraint("output has no paragraph")
        one = "Write your answer as a single paragraph, with no blank lines."
        out = [self.make(one if n == 1 else f"Write exactly {n} paragraphs, separated by blank lines.",
                         relation="exactly", n=n)]
        if n >= 2:
            out.append(self.make(f"Write at most {n} paragraphs, separated by blank lines.", relation="at_most", n=n))
        return out

    def check(self, constraint, output, judge=None) -> Check:
        n, p = count_paragraphs(output), constraint.params
        ok = n == p["n"] if p["relation"] == "exactly" else n <= p["n"]
        return Check(ok, f"{_plural(n, 'paragraphs')}; needs {p['relation'].replace('_', ' ')} {p['n']}")


def _norm(s: str) -> str:
    return " ".join(s.split()).casefold()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@register_constraint
class EndsWithConstraint(HardConstraint):
    """The final line begins with the output's own lead-in (up to the first number, e.g. "The answer is"),
    or the response ends with its own last words; phrases never contain digits, so the answer is not leaked."""

    name = "ends_with"
    max_words = 4

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        words = _last_line(output).split()
        out = []
        lead = []
        for w in words[: self.max_words]:
            if any(ch.isdigit() for ch in w):
                break
            lead.append(w)
        if lead:
            phrase = " ".join(lead)
            out.append(self.make(f'End your response with a final line that starts with "{phrase}".',
                                 phrase=phrase, mode="final_line_prefix"))
        tail = []
        for w in reversed(words[-3:]):
            if any(ch.isdigit() for ch in w):
                break
            tail.insert(0, w)
        if tail and sum(ch.isalpha() for ch in "".join(tail)) >= 2:
            phrase = " ".join(tail)
            out.append(self.make(f'End your response with the exact phrase "{phrase}".', phrase=phrase, mode="suffix"))
        if not out:
            raise NoConstraint("final line starts and ends with numbers")
        return out

    def check(self, constraint, output, judge=None) -> Check:
        p = _norm(constraint.params["phrase"])
        if constraint.params["mode"] == "suffix":
            text = _norm(output)
            ok = text == p or text.endswith(" " + p)
            return Check(ok, f"response {'ends' if ok else 'does not end'} with the phrase")
        line = _norm(_last_line(output))
        ok = line.startswith(p) and not (p[-1:].isalnum() and line[len(p): len(p) + 1].isalnum())
        return Check(ok, f"final line {'starts' if ok else 'does not start'} with the phrase")


ANSWER_MARKERS = {
    "boxed": (r"\\boxed\{", "Put your final answer inside \\boxed{}."),
    "hashes": (r"^[ \t]*####", 'Write your final answer on its own line after "####".'),
    "answer_is": (r"\bthe (?:final )?answer is\b", 'State your final answer in the form "The answer is ...".'),
    "answer_colon": (r"\banswer:", 'Give your final answer after "Answer:".'),
}


@register_constraint
class AnswerMarkerConstraint(HardConstraint):
    """The answer is wrapped in a marker the output already uses (\\boxed{}, ####, "The answer is", "Answer:")."""

    name = "answer_marker"

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        out = [self.make(text, marker=m) for m, (pat, text) in ANSWER_MARKERS.items()
               if re.search(pat, output, re.IGNORECASE | re.MULTILINE)]
        if not out:
            raise NoConstraint("output uses no answer marker")
        return out

    def check(self, constraint, output, judge=None) -> Check:
        m = constraint.params["marker"]
        ok = re.search(ANSWER_MARKERS[m][0], output, re.IGNORECASE | re.MULTILINE) is not None
        return Check(ok, f"marker {m} {'found' if ok else 'not found'}")


# ---------------------------------------------------------------- code

def _code_trees(text: str) -> list[ast.AST]:
    """Parsed fenced code blocks of the output (or the whole output when it has no fence)."""
    blocks = re.findall(r"```[^\n`]*\n(.*?)```", text, re.DOTALL) or [text]
    trees = []
    for b in blocks:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trees.append(ast.parse(textwrap.dedent(b)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return trees


def code_names(text: str) -> dict[str, list[str]]:
    """Names the code in `text` defines or calls: functions defined, variables assigned, builtins called."""
    funcs, variables, calls = [], [], []
    for tree in _code_trees(text):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                variables.append(node.id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls.append(node.func.id)
    shadowed = set(funcs) | set(variables)
    builtin_calls = [c for c in calls if hasattr(builtins, c) and not c.startswith("_") and c not in shadowed]
    return {"function": funcs, "variable": variables, "builtin": builtin_calls}


@register_constraint
class CodeNameConstraint(HardConstraint):
    """Code defines a given function, assigns a given variable, or calls a given builtin."""

    name = "code_name"
    min_variable_len = 3
    texts = {"function": "Define a function named `{}`.", "variable": "Use a variable named `{}`.",
             "builtin": "Call the built-in function `{}`."}

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        names = code_names(output)
        def literal(n):
            return re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", output) is not None
        picks = {
            "function": [n for n in names["function"] if literal(n)],
            "variable": [n for n, _ in Counter(names["variable"]).most_common()
                         if len(n) >= self.min_variable_len and literal(n)],
            "builtin": [n for n in names["builtin"] if literal(n)],
        }
        out = [self.make(self.texts[role].format(ns[0]), role=role, name=ns[0]) for role, ns in picks.items() if ns]
        if not out:
            raise NoConstraint("no parseable code with a usable name")
        return out

    def check(self, constraint, output, judge=None) -> Check:
        role, name = constraint.params["role"], constraint.params["name"]
        ok = name in code_names(output)[role]
        return Check(ok, f"{role} `{name}` {'found' if ok else 'not found'} in the code")


HARD_TYPE_NAMES = ("length", "keyword", "numbered_steps", "bullet_list", "paragraphs", "ends_with",
                   "answer_marker", "code_name")
