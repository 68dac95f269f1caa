"""Soft constraints (method, style, structure): an extractor model writes them, a judge model checks them.

Prompts are versioned templates in `templates/` (`extract_<type>_v1.txt`, `judge_v1.txt`) filled with
`string.Template` ($task, $output, $constraint), so braces in outputs are harmless. The extractor is any
`TextGenerator`, taken from `ctx.extra["extractor"]`; a judge is passed to `check`. Failures never stop a run:
`propose` raises `NoConstraint(reason)` (empty/garbage reply, generator exception) and `check` returns a
failed Check whose reason starts with "judge error:" or "judge answer unparseable".
"""
from __future__ import annotations

import re
import string
from functools import lru_cache
from importlib import resources
from typing import Sequence

from ..errors import InterpError
from .base import Check, Constraint, ConstraintType, ProposeContext, register_constraint
from .hard import NoConstraint

REFUSAL_RE = re.compile(r"\b(sorry|as an ai|i cannot|i can't|i am unable|i'm unable)\b", re.IGNORECASE)
LABEL_RE = re.compile(r"^(?:instruction|sentence|answer|constraint|output)\s*:\s*", re.IGNORECASE)
NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
JUDGE_MAX_NEW_TOKENS = 8


@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """Text of `templates/<name>.txt` (e.g. "judge_v1"), read as package data."""
    path = resources.files(__package__) / "templates" / f"{name}.txt"
    if not path.is_file():
        raise InterpError(f"no prompt template {name!r} in interp/constraints/templates/")
    return path.read_text(encoding="utf-8")


def render_template(name: str, **fields: str) -> str:
    return string.Template(load_template(name)).safe_substitute(fields).strip()


def parse_instruction(raw: str | None, min_words: int = 4, max_words: int = 40,
                      max_chars: int = 300) -> tuple[str | None, str]:
    """Clean an extractor reply into one instruction sentence; return (sentence, "ok") or (None, reason)."""
    if raw is None or not str(raw).strip():
        return None, "empty extractor reply"
    line = ""
    for cand in str(raw).splitlines():
        cand = LABEL_RE.sub("", cand.strip())
        cand = re.sub(r"^(?:[-*•]\s+|\d+[.)]\s+)", "", cand)
        cand = cand.strip().strip("\"'`*“”‘’ ").strip()
        if cand:
            line = cand
            break
    if not line:
        return None, "empty extractor reply"
    m = re.match(r"(.+?[.!?])\s+[A-Z]", line)
    if m:
        line = m.group(1)
    if not re.search(r"[A-Za-z]{2}", line):
        return None, f"garbage extractor reply: {line[:60]!r}"
    if REFUSAL_RE.search(line):
        return None, f"extractor refused: {line[:60]!r}"
    n = len(line.split())
    if n < min_words:
        return None, f"extractor reply too short ({n} words)"
    if n > max_words or len(line) > max_chars:
        return None, f"extractor reply too long ({n} words, {len(line)} chars)"
    line = line[0].upper() + line[1:]
    if line[-1] not in ".!?":
        line += "."
    return line, "ok"


def parse_yes_no(raw: str | None) -> bool | None:
    """True for Yes, False for No, None when the answer is neither (first word, else a lone yes/no)."""
    words = re.findall(r"[a-z]+", (raw or "").lower())
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return words[0] == "yes"
    found = {w for w in words if w in ("yes", "no")}
    return (found == {"yes"}) if len(found) == 1 else None


class SoftConstraintType(ConstraintType):
    """A constraint written by an extractor model from a versioned template and checked by a judge model."""

    kind = "soft"
    version = "v1"
    judge_template = "judge_v1"
    max_new_tokens = 80
    reject_new_numbers = False

    @property
    def template(self) -> str:
        return f"extract_{self.name}_{self.version}"

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        res = self.propose_many([output], [ctx], ctx.extra.get("extractor"))[0]
        if isinstance(res, NoConstraint):
            raise res
        return res

    def propose_many(self, outputs: Sequence[str], ctxs: Sequence[ProposeContext],
                     extractor) -> list[list[Constraint] | NoConstraint]:
        """One extractor call for a batch; each item gets its constraint or a NoConstraint with the reason."""
        if extractor is None:
            return [NoConstraint("no extractor given (ctx.extra['extractor'])") for _ in outputs]
        convs = [[{"role": "user", "content": render_template(self.template, task=c.task_text, output=o)}]
                 for o, c in zip(outputs, ctxs)]
        try:
            replies = extractor.generate_texts(convs, max_new_tokens=self.max_new_tokens, temperature=0.0,
                                               seed=ctxs[0].seed if ctxs else 0)
        except Exception as e:  # noqa: BLE001 - any backend failure (timeout, HTTP) only loses this constraint
            return [NoConstraint(f"extractor error: {type(e).__name__}: {e}") for _ in outputs]
        if len(replies) != len(outputs):
            return [NoConstraint(f"extractor returned {len(replies)} replies for {len(outputs)}") for _ in outputs]
        return [self._constraint(r, c, extractor) for r, c in zip(replies, ctxs)]

    def _constraint(self, reply: str, ctx: ProposeContext, extractor) -> list[Constraint] | NoConstraint:
        text, reason = parse_instruction(reply)
        if text is None:
            return NoConstraint(reason)
        if self.reject_new_numbers:
            new = set(NUMBER_RE.findall(text)) - set(NUMBER_RE.findall(ctx.task_text))
            if new:
                return NoConstraint(f"extractor sentence mentions numbers not in the task {sorted(new)} "
                                    "(possible answer leak)")
        return [Constraint(type=self.name, kind=self.kind, text=text,
                           params={"template": self.template, "judge_template": self.judge_template,
                                   "extractor": getattr(extractor, "model_id", ""), "raw": reply})]

    def check(self, constraint: Constraint, output: str, judge=None) -> Check:
        return check_many([constraint], [output], judge)[0]


def check_many(constraints: Sequence[Constraint], outputs: Sequence[str], judge) -> list[Check]:
    """Ask `judge` whether each output follows its soft constraint; one batched call per judge template."""
    if judge is None:
        raise InterpError("soft constraints need a judge model: pass judge=<TextGenerator> to check them")
    checks: list[Check | None] = [None] * len(constraints)
    by_template: dict[str, list[int]] = {}
    for i, c in enumerate(constraints):
        by_template.setdefault(c.params.get("judge_template", "judge_v1"), []).append(i)
    for tpl, idx in by_template.items():
        convs = [[{"role": "user", "content": render_template(tpl, constraint=constraints[i].text,
                                                              output=outputs[i])}] for i in idx]
        try:
            replies = judge.generate_texts(convs, max_new_tokens=JUDGE_MAX_NEW_TOKENS,
                                           temperature=0.0, seed=0)
        except Exception as e:  # noqa: BLE001 - recorded on the Check, the run goes on
            for i in idx:
                checks[i] = Check(False, f"judge error: {type(e).__name__}: {e}")
            continue
        for i, raw in zip(idx, replies):
            verdict = parse_yes_no(raw)
            if verdict is None:
                checks[i] = Check(False, "judge answer unparseable", judge_output=raw)
            else:
                checks[i] = Check(verdict, f"judge said {'Yes' if verdict else 'No'}", judge_output=raw)
    return [c if c is not None else Check(False, "judge error: missing reply") for c in checks]


@register_constraint
class MethodConstraint(SoftConstraintType):
    """How the output solves the task ("Solve it by ..."); sentences with new numbers are rejected as leaks."""

    name = "method"
    reject_new_numbers = True


@register_constraint
class StyleConstraint(SoftConstraintType):
    """The output's tone/register/person ("Write in ...")."""

    name = "style"


@register_constraint
class StructureConstraint(SoftConstraintType):
    """How the output is organised ("Structure your response as ...")."""

    name = "structure"


SOFT_TYPE_NAMES = ("method", "style", "structure")
