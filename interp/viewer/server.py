"""`interp view RUN`: a local, read-only HTTP server of one run directory (JSON API + the static page).

The page and its script are package data (`interp/viewer/static/`); plotly.js is the copy shipped inside the
`plotly` Python package, so nothing is fetched from the network. The API answers pages of rows, one item, one
record and one generation's CAS at a time: the browser never holds the whole run. Served only on 127.0.0.1 by
default, with a Content-Security-Policy that allows no inline script, as a second line behind the page's rule
of showing model text only as text.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from ..errors import InterpError
from .detail import Tokens, cas_view, jsonable, record_view
from .index import FILTER_FIELDS, RunIndex
from .tables import ChildTables

STATIC = ("viewer.js", "viewer.css")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors *")


def static_text(name: str) -> str:
    """A file of the page (package data)."""
    return (resources.files("interp.viewer") / "static" / name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """plotly.js as shipped inside the `plotly` package (its offline bundle; no second copy in this repository)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def page_html(body_data: str = "", inline: dict[str, str] | None = None) -> str:
    """index.html with the script and style tags pointing at /static/ or, for an export, holding their text."""
    html = static_text("index.html")
    if inline is None:
        scripts = '<link rel="stylesheet" href="static/viewer.css">\n<script src="static/viewer.js" defer></script>'
    else:
        scripts = inline["head"]
    return html.replace("<!--HEAD-->", scripts).replace("<!--DATA-->", body_data)


@dataclass
class ViewerState:
    """What the server shares between requests: the index, the tables (computed once, in the background)."""

    index: RunIndex
    tokens: Tokens
    tables: dict | None = None
    tables_error: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> "ViewerState":
        index = RunIndex(run_dir)
        return cls(index, Tokens(index.config["config"].get("model")))

    def compute(self, computed: ChildTables | None = None) -> None:
        """The report tables (from `computed`, a child's `report_tables`, if given), then the tokenizer and the
        CAS reader (slow imports), off the request path."""
        from .tables import linked_tables

        try:
            self.tables = linked_tables(self.index, computed)
        except Exception as e:  # noqa: BLE001 - shown on the page; the records stay browsable
            self.tables_error = f"{type(e).__name__}: {e}"
        finally:
            self.ready.set()
        self.tokens.get()
        from ..attention import storage  # noqa: F401 - imported now, not on the first token view

    def meta(self) -> dict:
        ix = self.index
        cfg = ix.config["config"]
        return {"run": ix.path.name, "path": str(ix.path.resolve()), "config": cfg,
                "config_hash": ix.config["config_hash"], "counts": ix.counts(), "facets": ix.facets(),
                "filter_fields": list(FILTER_FIELDS), "problems": ix.problems(), "mode": "server"}

    def get_tables(self, wait: float = 600.0) -> dict:
        self.ready.wait(wait)
        if self.tables_error:
            raise InterpError(f"the report tables could not be computed: {self.tables_error}")
        if self.tables is None:
            raise InterpError("the report tables are still being computed; reload in a moment")
        return self.tables


def _one(q: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    v = q.get(name)
    return v[0] if v else default


def _int(q: dict[str, list[str]], name: str, default: int) -> int:
    v = _one(q, name)
    try:
        return default if v is None else int(v)
    except ValueError:
        raise InterpError(f"{name} must be an integer, got {v!r}") from None


def _routes(state: ViewerState) -> dict[str, Callable[[dict[str, list[str]]], Any]]:
    def records(q):
        filters = {k: v[0] for k, v in q.items() if k not in ("offset", "limit")}
        return state.index.query(filters, _int(q, "offset", 0), _int(q, "limit", 50))

    def need(q, name):
        v = _one(q, name)
        if not v:
            raise InterpError(f"missing ?{name}=")
        return v

    return {
        "meta": lambda q: state.meta(),
        "tables": lambda q: state.get_tables(),
        "records": records,
        "item": lambda q: state.index.item(need(q, "item_id")),
        "record": lambda q: record_view(state.index, state.tokens, need(q, "key")),
        "cas": lambda q: cas_view(state.index, state.tokens, need(q, "key"), _one(q, "span")),
    }


def make_handler(state: ViewerState) -> type[BaseHTTPRequestHandler]:
    routes = _routes(state)
    files: dict[str, tuple[bytes, str]] = {}

    def static(name: str) -> tuple[bytes, str]:
        if name not in files:
            if name == "plotly.min.js":
                files[name] = (plotly_js().encode(), "text/javascript")
            elif name in STATIC:
                ctype = "text/javascript" if name.endswith(".js") else "text/css"
                files[name] = (static_text(name).encode(), ctype)
            else:
                raise FileNotFoundError(name)
        return files[name]

    class Handler(BaseHTTPRequestHandler):
        server_version = "interp-view"

        def log_message(self, format, *args):  # noqa: A002 - quiet: one line per request would flood a terminal
            return

        def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - the http.server name
            url = urlparse(self.path)
            path = url.path
            try:
                if path in ("/", "/index.html"):
                    return self._send(200, page_html().encode(), "text/html")
                if path == "/favicon.ico":
                    return self._send(204, b"", "image/x-icon")
                if path.startswith("/static/"):
                    body, ctype = static(path[len("/static/"):])
                    return self._send(200, body, ctype, cache=True)
                if path.startswith("/api/") and path[5:] in routes:
                    res = routes[path[5:]](parse_qs(url.query))
                    return self._send(200, json.dumps(jsonable(res), default=str, allow_nan=False).encode(), "application/json")
                return self._send(404, b'{"error": "not found"}', "application/json")
            except FileNotFoundError:
                return self._send(404, b'{"error": "not found"}', "application/json")
            except InterpError as e:
                return self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(e)}).encode(), "application/json")
            except (BrokenPipeError, ConnectionResetError):
                return None
            except Exception as e:  # noqa: BLE001 - the page shows the error; the server keeps serving
                body = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
                return self._send(500, body, "application/json")

    return Handler


class Viewer:
    """A running viewer of one run directory: `url`, `stop()`; in a notebook cell it shows as an iframe."""

    def __init__(self, run_dir: str | os.PathLike, port: int = 0, host: str = "127.0.0.1"):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InterpError(f"port must be an integer in 0..65535 (0 = any free port), got {port!r}")
        if not Path(run_dir).is_dir():
            raise InterpError(f"{run_dir} is not a directory; pass a run directory written by `interp sustain`")
        self._tables = ChildTables(run_dir)  # on the other core while this process indexes the run
        try:
            self.state = ViewerState.open(run_dir)
        except BaseException:
            self._tables.stop()
            raise
        try:
            self.httpd = ThreadingHTTPServer((host, port), make_handler(self.state))
        except OSError as e:
            self._tables.stop()
            raise InterpError(f"cannot serve on {host}:{port} ({e}); pick another --port") from None
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="interp-view")
        self._thread.start()
        threading.Thread(target=self.state.compute, args=(self._tables,), daemon=True, name="interp-view-tables").start()

    def stop(self) -> None:
        self._tables.stop()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "Viewer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Viewer({str(self.state.index.path)!r}, url={self.url!r})"

    def _repr_html_(self) -> str:
        return f'<iframe src="{self.url}" width="100%" height="720" style="border:1px solid #ccc"></iframe>'


def serve(run_dir: str | os.PathLike, port: int = 8765, host: str = "127.0.0.1", open_browser: bool = False) -> None:
    """Serve until interrupted (the `interp view` command)."""
    v = Viewer(run_dir, port, host)
    print(f"viewing {Path(run_dir)} at {v.url} (read-only; Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(v.url)
    try:
        v._thread.join()
    finally:
        v.stop()
