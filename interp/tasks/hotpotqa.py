"""HotpotQA (distractor setting): multi-hop questions over given paragraphs, scored with the official EM/F1.

Loads the IRCoT JSONL layout (`question_id`, `question_text`, `answers_objects[0].spans`, `contexts[]`)
and the original HotpotQA layout (a JSON list, or JSONL, of `_id`, `question`, `answer`, `context`).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from pathlib import Path

from ..errors import InterpError
from ..prompts import Part
from .base import Item, Score, Task, register_task
from .io import get_field, location, read_json, read_jsonl, resolve_path

FORMAT_INSTRUCTION = "Answer with a short phrase, end with 'Answer: X'."

ANSWER_RE = re.compile(r"\banswer\s*(?:is\b\s*[:：]?|[:：])", re.IGNORECASE)


def normalize_answer(s: str) -> str:
    """Official HotpotQA/SQuAD normalization: lowercase, drop punctuation and articles, squeeze spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> float:
    """Official HotpotQA token F1 (yes/no/noanswer must match exactly)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer")) and pred != ref:
        return 0.0
    p_toks, r_toks = pred.split(), ref.split()
    common = sum((Counter(p_toks) & Counter(r_toks)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p_toks), common / len(r_toks)
    return 2 * precision * recall / (precision + recall)


def extract_short_answer(output: str) -> str:
    """The text after the last "Answer:" / "the answer is" (rest of that line), else the last non-empty line."""
    matches = list(ANSWER_RE.finditer(output))
    if matches:
        text = output[matches[-1].end():].strip().split("\n")[0]
    else:
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        text = lines[-1] if lines else ""
    text = text.strip().strip("*_`\"'“”‘’ ").strip()
    return text[:-1].strip() if text.endswith(".") else text


def contains_answer(output: str, gold: str) -> bool:
    """Normalized `gold` occurs in normalized `output` on word boundaries."""
    g = normalize_answer(gold)
    return bool(g) and f" {g} " in f" {normalize_answer(output)} "


def score_short_answer(golds: list[str], output: str, success: str = "em", f1_threshold: float = 0.5) -> Score:
    """EM and F1 of the extracted answer, max over gold aliases; success is EM or F1 >= threshold."""
    pred = extract_short_answer(output)
    em = max((float(exact_match(pred, g)) for g in golds), default=0.0)
    f1 = max((f1_score(pred, g) for g in golds), default=0.0)
    ok = em == 1.0 if success == "em" else f1 >= f1_threshold
    return Score(success=ok, value=em if success == "em" else f1, prediction=pred,
                 detail={"em": em, "f1": f1, "gold": list(golds)})


def lenient_score_short_answer(golds: list[str], output: str) -> Score:
    """Lenient: the extracted answer matches exactly, or a gold answer occurs anywhere in the output."""
    pred = extract_short_answer(output)
    ok = any(exact_match(pred, g) or contains_answer(output, g) for g in golds)
    return Score(success=ok, value=float(ok), prediction=pred, detail={"gold": list(golds)})


def _ircot_item(row: dict, path: Path, where: int | str) -> Item:
    spans: list[str] = []
    for k in range(len(get_field(row, "answers_objects", path, where, list))):
        spans += [str(s) for s in get_field(row, f"answers_objects.{k}.spans", path, where, list)]
    if not spans:
        raise InterpError(f"{location(path, where)}: no gold answer in 'answers_objects[].spans'")
    contexts = []
    for k in range(len(get_field(row, "contexts", path, where, list))):
        contexts.append({"title": str(get_field(row, f"contexts.{k}.title", path, where)),
                         "text": get_field(row, f"contexts.{k}.paragraph_text", path, where, str),
                         "is_supporting": bool(row["contexts"][k].get("is_supporting", False))})
    return Item(id=str(get_field(row, "question_id", path, where)),
                input=get_field(row, "question_text", path, where, str).strip(), target=spans,
                metadata={"contexts": contexts})


def _original_item(row: dict, path: Path, where: int | str) -> Item:
    supporting = {str(sf[0]) for sf in row.get("supporting_facts", []) if isinstance(sf, list) and sf}
    contexts = []
    for k, entry in enumerate(get_field(row, "context", path, where, list)):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            raise InterpError(f"{location(path, where)}: context[{k}] should be [title, [sentences]]")
        title, sentences = entry
        contexts.append({"title": str(title), "text": "".join(str(s) for s in sentences),
                         "is_supporting": str(title) in supporting})
    return Item(id=str(get_field(row, "_id", path, where)), input=get_field(row, "question", path, where, str).strip(),
                target=[str(get_field(row, "answer", path, where))], metadata={"contexts": contexts})


def _is_json_list(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4096).lstrip().startswith(b"[")
    except OSError:
        return False


def load_hotpotqa(path: Path) -> list[Item]:
    """Items from an IRCoT JSONL file or an original HotpotQA JSON list / JSONL file."""
    if _is_json_list(path):
        rows = read_json(path)
        if not isinstance(rows, list) or not rows:
            raise InterpError(f"{path}: expected a non-empty JSON list of HotpotQA questions")
        numbered = [(f"item {k}", r) for k, r in enumerate(rows)]
        for where, r in numbered:
            if not isinstance(r, dict):
                raise InterpError(f"{location(path, where)}: expected a JSON object, got {type(r).__name__}")
    else:
        numbered = read_jsonl(path)
    return [_ircot_item(r, path, w) if "question_text" in r or "question" not in r else _original_item(r, path, w)
            for w, r in numbered]


@register_task("hotpotqa")
class HotpotQA(Task):
    """HotpotQA dev (distractor) from `<data>/hotpotqa/dev_distractor_500.jsonl` or `path=`.

    `context` is "all" (gold + distractor paragraphs), "supporting" or "none"; `success` is "em" or "f1"
    (F1 >= `f1_threshold`).
    """

    domain = "qa"
    max_new_tokens = 128
    description = "HotpotQA multi-hop QA over given paragraphs (distractor setting); official EM/F1"
    default_file = "hotpotqa/dev_distractor_500.jsonl"

    def __init__(self, path: str | Path | None = None, success: str = "em", f1_threshold: float = 0.5,
                 context: str = "all"):
        if success not in ("em", "f1"):
            raise InterpError(f"hotpotqa: success must be 'em' or 'f1', not {success!r}")
        if context not in ("all", "supporting", "none"):
            raise InterpError(f"hotpotqa: context must be 'all', 'supporting' or 'none', not {context!r}")
        self.path, self.success, self.f1_threshold, self.context = path, success, f1_threshold, context
        self._items: list[Item] | None = None

    def load_items(self) -> list[Item]:
        if self._items is None:
            self._items = load_hotpotqa(resolve_path(self.path, self.default_file))
        return self._items

    def context_text(self, item: Item) -> str:
        paras = item.metadata.get("contexts", [])
        if self.context == "supporting":
            paras = [p for p in paras if p["is_supporting"]]
        return "\n\n".join(f"{p['title']}: {p['text'].strip()}" for p in paras)

    def parts(self, item: Item) -> list[Part]:
        parts = [Part("task", f"Question: {item.input}"), Part("format", FORMAT_INSTRUCTION)]
        ctx = self.context_text(item) if self.context != "none" else ""
        return ([Part("context", ctx)] if ctx else []) + parts

    def score(self, item: Item, output: str) -> Score:
        return score_short_answer(item.target, output, self.success, self.f1_threshold)

    def lenient_score(self, item: Item, output: str) -> Score:
        s = lenient_score_short_answer(item.target, output)
        if not s.success and self.success == "f1" and self.score(item, output).success:
            s.success, s.value = True, 1.0
        return s
