"""Resid capture and steering add no host synchronisation per decoding step (tests/test_host_sync.py's count)."""
import numpy as np
import pytest
from test_host_sync import _prompts, _syncs, _Tok, _tiny

from interp.models.generation import GenConfig, generate_batch, make_batch
from interp.probes.resid import Resid
from interp.probes.steering import Steer

pytestmark = pytest.mark.usefixtures("one_thread")


class _Cfg:
    """What the probes read of a model: its config."""

    def __init__(self, hf):
        self.config = hf.config


def _run(model, probes, n_steps):
    batch = make_batch(_Tok(), _prompts(), "cpu")
    provs = [p.provider(_Cfg(model), n_steps) for p in probes]
    return generate_batch(model, _Tok(), batch, GenConfig(max_new_tokens=n_steps, batch_size=2), provs)


def test_probes_add_no_host_sync_per_decoding_step(monkeypatch):
    model = _tiny()
    d = tuple(np.random.default_rng(0).standard_normal(model.config.hidden_size))
    cases = {"plain": [], "resid": [Resid(hooks=("hook_resid_post", "hook_z", "hook_result"), layers=(1, 3))],
             "steer": [Steer(layer=2, direction=d, alpha=2.0)],
             "steer_generated": [Steer(layer=1, direction=d, alpha=2.0, positions="generated", hook="hook_resid_mid")]}
    per_step = {}
    for name, probes in cases.items():
        short = _syncs(monkeypatch, lambda p=probes: _run(model, p, 4))
        long = _syncs(monkeypatch, lambda p=probes: _run(model, p, 10))
        per_step[name] = (long - short) / 6
    assert per_step["plain"] > 0
    assert {k: v for k, v in per_step.items() if v != per_step["plain"]} == {}, per_step
    # the counted runs do steer
    assert _run(model, cases["steer"], 6)[0].output_ids != _run(model, [], 6)[0].output_ids
