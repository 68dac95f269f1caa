"""IFEval: 541 prompts with 25 verifiable instruction ids, scored by IFEval's own checkers (strict and loose).

IFEval writes its instructions inside the prompt. To let CAS and interventions see them, each instruction is
located as the prompt sentence(s) that name it (`locate_instructions`: id-specific cue words plus the
instruction's own kwargs, e.g. its keyword, number or end phrase); those sentences become ``constraint_<i>``
parts, the rest ``task`` (and ``task_<j>`` for later stretches), so the rendered prompt is IFEval's prompt
character for character (ends stripped). An instruction whose sentence cannot be found is listed in the item's
``metadata["unlocated"]`` (it is still scored), never guessed.

`cue` adds a final sentence for the "When Thinking Fails" measurement: ``"cot"`` (a chain-of-thought
cue) or ``"neutral"`` (a fixed sentence of the same token count, the length control).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InterpError
from ..prompts import Part
from .base import Item, Score, Task, register_task, select_ids
from .io import get_field, read_jsonl, resolve_path

CUES = {
    "cot": "Let's think step by step before writing the response.",
    # same token count as the CoT cue under SmolLM2's tokenizer (tests/test_benchmarks.py checks it)
    "neutral": "The old bridge is made of grey stone and wood.",
}

# id -> cue-word patterns (any match counts once); kwargs add their own literal values below
_CUE_WORDS: dict[str, tuple[str, ...]] = {
    "punctuation:no_comma": (r"\bcommas?\b",),
    "detectable_format:number_highlighted_sections": (r"highlight", r"\bmarkdown\b", r"\*[^*\n]+\*"),
    "length_constraints:number_words": (r"\bwords?\b", r"\blong\b"),
    "length_constraints:number_sentences": (r"\bsentences?\b",),
    "length_constraints:number_paragraphs": (r"\bparagraphs?\b", r"\*\*\*", r"markdown divider"),
    "length_constraints:nth_paragraph_first_word": (r"\bparagraphs?\b", r"\bfirst word\b", r"\bstart with\b"),
    "detectable_content:number_placeholders": (r"placeholders?", r"square brackets?", r"\[[^\]]+\]"),
    "detectable_content:postscript": (r"\bP\.\s?P?\.?\s?S\b", r"postscript"),
    "detectable_format:number_bullet_lists": (r"bullet", r"markdown"),
    "detectable_format:constrained_response": (r"My answer is", r"\boptions?\b"),
    "detectable_format:multiple_sections": (r"\bsections?\b", r"\bparts?\b"),
    "detectable_format:json_format": (r"\bJSON\b", r"\bjson\b"),
    "detectable_format:title": (r"\btitle\b", r"<<"),
    "combination:two_responses": (r"\btwo (?:different )?(?:responses|answers|versions|ways|emails|poems|jokes|"
                                  r"limericks|reviews|names|stories|options|descriptions)", r"\*{6}", r"asterisks"),
    "combination:repeat_prompt": (r"\brepeat", r"word for word"),
    "startend:end_checker": (r"\bend (?:your|it|the|with)", r"\bfinish", r"\bfollowed by\b"),
    "startend:quotation": (r"quotation", r"double quotes?", r"\bquotes?\b", r"\bwrap"),
    "change_case:capital_word_frequency": (r"capital", r"\bupper\s?case\b", r"all caps", r"\bCAPS\b"),
    "change_case:english_capital": (r"capital", r"\bupper\s?case\b", r"all caps", r"\bCAPS\b", r"\bCAPITAL"),
    "change_case:english_lowercase": (r"lower\s?case", r"lower case", r"no capital", r"capital letters"),
    "keywords:existence": (r"\bkeywords?\b", r"\binclude\b", r"\bmention\b", r"\bwords?\b"),
    "keywords:frequency": (r"\btimes\b", r"\bonce\b", r"\btwice\b", r"\bwords?\b", r"\bappear"),
    "keywords:forbidden_words": (r"\bdo not\b", r"\bdon't\b", r"\bavoid\b", r"\bwithout\b", r"\bnot (?:use|include)",
                                 r"\bnever\b"),
    "keywords:letter_frequency": (r"\bletters?\b", r"\btimes\b"),
    "language:response_language": (r"\blanguage\b", r"\bonly\b"),
}
# ids whose cue words alone are too generic: a sentence must also contain one of the instruction's kwargs values
_NEEDS_VALUE = {"keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
                "language:response_language", "startend:end_checker", "length_constraints:nth_paragraph_first_word"}

_SENT_RE = re.compile(r"[^\n]*?(?:[.!?](?=\s|$)|\n|$)")
_ABBREV_END = re.compile(r"(?:\b(?:i\.e|e\.g|etc|vs|Mr|Mrs|Ms|Dr|St|No)\.|\bP\.?P?\.?S\.)$", re.IGNORECASE)


def sentences(text: str) -> list[tuple[int, int]]:
    """Char ranges [a, b) of the sentences of `text` (split after . ! ? before whitespace, and at newlines),
    whitespace excluded, so the ranges with the whitespace between them rebuild `text`."""
    out: list[tuple[int, int]] = []
    for m in _SENT_RE.finditer(text):
        a, b = m.start(), m.end()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and (not out or a >= out[-1][1]):
            if out and _ABBREV_END.search(text[out[-1][0]: out[-1][1]]) and "\n" not in text[out[-1][1]: a]:
                out[-1] = (out[-1][0], b)  # "i.e. *x*" or "P.S. ..." does not end a sentence
            else:
                out.append((a, b))
    return out


def _values(instruction_id: str, kwargs: dict) -> list[str]:
    """The literal strings of an instruction's kwargs that its prompt sentence would repeat."""
    from if_verifiable.ifeval.instructions_util import LANGUAGE_CODES

    vals: list[str] = []
    for k, v in (kwargs or {}).items():
        if v is None or k == "prompt_to_repeat":
            continue
        if k == "language":
            vals.append(LANGUAGE_CODES.get(v, v))
        elif isinstance(v, list):
            vals += [str(x) for x in v]
        elif isinstance(v, int) and not isinstance(v, bool):
            vals.append(str(v))
        elif isinstance(v, str) and k not in ("relation", "let_relation", "capital_relation"):
            vals.append(v)
    return [x for x in vals if x.strip()]


def _number_words(n: int) -> list[str]:
    small = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
             "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
    words = [small[n]] if 0 <= n < len(small) else []
    return words + (["once"] if n == 1 else ["twice"] if n == 2 else [])


def _score(sentence: str, instruction_id: str, kwargs: dict) -> int:
    """How strongly one sentence names one instruction: cue words + kwargs values (0 = not at all)."""
    cues = sum(1 for p in _CUE_WORDS.get(instruction_id, ()) if re.search(p, sentence, re.IGNORECASE))
    hits = 0
    for v in _values(instruction_id, kwargs):
        alts = [v] + (_number_words(int(v)) + ([str(int(v) - 1)] if int(v) > 1 else []) if v.isdigit() else [])
        if any(re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", sentence, re.IGNORECASE) for a in alts):
            hits += 1
    if instruction_id in _NEEDS_VALUE and not hits:
        return 0
    return cues + 2 * hits if cues or hits else 0


@dataclass
class Location:
    """Where the instructions of one prompt are: per instruction index, the sentence ranges naming it."""

    ranges: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    unlocated: list[int] = field(default_factory=list)


def locate_instructions(prompt: str, instruction_ids: list[str], kwargs: list[dict]) -> Location:
    """The best-scoring sentence(s) naming each instruction (ties keep all of them); none when no sentence scores.

    For ``combination:repeat_prompt`` the sentences outside the text to repeat are searched."""
    sents = sentences(prompt)
    loc = Location()
    for i, (iid, kw) in enumerate(zip(instruction_ids, kwargs)):
        cands = sents
        if iid == "combination:repeat_prompt" and (kw or {}).get("prompt_to_repeat"):
            rep = kw["prompt_to_repeat"].strip()
            at = prompt.find(rep)
            if at >= 0:
                cands = [(a, b) for a, b in sents if b <= at or a >= at + len(rep)]
        scored = [(_score(prompt[a:b], iid, kw), (a, b)) for a, b in cands]
        best = max((s for s, _ in scored), default=0)
        if best <= 0:
            loc.unlocated.append(i)
        else:
            loc.ranges[i] = [r for s, r in scored if s == best]
    return loc


def prompt_parts(prompt: str, loc: Location, cue: str | None = None) -> tuple[list[Part], dict[int, list[str]]]:
    """Parts that render `prompt` exactly: located sentences as ``constraint_<k>``, the rest as task parts.

    Returns the parts and, per instruction index, the names of its constraint parts."""
    owner: dict[tuple[int, int], list[int]] = {}
    for i, rs in loc.ranges.items():
        for r in rs:
            owner.setdefault(r, []).append(i)
    cuts = sorted(owner)
    pieces: list[tuple[int, int, bool]] = []
    pos = 0
    for a, b in cuts:
        if a > pos:
            pieces.append((pos, a, False))
        pieces.append((a, b, True))
        pos = b
    if pos < len(prompt):
        pieces.append((pos, len(prompt), False))
    parts: list[Part] = []
    names: dict[int, list[str]] = {}
    prev_end, n_task, n_con = 0, 0, 0
    for a, b, is_con in pieces:
        text = prompt[a:b]
        lead = len(text) - len(text.lstrip())
        core = text.strip()
        if not core:
            continue
        start = a + lead
        sep = prompt[prev_end:start] if parts else "\n\n"
        if is_con:
            name = f"constraint_{n_con}"
            n_con += 1
            for i in owner[(a, b)]:
                names.setdefault(i, []).append(name)
        else:
            name = "task" if n_task == 0 else f"task_{n_task}"
            n_task += 1
        parts.append(Part(name, core, sep=sep))
        prev_end = start + len(core)
    if cue is not None:
        parts.append(Part("cue", CUES[cue], sep="\n\n"))
    return parts, names


def score_instructions(item: Item, output: str) -> Score:
    """IFEval verdicts of one output: success = prompt-level strict; value = instruction-level strict share."""
    from ..constraints.ifeval import verify

    ids, kws = item.metadata["instruction_id_list"], item.metadata["kwargs"]
    verdicts = verify(output, ids, kws, prompt=item.metadata.get("prompt", item.input))
    strict = [v.strict for v in verdicts]
    return Score(success=all(strict), value=sum(strict) / len(strict), prediction=None,
                 detail={"verdicts": [v.to_dict() for v in verdicts], "prompt_loose": all(v.loose for v in verdicts)})


@register_task("ifeval")
class IFEval(Task):
    """IFEval (541 prompts) from `<data>/ifeval/input_data.jsonl` or `path=`; `cue`: None, "cot" or "neutral";
    `ids`: only these item ids (e.g. a stratified subset), in file order."""

    domain = "instruction"
    max_new_tokens = 512
    description = "IFEval: 541 prompts, 25 verifiable instruction ids; IFEval's strict/loose checkers"
    default_file = "ifeval/input_data.jsonl"

    def __init__(self, path: str | Path | None = None, cue: str | None = None, ids: list[str] | None = None):
        if cue is not None and cue not in CUES:
            raise InterpError(f"ifeval cue must be None or one of {sorted(CUES)}, got {cue!r}")
        self.path, self.cue, self.ids = path, cue, ids
        self._items: list[Item] | None = None

    def load_items(self) -> list[Item]:
        if self._items is None:
            from ..constraints.ifeval import check_ids

            path = resolve_path(self.path, self.default_file)
            items = []
            for lineno, row in read_jsonl(path, required=("key", "prompt", "instruction_id_list", "kwargs")):
                raw = get_field(row, "prompt", path, lineno, str)
                prompt = raw.strip()  # chat templates strip the message ends; spans are located on what is shown
                ids = get_field(row, "instruction_id_list", path, lineno, list)
                kws = get_field(row, "kwargs", path, lineno, list)
                if len(ids) != len(kws) or not ids:
                    raise InterpError(f"{path}:{lineno}: {len(ids)} instruction ids but {len(kws)} kwargs")
                check_ids(ids)
                loc = locate_instructions(prompt, ids, kws)
                items.append(Item(id=f"ifeval-{row['key']}", input=prompt, target=None, metadata={
                    "key": row["key"], "prompt": raw, "instruction_id_list": ids, "kwargs": kws,
                    "ranges": {i: [list(r) for r in rs] for i, rs in loc.ranges.items()},
                    "unlocated": [ids[i] for i in loc.unlocated]}))
            self._items = select_ids(items, self.ids)
        return self._items

    def location(self, item: Item) -> Location:
        m = item.metadata
        unl = [i for i, iid in enumerate(m["instruction_id_list"]) if i not in m["ranges"]]
        return Location({int(i): [tuple(r) for r in rs] for i, rs in m["ranges"].items()}, unl)

    def parts(self, item: Item) -> list[Part]:
        return prompt_parts(item.input, self.location(item), self.cue)[0]

    def instruction_parts(self, item: Item) -> dict[int, list[str]]:
        """Per instruction index, the names of the constraint parts that hold it (absent = unlocated)."""
        return prompt_parts(item.input, self.location(item))[1]

    def score(self, item: Item, output: str) -> Score:
        return score_instructions(item, output)
