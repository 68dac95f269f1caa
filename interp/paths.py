"""Where shared benchmark data and caches live (overridable by environment variables)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InterpError


def data_dir() -> Path:
    """Benchmark data folder: $INTERP_DATA_DIR, else the first `shared/data` found beside the cwd or the repo."""
    env = os.environ.get("INTERP_DATA_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here):
        for cand in (base / "../shared/data", base / "shared/data"):
            if cand.is_dir():
                return cand.resolve()
    raise InterpError(
        "benchmark data folder not found: set INTERP_DATA_DIR or place the data at ../shared/data "
        "beside the project (see README)"
    )


def cache_dir() -> Path:
    """Cache for converted models etc.: $INTERP_CACHE_DIR, else ~/.cache/interp."""
    p = Path(os.environ.get("INTERP_CACHE_DIR", Path.home() / ".cache" / "interp"))
    p.mkdir(parents=True, exist_ok=True)
    return p
