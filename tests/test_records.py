"""Typed, versioned records: today's files read without loss, writers stamp schema_version, bad records refused."""
import json

import pytest

import interp
from interp.errors import InterpError
from interp.records import SCHEMA_VERSION, AblationRecord, BaselineRecord, ConstrainedRecord, record_type
from interp.rundir import RunDir

OLD_CONSTRAINED = {  # a constrained.jsonl line as written before schema_version existed (format 2 run)
    "key": "k1", "stage": "constrained", "model": "smollm2-135m", "model_label": "smollm2-135m",
    "model_revision": "gguf:x", "task": "smoke_arith", "domain": "math", "item_id": "smoke_arith-3",
    "item_input": "Tom has 2 apples", "seed": 0, "prompt_text": "...", "spans": {"task": [2, 9]},
    "prompt_ids": [1, 2, 3], "output_text": "The answer is 4", "output_ids": [5, 6], "finish_reason": "eos",
    "success": False, "score_value": 0.0, "prediction": "5", "score_detail": {}, "lenient_success": False,
    "gen_config": {"max_new_tokens": 8}, "condition": "single:length_words:ab", "condition_kind": "single",
    "ctype": "length_words", "hardness": "hard", "k": 1, "constraints": [], "insert_texts": ["Use 3 words."],
    "task_text": None, "baseline_key": "b1", "constraint_checks": [], "constraint_met": True,
    "error_type": "reasoning", "cas_file": "cas/k1.npz", "a_future_field": [1, 2]}


def test_an_old_record_reads_as_version_0_and_round_trips():
    r = ConstrainedRecord.from_dict(OLD_CONSTRAINED)
    assert r.schema_version == 0 and r.condition_kind == "single" and r.error_type == "reasoning"
    assert r.extra == {"a_future_field": [1, 2]} and r.thinking_state is None
    d = r.to_dict()
    assert d.pop("schema_version") == SCHEMA_VERSION
    assert d == OLD_CONSTRAINED  # nothing lost, nothing added (absent optional fields stay absent)


@pytest.mark.parametrize("field,value,match", [
    ("condition_kind", "sngle", "condition_kind='sngle'"),
    ("error_type", "spec", "error_type='spec'"),
    ("finish_reason", "timeout", "finish_reason"),
    ("schema_version", SCHEMA_VERSION + 1, "newer"),
])
def test_unknown_kinds_and_newer_schemas_are_refused(field, value, match):
    with pytest.raises(InterpError, match=match):
        ConstrainedRecord.from_dict({**OLD_CONSTRAINED, field: value})


def test_a_record_without_its_key_is_refused():
    with pytest.raises(InterpError, match="missing field"):
        BaselineRecord.from_dict({"stage": "baseline"})
    with pytest.raises(InterpError, match="no record type"):
        record_type("nonsense")


def test_run_directory_stores_check_and_stamp_records(tmp_path):
    rd = RunDir(tmp_path / "run")
    with rd.lock("test"):
        with pytest.raises(InterpError, match="condition_kind"):
            rd.store("constrained").append({**OLD_CONSTRAINED, "condition_kind": "other"})
        assert not rd.stage_path("constrained").exists() or rd.stage_path("constrained").read_text() == ""
        rd.store("constrained").append(OLD_CONSTRAINED)
        rd.store("ablations").append({"key": "a1", "stage": "induce", "role": "control", "success": True})
    line = json.loads(rd.stage_path("constrained").read_text())
    assert line["schema_version"] == SCHEMA_VERSION and line["a_future_field"] == [1, 2]
    (typed,) = rd.typed("constrained")
    assert isinstance(typed, interp.ConstrainedRecord) and typed.baseline_key == "b1"
    (ab,) = rd.typed("ablations")
    assert isinstance(ab, AblationRecord) and ab.stage == "induce" and ab.success
