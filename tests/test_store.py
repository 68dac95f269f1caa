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


def test_readers_never_modify_and_count_bad_lines(tmp_path):
    from interp.store import read_records, scan_records

    p = tmp_path / "r.jsonl"
    text = '{"key": "a", "v": 1}\n{"foo": 1}\n[1, 2]\n{"key": "b"}\nnot json\n{"key": "c", "v"'
    p.write_text(text)
    scan = scan_records(p, required=("key", "v"))
    assert [r["key"] for r in scan.records] == ["a"] and scan.bad_lines == [2, 3, 4, 5] and scan.partial_tail
    assert [r["key"] for r in read_records(p)] == ["a", "b"]
    assert list(load_records(p)["key"]) == ["a", "b"]
    assert p.read_text() == text
