"""Models: loading (embedded default, hub, folder, GGUF), hooked attention, batched generation."""
from .loading import DEFAULT_MODEL, LoadedModel, load_model

__all__ = ["DEFAULT_MODEL", "LoadedModel", "load_model"]
