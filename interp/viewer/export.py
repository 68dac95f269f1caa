"""`interp view RUN --export out.html`: the viewer as one self-contained HTML file that opens offline.

The file holds the page, its script, plotly.js (from the `plotly` package) and the run's data as inert JSON
(`<script type="application/json">`, with `<`, `>` and `&` escaped so no stored text can close the tag). It
carries every record and the report tables; the stored CAS of the first `cas_limit` generations (the default
span only), since a study's full CAS would be gigabytes; the page says which generations have none. A
Content-Security-Policy meta tag allows exactly the two inline scripts (by hash) and nothing else.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from ..errors import InterpError
from .detail import cas_view, record_view
from .index import public
from .server import ViewerState, page_html, plotly_js, static_text


def _safe_json(obj) -> str:
    return (json.dumps(obj, ensure_ascii=False, default=str, allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _sha(js: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(js.encode()).digest()).decode() + "'"


def export_data(run_dir: str | os.PathLike, cas_limit: int = 300, progress: bool = False) -> dict:
    """Everything the exported page shows, computed by the same functions the server answers with."""
    if not isinstance(cas_limit, int) or cas_limit < 0:
        raise InterpError(f"cas_limit must be an integer >= 0, got {cas_limit!r}")
    state = ViewerState.open(run_dir)
    state.compute()
    ix = state.index
    meta = state.meta() | {"mode": "export", "cas_limit": cas_limit}
    keys = [r["key"] for s in ix.stages for r in ix.stages[s].rows]
    it = keys
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(keys, desc="export", unit="record")
    records, cas, n_cas = {}, {}, 0
    for k in it:
        records[k] = record_view(ix, state.tokens, k)
        if records[k].get("cas_file") and n_cas < cas_limit:
            cas[k] = cas_view(ix, state.tokens, k)
            n_cas += 1
    meta["n_cas"] = n_cas
    meta["n_with_cas"] = sum(1 for r in records.values() if r.get("cas_file"))
    return {"meta": meta, "tables": state.tables, "tables_error": state.tables_error,
            "rows": {s: [public(r) for r in ix.stages[s].rows] for s in ix.stages},
            "records": records, "cas": cas,
            "candidates": {i: c for i in {r["item_id"] for r in ix.stages["baseline"].rows} if (c := ix.candidates(i))}}


def export_html(run_dir: str | os.PathLike, out: str | os.PathLike, cas_limit: int = 300,
                progress: bool = False) -> Path:
    """Write the self-contained viewer of `run_dir` to `out` (an .html file); returns its path."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InterpError(f"--export writes one HTML file: give a path ending in .html, got {str(out)!r}")
    src = Path(run_dir).resolve()
    if out.resolve().is_relative_to(src):
        raise InterpError(f"the viewer writes nothing into the run directory: put {out} outside {src}")
    data = export_data(run_dir, cas_limit, progress)
    plotly, viewer = plotly_js(), static_text("viewer.js")
    csp = (f"default-src 'none'; script-src {_sha(plotly)} {_sha(viewer)}; style-src 'unsafe-inline'; "
           "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")
    head = (f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            f"<style>\n{static_text('viewer.css')}\n</style>\n<script>{plotly}</script>\n")
    body = (f'<script type="application/json" id="interp-data">{_safe_json(data)}</script>\n'
            f"<script>{viewer}</script>")
    html = page_html(body, {"head": head})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
