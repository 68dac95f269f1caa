"""Outcome typing of a constrained generation: the one definition of `error_type` (a leaf module).

The pipeline stores `error_type` in every constrained record when it scores it; reports read that
stored value and never re-derive it, so a record and its report cannot disagree.
"""
from __future__ import annotations

from typing import Literal, get_args

# The same Literal as interp.records.ErrorType (the record layer sits below this one; a test keeps them equal).
ErrorType = Literal["none", "output_spec", "unfinished_thinking", "truncated", "reasoning"]
ERROR_TYPES: tuple[str, ...] = get_args(ErrorType)


def error_type(success: bool, lenient_success: bool, finish_reason: str, thinking_state: str | None = None) -> ErrorType:
    """none | output_spec (right solution, wrong form) | unfinished_thinking (the output ended inside its thinking
    trace: out of budget while thinking) | truncated (cut at the token budget) | reasoning."""
    if success:
        return "none"
    if lenient_success:
        return "output_spec"
    if thinking_state == "unterminated":
        return "unfinished_thinking"
    return "truncated" if finish_reason == "length" else "reasoning"
