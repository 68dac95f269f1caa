"""CAS arrays on disk: one compressed .npz per generation under ``<run>/cas/``, linked from records by key.

Each file holds ``cas`` (float32 ``[steps, layers, spans, heads]``: the live capture's own precision, so stored
and teacher-forced values agree to ~1e-6; float16 would add up to ~2e-4), ``spans`` (names) and ``span_len``.
Written atomically, so a crash never leaves a half-written array. `load_cas` gathers them into a
labelled, NaN-padded array with dims (item, step, layer, head) for one span.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


def save_cas(run_dir: str | os.PathLike, key: str, cas: np.ndarray, spans: Sequence[str],
             span_len: Sequence[float], dtype=np.float32) -> str:
    """Store one generation's CAS (as `dtype`); returns the path relative to the run directory (kept in the record)."""
    rel = f"cas/{key}.npz"
    path = Path(run_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, cas=np.asarray(cas, dtype=dtype), spans=np.array(list(spans)),
                        span_len=np.asarray(span_len, dtype=np.float32))
    os.replace(tmp, path)
    return rel


def read_cas(run_dir: str | os.PathLike, rel: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    with np.load(Path(run_dir) / rel) as z:
        return z["cas"].astype(np.float32), [str(s) for s in z["spans"]], z["span_len"]


@dataclass
class LabelledCAS:
    """CAS of one span for many generations: ``values[item, step, layer, head]`` (NaN past each length)."""

    values: np.ndarray
    keys: list[str]
    lengths: np.ndarray
    span: str
    dims: tuple[str, ...] = ("item", "step", "layer", "head")

    def per_generation_mean(self) -> np.ndarray:
        """[item, layer, head]: mean over the steps of each generation."""
        return np.nanmean(self.values, axis=1)

    def to_xarray(self):
        """The array as an `xarray.DataArray` with dims (key, step, layer, head), record keys as coordinates."""
        import xarray as xr

        I, T, L, H = self.values.shape
        return xr.DataArray(self.values, dims=("key", "step", "layer", "head"),
                            coords={"key": list(self.keys), "step": np.arange(T), "layer": np.arange(L),
                                    "head": np.arange(H)}, name=f"cas:{self.span}")

    def to_pandas(self):
        """Long format: one row per (key, step, layer, head)."""
        import pandas as pd

        i, s, l, h = np.nonzero(~np.isnan(self.values))
        return pd.DataFrame({"key": np.array(self.keys)[i], "step": s, "layer": l, "head": h,
                             "cas": self.values[i, s, l, h]})


def load_cas(run_dir: str | os.PathLike, records: Sequence[dict], span: str = "constraints",
             normalisation: str = "raw", control: str | None = None) -> LabelledCAS:
    """Load the CAS of `span` for the given records (those with a ``cas_file``) into one labelled array."""
    from .cas import normalise

    arrays, keys = [], []
    for r in records:
        if not r.get("cas_file"):
            continue
        cas, spans, span_len = read_cas(run_dir, r["cas_file"])
        if span not in spans:
            continue
        arrays.append(normalise(cas, spans, span, normalisation, span_len, control))
        keys.append(r["key"])
    if not arrays:
        return LabelledCAS(np.zeros((0, 0, 0, 0), np.float32), [], np.zeros(0, int), span)
    T = max(a.shape[0] for a in arrays)
    L, H = arrays[0].shape[1:]
    out = np.full((len(arrays), T, L, H), np.nan, np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return LabelledCAS(out, keys, np.array([a.shape[0] for a in arrays]), span)
