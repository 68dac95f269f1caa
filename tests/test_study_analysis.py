"""The study's hypothesis table on synthetic records whose answers are known by construction."""
import numpy as np
import pytest

from analyses.study_hypotheses import count_verdict, h1, h3_h4, h5


def _con(item, condition, kind, success, hardness="hard", k=1):
    return {"item": item, "condition": condition, "condition_kind": kind, "hardness": hardness, "k": k,
            "success": success}


def test_h1_drop_beyond_both_controls_is_supported_and_a_null_is_not():
    con = []
    for i in range(40):
        con += [_con(i, "single:length:a", "single", i % 4 == 0), _con(i, "single:keyword:b", "single", i % 4 == 0),
                _con(i, "control:neutral", "control", True, "control"),
                _con(i, "control:paraphrase", "control", True, "control")]
    rows = {r["comparison"]: r for r in h1(con, "hard")}
    for ctl in ("neutral", "paraphrase"):
        r = rows[f"constrained K=1 vs {ctl}"]
        assert r["n"] == 40 and r["effect"] == pytest.approx(0.25 - 1.0) and r["verdict"] == "supported"
    same = [dict(c, success=True) for c in con]
    assert {r["verdict"] for r in h1(same, "hard")} == {"not supported"}  # CI [0, 0] excludes -SESOI


def _abl(base, arm, role, stage, flipped):
    return {"base_key": base, "arm": arm, "role": role, "stage": stage, "flipped": flipped}


def test_h3_needs_every_control_beaten():
    recs = []
    for b in range(40):
        recs.append(_abl(b, "none", "none", "rescue", False))
        recs.append(_abl(b, "damp:constraints:all", "main", "rescue", b % 2 == 0))
        recs.append(_abl(b, "damp:random_span:all", "control", "rescue", False))
        recs.append(_abl(b, "damp:task:all", "control", "rescue", b % 10 == 0))
        recs.append(_abl(b, "damp:constraints:random10", "control", "rescue", False))
    rows = [r for r in h3_h4(recs) if r["hypothesis"] == "H3"]
    assert len(rows) == 5 and all(r["verdict"] == "supported" for r in rows)
    recs = [dict(r, flipped=(r["base_key"] % 2 == 0)) if r["arm"] == "damp:task:all" else r for r in recs]
    rows = {r["comparison"]: r for r in h3_h4(recs) if r["hypothesis"] == "H3"}
    assert rows["damp:constraints:all vs task"]["verdict"] == "not supported"  # diff 0: CI [0, 0] below SESOI
    assert rows["all controls (intersection-union)"]["verdict"] == "not supported"


def test_h5_slope_sign():
    con = []
    for i in range(60):
        for k, p in ((1, 0.9), (2, 0.5), (3, 0.1)):
            con.append(_con(i, f"k{k}", "single" if k == 1 else "set", bool(np.random.default_rng(i * 7 + k).random() < p),
                            k=k))
    (row,), info = h5(con)
    assert row["effect"] < -0.2 and row["verdict"] == "supported" and set(info["by_k"]) == {1.0, 2.0, 3.0}


def test_count_verdict():
    assert count_verdict(3, 0) == "supported"
    assert count_verdict(0, 2) == "not supported"
    assert count_verdict(3, 1) == "inconclusive" and count_verdict(0, 0) == "inconclusive"
