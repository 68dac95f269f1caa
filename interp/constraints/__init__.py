"""Constraints: typed, self-evident instructions derived from outputs. Importing this registers all types."""
from .base import (CONSTRAINT_TYPES, Check, Constraint, ConstraintType, ProposeContext, get_constraint_type,
                   register_constraint)
from .hard import HARD_TYPE_NAMES, HardConstraint, NoConstraint, code_names, count_units
from .soft import SOFT_TYPE_NAMES, SoftConstraintType, check_many, load_template, parse_instruction, parse_yes_no
from .extract import (Candidate, accepted_constraints, default_types, extract_constraints, extract_constraints_many,
                      filter_self_evident, filter_self_evident_many, propose_candidates, propose_candidates_many,
                      sample_constraint_set)
from .insert import DEFAULT_CONNECTIVES, POSITIONS, insert_constraints
from .controls import Paraphrase, neutral_control, paraphrase_task, paraphrase_task_info, rule_paraphrase
from . import ifeval  # noqa: F401,E402  (registers the `ifeval` constraint type: IFEval's vocabulary)

__all__ = [
    "CONSTRAINT_TYPES", "Check", "Constraint", "ConstraintType", "ProposeContext", "get_constraint_type",
    "register_constraint", "HARD_TYPE_NAMES", "HardConstraint", "NoConstraint", "code_names", "count_units",
    "SOFT_TYPE_NAMES", "SoftConstraintType", "check_many", "load_template", "parse_instruction", "parse_yes_no",
    "Candidate", "accepted_constraints", "default_types", "extract_constraints", "extract_constraints_many",
    "filter_self_evident", "filter_self_evident_many", "propose_candidates", "propose_candidates_many",
    "sample_constraint_set", "DEFAULT_CONNECTIVES", "POSITIONS", "insert_constraints", "Paraphrase",
    "neutral_control", "paraphrase_task", "paraphrase_task_info", "rule_paraphrase",
]
