"""run_ablation end to end on a tiny hand-made run directory: every stage, the report, resumability."""
import json

import numpy as np
import pytest

from interp.records import SCHEMA_VERSION
from interp.rundir import RunDir
from interp.attention.storage import save_cas
from interp.constraints import Constraint, insert_constraints
from interp.errors import InterpError
from interp.experiments.config import SustainConfig
from interp.interventions import Intervention
from interp.interventions.experiments import AblationConfig, AblationRun, run_ablation
from interp.prompts import build_prompt
from interp.store import ResultStore, record_key
from interp.tasks import get_task

CFG = AblationConfig(top_k=2, n_random_heads=2, rescue_ops=("knockout",), sweep_items=1, sweep_top=1,
                     sweep_batch_size=64)


pytestmark = pytest.mark.usefixtures("one_thread")


def _make_run(d, model):
    """4 items: baseline records with the correct answer, one constrained record each (2 failed, 2 solved), CAS."""
    cfg = SustainConfig(task="smoke_arith", n_items=4, max_new_tokens=10, k_values=[2])
    (d / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "config_hash": cfg.hash()}))
    task, tok = get_task("smoke_arith"), model.tokenizer
    gen = {"max_new_tokens": 10, "temperature": 0.0, "top_p": 1.0, "seed": 0, "stop": []}
    base, con = ResultStore(d / "baseline.jsonl"), ResultStore(d / "constrained.jsonl")
    rng = np.random.default_rng(0)
    for i, it in enumerate(task.items(4)):
        bp = build_prompt(tok, task.parts(it))
        bkey = record_key(stage="baseline", item=it.id)
        base.append({"key": bkey, "item_id": it.id, "prompt_ids": bp.input_ids, "output_ids": tok.encode(
            f"The answer is {it.target}.", add_special_tokens=False), "success": True, "gen_config": gen})
        c = Constraint("ends_with", "hard", 'End your response with the exact phrase "done."',
                       {"phrase": "done.", "mode": "suffix"})
        p = build_prompt(tok, insert_constraints(task.parts(it), [c]))
        key = record_key(stage="constrained", item=it.id)
        cas = rng.random((3, model.n_layers, 3, model.n_heads)).astype(np.float32) * (1.5 if i < 2 else 1.0)
        con.append({"key": key, "item_id": it.id, "condition": "single:ends_with:x", "condition_kind": "single",
                    "hardness": "hard", "constraints": [c.to_dict()], "prompt_text": p.text,
                    "prompt_ids": p.input_ids, "spans": {k: list(v) for k, v in p.spans.items()},
                    "success": i >= 2, "constraint_met": True, "baseline_key": bkey, "gen_config": gen,
                    "cas_file": save_cas(d, key, cas, ["constraints", "__sink__", "__prompt__"], [12, 1, 60])})


def test_run_ablation_all_stages_report_and_resume(tmp_path, model):
    _make_run(tmp_path, model)
    res = run_ablation(tmp_path, CFG, model=model, log=lambda s: None)
    assert (tmp_path / "ablation_report.md").exists() and (tmp_path / "ablation_report.json").exists()
    assert all((tmp_path / "figures" / f"ablation_{f}.png").exists()
               for f in ("rates", "cas_shift", "sweep_heatmap", "attribution"))
    recs = ResultStore(tmp_path / "ablations.jsonl").records()
    arms = {(r["stage"], r["arm"]) for r in recs}
    for stage, op in (("rescue", "knockout"), ("induce", "boost")):
        assert {(stage, "none"), (stage, f"{op}:constraints:all"), (stage, f"{op}:constraints:top2"),
                (stage, f"{op}:constraints:random2"), (stage, f"{op}:random_span:all"),
                (stage, f"{op}:task:all")} <= arms
    assert sum(r["role"] == "head" for r in recs) == 4  # one sweep head x 4 base records
    assert len(recs) == 4 * 7
    for r in recs:
        assert [Intervention.from_dict(d).to_dict() for d in r["interventions"]] == r["interventions"]
        if r["arm"].startswith("knockout:"):
            grid = np.asarray(r["cas"][r["cas_span"]])
            cells = r["cells"] or [(l, h) for l in range(model.n_layers) for h in range(model.n_heads)]
            assert all(grid[l, h] == 0.0 for l, h in cells)
    table = res["summary"]
    assert set(table.stage) == {"rescue", "induce"} and (table.n == 2).all()
    ko = table[table.arm == "knockout:constraints:all"].iloc[0]
    assert ko.cas_before > 0 and ko.cas_after == 0
    boost = table[table.arm == "boost:constraints:all"].iloc[0]
    assert boost.cas_after > boost.cas_before
    sweep = ResultStore(tmp_path / "ablation_sweep.jsonl").records()
    assert len(sweep) == 1 and np.asarray(sweep[0]["head_effect"]).shape == (model.n_layers, model.n_heads)
    assert np.isfinite(res["sweep"]["attribution_rho_pooled"])
    report = json.loads((tmp_path / "ablation_report.json").read_text())
    assert report["n_records"] == len(recs) and len(report["top_k_heads"]) == 2
    for stage in ("ablations", "ablation_sweep"):  # typed records name every field the writers write
        assert all(not r.extra and r.schema_version == SCHEMA_VERSION for r in RunDir(tmp_path).typed(stage))

    n_lines = [len((tmp_path / f).read_text().splitlines()) for f in ("ablations.jsonl", "ablation_sweep.jsonl")]
    again = AblationRun(tmp_path, CFG, model=None, log=lambda s: None)
    again.run()
    assert again._model is None  # nothing left to do, so the model is never loaded
    assert [len((tmp_path / f).read_text().splitlines()) for f in ("ablations.jsonl", "ablation_sweep.jsonl")] == n_lines


def test_refuses_a_run_whose_task_items_changed(tmp_path, model):
    _make_run(tmp_path, model)
    path = tmp_path / "constrained.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0]["prompt_text"] = recs[0]["prompt_text"].replace("has", "owns", 1)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(InterpError, match="no longer yields the items"):
        AblationRun(tmp_path, CFG, model=model)
