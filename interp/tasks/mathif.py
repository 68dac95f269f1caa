"""MathIF: 420 math problems (GSM8K, MATH-500, Minerva, OlympiadBench, AIME) with 1-3 IFEval-style constraints.

The prompt is MathIF's (`code/vllm_core.py`): the question, the CoT cue "Let's think step by step and output
the final answer within \\boxed{}." and the constraint sentences, here as separate parts (``task``,
``format``, ``constraint_<i>``) joined by one space (MathIF concatenates them without one) so each is its
own token span. ``constraints=False`` drops the constraint parts: MathIF's "without constraints" run.

Scoring reads the answer phase (after ``</think>``; the run's `phase_scope`), as MathIF does. `success` is the
math answer's correctness, checked with `math-verify` against the gold answer; the constraint verdicts
(IFEval's checkers, strict) are in ``detail`` and give MathIF's hard accuracy (all constraints) and soft
accuracy (share of constraints) per item.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InterpError
from ..prompts import Part
from .base import Item, Score, Task, register_task, select_ids
from .io import get_field, read_jsonl, resolve_path

COT = "Let's think step by step and output the final answer within \\boxed{}."
SOURCES = ("gsm8k", "math500", "minerva", "olympiad", "aime")
N_CONSTRAINTS = {"single": 1, "double": 2, "triple": 3}


def math_correct(gold: str, output: str) -> tuple[bool, str | None]:
    """Whether `output`'s final answer equals `gold` (math-verify: parse both, compare symbolically)."""
    try:
        from math_verify import parse, verify
    except ImportError as e:
        raise InterpError(f"MathIF scoring needs the `math-verify` package ({e}); pip install 'interp[bench]'") from None
    g = parse(gold if "$" in gold or "\\" in gold else f"${gold}$")
    if not g:
        raise InterpError(f"math-verify cannot parse the gold answer {gold!r}")
    p = parse(output)
    return (bool(p) and bool(verify(g, p))), (str(p[-1]) if p else None)


@register_task("mathif")
class MathIF(Task):
    """MathIF from `<data>/mathif/<source>_<single|double|triple>.jsonl` (or `folder=`).

    `source`: one of SOURCES (None = all); `n_constraints`: 1, 2 or 3 (None = all); `constraints=False` for the
    run without constraints; `ids`: only these item ids, in file order."""

    domain = "math"
    max_new_tokens = 1024
    description = "MathIF: 420 math problems with 1-3 IFEval constraints; math-verify + IFEval checkers"

    def __init__(self, folder: str | Path | None = None, source: str | None = None, n_constraints: int | None = None,
                 constraints: bool = True, ids: list[str] | None = None):
        if source is not None and source not in SOURCES:
            raise InterpError(f"mathif source must be one of {SOURCES} (or None), got {source!r}")
        if n_constraints is not None and n_constraints not in (1, 2, 3):
            raise InterpError(f"mathif n_constraints must be 1, 2 or 3 (or None), got {n_constraints!r}")
        if not isinstance(constraints, bool):
            raise InterpError(f"mathif constraints must be true or false, got {constraints!r}")
        self.folder, self.source, self.n_constraints, self.constraints = folder, source, n_constraints, constraints
        self.ids = ids
        self._items: list[Item] | None = None

    def load_items(self) -> list[Item]:
        if self._items is None:
            from ..constraints.ifeval import check_ids

            folder = resolve_path(self.folder, "mathif")
            items = []
            for src in SOURCES if self.source is None else (self.source,):
                for tag, k in N_CONSTRAINTS.items():
                    if self.n_constraints not in (None, k):
                        continue
                    path = folder / f"{src}_{tag}.jsonl"
                    fields = ("id", "question", "answer", "constraint_desc", "constraint_name", "constraint_args")
                    for k_row, (lineno, row) in enumerate(read_jsonl(path, required=fields)):
                        names = get_field(row, "constraint_name", path, lineno, list)
                        descs = get_field(row, "constraint_desc", path, lineno, list)
                        args = get_field(row, "constraint_args", path, lineno, list)
                        if not (len(names) == len(descs) == len(args) == k):
                            raise InterpError(f"{path}:{lineno}: expected {k} constraints in a {tag} file, got "
                                              f"{len(names)} names, {len(descs)} sentences, {len(args)} kwargs")
                        check_ids(names)
                        items.append(Item(
                            id=f"mathif-{src}_{tag}-{k_row}",  # the published `id`s repeat across files
                            input=get_field(row, "question", path, lineno, str).strip(),
                            target=str(get_field(row, "answer", path, lineno, (str, int, float))).strip(),
                            metadata={"source": src, "n_constraints": k, "mathif_id": get_field(row, "id", path, lineno, str), "constraint_desc": descs,
                                      "instruction_id_list": names, "kwargs": [a or {} for a in args],
                                      "prompt": row["question"]}))
            self._items = select_ids(items, self.ids)
        return self._items

    def parts(self, item: Item) -> list[Part]:
        parts = [Part("task", item.input), Part("format", COT, sep=" ")]
        if self.constraints:
            parts += [Part(f"constraint_{i}", d.strip(), sep=" ") for i, d in enumerate(item.metadata["constraint_desc"])]
        return parts

    def score(self, item: Item, output: str) -> Score:
        from ..constraints.ifeval import verify

        ok, pred = math_correct(str(item.target), output)
        m = item.metadata
        verdicts = verify(output, m["instruction_id_list"], m["kwargs"], prompt=m["prompt"], loose=False)
        strict = [v.strict for v in verdicts]
        return Score(success=ok, value=float(ok), prediction=pred,
                     detail={"gold": item.target, "verdicts": [v.to_dict() for v in verdicts],
                             "hard": all(strict), "soft": sum(strict) / len(strict),
                             "constraints_shown": self.constraints})
