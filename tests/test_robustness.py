"""CAS robustness variants: function words out of the constraint span, a length-matched control span, and the
teacher-forced variant CAS checked against attention patterns summed by hand."""
import numpy as np
import pytest
import torch

from interp.attention.robustness import (cas_variants, content_positions, is_function_token,
                                         matched_control_positions, variant_prompt)
from interp.errors import InterpError
from interp.api import run_with_cache
from interp.prompts import Part, Prompt, build_prompt


def test_function_tokens():
    assert is_function_token(" the") and is_function_token("The") and is_function_token(" .") and is_function_token(" ")
    assert not is_function_token(" answer") and not is_function_token("words")


@pytest.fixture(scope="module")
def prompt(model):
    return build_prompt(model.tokenizer, [Part("task", "What is 2+3?"),
                                          Part("constraint_0", "Answer in at most the three words.")])


def test_content_and_control_positions(model, prompt):
    s, e = prompt.spans["constraint_0"]
    content = content_positions(model.tokenizer, prompt)
    words = [model.tokenizer.decode([prompt.input_ids[p]]).strip() for p in content]
    assert words == ["Answer", "three", "words"]
    ctl = matched_control_positions(prompt, seed=0)
    assert len(ctl) == e - s and ctl == list(range(ctl[0], ctl[0] + len(ctl))) and ctl[0] >= 1
    assert not set(ctl) & set(range(s, e))
    assert matched_control_positions(prompt, seed=0) == ctl  # seeded by the prompt
    with pytest.raises(InterpError, match="no constraint"):
        content_positions(model.tokenizer, Prompt("", [1, 2, 3], {"task": (0, 3)}))


def test_variant_cas_equals_patterns_summed_by_hand(model, prompt, tmp_path):
    out = model.tokenizer("Five", add_special_tokens=False)["input_ids"] + [13]
    got = cas_variants(tmp_path, model, [("g", prompt, out)])["g"]
    cas, spans, span_len = got
    assert spans[:3] == ["constraints", "content", "control"]
    vp, groups = variant_prompt(model.tokenizer, prompt)
    full = Prompt("", list(prompt.input_ids) + out[:-1], {})
    _, cache = run_with_cache(model, [full], "blocks.*.attn.hook_pattern")
    n_p = len(prompt.input_ids)
    for gi, g in enumerate(("constraints", "content", "control")):
        pos = sorted(p for part in groups[g] for p in range(*vp.spans[part]))
        assert span_len[gi] == len(pos)
        for layer in (0, 17, 29):
            pat = cache[f"blocks.{layer}.attn.hook_pattern"][0]  # [heads, rows, keys]
            ref = pat[:, n_p - 1: n_p - 1 + len(out)][:, :, pos].sum(-1).T  # [steps, heads]
            np.testing.assert_allclose(cas[:, layer, gi], ref.numpy(), atol=1e-5)
    assert (cas[:, :, 1] <= cas[:, :, 0] + 1e-6).all()  # content is part of the constraint span
    again = cas_variants(tmp_path, model, [("g", prompt, out)])["g"]  # cached: read back, same values
    assert np.array_equal(again[0], cas) and (tmp_path / "cas_tf" / "robust" / "cas" / "g.npz").is_file()
    assert torch.is_tensor(cache["blocks.0.attn.hook_pattern"])
