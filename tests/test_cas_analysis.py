"""cas_report on synthetic run directories: planted heads are found, a null run finds none, few failures don't crash."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from interp.attention.analysis import cas_report
from interp.attention.storage import save_cas

L, H = 4, 3
PLANTED = {(1, 2), (3, 0)}
SPANS = ["constraint_0", "constraints", "__sink__", "__prompt__"]


def make_run(tmp_path, n_failed=12, n_success=12, effect=0.2, seed=0):
    """Constrained records + CAS files; failed generations get +effect CAS on the planted heads."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_failed + n_success):
        failed = i < n_failed
        T = int(rng.integers(5, 30))
        cas = np.zeros((T, L, len(SPANS), H), np.float32)
        c = rng.uniform(0.05, 0.25, (T, L, H))
        if failed:
            for l, h in PLANTED:
                c[:, l, h] += effect
        cas[:, :, 0] = cas[:, :, 1] = c
        cas[:, :, 2] = 0.5
        cas[:, :, 3] = 0.9
        key = f"k{i:03d}"
        kind = "set" if i % 5 == 0 else "single"
        recs.append({"key": key, "item_id": f"item-{i % 7}", "condition": f"{kind}:x:{i}", "condition_kind": kind,
                     "ctype": "keyword", "success": not failed, "baseline_key": f"b{i % 7}",
                     "prompt_text": "p", "prompt_ids": list(range(20)), "spans": {"constraint_0": [5, 12]},
                     "output_ids": list(range(T)),
                     "cas_file": save_cas(tmp_path, key, cas, SPANS, [7, 7, 1, 20])})
    recs.append({"key": "ctrl", "item_id": "item-0", "condition": "control:rerun", "condition_kind": "control",
                 "success": False, "cas_file": recs[0]["cas_file"], "spans": {}, "output_ids": [1]})
    (tmp_path / "constrained.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "baseline.jsonl").write_text("")
    return tmp_path


def test_planted_heads_found(tmp_path):
    d = make_run(tmp_path)
    res = cas_report(d, reference=False, n_boot=200)
    cells = pd.read_csv(d / "cas_cells.csv")
    found = {(int(r.layer), int(r.head)) for r in cells[cells["significant"]].itertuples()}
    assert found == PLANTED
    assert res["summary"]["n_failed"] == 12 and res["summary"]["n_success"] == 12
    assert res["meta"]["by_kind"] == {"single": 19, "set": 5}
    a = res["aggregate"]
    assert a["diff"] == pytest.approx(0.2 * len(PLANTED) / (L * H), abs=0.02)
    assert a["diff_lo"] < a["diff"] < a["diff_hi"] and a["diff_lo"] > 0
    assert {tuple(c) for c in res["summary"]["top_cells"][:2]} == PLANTED
    sig_layers = {r["layer"] for r in res["layers"] if r["significant"]}
    assert sig_layers <= {1, 3} and sig_layers
    assert len(res["curves"]["failed"]["mean"]) == 20 and res["curves"]["reference"] is None
    for f in ("cas_report.md", "cas_report.json"):
        assert (d / f).stat().st_size > 0
    for name in ("heatmap", "layers", "curves", "distributions"):
        assert all((d / p).exists() for p in res["figures"][name])
    assert "failed − successful" in (d / "cas_report.md").read_text()


def test_null_effect_finds_nothing(tmp_path):
    res = cas_report(make_run(tmp_path, effect=0.0, seed=3), reference=False, n_boot=200, figures=False)
    assert res["summary"]["n_significant_cells"] == 0
    assert res["aggregate"]["diff_lo"] < 0 < res["aggregate"]["diff_hi"]


def test_too_few_failures_is_a_note(tmp_path):
    d = make_run(tmp_path, n_failed=1, n_success=6)
    res = cas_report(d, reference=False, n_boot=50)
    assert res["aggregate"] is None and res["summary"]["n_significant_cells"] == 0
    assert any("too few" in n for n in res["notes"])
    assert "too few" in (d / "cas_report.md").read_text()
    assert (d / "cas_cells.csv").exists() and res["figures"]["curves"]


def test_other_span_and_normalisation(tmp_path):
    d = make_run(tmp_path)
    res = cas_report(d, span="constraint_0", normalisation="no_sink", reference=False, n_boot=100, figures=False)
    assert {tuple(c) for c in res["summary"]["top_cells"][:2]} == PLANTED
    assert res["aggregate"]["mean_success"] == pytest.approx(0.15 / 0.5, abs=0.02)
