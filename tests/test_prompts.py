"""Span positions of every prompt part, on the embedded model's ChatML template and on two other families."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import PreTrainedTokenizerFast

from interp.errors import InterpError
from interp.prompts import Part, build_prompt

PARTS = [
    Part("system_note", "You are careful.", role="system"),
    Part("context", "Context: Zorvia's capital is Mellin, a city of 40,000 people."),
    Part("task", "Question: What is the capital of Zorvia?"),
    Part("connective", "Additionally, follow this constraint:"),
    Part("constraint_0", "Answer in at most 12 words.", sep=" "),
]

LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
          "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
         "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A small byte-level BPE tokenizer trained here (no download), with a Llama-3 style template."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<start_of_turn>", "<end_of_turn>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [p.text for p in PARTS] * 20 + ["the quick brown fox jumps over the lazy dog"] * 20
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    fast.chat_template = LLAMA3
    return fast


def _check_spans(tokenizer, prompt):
    for p in PARTS:
        s, e = prompt.spans[p.name]
        assert 0 <= s < e <= len(prompt.input_ids), p.name
        decoded = tokenizer.decode(prompt.input_ids[s:e])
        assert decoded.strip() == p.text, (p.name, decoded)
    names = [p.name for p in PARTS if p.role == "user"]
    starts = [prompt.spans[n][0] for n in names]
    assert starts == sorted(starts)


def test_spans_chatml_embedded(model):
    prompt = build_prompt(model.tokenizer, PARTS)
    assert prompt.text.startswith("<|im_start|>system")
    assert prompt.input_ids == model.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    _check_spans(model.tokenizer, prompt)


def test_spans_llama3_template(bpe_tokenizer):
    prompt = build_prompt(bpe_tokenizer, PARTS)
    assert "<|start_header_id|>user<|end_header_id|>" in prompt.text
    _check_spans(bpe_tokenizer, prompt)


def test_spans_gemma_template_on_embedded_tokenizer(model):
    import copy

    tok = copy.deepcopy(model.tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tok.chat_template = GEMMA
    prompt = build_prompt(tok, PARTS)
    assert "<start_of_turn>user" in prompt.text
    _check_spans(tok, prompt)


def test_duplicate_part_names_rejected(bpe_tokenizer):
    with pytest.raises(InterpError, match="used twice"):
        build_prompt(bpe_tokenizer, [Part("task", "a"), Part("task", "b")])
