"""The decoding hot path: hooks add no host synchronisation per step; stop strings are matched incrementally.

Host synchronisations are counted by wrapping the tensor methods that copy to the host (`__bool__`, `__int__`,
`__float__`, `__index__`, `item`, `tolist`, `cpu`, `numpy`). On a GPU the same hooked runs go through
`torch.cuda.set_sync_debug_mode("error")` inside every attention call, so any hidden sync raises.
"""
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from interp.attention.cas import CASCapture
from interp.interventions import Intervention, InterventionProvider
from interp.models import hooked_attention
from interp.models.generation import GenConfig, StopMatcher, generate_batch, make_batch
from interp.prompts import Prompt

pytestmark = pytest.mark.usefixtures("one_thread")
SYNC_METHODS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "cpu", "numpy")
L, H = 4, 4


class _Tok:
    """Just enough tokenizer for generate_batch on a random model: ids render as numbers, no EOS."""

    pad_token_id, eos_token_id = 0, None

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(map(str, ids))

    def get_vocab(self):
        return {}


def _tiny(device="cpu"):
    cfg = AutoConfig.for_model("llama", vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=L,
                               num_attention_heads=H, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg).eval().to(device)
    m.generation_config.eos_token_id = None
    hooked_attention.install(m)
    return m


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _prompts():
    rng = np.random.default_rng(1)
    return [Prompt("", rng.integers(1, 96, n).tolist(), {"task": (1, 5), "constraint_0": (5, 9), "format": (9, n)})
            for n in (14, 11)]


CASES = {
    "plain": (False, []),
    "cas": (True, []),
    "knockout": (False, [Intervention(op="knockout", heads=((1, 2), (3, 0)), steps=(1, 5))]),
    "scale": (False, [Intervention(op="scale", alpha=0.2, layers=(0, 2))]),
    "mean_ablate": (False, [Intervention(op="mean_ablate", layers=(1,), steps=(2, None))]),
    "all_with_cas": (True, [Intervention(op="scale", alpha=3.0, layers=(2,)), Intervention(op="knockout", layers=(3,)),
                            Intervention(op="mean_ablate", heads=((0, 1),), prefill=True)]),
}


def _run(model, case, n_steps, device="cpu"):
    cas, ivs = CASES[case]
    batch = make_batch(_Tok(), _prompts(), device)
    batch.extras = [{"interventions": ivs}, {}]
    provs = [InterventionProvider(L, H)] if ivs else []
    provs += [CASCapture(L, H, n_steps)] if cas else []
    return generate_batch(model, _Tok(), batch, GenConfig(max_new_tokens=n_steps, batch_size=2), provs)


def _syncs(monkeypatch, fn) -> int:
    count = [0]

    def wrap(name):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, **k):
            count[0] += 1
            return orig(self, *a, **k)

        return counted

    with monkeypatch.context() as mp:
        for name in SYNC_METHODS:
            mp.setattr(torch.Tensor, name, wrap(name))
        fn()
    return count[0]


def test_hooks_add_no_host_sync_per_decoding_step(tiny, monkeypatch):
    per_step = {}
    for case in CASES:
        short = _syncs(monkeypatch, lambda case=case: _run(tiny, case, 4))
        long = _syncs(monkeypatch, lambda case=case: _run(tiny, case, 10))
        per_step[case] = (long - short) / 6
    assert per_step["plain"] > 0  # the counter sees the loop's own per-step syncs (EOS/stop checks)
    assert {k: v for k, v in per_step.items() if v != per_step["plain"]} == {}, per_step


def test_counted_runs_really_intervene(tiny):
    """In the counted runs the mask edits reach the pattern: knocked-out heads put exactly 0 on the constraint,
    scaled ones change, and row 1 (no interventions) is untouched."""
    plain, hit = _run(tiny, "cas", 10), _run(tiny, "all_with_cas", 10)
    ci = plain[0].extras["cas_spans"].index("constraints")
    a, b = plain[0].extras["cas"], hit[0].extras["cas"]
    assert np.all(b[:, 3, ci] == 0) and np.all(a[:, 3, ci] > 0)
    assert not np.allclose(a[:, 2, ci], b[:, 2, ci])
    assert hit[1].output_ids == plain[1].output_ids
    assert np.allclose(hit[1].extras["cas"], plain[1].extras["cas"], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hooks_do_not_sync_on_cuda(monkeypatch):
    model = _tiny("cuda")
    inner = hooked_attention.hooked_attention_forward

    def strict(*a, **k):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return inner(*a, **k)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    from transformers import AttentionInterface

    monkeypatch.setitem(AttentionInterface._global_mapping, hooked_attention.ATTN_NAME, strict)
    for case in CASES:
        assert len(_run(model, case, 6, "cuda")[0].output_ids) == 6


def test_stop_matcher_matches_full_decoding(model):
    """Incremental text equals the full decode, and the stop fires at the same token as full-decode matching."""
    tok = model.tokenizer
    texts = ["Sure! Here's the answer: 12 apples. The answer is 12.\n\nDone — café ünïcödé 你好 🙂 end",
             "def f(x):\n    return x  # ok\n\n\nprint(f(3))  The answer is 3", "ÆØÅ 🙂🙂 stickers now. more"]
    stops = ("The answer is", "\n\n\n", "🙂🙂", "stickers now.")
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        m = StopMatcher(tok, stops)
        first_inc = first_full = None
        for n in range(1, len(ids) + 1):
            hit = m.push(ids[:n])
            if n == len(ids) or not text.endswith("\ufffd"):
                assert tok.decode(ids[:n], skip_special_tokens=True).startswith(m.text)
            if hit and first_inc is None:
                first_inc = n
            if first_full is None and any(s in tok.decode(ids[:n], skip_special_tokens=True) for s in stops):
                first_full = n
        assert m.text == tok.decode(ids, skip_special_tokens=True)
        assert first_inc == first_full and first_full is not None
