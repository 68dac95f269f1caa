"""A small OpenAI-compatible HTTP server over the toolkit's local model (standard library only).

    python -m interp.backends.server --model smollm2-135m --port 8000

Serves `POST /v1/chat/completions`, `GET /v1/models` and `GET /health`, so tests and CPU users have a
real server for the HTTP backend. One worker thread owns the model: concurrent requests with the same
decoding settings are batched into one `generate` call. `--fail-first N` / `--fail-rate p` answer
chat requests with 500 and 429 (alternating) to exercise client retries; `--api-key-env VAR` requires
`Authorization: Bearer $VAR`.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from ..models.generation import GenConfig, generate
from ..prompts import Prompt


class Batcher:
    """Runs generation on one thread; requests queued meanwhile with equal settings form one batch."""

    def __init__(self, model, max_batch: int = 8, wait_s: float = 0.01, threads: int = 0):
        self.model, self.max_batch, self.wait_s, self.threads = model, max_batch, wait_s, threads
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, messages: list[dict], cfg: GenConfig) -> Future:
        fut: Future = Future()
        self.q.put((messages, cfg, fut))
        return fut

    def _loop(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        while True:
            jobs = [self.q.get()]
            deadline = time.monotonic() + self.wait_s
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self.q.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            groups: dict[str, list] = {}
            for job in jobs:
                groups.setdefault(json.dumps(job[1].key_dict(), sort_keys=True), []).append(job)
            for group in groups.values():
                self._run(group)

    def _run(self, jobs: list) -> None:
        """Generate for jobs with equal settings; a job whose prompt cannot be built fails alone."""
        ready, prompts = [], []
        for messages, _, fut in jobs:
            try:
                prompts.append(self._prompt(messages))
                ready.append(fut)
            except Exception as e:
                fut.set_exception(e)
        if not ready:
            return
        try:
            gens = generate(self.model, prompts, jobs[0][1], progress=False)
        except Exception as e:  # each waiting request answers 500
            for fut in ready:
                fut.set_exception(e)
            return
        for fut, g in zip(ready, gens):
            fut.set_result(g)

    def _prompt(self, messages: list[dict]) -> Prompt:
        """The chat-template prompt, tokenized as `interp.prompts.build_prompt` does (same ids as LocalGenerator)."""
        tok = self.model.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n\n".join(m["content"] for m in messages)
        return Prompt(text, list(tok(text, add_special_tokens=False)["input_ids"]), {})


class ChatHandler(BaseHTTPRequestHandler):
    """OpenAI-style endpoints; the server object carries the batcher, model id and fault settings."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
                429: "RateLimitError"}.get(status, "InternalServerError")
        self._send(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def do_GET(self):
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_id, "object": "model",
                                                         "created": int(self.server.started), "owned_by": "interp"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        srv = self.server
        if srv.api_key is not None:
            got = self.headers.get("Authorization", "")
            if got != f"Bearer {srv.api_key}":
                # Echoes the key it was given, as some proxies do, so clients' redaction can be tested.
                return self._error(401, f"invalid API key: {got.removeprefix('Bearer ')!r}")
        fault = srv.next_fault()
        if fault == 429:
            return self._error(429, "rate limited (injected)", {"Retry-After": f"{srv.retry_after:g}"})
        if fault:
            return self._error(500, "server error (injected)")
        try:
            req = json.loads(body)
            messages = [{"role": m["role"], "content": _text(m["content"])} for m in req["messages"]]
            if req.get("model") not in (None, "default", srv.model_id):
                return self._error(404, f"model {req['model']!r} not found; this server serves {srv.model_id!r}")
            if req.get("stream") or int(req.get("n") or 1) != 1:
                return self._error(400, "stream and n > 1 are not supported")
            stop = req.get("stop") or []
            cfg = GenConfig(max_new_tokens=int(req.get("max_completion_tokens") or req.get("max_tokens") or 256),
                            temperature=float(req.get("temperature", 1.0)), top_p=float(req.get("top_p", 1.0)),
                            seed=int(req.get("seed") or 0), stop=tuple([stop] if isinstance(stop, str) else stop))
        except (ValueError, KeyError, TypeError) as e:
            return self._error(400, f"bad request: {type(e).__name__}: {e}")
        try:
            g = srv.batcher.submit(messages, cfg).result()
        except Exception as e:
            return self._error(500, f"generation failed: {type(e).__name__}: {e}")
        n_prompt, n_out = len(g.prompt.input_ids), len(g.output_ids)
        self._send(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": srv.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": g.output_text},
                         "finish_reason": "length" if g.finish_reason == "length" else "stop"}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}})


def _text(content) -> str:
    """Message content as text (a string, or OpenAI content parts of type text)."""
    if isinstance(content, str):
        return content
    return "".join(p["text"] for p in content if p.get("type") == "text")


class ChatServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with the model's batcher and the fault-injection counters."""

    daemon_threads = True

    def __init__(self, addr, model, fail_first: int = 0, fail_rate: float = 0.0, retry_after: float = 0.1,
                 api_key: str | None = None, max_batch: int = 8, verbose: bool = False, threads: int = 0):
        super().__init__(addr, ChatHandler)
        self.model_id = model.model_id
        self.batcher = Batcher(model, max_batch=max_batch, threads=threads)
        self.fail_first, self.fail_rate, self.retry_after = fail_first, fail_rate, retry_after
        self.api_key, self.verbose, self.started = api_key, verbose, time.time()
        self._n_faults = 0
        self._lock = threading.Lock()
        self._rng = random.Random(0)

    def next_fault(self) -> int:
        """0 to serve this request, else the status to fail it with (500 and 429 alternate)."""
        with self._lock:
            if self._n_faults < self.fail_first or (self.fail_rate and self._rng.random() < self.fail_rate):
                self._n_faults += 1
                return 500 if self._n_faults % 2 else 429
            return 0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="model spec for interp.models.load_model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch default); 1 avoids oversubscription on busy small machines")
    ap.add_argument("--fail-first", type=int, default=0, help="fail the first N chat requests (500/429)")
    ap.add_argument("--fail-rate", type=float, default=0.0, help="fail each chat request with probability p")
    ap.add_argument("--retry-after", type=float, default=0.1, help="Retry-After seconds sent with 429s")
    ap.add_argument("--api-key-env", default=None, help="require `Authorization: Bearer $VAR`")
    ap.add_argument("--verbose", action="store_true", help="log each request")
    args = ap.parse_args(argv)
    from ..models.loading import load_model

    model = load_model(args.model, dtype=args.dtype, device=args.device)
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        sys.exit(f"error: --api-key-env {args.api_key_env} is not set")
    srv = ChatServer((args.host, args.port), model, args.fail_first, args.fail_rate, args.retry_after, api_key,
                     args.max_batch, args.verbose, args.threads)
    print(f"serving {model.model_id} on http://{args.host}:{srv.server_address[1]}/v1", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
