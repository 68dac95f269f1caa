"""OpenAIChatBackend against real `python -m interp.backends.server` processes on 127.0.0.1 (no mocks).

Checks greedy equality with LocalGenerator, resume from the cache after the server is SIGKILLed,
retries on injected 500/429s, a clear error from a server that always fails, and that the API key
never reaches the cache, the logs or error messages.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import torch

from interp.backends import OpenAIChatBackend, TextGenerator
from interp.backends.local import LocalGenerator
from interp.backends.openai_http import _parse_retry_after
from interp.errors import InterpError
from interp.models.loading import load_model
from interp.store import ResultStore

pytestmark = pytest.mark.slow

KEY_ENV = "INTERP_TEST_HTTP_KEY"
KEY = f"sk-interp-test-{uuid.uuid4().hex}"
MODEL = "smollm2-135m"
TOKENS = 12
CONVS = [
    [{"role": "user", "content": "Say hi."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does Tom have now?"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a fixed free port; can be SIGKILLed and started again on the same port."""

    def __init__(self, log_dir: Path, *args: str):
        self.port, self.args = _free_port(), args
        self.log = log_dir / f"server-{self.port}.log"
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "interp.backends.server", "--model", MODEL, "--port", str(self.port),
               "--threads", "1", "--api-key-env", KEY_ENV, *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, KEY_ENV: KEY})

    def wait_ready(self, timeout: float = 180) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()[-2000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The normal, the flaky (first 4 requests fail) and the always-failing server, started in parallel."""
    d = tmp_path_factory.mktemp("servers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)
        procs = {"ok": Server(d), "flaky": Server(d, "--fail-first", "4", "--retry-after", "0.2"),
                 "failing": Server(d, "--fail-rate", "1")}
        try:
            yield {k: s.wait_ready() for k, s in procs.items()}
        finally:
            for s in procs.values():
                s.stop()


def backend(server: Server, **kw) -> OpenAIChatBackend:
    return OpenAIChatBackend(server.url, MODEL, api_key_env=KEY_ENV, **kw)


@pytest.fixture(scope="module")
def uninterrupted(servers):
    """One uninterrupted, uncached run of all conversations plus a duplicate (sent once)."""
    b = backend(servers["ok"])
    out = b.generate(CONVS + [CONVS[0]], max_new_tokens=TOKENS)
    assert b.stats["requests"] == len(CONVS)
    assert out[-1]["text"] == out[0]["text"]
    return out[: len(CONVS)]


@pytest.fixture(scope="module")
def local_texts():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return LocalGenerator(load_model(MODEL)).generate_texts(CONVS, max_new_tokens=TOKENS)
    finally:
        torch.set_num_threads(prev)


def test_server_matches_local_greedy(uninterrupted, local_texts):
    assert isinstance(OpenAIChatBackend("http://x", MODEL), TextGenerator)
    assert [r["text"] for r in uninterrupted] == local_texts
    assert all(r["finish_reason"] in ("stop", "length") and r["usage"]["completion_tokens"] <= TOKENS
               for r in uninterrupted)
    assert any(r["finish_reason"] == "length" for r in uninterrupted)


def test_killed_server_resume_from_cache(servers, uninterrupted, tmp_path):
    server, cache = servers["ok"], tmp_path / "cache.jsonl"
    b = backend(server, cache_path=cache, max_concurrency=1, max_retries=1, backoff=0.05)
    box: dict = {}

    def run():
        try:
            box["out"] = b.generate(CONVS, max_new_tokens=TOKENS)
        except InterpError as e:
            box["err"] = e

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 60
    while (not cache.exists() or len(cache.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    t.join(60)
    try:
        assert "err" in box and "out" not in box
        done_before = len(cache.read_text().splitlines())
        assert 2 <= done_before < len(CONVS)
    finally:
        server.start()
        server.wait_ready()
    resumed = backend(server, cache_path=cache)
    out = resumed.generate(CONVS, max_new_tokens=TOKENS)
    assert sum(r["cached"] for r in out) == done_before
    assert resumed.stats["requests"] == len(CONVS) - done_before
    recs = ResultStore(cache).records()
    assert len(recs) == len(CONVS) == len({r["key"] for r in recs})
    assert {r["key"] for r in recs} == {r["key"] for r in out}
    assert [r["text"] for r in out] == [r["text"] for r in uninterrupted]
    assert [r["finish_reason"] for r in out] == [r["finish_reason"] for r in uninterrupted]
    again = backend(server, cache_path=cache)
    assert again.generate_texts(CONVS, max_new_tokens=TOKENS) == [r["text"] for r in uninterrupted]
    assert again.stats["requests"] == 0


def test_retries_injected_500_and_429(servers, uninterrupted, caplog):
    b = backend(servers["flaky"], max_concurrency=1, max_retries=5, backoff=0.01)
    t0 = time.monotonic()
    out = b.generate_texts(CONVS[:2], max_new_tokens=TOKENS)
    assert out == [r["text"] for r in uninterrupted[:2]]
    assert b.stats["retries"] == 4
    assert time.monotonic() - t0 >= 0.4  # two 429s with Retry-After: 0.2 were honoured
    assert "HTTP 429" in caplog.text and "HTTP 500" in caplog.text and KEY not in caplog.text


def test_always_failing_server_raises_one_line(servers, tmp_path, caplog):
    cache = tmp_path / "cache.jsonl"
    b = backend(servers["failing"], max_retries=2, backoff=0.01, cache_path=cache)
    with pytest.raises(InterpError) as e:
        b.generate(CONVS[:2], max_new_tokens=TOKENS)
    msg = str(e.value)
    assert "after 3 attempts" in msg and ("HTTP 500" in msg or "HTTP 429" in msg) and "\n" not in msg
    assert KEY not in msg and KEY not in caplog.text
    assert not cache.exists() or cache.read_text() == ""


def test_unreachable_server_raises():
    b = OpenAIChatBackend(f"http://127.0.0.1:{_free_port()}", MODEL, api_key_env=KEY_ENV, max_retries=1, backoff=0.01)
    with pytest.raises(InterpError, match="ConnectionError"):
        b.generate_texts(CONVS[:1], max_new_tokens=4)


def test_api_key_never_leaks(servers, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache.jsonl"
    b = backend(servers["ok"], cache_path=cache)
    b.generate_texts(CONVS[:2], max_new_tokens=TOKENS)  # the server requires the key: it was sent
    assert KEY not in cache.read_text() and KEY not in repr(b) and KEY not in str(vars(b))
    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(InterpError) as e:
        b.generate_texts([[{"role": "user", "content": "Another question."}]], max_new_tokens=TOKENS)
    assert "HTTP 401" in str(e.value) and wrong not in str(e.value) and KEY not in str(e.value)
    assert len(cache.read_text().splitlines()) == 2
    assert KEY not in caplog.text and wrong not in caplog.text


def test_parse_retry_after():
    assert _parse_retry_after("2") == 2.0 and _parse_retry_after(None) is None and _parse_retry_after("soon") is None
    assert 0 <= _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001


TRANSFORMERS_CLI = Path(sys.executable).with_name("transformers")


@pytest.mark.skipif(not TRANSFORMERS_CLI.exists(), reason="no transformers CLI")
def test_transformers_serve_matches_local(local_texts):
    """`transformers serve` (needs transformers[serving]) over the cached model folder gives the same text."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    folder, port = load_model(MODEL).source, _free_port()
    cmd = [str(TRANSFORMERS_CLI), "serve", folder, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "transformers serve exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        b = OpenAIChatBackend(f"http://127.0.0.1:{port}", folder, api_key_env="", max_concurrency=2)
        assert b.generate_texts(CONVS[:2], max_new_tokens=TOKENS) == local_texts[:2]
    finally:
        proc.terminate()
        proc.wait(10)


def test_sustain_pipeline_runs_on_http_backend(servers, model, tmp_path, monkeypatch):
    """SustainScore runs fully over HTTP (generation + constraints); outputs equal the local hooked run's."""
    from interp.experiments import SustainConfig, SustainRun

    monkeypatch.setenv(KEY_ENV, KEY)
    tiny = dict(task="smoke_arith", n_items=4, max_new_tokens=24, k_values=[], controls=["rerun"], capture_cas=False)
    local = SustainRun(SustainConfig(**tiny), tmp_path / "local", model=model, progress=False, log=lambda s: None)
    local.run(report=False)
    cfg = SustainConfig(**tiny, backend=servers["ok"].url, backend_model=MODEL, backend_api_key_env=KEY_ENV)
    http = SustainRun(cfg, tmp_path / "http", progress=False, log=lambda s: None)
    http.run()
    assert http.model is None, "the HTTP run must not load the local model"
    for stage in ("baseline", "constrained"):
        a = {(r["item_id"], r.get("condition")): r["output_text"] for r in local.records(stage)}
        b = {(r["item_id"], r.get("condition")): r["output_text"] for r in http.records(stage)}
        assert a == b, stage
    assert (tmp_path / "http" / "report.md").is_file()


def test_soft_constraints_end_to_end_on_server_and_local_model(servers, model, monkeypatch):
    """Soft types (method/style/structure) extracted and judged by the embedded model, locally and over HTTP."""
    from interp.constraints import ProposeContext, extract_constraints

    monkeypatch.setenv(KEY_ENV, KEY)
    output = ("Tom has 3 apples and buys 4 more. 3 + 4 = 7, so Tom has 7 apples now. The answer is 7.")
    ctx = ProposeContext(task_text="Tom has 3 apples and buys 4 more. How many apples does Tom have?", domain="math")
    for gen in (backend(servers["ok"]), LocalGenerator(model)):
        cands = extract_constraints(output, ctx, types=["method", "style", "structure"], extractor=gen, judge=gen)
        assert {c.type for c in cands} == {"method", "style", "structure"}
        for c in cands:
            assert c.reason, c
            if c.constraint is not None and c.reason not in ("duplicate",):
                assert c.constraint.kind == "soft"
                assert c.judge_output is not None, c  # the judge's raw answer is recorded
