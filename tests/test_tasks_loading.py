"""Task data loading: the real files load whole; bad files raise one-line InterpErrors naming file and line."""
import gzip
import json

import pytest

from interp.errors import InterpError
from interp.tasks import get_task
from interp.tasks.io import read_jsonl

GSM_ROW = {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}
IRCOT_ROW = {"question_id": "q1", "question_text": "Who?",
             "answers_objects": [{"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": ["Ann"]}],
             "contexts": [{"id": "0", "title": "T", "paragraph_text": "Ann did it.", "is_supporting": True},
                          {"id": "1", "title": "U", "paragraph_text": "Bob did not.", "is_supporting": False}]}
ORIG_ROW = {"_id": "h1", "question": "Who?", "answer": "Ann", "type": "bridge",
            "supporting_facts": [["T", 0]], "context": [["T", ["Ann did ", "it."]], ["U", ["Bob did not."]]]}
HE_ROW = {"task_id": "X/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
          "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def load(name, path, **kw):
    return get_task(name, path=str(path), **kw).items()


def one_line_error(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for n in needles:
        assert str(n) in msg, msg
    return msg


# ---------------------------------------------------------------- real data

def test_real_data_loads_completely():
    for name, n in (("gsm8k", 1319), ("hotpotqa", 500), ("humaneval", 164)):
        try:
            items = get_task(name).items()
        except InterpError as e:
            pytest.skip(str(e))
        assert len(items) == n
        assert len({i.id for i in items}) == n
    hp = get_task("hotpotqa").items()[0]
    assert hp.target == ["Chief of Protocol"] and len(hp.metadata["contexts"]) == 10
    assert any(c["is_supporting"] for c in hp.metadata["contexts"])
    assert get_task("gsm8k").items()[0].target == "18"
    assert get_task("gsm8k").items(n=5, offset=10)[0].id == "gsm8k-10"


# ---------------------------------------------------------------- good custom files

def test_gsm8k_custom_path(tmp_path):
    items = load("gsm8k", write_jsonl(tmp_path / "g.jsonl", [GSM_ROW, {**GSM_ROW, "answer": "x\n#### 1,250"}]))
    assert [i.target for i in items] == ["2", "1250"]


def test_hotpotqa_both_layouts(tmp_path):
    ircot = load("hotpotqa", write_jsonl(tmp_path / "i.jsonl", [IRCOT_ROW]))[0]
    (tmp_path / "o.json").write_text(json.dumps([ORIG_ROW]))
    orig = load("hotpotqa", tmp_path / "o.json")[0]
    orig_jsonl = load("hotpotqa", write_jsonl(tmp_path / "o.jsonl", [ORIG_ROW]))[0]
    assert ircot.target == orig.target == orig_jsonl.target == ["Ann"]
    assert ircot.input == orig.input == "Who?"
    assert [c["title"] for c in orig.metadata["contexts"]] == ["T", "U"]
    assert orig.metadata["contexts"][0] == {"title": "T", "text": "Ann did it.", "is_supporting": True}
    assert ircot.metadata["contexts"] == orig.metadata["contexts"]


def test_humaneval_custom_gz(tmp_path):
    p = tmp_path / "he.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps(HE_ROW) + "\n")
    items = load("humaneval", p)
    assert items[0].id == "X/0" and items[0].target["entry_point"] == "f"


# ---------------------------------------------------------------- bad files

@pytest.mark.parametrize("name,row", [("gsm8k", GSM_ROW), ("hotpotqa", IRCOT_ROW), ("humaneval", HE_ROW)])
def test_malformed_json_line_names_file_and_line(tmp_path, name, row):
    p = write_jsonl(tmp_path / "bad.jsonl", [row, row], extra_lines=['{"question": "oops"', json.dumps(row)])
    with pytest.raises(InterpError) as e:
        load(name, p)
    one_line_error(e, p, ":3:", "malformed JSON")


@pytest.mark.parametrize("name,row,field", [("gsm8k", GSM_ROW, "answer"), ("hotpotqa", IRCOT_ROW, "question_text"),
                                            ("hotpotqa", IRCOT_ROW, "contexts"), ("humaneval", HE_ROW, "test")])
def test_missing_field_names_file_line_and_field(tmp_path, name, row, field):
    broken = {k: v for k, v in row.items() if k != field}
    p = write_jsonl(tmp_path / "bad.jsonl", [row, broken])
    with pytest.raises(InterpError) as e:
        load(name, p)
    one_line_error(e, p, ":2:", repr(field))


def test_missing_nested_field(tmp_path):
    row = {**IRCOT_ROW, "answers_objects": [{"number": ""}]}
    with pytest.raises(InterpError) as e:
        load("hotpotqa", write_jsonl(tmp_path / "bad.jsonl", [row]))
    one_line_error(e, ":1:", "answers_objects.0.spans")
    row = {**IRCOT_ROW, "contexts": [{"title": "T"}]}
    with pytest.raises(InterpError) as e:
        load("hotpotqa", write_jsonl(tmp_path / "bad2.jsonl", [row]))
    one_line_error(e, ":1:", "paragraph_text")


def test_wrong_field_type(tmp_path):
    with pytest.raises(InterpError) as e:
        load("gsm8k", write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": 5}]))
    one_line_error(e, ":1:", "'answer'", "str")


def test_gsm8k_answer_without_gold_line(tmp_path):
    with pytest.raises(InterpError) as e:
        load("gsm8k", write_jsonl(tmp_path / "bad.jsonl", [GSM_ROW, {"question": "q", "answer": "no gold"}]))
    one_line_error(e, ":2:", "####")
    with pytest.raises(InterpError) as e:
        load("gsm8k", write_jsonl(tmp_path / "bad2.jsonl", [{"question": "q", "answer": "#### many"}]))
    one_line_error(e, ":1:", "not a number")


def test_original_hotpotqa_errors_name_the_item(tmp_path):
    (tmp_path / "o.json").write_text(json.dumps([ORIG_ROW, {k: v for k, v in ORIG_ROW.items() if k != "answer"}]))
    with pytest.raises(InterpError) as e:
        load("hotpotqa", tmp_path / "o.json")
    one_line_error(e, "o.json", "item 1", "'answer'")
    (tmp_path / "bad.json").write_text('[{"_id": "x",')
    with pytest.raises(InterpError) as e:
        load("hotpotqa", tmp_path / "bad.json")
    one_line_error(e, "bad.json", "malformed JSON")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(InterpError) as e:
        load("hotpotqa", tmp_path / "empty.json")
    one_line_error(e, "empty.json")


@pytest.mark.parametrize("name", ["gsm8k", "hotpotqa", "humaneval"])
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, name, content):
    p = tmp_path / "empty.jsonl"
    p.write_text(content)
    with pytest.raises(InterpError) as e:
        load(name, p)
    one_line_error(e, p, "empty")


@pytest.mark.parametrize("name", ["gsm8k", "hotpotqa", "humaneval"])
def test_wrong_path(tmp_path, name):
    with pytest.raises(InterpError) as e:
        load(name, tmp_path / "nope.jsonl")
    one_line_error(e, tmp_path / "nope.jsonl", "not found")
    with pytest.raises(InterpError) as e:
        load(name, tmp_path)
    one_line_error(e, tmp_path, "folder")


def test_non_object_line_and_bad_encoding(tmp_path):
    p = write_jsonl(tmp_path / "list.jsonl", [GSM_ROW], extra_lines=["[1, 2]"])
    with pytest.raises(InterpError) as e:
        read_jsonl(p)
    one_line_error(e, ":2:", "JSON object")
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"question": "caf\xe9", "answer": "#### 1"}\n')
    with pytest.raises(InterpError) as e:
        load("gsm8k", p)
    one_line_error(e, p)


def test_default_data_dir_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DATA_DIR", str(tmp_path))
    with pytest.raises(InterpError) as e:
        get_task("gsm8k").items()
    one_line_error(e, tmp_path / "gsm8k" / "test.jsonl", "INTERP_DATA_DIR")
