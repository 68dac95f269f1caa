"""Every silent failure a researcher met in the first hour (issue 27) is now a clear error or works.

Each test failed on the code before the fix (see the issue's first list). Most use a tiny random llama
(fast); the TransformerLens bridge test needs the embedded model.
"""
from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import pytest
import torch

import interp
from interp import cli
from interp.errors import InterpError
from interp.interventions import Intervention
from interp.models.hooked_attention import install
from interp.models.loading import load_tokenizer, share_weights_clone
from interp.prompts import Part, Prompt, build_prompt

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture
def tm(tok):
    """A tiny random llama on interp's hooked attention (a fresh one per test: some tests switch it)."""
    from test_conformance import tiny

    return tiny("llama", "base", tok, vocab=len(tok))


def _prompts(tok) -> list[Prompt]:
    return [build_prompt(tok, [Part("task", "What is 2+3?"), Part("constraint_0", "Answer in one word.")]),
            build_prompt(tok, [Part("task", "Name a colour."), Part("constraint_0", "Be brief.")])]


def test_eager_switch_is_refused_not_silent(tm, tok):
    """`m.hf.set_attn_implementation("eager")` used to turn CAS to zeros, knockouts and hooks into no-ops."""
    ps = _prompts(tok)
    tm.hf.set_attn_implementation("eager")
    with pytest.raises(InterpError, match="eager.*install"):
        interp.generate(tm, ps, max_new_tokens=2, capture=[interp.CAS()], progress=False)
    with pytest.raises(InterpError, match="eager"):
        interp.trace(tm, ps, [[5], [6]], capture=[interp.CAS()])
    with pytest.raises(InterpError, match="eager"):
        with tm.hooks([("blocks.0.attn.hook_pattern", lambda t, c: None)]):
            pass
    install(tm.hf)  # what the message says to do; then it works again
    g = interp.generate(tm, ps, max_new_tokens=2, capture=[interp.CAS()], progress=False)[0]
    assert float(g.cas.sel(span="__prompt__").min()) > 0


def test_output_attentions_work_on_hooked_attention(tm, tok):
    """``m.hf(ids, output_attentions=True).attentions`` used to be ``()``; now HF eager's weights (<= 1e-6)."""
    ids = torch.tensor([_prompts(tok)[0].input_ids])
    with torch.no_grad():
        att = tm.hf(input_ids=ids, output_attentions=True).attentions
        ref = share_weights_clone(tm.hf)(input_ids=ids, output_attentions=True).attentions
    assert len(att) == tm.n_layers == len(ref)
    assert max(float((a - r).abs().max()) for a, r in zip(att, ref)) <= 1e-6


def test_bare_string_prompts_are_refused(tm):
    """`interp.generate(m, "a string")` used to generate one prompt per character."""
    for call in (lambda: interp.generate(tm, "What is 2+3?", max_new_tokens=1, progress=False),
                 lambda: interp.trace(tm, "What is 2+3?"),
                 lambda: interp.run_with_cache(tm, "What is 2+3?"),
                 lambda: interp.run_with_hooks(tm, "What is 2+3?")):
        with pytest.raises(InterpError, match=r"a list of prompts.*\[\.\.\.\]"):
            call()


def test_bare_prompt_intervention_or_capture_instead_of_a_list(tm, tok):
    p = _prompts(tok)[0]
    with pytest.raises(InterpError, match="a list of prompts"):
        interp.generate(tm, p, max_new_tokens=1, progress=False)
    with pytest.raises(InterpError, match=r"interventions.*list"):
        interp.generate(tm, [p], max_new_tokens=1, progress=False, interventions=Intervention(op="knockout"))
    with pytest.raises(InterpError, match=r"capture.*list"):
        interp.generate(tm, [p], max_new_tokens=1, progress=False, capture=interp.CAS())
    with pytest.raises(InterpError, match=r"interventions.*list"):
        interp.trace(tm, [p], [[5]], interventions=Intervention(op="knockout"))


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": (10, 5)}, r"steps.*start < end"),
    ({"steps": (-1, None)}, r"steps.*>= 0"),
    ({"steps": 3}, r"steps.*\(start, end\)"),
    ({"heads": (3, 4)}, r"heads.*\(layer, head\) pairs.*heads=\[\(3, 4\)\]"),
    ({"heads": [(3, -1)]}, r"heads.*>= 0"),
    ({"layers": 3}, r"layers.*list of layer indices.*\[3\]"),
    ({"layers": [-2]}, r"layers.*>= 0"),
    ({"target": 7}, r"target.*part name"),
    ({"prefill": "yes"}, r"prefill.*bool"),
])
def test_bad_intervention_values_fail_at_the_door(kwargs, match):
    """`Intervention(steps=(10, 5))` was a silent no-op; `heads=(3, 4)` a TypeError from inside ops.py."""
    with pytest.raises(InterpError, match=match):
        Intervention(op="knockout", **kwargs)


@pytest.mark.parametrize("name", ["constraint", "constraints", "Constraint_0", "constraint1", "constraint_x"])
def test_misnamed_constraint_parts_are_refused(tok, name):
    """A part named `constraint` recorded no 'constraints' CAS span; `.sel(span="constraints")` then raised
    xarray's misleading KeyError."""
    with pytest.raises(InterpError, match=r"constraint_0"):
        build_prompt(tok, [Part("task", "What is 2+3?"), Part(name, "Answer in one word.")])


def test_cas_selection_of_a_missing_span_names_the_spans(tm, tok):
    g = interp.generate(tm, [build_prompt(tok, [Part("task", "Hi there.")])], max_new_tokens=2, progress=False,
                        capture=[interp.CAS()])[0]
    with pytest.raises(InterpError, match=r"'constraints'.*recorded spans.*task"):
        g.cas_span("constraints")
    assert np.array_equal(g.cas_span("task"), g.cas.sel(span="task").values)


def test_cas_command_never_overwrites_a_report_with_an_empty_one(tmp_path):
    """`interp cas runs/x --span constraint` exited 0 ("0 failed and 0 successful") and overwrote the report."""
    from test_cas_analysis import make_run

    d = make_run(tmp_path)
    assert cli.main(["cas", str(d), "--set", "reference=false", "--set", "n_boot=50", "--set", "figures=false"]) == 0
    before = {p: (d / p).read_bytes() for p in ("cas_report.md", "cas_report.json")}
    assert b"planted" not in before["cas_report.md"] and b"12 failed" in before["cas_report.md"].replace(b"**", b"")
    rc = cli.main(["cas", str(d), "--span", "constraint", "--set", "reference=false", "--set", "figures=false"])
    assert rc == 2
    assert {p: (d / p).read_bytes() for p in before} == before
    with pytest.raises(InterpError, match=r"'constraint'.*constraint_0"):
        interp.cas_report(d, span="constraint", reference=False, figures=False)


def test_every_command_uses_the_runs_task_ref(tmp_path, monkeypatch):
    """`interp cas` ignored the recorded `task_ref` (`interp ablate` used it) and blamed the model."""
    import uuid

    from interp.experiments.config import SustainConfig
    from interp.rundir import RunDir
    from interp.tasks import TASKS

    mod = f"plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{mod}.py").write_text(
        "from interp.tasks import Item, Task, register_task\n\n"
        "@register_task('ref_only_task')\nclass RefOnly(Task):\n    domain = 'test'\n\n"
        "    def load_items(self):\n        return [Item('r0', 'Say hi.', 'hi')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    d = tmp_path / "run"
    d.mkdir()
    cfg = {"model": "smollm2-135m", "task": "ref_only_task"}
    (d / "config.json").write_text(json.dumps({"config": cfg, "config_hash": "x", "format": 2,
                                               "task_ref": f"{mod}:RefOnly"}))
    try:
        assert mod not in sys.modules and "ref_only_task" not in TASKS
        assert SustainConfig.of_run(RunDir(d)).task == "ref_only_task"
    finally:
        TASKS.unregister("ref_only_task")


def test_cli_arguments_are_checked_before_the_model_loads(tmp_path, monkeypatch, capsys):
    from test_cas_analysis import make_run

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("interp.models.load_model", no_load)
    monkeypatch.setattr("interp.models.loading.load_model", no_load)
    d = make_run(tmp_path)
    for argv, match in (
            (["generate", "hi", "--intervention", "{bad"], "JSON"),
            (["generate", "hi", "--intervention", '{"op": "nope"}'], "unknown intervention op 'nope'"),
            (["generate", "hi", "--intervention", '{"op": "knockout", "steps": [4, 2]}'], "start < end"),
            (["generate", "hi", "--max-new-tokens", "0"], "max-new-tokens"),
            (["cas", str(d), "--normalisation", "bogus"], "normalisation"),
            (["cas", str(d), "--set", "no_such=1"], "no_such"),
            (["cas", str(tmp_path / "missing")], "missing"),
            (["ablate", str(tmp_path / "missing")], "missing")):
        assert cli.main(argv) == 2, argv
        assert re.search(match, capsys.readouterr().err), argv
    assert not (d / "cas_report.md").exists()


def test_help_advertises_only_options_that_work(capsys):
    """`interp cas --help` advertised `--config` and `--set per_type=2`, which failed."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        text = p.format_help()
        if name == "cas":
            assert "--config" not in text
        m = re.search(r"--set ([a-z_]+)=(\S+?)[),;\s]", text.replace("\n", " "))
        if "--set" in text:
            assert m, f"`interp {name} --help` shows --set without an example"
            cls = cli.settings_of(name)
            cli._settings(type("A", (), {"sets": [f"{m.group(1)}={m.group(2)}"]})(), cls)  # the example parses


def test_generation_repr_is_short(tm, tok):
    """`repr(generation)` used to print the whole CAS array."""
    g = interp.generate(tm, _prompts(tok), max_new_tokens=4, capture=[interp.CAS()], progress=False)[0]
    r = repr(g)
    assert len(r) < 300 and "array" not in r and "cas" in r and g.finish_reason in r


def test_our_calls_emit_no_warnings(tm, tok):
    """Every generate printed a transformers FutureWarning about `past_key_values`."""
    from interp.interventions import sweep_heads

    p = _prompts(tok)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = interp.generate(tm, [p], max_new_tokens=3, capture=[interp.CAS()], progress=False)[0]
        sweep_heads(tm, p, g.output_ids or [5], batch_size=4)


def test_progress_bars_do_not_need_ipywidgets(monkeypatch):
    """Notebooks printed "IProgress not found" (tqdm.auto without ipywidgets)."""
    from interp import progress

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress.progress_bar(total=2, desc="x", disable=False)
        bar.update(2)
        bar.close()


@pytest.mark.slow
def test_bridge_generate_matches_interp_generate(model):
    """`m.bridge.generate(ids)` (KV cache on by default) returned garbage after the first token: TransformerLens
    4.3 looked for the cache under transformers' old name (`past_key_values`)."""
    p = build_prompt(model.tokenizer, [Part("task", "Tom has 3 apples and gets 5 more. How many?")])
    ref = interp.generate(model, [p], max_new_tokens=6, progress=False)[0].output_ids
    ids = torch.tensor([p.input_ids])
    for kv in (True, False):
        out = model.bridge.generate(ids, max_new_tokens=6, do_sample=False, verbose=False, return_type="tokens",
                                    use_past_kv_cache=kv)
        assert out[0, len(p.input_ids):].tolist()[:len(ref)] == ref, f"use_past_kv_cache={kv}"
