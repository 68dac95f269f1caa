"""Result store: durable appends, no duplicates, a half-written last line is dropped."""
import json

from interp.store import ResultStore, load_records, record_key


def test_keys_are_stable_and_distinct():
    a = record_key(model="m", task="t", item="1", condition="c", config={"x": 1})
    assert a == record_key(config={"x": 1}, condition="c", item="1", task="t", model="m")
    assert a != record_key(model="m", task="t", item="2", condition="c", config={"x": 1})


def test_append_skip_duplicates_and_reload(tmp_path):
    s = ResultStore(tmp_path / "r.jsonl")
    assert s.append({"key": "a", "v": 1})
    assert not s.append({"key": "a", "v": 2})
    s.append({"key": "b", "v": 3})
    s2 = ResultStore(tmp_path / "r.jsonl")
    assert s2.keys() == {"a", "b"} and [r["v"] for r in s2.records()] == [1, 3]
    df = load_records(tmp_path / "r.jsonl")
    assert list(df["v"]) == [1, 3]


def test_half_written_line_is_dropped(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"key": "a", "v": 1}) + "\n" + '{"key": "b", "v"')
    s = ResultStore(p)
    assert s.keys() == {"a"}
    s.append({"key": "b", "v": 2})
    assert [r["key"] for r in ResultStore(p).records()] == ["a", "b"]
