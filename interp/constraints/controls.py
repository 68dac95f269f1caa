"""Control conditions that take a constraint's place: a length-matched neutral sentence, or a task paraphrase.

They tell the effect of an instruction apart from the effect of any extra text (neutral) or of rewording
the task (paraphrase). Both are deterministic in `seed`.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from .soft import render_template

NEUTRAL_SENTENCES = (
    "The weather report for today was published this morning.",
    "A small bakery on the corner opened its doors early.",
    "The library keeps its older newspapers in the basement.",
    "Several trains left the station before the sun came up.",
    "The garden behind the museum has a quiet stone path.",
    "A gentle breeze moved through the trees near the river.",
    "The town hall clock was repainted during the summer.",
    "Fresh bread and coffee were served in the hotel lobby.",
    "The old bridge is made of grey stone and dark wood.",
    "Children played near the fountain in the central square.",
    "The market sells fruit, flowers and handmade baskets.",
    "Clouds drifted slowly over the hills in the afternoon.",
)


def count_tokens(tokenizer, text: str) -> int:
    """Token count of `text` alone, without special tokens."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _finish(words: list[str]) -> str:
    s = " ".join(words).rstrip(",;:")
    s = s[0].upper() + s[1:]
    return s if s.endswith(".") else s + "."


def neutral_control(constraint_text: str, tokenizer, seed: int = 0) -> str:
    """Neutral filler of about the same token count as `constraint_text` (the closest reachable, normally ±1).

    Words come from a fixed bank of declarative sentences (shuffled by `seed`) and are taken word by word.
    """
    target = count_tokens(tokenizer, constraint_text.strip())
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < target + 4:
        bank = list(NEUTRAL_SENTENCES)
        rng.shuffle(bank)
        words += " ".join(bank).split()
    best: tuple[int, str] | None = None
    for n in range(1, len(words) + 1):
        cand = _finish(words[:n])
        t = count_tokens(tokenizer, cand)
        if best is None or abs(t - target) < best[0]:
            best = (abs(t - target), cand)
        if t > target + 2:
            break
    return best[1]


# ---------------------------------------------------------------- paraphrase

PARAPHRASE_WRAPPERS = (
    "Please solve the following problem: {task}",
    "Here is a problem for you to solve. {task}",
    "Consider the following problem. {task}",
    "{task}\nPlease work out the solution.",
    "Read the problem below and solve it.\n{task}",
)
SYNONYMS = {
    "buys": "purchases", "bought": "purchased", "calculate": "compute", "find": "determine",
    "needs": "requires", "wants": "would like", "begins": "starts", "large": "big", "small": "little",
    "receives": "gets", "earns": "makes", "quickly": "fast",
}
NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
CODE_RE = re.compile(r"^\s*(?:def|class|import|from)\s", re.MULTILINE)


@dataclass
class Paraphrase:
    """A task paraphrase and how it was made ("rule" or "model"), with the reason for a model fallback."""

    text: str
    method: str
    reason: str = ""


def _numbers(text: str) -> Counter:
    return Counter(NUMBER_RE.findall(text))


def rule_paraphrase(task_text: str, seed: int = 0) -> str:
    """Wrap the task in a fixed lead-in and swap a few common words (never numbers, names or code)."""
    rng = random.Random(seed)
    text = task_text.strip()
    if not CODE_RE.search(text):
        chosen = {w: s for w, s in SYNONYMS.items() if rng.random() < 0.5}

        def swap(m: re.Match) -> str:
            w = m.group(0)
            s = chosen[w.lower()]
            return s[0].upper() + s[1:] if w[0].isupper() else s

        if chosen:
            text = re.sub(r"\b(" + "|".join(map(re.escape, chosen)) + r")\b", swap, text,
                          flags=re.IGNORECASE)
    return rng.choice(PARAPHRASE_WRAPPERS).format(task=text)


def _clean_model_paraphrase(raw: str) -> str:
    lines = (raw or "").strip().splitlines()
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):
        lines = lines[1:]
    return "\n".join(lines).strip().strip('"“”').strip()


def paraphrase_task_info(task_text: str, seed: int = 0, generator=None) -> Paraphrase:
    """Model paraphrase (template paraphrase_v1) if a generator is given and its reply keeps every number and a
    sane length; otherwise the rule-based one, with the reason recorded."""
    reason = ""
    if generator is not None:
        conv = [{"role": "user", "content": render_template("paraphrase_v1", task=task_text.strip())}]
        try:
            text = _clean_model_paraphrase(generator.generate_texts([conv], max_new_tokens=512, temperature=0.0,
                                                                    seed=seed)[0])
        except Exception as e:  # noqa: BLE001 - fall back to the rule-based paraphrase
            text, reason = "", f"generator error: {type(e).__name__}: {e}"
        if text:
            ratio = len(text) / max(1, len(task_text))
            if _numbers(text) != _numbers(task_text):
                reason = "model paraphrase changed the numbers"
            elif not 0.5 <= ratio <= 2.0:
                reason = f"model paraphrase length ratio {ratio:.2f} outside 0.5..2"
            elif text.strip() == task_text.strip():
                reason = "model paraphrase is identical to the task"
            else:
                return Paraphrase(text, "model")
        elif not reason:
            reason = "empty model paraphrase"
    return Paraphrase(rule_paraphrase(task_text, seed), "rule", reason)


def paraphrase_task(task_text: str, seed: int = 0, generator=None) -> str:
    """A paraphrase of the task that keeps all numbers and names (see `paraphrase_task_info`)."""
    return paraphrase_task_info(task_text, seed, generator).text
