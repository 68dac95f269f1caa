"""Registries (duplicates refused, entry points, module:qualname refs), `--import` / `--set`, and the
report/sustain layering. No model is loaded: everything here runs in well under a second per test."""
from __future__ import annotations

import ast
import functools
import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.cli import _sustain_config, build_parser, main
from interp.constraints import CONSTRAINT_TYPES, ConstraintType, register_constraint
from interp.errors import InterpError
from interp.interventions.experiments import AblationConfig
from interp.plugins import parse_sets
from interp.registry import Registry, ref_of, resolve_ref
from interp.tasks import TASKS, Task, get_task, register_task, task_ref

ROOT = Path(__file__).parents[1]


@pytest.fixture
def restore_registries():
    """Snapshot the task and constraint registries; tests may register freely."""
    saved = [(reg, dict(reg._items), dict(reg._refs)) for reg in (TASKS, CONSTRAINT_TYPES)]
    yield
    for reg, items, refs in saved:
        reg._items.clear(), reg._items.update(items)
        reg._refs.clear(), reg._refs.update(refs)


def _module(tmp_path: Path, body: str) -> str:
    """Write a uniquely named importable module under tmp_path (put on sys.path); returns its name."""
    name = f"plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    return name


class A:
    pass


class B:
    pass


def test_registry_refuses_duplicates_unless_replaced():
    reg: Registry = Registry("widget")
    reg.register("w", A)
    with pytest.raises(InterpError, match=r"widget 'w' is already registered by .*:A; pass replace=True"):
        reg.register("w", B)
    assert reg["w"] is A
    reg.register("w", B, replace=True)
    assert reg["w"] is B and reg.ref("w") == ref_of(B) == f"{__name__}:B"
    reg.register("w", B)  # the same module:qualname again (re-run cell, reload) is a redefinition
    with pytest.raises(InterpError, match=r"^unknown widget 'x'; known: w$"):
        reg["x"]
    assert reg.get("x") is None and reg.get("x", A) is A  # Mapping.get keeps its meaning
    assert "w" in reg and "x" not in reg and list(reg) == ["w"] and len(reg) == 1
    reg.unregister("w")
    assert "w" not in reg
    with pytest.raises(InterpError, match="non-empty string name"):
        reg.register("", A)


def test_builtin_task_and_constraint_names_cannot_be_taken_silently(restore_registries):
    original = TASKS["smoke_arith"]

    with pytest.raises(InterpError, match="task 'smoke_arith' is already registered"):
        @register_task("smoke_arith")
        class Shadow(Task):
            pass

    assert TASKS["smoke_arith"] is original

    @register_task("smoke_arith", replace=True)
    class Replacement(Task):
        pass

    assert isinstance(get_task("smoke_arith"), Replacement)
    with pytest.raises(InterpError, match="constraint type 'length' is already registered"):
        @register_constraint
        class MyLength(ConstraintType):
            name = "length"

    @register_constraint(replace=True)
    class MyLength2(ConstraintType):
        name = "length"

    assert isinstance(CONSTRAINT_TYPES["length"], MyLength2)
    with pytest.raises(InterpError, match="unknown task 'nope'.*--import MODULE"):
        get_task("nope")


def test_entry_points_register_installed_plugins(tmp_path, monkeypatch, restore_registries):
    mod = _module(tmp_path, """
        from interp.tasks import Task, register_task

        @register_task("ep_registered_on_import")
        class OnImport(Task):
            domain = "test"

        class Bare(Task):
            domain = "test"
    """)
    eps = [EntryPoint("ep_registered_on_import", mod, "interp.tasks"),
           EntryPoint("ep_bare", f"{mod}:Bare", "interp.tasks")]
    monkeypatch.setattr("interp.registry.entry_points", lambda group: [e for e in eps if e.group == group])
    monkeypatch.setattr(TASKS, "_plugins_loaded", False)
    assert get_task("ep_registered_on_import").domain == "test"
    assert get_task("ep_bare").domain == "test" and TASKS.ref("ep_bare") == f"{mod}:Bare"

    broken = Registry("thing", group="interp.tasks")
    monkeypatch.setattr("interp.registry.entry_points", lambda group: [EntryPoint("bad", "no_such_mod_xyz", group)])
    with pytest.raises(InterpError, match="plugin 'bad' .* failed to load: ModuleNotFoundError"):
        broken.lookup("anything")


def test_resolve_ref_errors():
    assert resolve_ref("interp.tasks.base:Task") is Task
    with pytest.raises(InterpError, match="defined in a notebook or script"):
        resolve_ref("__main__:MyTask")
    with pytest.raises(InterpError, match="cannot import 'no_such_mod_xyz'"):
        resolve_ref("no_such_mod_xyz:T")
    with pytest.raises(InterpError, match="has no 'Nope'"):
        resolve_ref("interp.tasks.base:Nope")
    with pytest.raises(InterpError, match="expected a reference"):
        resolve_ref("just_a_name")
    with pytest.raises(InterpError, match="not a registered task"):
        get_task("interp.tasks.base:Task")


def test_task_found_again_from_its_recorded_ref_in_a_new_process(tmp_path, restore_registries):
    """A run records `task_ref`; a fresh interpreter that never imported the module finds the task by it."""
    from interp.experiments import SustainConfig, SustainRun

    mod = _module(tmp_path, """
        from interp.tasks import Item, Task, register_task

        @register_task("researcher_task")
        class ResearcherTask(Task):
            domain = "test"

            def load_items(self):
                return [Item("r0", "Say hi.", "hi")]
    """)
    run_dir = tmp_path / "run"
    __import__(mod)
    SustainRun(SustainConfig(task="researcher_task", n_items=1), run_dir, progress=False, log=lambda s: None)
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["task_ref"] == f"{mod}:ResearcherTask" == task_ref("researcher_task")
    code = ("import json, sys; from interp.tasks import get_task\n"
            f"rec = json.load(open({str(run_dir / 'config.json')!r}))\n"
            f"assert {mod!r} not in sys.modules\n"
            "print(get_task(rec['config']['task'], ref=rec['task_ref']).items()[0].id)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "r0"


def test_cli_import_makes_a_researcher_task_visible(tmp_path, capsys, restore_registries):
    mod = _module(tmp_path, """
        from interp.tasks import Item, Task, register_task

        @register_task("cli_plugin_task")
        class CliTask(Task):
            domain = "test"
            description = "from --import"

            def load_items(self):
                return [Item("c0", "x", "x")]
    """)
    path = tmp_path / f"{mod}.py"
    assert main(["tasks", "--import", str(path)]) == 0
    assert "cli_plugin_task" in capsys.readouterr().out
    assert main(["tasks", "--import", "no_such_mod_xyz"]) == 2
    assert "error: --import no_such_mod_xyz" in capsys.readouterr().err
    bad = _module(tmp_path, "raise RuntimeError('boom')\n")
    assert main(["tasks", "--import", bad]) == 2
    assert f"error: --import {bad} failed: RuntimeError: boom" in capsys.readouterr().err


def test_every_command_takes_import():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert any("--import" in a.option_strings for a in p._actions), name


def test_set_reaches_every_config_field():
    sets = parse_sets(["sweep_items=7", "sweep-top=2", "rescue_ops=knockout", "max_items=none",
                       "alpha_damp=0.25"], AblationConfig)
    assert sets == {"sweep_items": 7, "sweep_top": 2, "rescue_ops": ("knockout",), "max_items": None,
                    "alpha_damp": 0.25}
    a = build_parser().parse_args(["sustain", "--task", "smoke_arith", "--n-items", "3", "--set", "per_type=2",
                                   "--set", "controls=neutral,rerun", "--set", "soft=true", "--set", "types=none",
                                   "--set", 'task_kwargs={"seed": 1}', "--set", "k_values=[2, 4]",
                                   "--set", "n_items=5"])
    cfg = _sustain_config(a)
    assert (cfg.per_type, cfg.controls, cfg.soft, cfg.types, cfg.task_kwargs, cfg.k_values, cfg.n_items) == \
        (2, ["neutral", "rerun"], True, None, {"seed": 1}, [2, 4], 5)
    for bad, msg in (("per_type=two", "expected int"), ("soft=maybe", "expected true or false"),
                     ("nope=1", "unknown setting of SustainConfig"), ("per_type", "expects key=value"),
                     ("task_kwargs={bad", "not valid JSON")):
        with pytest.raises(InterpError, match=msg):
            parse_sets([bad], type(cfg))


def test_cli_ablate_flags_and_set_build_the_config(monkeypatch):
    seen = {}

    def fake(run_dir, cfg):
        seen["cfg"] = cfg
        return {"report": "x"}

    monkeypatch.setattr("interp.interventions.experiments.run_ablation", fake)
    assert main(["ablate", "somewhere", "--sweep-items", "2", "--rescue-ops", "damp", "--set", "sweep_top=5",
                 "--top-k", "4"]) == 0
    c = seen["cfg"]
    assert (c.sweep_items, c.rescue_ops, c.sweep_top, c.top_k, c.n_random_heads, c.alpha_damp) == \
        (2, ("damp",), 5, 4, 4, 0.1)
    assert main(["ablate", "somewhere", "--rescue-ops", "explode"]) == 2


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_report_does_not_import_the_pipeline():
    """sustain -> report -> outcomes: error typing lives in a leaf module, report never imports sustain."""
    exp = ROOT / "interp" / "experiments"
    assert ".sustain" not in _imports(exp / "report.py")
    assert not any(m.startswith(".") for m in _imports(exp / "outcomes.py"))
    from interp.experiments.outcomes import ERROR_TYPES, error_type

    got = {error_type(s, l, f, t) for s in (True, False) for l in (True, False) for f in ("eos", "length")
           for t in (None, "complete", "unterminated")}
    assert got == set(ERROR_TYPES)
    from typing import get_args

    from interp.records import ErrorType
    assert get_args(ErrorType) == ERROR_TYPES
    assert error_type(False, False, "length") == "truncated" and error_type(False, True, "length") == "output_spec"


def test_small_groups_get_no_interval():
    from interp.attention.analysis import _ci
    from interp.experiments.report import _md_table, _row
    from interp.stats import MIN_N_INTERVAL, aggregate_effect, bootstrap_ci, paired_bootstrap_diff

    assert MIN_N_INTERVAL == 3
    est, lo, hi = bootstrap_ci([1.0, 2.0])
    assert est == 1.5 and math.isnan(lo) and math.isnan(hi)
    assert all(np.isfinite(bootstrap_ci([1.0, 2.0, 4.0], n_boot=200)))
    assert math.isnan(paired_bootstrap_diff([1, 0], [0, 0])[1])
    e = aggregate_effect([0.5, 0.6], [0.1, 0.2, 0.3, 0.4], n_boot=200)
    assert e.rank_biserial == 1.0 and math.isnan(e.rb_lo) and math.isnan(e.diff_hi)
    assert _ci(float("nan"), float("nan")) == "[no CI: n < 3]" and _ci(0.1, 0.2) == "[0.1, 0.2]"
    df = pd.DataFrame({"item_id": ["a", "b"], "condition": ["c", "c"], "success": [True, False]})
    row = _row("two pairs", df)
    assert (row["n_success"], row["n"], row["score"]) == (1, 2, 0.5) and math.isnan(row["lo"])
    assert "k" not in row
    assert "| two pairs | 1 | 2 | 0.500 | – | – | 2 |" in _md_table(pd.DataFrame([row]))


def test_package_api_is_visible_to_type_checkers():
    """The TYPE_CHECKING imports, __all__ and the lazy _API map name the same objects, and each resolves."""
    import interp

    tree = ast.parse((ROOT / "interp" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {a.name: imp.module for imp in block.body for a in imp.names}
    assert seen == interp._API
    assert sorted(interp.__all__) == sorted(interp._API)
    for name in interp._API:
        assert getattr(interp, name) is not None, name


def test_set_reaches_cas_report_keywords(monkeypatch):
    from interp.attention.analysis import cas_report

    assert parse_sets(["n_boot=200", "reference=false", "control=none", "alpha=0.1"], cas_report) == \
        {"n_boot": 200, "reference": False, "control": None, "alpha": 0.1}
    with pytest.raises(InterpError, match="unknown setting of cas_report.*n_boot"):
        parse_sets(["model=x"], cas_report)
    seen = {}

    @functools.wraps(cas_report)
    def fake(run_dir, **kw):
        seen.update(kw)
        return {}

    monkeypatch.setattr("interp.attention.analysis.cas_report", fake)
    assert main(["cas", "somewhere", "--set", "n_boot=50", "--set", "span=task"]) == 0
    assert seen == {"span": "task", "normalisation": "raw", "teacher_forced": False, "n_boot": 50}


def test_set_overrides_the_compare_config(tmp_path, monkeypatch):
    cfg = tmp_path / "cmp.json"
    cfg.write_text(json.dumps({"models": [{"label": "a", "model": "m"}], "n_items": 4}))
    seen = {}
    monkeypatch.setattr("interp.experiments.compare.run_comparison",
                        lambda config, out: seen.update(config) or {"report": "x"})
    assert main(["compare", str(cfg), "--out", str(tmp_path / "o"), "--set", "n_items=9", "--set", "seeds=1,2"]) == 0
    assert seen == {"models": [{"label": "a", "model": "m"}], "n_items": 9, "seeds": [1, 2]}
