"""The run viewer (`interp view`) in a real browser: headless Debian Chromium driven by Playwright.

A hand-written run directory (records written through `RunDir.store`, so they pass the typed schema; real
prompts, spans and token ids of the embedded tokenizer; CAS arrays with known values) is served and exported;
every check recomputes what the page should show from the files themselves. One slow test opens a real run of
the embedded model.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest

from interp.attention.storage import save_cas
from interp.constraints import Constraint, insert_constraints
from interp.errors import InterpError
from interp.experiments.config import SustainConfig
from interp.prompts import build_prompt
from interp.rundir import RunDir
from interp.store import read_records, record_key
from interp.tasks import get_task

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
HOSTILE = ('<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned=\'img\'">'
           '<svg onload="window.__pwned=\'svg\'"></svg>')
HOSTILE_TYPE = 'kw<img src=y onerror="window.__pwned=\'ctype\'">'
THINK = "<think>Let me <b>think</b> it over.</think>"
SPANS = ["task", "constraint_0", "constraints", "__sink__", "__prompt__"]
L, H = 4, 3


def _tree(d: Path) -> dict[str, str]:
    """Every file under `d` with a hash of its bytes and its mtime (what "read-only" must leave unchanged)."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() + f"@{p.stat().st_mtime_ns}"
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    """4 items (3 solved at baseline); per solved item: keyword, length and a hostile-named type (K=1), a K=2 set
    and a neutral control; CAS [steps, 4 layers, spans, 3 heads] from a seeded generator; two ablation arms."""
    from interp.models.loading import load_tokenizer

    d = tmp_path_factory.mktemp("viewer_run")
    tok = load_tokenizer()
    task = get_task("smoke_arith")
    rng = np.random.default_rng(7)
    gen = {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stop": []}
    rd = RunDir(d)
    with rd.lock():
        rd.claim(SustainConfig(task="smoke_arith", n_items=4, k_values=[2], controls=["neutral"]))
        base_store, con_store, ab_store = rd.store("baseline"), rd.store("constrained"), rd.store("ablations")
        n = 0
        for i, it in enumerate(task.items(4)):
            bp = build_prompt(tok, task.parts(it))
            out = f"{it.input.split('.')[0]}. The answer is {it.target}." if i < 3 else THINK + "I do not know."
            ids = tok.encode(out, add_special_tokens=False)
            bkey = record_key(stage="baseline", item=it.id)
            n_think = len(tok.encode(THINK, add_special_tokens=False))
            thinking = {} if i < 3 else {
                "thinking_state": "complete", "thinking_text": THINK[7:-8], "answer_text": "I do not know.",
                "phase_ranges": {"thinking": [0, n_think], "answer": [n_think, len(ids)]}, "thinking_tokens": n_think}
            if i < 3:
                cands = [{"type": "keyword", "constraint": {"text": 'Include the word "answer".'}, "accepted": True,
                          "reason": "present"},
                         {"type": "length", "constraint": {"text": "Answer in 2 words."}, "accepted": False,
                          "reason": "<b>9 words</b>"}]
                rd.store("constraints").append({"key": record_key(cands=it.id), "item_id": it.id, "baseline_key": bkey,
                                                "candidates": cands, "n_proposed": 2, "n_accepted": 1})
            base_store.append({**thinking, "key": bkey, "stage": "baseline", "model": "smollm2-135m", "task": "smoke_arith",
                               "domain": "math", "item_id": it.id, "item_input": it.input, "prompt_text": bp.text,
                               "spans": {k: list(v) for k, v in bp.spans.items()}, "prompt_ids": bp.input_ids,
                               "output_text": out, "output_ids": ids, "finish_reason": "eos", "success": i < 3,
                               "lenient_success": i < 3, "score_value": float(i < 3), "gen_config": gen})
            if i >= 3:
                continue
            conds = [("keyword", 'Include the word "answer".', "single", 1),
                     ("length", "Answer in at most 30 words.", "single", 1),
                     (HOSTILE_TYPE, "Say " + HOSTILE, "single", 1),
                     ("mixed", "Include the word \"answer\". Answer in at most 30 words.", "set", 2),
                     ("neutral", "Please read the question carefully.", "control", 1)]
            for j, (ctype, text, kind, k) in enumerate(conds):
                c = Constraint("keyword" if ctype == HOSTILE_TYPE else ctype if kind == "single" else "keyword",
                               "hard", text, {"words": ["answer"]})
                p = build_prompt(tok, insert_constraints(task.parts(it), [c]))
                ok = (i + j) % 3 != 0
                met = None if kind == "control" else (i + j) % 2 == 0
                o = (HOSTILE + f" café 🙂 — the answer is {it.target}.") if ctype == HOSTILE_TYPE else \
                    f"Step {j}: the answer is {it.target if ok else 0}."
                oid = tok.encode(o, add_special_tokens=False)
                key = record_key(stage="constrained", item=it.id, cond=j)
                cas = rng.random((len(oid), L, len(SPANS), H)).astype(np.float32)
                n += 1
                con_store.append({
                    "key": key, "stage": "constrained", "model": "smollm2-135m", "task": "smoke_arith",
                    "domain": "math", "item_id": it.id, "item_input": it.input, "prompt_text": p.text,
                    "spans": {k_: list(v) for k_, v in p.spans.items()}, "prompt_ids": p.input_ids, "output_text": o,
                    "output_ids": oid, "finish_reason": "eos" if ok or j % 2 else "length", "success": ok,
                    "lenient_success": ok or j == 1, "score_value": float(ok), "gen_config": gen,
                    "cas_file": save_cas(d, key, cas, SPANS, [20, 8, 8, 1, 80]),
                    "condition": f"{kind}:{ctype}" if kind != "set" else "set:k2", "condition_kind": kind,
                    "ctype": ctype, "hardness": "control" if kind == "control" else "hard", "k": k,
                    "constraints": [] if kind == "control" else [c.to_dict()], "baseline_key": bkey,
                    "constraint_checks": [] if met is None else [{"ok": met, "reason": "scripted"}],
                    "constraint_met": met,
                    "error_type": "none" if ok else ("truncated" if (i + j) % 2 else "reasoning")})
                if i == 0 and j == 0:
                    for arm, role in (("none", "none"), ("knockout:constraints:all", "main")):
                        ab_store.append({"key": record_key(ab=arm, base=key), "stage": "rescue", "arm": arm,
                                         "role": role, "base_key": key, "baseline_key": bkey, "item_id": it.id,
                                         "condition": f"{kind}:{ctype}", "output_text": f"{arm} output {it.target}",
                                         "success": arm != "none", "base_success": ok, "flipped": arm != "none",
                                         "cas": {"constraints": [[0.1] * H] * L}})
    return d


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip("no /usr/bin/chromium: run scripts/setup.sh (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(hand_run):
    from interp.viewer import view

    before = _tree(hand_run)
    v = view(hand_run)
    yield v
    v.stop()
    assert _tree(hand_run) == before, "the viewer wrote into the run directory"


class Page:
    """A browser page that records console messages, page errors and every request.

    The page's Content-Security-Policy is bypassed: the driver's waits need eval, and the text-only rule must hold
    without that second line of defence (a test of its own checks the policy is sent)."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        self.console: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)

    def go(self, hash_: str, wait: str):
        self.page.evaluate(f"location.hash = {json.dumps(hash_)}")
        self.page.wait_for_selector(wait, timeout=60000)

    def total(self) -> int:
        self.page.wait_for_function("document.querySelector('#count') && document.body.dataset.view === 'records'")
        return int(self.page.get_attribute("#count", "data-total"))

    def listed_keys(self) -> list[str]:
        return self.page.eval_on_selector_all("#records tbody tr", "rs => rs.map(r => r.dataset.key)")


def _con(d: Path) -> pd.DataFrame:
    return pd.DataFrame(read_records(d / "constrained.jsonl"))


def _wait_list(pg: Page, before: str | None = None):
    """Wait until the list shows a new answer (its count text changed)."""
    pg.page.wait_for_function("b => { const c = document.querySelector('#count'); return c && c.textContent !== b; }",
                              arg=before)


def test_table_cell_click_reaches_its_records(browser, served, hand_run):
    from interp.experiments.report import load_run, sustain_tables

    tables = sustain_tables(load_run(hand_run))
    assert served.state.get_tables()["mismatches"] == []
    pg = Page(browser, served.url + "#/report")
    pg.page.wait_for_selector("a.cell", timeout=120000)
    con = _con(hand_run)
    # by constraint type, row "length", column n: the K=1 records of that type
    row = tables["by_type"].reset_index(drop=True)
    i = int(row.index[row["group"] == "length"][0])
    cell = pg.page.locator(f'a.cell[data-table="by_type"][data-row="{i}"][data-col="n"]')
    assert cell.text_content() == str(int(row.loc[i, "n"]))
    cell.click()
    want = con[(con.condition_kind == "single") & (con.ctype == "length")]
    assert pg.total() == len(want) == int(row.loc[i, "n"])
    assert sorted(pg.listed_keys()) == sorted(want.key)
    # failure analysis: (keyword, reasoning) failures
    pg.go("#/report", "a.cell")
    err = tables["errors"].set_index("ctype")
    cell = pg.page.locator('a.cell[data-table="errors"][data-col="reasoning"]').nth(list(err.index).index("keyword"))
    cell.click()
    want = con[(con.condition_kind != "control") & ~con.success & (con.ctype == "keyword") &
               (con.error_type == "reasoning")]
    assert pg.total() == len(want) == int(err.loc["keyword", "reasoning"]) > 0
    assert sorted(pg.listed_keys()) == sorted(want.key)
    # a row of the list opens its item with that record's card in focus, baseline beside it
    key = pg.listed_keys()[0]
    pg.page.click(f'#records tbody tr[data-key="{key}"]')
    pg.page.wait_for_selector(".card.focus")
    assert pg.page.get_attribute(".card.focus", "data-key") == key
    assert pg.page.locator('.card[data-stage="baseline"]').count() == 1
    assert not [m for m in pg.console if m.startswith(("error", "pageerror"))], pg.console


def test_token_view_shows_the_stored_cas(browser, served, hand_run):
    con = _con(hand_run)
    rec = con[con.ctype == "keyword"].iloc[0]
    with np.load(hand_run / rec.cas_file) as z:
        cas, spans = z["cas"], list(z["spans"])
    x = cas[:, :, spans.index("constraints"), :]
    pg = Page(browser, served.url + f"#/tokens?key={rec.key}")
    pg.page.wait_for_selector("#tokens .tok", timeout=60000)

    def shown():
        return np.array(pg.page.eval_on_selector_all("#tokens .tok", "ts => ts.map(t => +t.dataset.value)"))

    np.testing.assert_allclose(shown(), x.mean(axis=(1, 2)), rtol=1e-6)  # default: mean over layers and heads
    pg.page.select_option("#pick-layer", "2")
    pg.page.wait_for_function("location.hash.includes('layer=2') && document.querySelector('#tokens .tok')")
    pg.page.wait_for_selector("#pick-layer >> nth=0")
    np.testing.assert_allclose(shown(), x[:, 2, :].mean(axis=1), rtol=1e-6)
    pg.page.select_option("#pick-head", "1")
    pg.page.wait_for_function("location.hash.includes('head=1')")
    pg.page.wait_for_selector("#tokens .tok")
    np.testing.assert_allclose(shown(), x[:, 2, 1], rtol=1e-6)
    pg.page.select_option("#pick-span", "task")
    pg.page.wait_for_function("location.hash.includes('span=task')")
    pg.page.wait_for_selector("#tokens .tok")
    np.testing.assert_allclose(shown(), cas[:, 2, spans.index("task"), 1], rtol=1e-6)
    toks = pg.page.eval_on_selector_all("#tokens .tok", "ts => ts.map(t => t.textContent)")
    assert "".join(toks) == rec.output_text and len(toks) == len(rec.output_ids)
    pg.page.wait_for_selector("#curve .main-svg")  # the step curve is drawn (plotly.js loaded on demand)


def test_filters_and_search_narrow_the_list(browser, served, hand_run):
    con = _con(hand_run)
    pg = Page(browser, served.url + "#/records")
    assert pg.total() == len(con)
    prev = pg.page.text_content("#count")
    pg.page.select_option("#f-outcome", "failure")
    _wait_list(pg, prev)
    fail = con[~con.success]
    assert pg.total() == len(fail) and sorted(pg.listed_keys()) == sorted(fail.key)
    prev = pg.page.text_content("#count")
    pg.page.select_option("#f-error_type", "truncated")
    _wait_list(pg, prev)
    want = fail[fail.error_type == "truncated"]
    assert 0 < pg.total() == len(want) < len(fail) and sorted(pg.listed_keys()) == sorted(want.key)
    prev = pg.page.text_content("#count")
    pg.page.select_option("#f-k", "2")
    _wait_list(pg, prev)
    assert pg.total() == int((want.k == 2).sum())
    pg.page.click("#f-clear")
    pg.page.wait_for_function("!location.hash.includes('outcome')")
    prev = pg.page.text_content("#count")
    pg.page.fill("#f-q", "STEP 1:")
    pg.page.press("#f-q", "Enter")
    _wait_list(pg, prev)
    want = con[con.output_text.str.lower().str.contains("step 1:", regex=False)]
    assert 0 < pg.total() == len(want) and sorted(pg.listed_keys()) == sorted(want.key)


def _assert_inert(pg: Page):
    """Nothing from the run ran: no flag set by a script/handler, no element made from stored text."""
    assert pg.page.evaluate("window.__pwned") is None
    assert pg.page.locator("main img, main script, main .text svg, main .tok svg, main table svg, main .card svg, "
                           "header img, header svg").count() == 0
    assert not [m for m in pg.console if "pwned" in m or m.startswith("pageerror")], pg.console


def test_hostile_output_is_shown_as_text_and_runs_nothing(browser, served, hand_run):
    con = _con(hand_run)
    rec = con[con.ctype == HOSTILE_TYPE].iloc[0]
    pg = Page(browser, served.url + "#/report")
    pg.page.wait_for_selector("a.cell", timeout=60000)
    assert HOSTILE_TYPE in pg.page.text_content('section[data-table="by_type"]')  # the type name, as text
    _assert_inert(pg)
    pg.go("#/records?" + urlencode({"ctype": HOSTILE_TYPE}), "#records tbody tr")
    assert pg.total() == int((con.ctype == HOSTILE_TYPE).sum())
    assert HOSTILE[:40] in pg.page.text_content("#records")
    pg.go("#/item?" + urlencode({"item_id": rec.item_id, "focus": rec.key}), ".card.focus")
    pg.page.click(".card.focus details summary")
    out = pg.page.locator(".card.focus .output").text_content()
    assert out == rec.output_text  # exactly the stored text, tags and all
    assert HOSTILE in pg.page.locator(".card.focus .prompt").text_content()
    assert pg.page.locator(".card.focus .prompt mark.part-constraint").text_content() == "Say " + HOSTILE
    pg.page.wait_for_timeout(300)  # an onerror/onload handler would have fired by now
    _assert_inert(pg)
    pg.go(f"#/tokens?key={rec.key}", "#tokens .tok")
    assert pg.page.text_content("#tokens") == rec.output_text
    _assert_inert(pg)


def test_item_view_shows_ablation_arms_candidates_and_phases(browser, served, hand_run):
    con = _con(hand_run)
    ab = pd.DataFrame(read_records(hand_run / "ablations.jsonl"))
    base_key = ab.base_key.iloc[0]
    rec = con.set_index("key").loc[base_key]
    pg = Page(browser, served.url + "#/item?" + urlencode({"item_id": rec.item_id, "focus": base_key}))
    pg.page.wait_for_selector(f'.cards.ablation[data-base="{base_key}"] .arm', timeout=60000)
    arms = pg.page.eval_on_selector_all(f'.cards.ablation[data-base="{base_key}"] .arm',
                                        "as => as.map(a => [a.dataset.arm, a.querySelector('.output').textContent])")
    assert sorted(map(tuple, arms)) == sorted(zip(ab.arm, ab.output_text))
    pg.page.click("#candidates summary")
    rows = pg.page.eval_on_selector_all("#candidates tbody tr", "rs => rs.map(r => r.textContent)")
    assert len(rows) == 2 and "<b>9 words</b>" in rows[1] and "rejected" in rows[1]
    base = pd.DataFrame(read_records(hand_run / "baseline.jsonl"))
    think = base[base.thinking_state.notna()].iloc[0]
    pg.go("#/item?" + urlencode({"item_id": think.item_id}), ".card .thinking")
    assert pg.page.text_content(".card .thinking") == think.thinking_text
    assert pg.page.text_content(".card .answer") == think.answer_text
    _assert_inert(pg)


def test_export_opens_offline_with_the_same_answers(browser, served, hand_run, tmp_path):
    from interp.viewer import export_html

    out = export_html(hand_run, tmp_path / "run.html", cas_limit=5)
    con = _con(hand_run)
    pg = Page(browser, out.as_uri() + "#/report")
    pg.page.wait_for_selector("a.cell", timeout=60000)
    assert {u.split(":")[0] for u in pg.requests} <= {"file", "data"}, pg.requests  # nothing from the network
    pg.page.locator('a.cell[data-table="overall"][data-col="n"]').first.click()
    want = con[con.condition_kind == "single"]
    assert pg.total() == len(want) and sorted(pg.listed_keys()) == sorted(want.key[:50])
    prev = pg.page.text_content("#count")
    pg.page.select_option("#f-outcome", "failure")
    _wait_list(pg, prev)
    assert pg.total() == int((~want.success).sum())
    first = con[con.cas_file.notna()].iloc[0]  # embedded (the first cas_limit generations in file order)
    with np.load(hand_run / first.cas_file) as z:
        x = z["cas"][:, :, list(z["spans"]).index("constraints"), :]
    pg.go(f"#/tokens?key={first.key}", "#tokens .tok")
    vals = pg.page.eval_on_selector_all("#tokens .tok", "ts => ts.map(t => +t.dataset.value)")
    np.testing.assert_allclose(vals, x.mean(axis=(1, 2)), rtol=1e-6)
    last = con.iloc[-1]  # beyond cas_limit: said so, not blank
    pg.go(f"#/tokens?key={last.key}", "main .err")
    assert "not in this export" in pg.page.text_content("main .err")
    hostile = con[con.ctype == HOSTILE_TYPE].iloc[0]
    pg.go("#/item?" + urlencode({"item_id": hostile.item_id, "focus": hostile.key}), ".card.focus")
    assert pg.page.locator(".card.focus .output").text_content() == hostile.output_text
    pg.page.wait_for_timeout(300)
    _assert_inert(pg)
    assert {u.split(":")[0] for u in pg.requests} <= {"file", "data"}, pg.requests


def test_served_page_sends_a_policy_without_inline_script(served):
    import urllib.request

    with urllib.request.urlopen(served.url) as r:
        csp = r.headers["Content-Security-Policy"]
    script = next(p for p in csp.split(";") if p.strip().startswith("script-src")).split()[1:]
    assert script == ["'self'"] and r.headers["X-Content-Type-Options"] == "nosniff"
    assert f'src="{served.url}"' in served._repr_html_()  # what a notebook cell shows


def test_index_pages_checks_filters_and_counts_bad_lines(hand_run, tmp_path):
    from interp.viewer.index import RunIndex

    d = tmp_path / "run"
    shutil.copytree(hand_run, d)
    with open(d / "constrained.jsonl", "a") as f:
        f.write("{not json\n")
        f.write('{"key": "partial", "item_id"')  # a live writer's unfinished line
    ix = RunIndex(d)
    con = _con(hand_run)
    assert ix.counts()["constrained"] == len(con)
    assert any("skipped 1 unreadable line" in p for p in ix.problems())
    assert any("partial line" in p for p in ix.problems())
    pages = [ix.query({"stage": "constrained"}, off, 4) for off in range(0, len(con), 4)]
    assert [r["key"] for p in pages for r in p["rows"]] == list(con.key)
    assert ix.record(con.key[3])["output_text"] == con.output_text[3]
    with pytest.raises(InterpError, match="unknown filter"):
        ix.query({"colour": "red"})
    with pytest.raises(InterpError, match="limit"):
        ix.query({}, 0, 10**6)
    with pytest.raises(InterpError, match="no record"):
        ix.record("nope")
    with pytest.raises(InterpError, match="not a run directory"):
        RunIndex(tmp_path)


def test_a_link_whose_records_do_not_add_up_is_dropped(hand_run, monkeypatch):
    from interp.viewer import tables
    from interp.viewer.index import RunIndex

    ix = RunIndex(hand_run)
    assert tables.linked_tables(ix)["mismatches"] == []
    monkeypatch.setattr(tables, "_group_filter", lambda t, g: {"kind": "single", "ctype": "no such type"})
    res = tables.linked_tables(ix)
    by_type = next(t for t in res["tables"] if t["name"] == "by_type")
    kw = [r[0] for r in by_type["rows"]].index("keyword")
    assert res["mismatches"] and "n" not in by_type["links"][kw] and "score" not in by_type["links"][kw]


def test_tables_that_cannot_be_computed_are_an_error_and_records_stay_browsable(hand_run, tmp_path):
    from interp.viewer import view

    d = tmp_path / "run"
    shutil.copytree(hand_run, d)
    lines = [json.loads(x) for x in (d / "baseline.jsonl").read_text().splitlines()]
    (d / "baseline.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "prompt_ids"}) + "\n"
                                              for r in lines))
    with view(d) as v:
        with pytest.raises(InterpError, match="report tables could not be computed.*no readable baseline records"):
            v.state.get_tables()
        assert v.state.index.query({"stage": "baseline"})["total"] == len(lines)


def test_export_and_cli_refuse_bad_input(hand_run, tmp_path):
    from interp.cli import main
    from interp.viewer import export_html, view

    with pytest.raises(InterpError, match="writes nothing into the run directory"):
        export_html(hand_run, hand_run / "x.html")
    with pytest.raises(InterpError, match=".html"):
        export_html(hand_run, tmp_path / "x.txt")
    with pytest.raises(InterpError, match="port"):
        view(hand_run, port=-1)
    assert main(["view", str(tmp_path)]) == 2


def test_cli_serves_the_run(hand_run):
    import subprocess
    import sys
    import urllib.request

    cmd = [sys.executable, "-m", "interp.cli", "view", str(hand_run), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/records?stage=baseline&outcome=success") as r:
            res = json.loads(r.read())
        base = pd.DataFrame(read_records(hand_run / "baseline.jsonl"))
        assert res["total"] == int(base.success.sum()) and "read-only" in line
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_viewer_opens_on_a_run_of_the_embedded_model(browser, model, tmp_path, one_thread):
    from interp.experiments import SustainRun
    from interp.viewer import view

    cfg = SustainConfig(task="smoke_arith", n_items=3, max_new_tokens=12, k_values=[], controls=["neutral"],
                        batch_size=8)
    SustainRun(cfg, tmp_path, model=model, progress=False, log=lambda s: None).run(report=False)
    with view(tmp_path) as v:
        assert v.state.get_tables()["mismatches"] == []
        pg = Page(browser, v.url + "#/report")
        pg.page.wait_for_selector("a.cell", timeout=120000)
        con = _con(tmp_path)
        pg.page.locator('a.cell[data-table="overall"][data-col="n"]').first.click()
        assert pg.total() == int((con.condition_kind == "single").sum())
        rec = con[con.cas_file.notna()].iloc[0]
        pg.go(f"#/tokens?key={rec.key}", "#tokens .tok")
        toks = pg.page.eval_on_selector_all("#tokens .tok", "ts => ts.map(t => t.textContent)")
        assert len(toks) == len(rec.output_ids) and "".join(toks).strip() == rec.output_text.strip()
        assert not [m for m in pg.console if m.startswith(("error", "pageerror"))], pg.console
