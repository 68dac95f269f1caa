"""Put 1..K constraint sentences into a prompt as their own named parts, so each gets an exact token span.

Layout (K=1):  <task>\\n\\n<connective> <constraint_0>
Layout (K>1):  <task>\\n\\n<connective>\\n<label_0> <constraint_0>\\n<label_1> <constraint_1> ...
where label_i is "1.", "2.", ... The connective and labels are separate parts ("connective", "label_i"), so
the span of "constraint_i" covers only the constraint sentence. Controls (neutral sentence, task paraphrase)
are passed as plain strings and land in the same place.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import InterpError
from ..prompts import Part
from .base import Constraint

POSITIONS = ("after", "before", "system")
DEFAULT_CONNECTIVES = {
    ("after", False): "Additionally, follow this constraint:",
    ("after", True): "Additionally, follow these constraints:",
    ("before", False): "Follow this constraint in your answer:",
    ("before", True): "Follow these constraints in your answer:",
    ("system", False): "Always follow this constraint:",
    ("system", True): "Always follow these constraints:",
}


def constraint_parts(texts: Sequence[str], role: str, connective: str) -> list[Part]:
    """The connective, then one part per constraint (numbered with label parts when there are several)."""
    parts = [Part("connective", connective, role=role, sep="\n\n")]
    if len(texts) == 1:
        return parts + [Part("constraint_0", texts[0], role=role, sep=" ")]
    for i, t in enumerate(texts):
        parts += [Part(f"label_{i}", f"{i + 1}.", role=role, sep="\n"), Part(f"constraint_{i}", t, role=role, sep=" ")]
    return parts


def insert_constraints(task_parts: Sequence[Part], constraints: Sequence[Constraint | str], position: str = "after",
                       connective: str | None = None, task_part: str = "task") -> list[Part]:
    """Return `task_parts` with the constraints inserted after/before the task part or in the system message.

    `connective` overrides the fixed default wording (see DEFAULT_CONNECTIVES). With position="system" the
    constraints go after any existing system parts, or form the system message; note that a chat template's
    default system prompt (e.g. SmolLM2's) is then replaced, so pass it as a system part to keep it.
    """
    if position not in POSITIONS:
        raise InterpError(f"unknown constraint position {position!r}; use one of {', '.join(POSITIONS)}")
    texts = [(c.text if isinstance(c, Constraint) else str(c)).strip() for c in constraints]
    if any(not t for t in texts):
        raise InterpError("a constraint sentence is empty; drop it before inserting")
    parts = list(task_parts)
    if not texts:
        return parts
    names = [p.name for p in parts]
    idx = next((i for i, n in enumerate(names) if n == task_part), None)
    if idx is None:
        raise InterpError(f"no prompt part named {task_part!r} to insert constraints next to (parts: {names})")
    role = "system" if position == "system" else parts[idx].role
    new = constraint_parts(texts, role, (connective or DEFAULT_CONNECTIVES[(position, len(texts) > 1)]).strip())
    clash = {p.name for p in new} & set(names)
    if clash:
        raise InterpError(f"prompt already has parts named {sorted(clash)}; insert constraints only once")
    if position == "after":
        return parts[: idx + 1] + new + parts[idx + 1:]
    if position == "before":
        return parts[:idx] + new + parts[idx:]
    last_sys = max((i for i, p in enumerate(parts) if p.role == "system"), default=-1)
    return parts[: last_sys + 1] + new + parts[last_sys + 1:]
