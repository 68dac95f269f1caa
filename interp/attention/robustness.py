"""CAS variants for robustness checks: the constraint without its function words, and a length-matched control.

A failed-vs-successful CAS difference could come from one attention-sink token ("the" in layer 4 head 3) or
from attention to any span of that length. `cas_variants` recomputes, by teacher forcing over stored outputs,
the CAS of three span groups in one pass per batch:

- ``constraints``: every ``constraint_<i>`` part (equals the live capture; the pass checks itself by it);
- ``content``: the same tokens minus function words and pure punctuation (`FUNCTION_WORDS`, English);
- ``control``: a contiguous span as long as all constraint tokens together, elsewhere in the prompt (not
  overlapping a constraint, not token 0), drawn with a seed from the prompt, for the ``control_ratio``
  normalisation.

Results are cached as CAS files under ``<run>/cas_tf/robust/`` (resumable, like the teacher-forced reference).
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InterpError
from ..prompts import Prompt, constraint_parts, random_span
from .storage import read_cas, save_cas

# English function words (closed-class: articles, pronouns, prepositions, conjunctions, auxiliaries, particles).
FUNCTION_WORDS = frozenset("""
a an the this that these those each every any some no not all both either neither
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
one ones what which who whom whose
am is are was were be been being do does did doing have has had having will would shall should can could may
might must
of in on at by for with about against between into through during before after above below to from up down out
off over under again further than as per via within without
and or but nor so yet if then else because while whereas although though unless until since
there here where when how why very just only also too more most such own same other
""".split())
_PUNCT = set(string.punctuation) | {"’", "‘", "“", "”", "–", "—", "…"}
GROUPS = ("constraints", "content", "control")


def is_function_token(text: str) -> bool:
    """Whether a decoded token is a function word or only punctuation/whitespace."""
    t = text.strip().lower()
    if not t or all(c in _PUNCT for c in t):
        return True
    return t.strip("".join(_PUNCT)) in FUNCTION_WORDS


def constraint_positions(prompt: Prompt) -> list[int]:
    pos = sorted({p for n in constraint_parts(prompt.spans) for p in range(*prompt.spans[n])})
    if not pos:
        raise InterpError(f"prompt has no constraint_<i> part (parts: {sorted(prompt.spans)})")
    return pos


def content_positions(tokenizer, prompt: Prompt) -> list[int]:
    """Constraint token positions whose token is not a function word or punctuation."""
    return [p for p in constraint_positions(prompt)
            if not is_function_token(tokenizer.decode([prompt.input_ids[p]]))]


def matched_control_positions(prompt: Prompt, seed: int = 0) -> list[int]:
    """A contiguous span as long as the constraint tokens, outside them and past token 0 (seeded by the prompt)."""
    cons = set(constraint_positions(prompt))
    span = random_span(len(prompt.input_ids), len(cons), cons, seed, prompt.input_ids)
    if not span:
        raise InterpError(f"no {len(cons)}-token span outside the constraint in a {len(prompt.input_ids)}-token prompt")
    return list(span)


def _runs(pos: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted positions as half-open contiguous runs."""
    out: list[tuple[int, int]] = []
    for p in sorted(pos):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


def variant_prompt(tokenizer, prompt: Prompt, seed: int = 0) -> tuple[Prompt, dict[str, list[str]]]:
    """`prompt` with synthetic parts for the content and control spans, and the span groups naming them."""
    spans = dict(prompt.spans)
    groups: dict[str, list[str]] = {"constraints": sorted(constraint_parts(spans))}
    for name, pos in (("content", content_positions(tokenizer, prompt)),
                      ("control", matched_control_positions(prompt, seed))):
        groups[name] = []
        for i, (s, e) in enumerate(_runs(pos)):
            spans[f"__{name}_{i}"] = (s, e)
            groups[name].append(f"__{name}_{i}")
    return Prompt(prompt.text, list(prompt.input_ids), spans), groups


def cas_variants(run_dir: str | Path, model, jobs: Sequence[tuple[str, Prompt, Sequence[int]]], seed: int = 0,
                 batch_size: int = 8) -> dict[str, tuple[np.ndarray, list[str], np.ndarray]]:
    """name -> (cas ``[steps, layers, spans, heads]``, span names, span lengths) over `GROUPS` plus the sink and
    prompt spans, for (name, prompt, output ids) jobs; cached under ``<run>/cas_tf/robust/``.

    A content group with no token (a constraint made only of function words) has zero CAS and length 0.
    """
    from ..models.generation import forward_teacher_forced
    from .cas import CASCapture

    root = Path(run_dir) / "cas_tf" / "robust"
    out: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}
    todo = []
    for name, prompt, ids in jobs:
        f = root / "cas" / f"{name}.npz"
        if f.exists():
            out[name] = read_cas(root, f"cas/{name}.npz")
        elif len(ids):
            todo.append((name, prompt, list(ids)))
    todo.sort(key=lambda j: len(j[1].input_ids) + len(j[2]))
    for s in range(0, len(todo), batch_size):
        chunk = todo[s: s + batch_size]
        built = [variant_prompt(model.tokenizer, p, seed) for _, p, _ in chunk]
        outs = [ids for _, _, ids in chunk]
        # part names repeat across rows (__content_0, ...) and a row's mask skips names it lacks, so the union
        # of the rows' groups is every row's own groups
        groups = {g: sorted({n for _, gr in built for n in gr[g]}) for g in GROUPS}
        cap = CASCapture(model.n_layers, model.n_heads, max(len(o) for o in outs), groups)
        _, _, extras = forward_teacher_forced(model, [b[0] for b in built], outs, [cap])
        for (name, _, _), e in zip(chunk, extras):
            save_cas(root, name, e["cas"], e["cas_spans"], e["cas_span_len"])
            out[name] = (np.asarray(e["cas"], np.float32), list(e["cas_spans"]), np.asarray(e["cas_span_len"]))
    return out

