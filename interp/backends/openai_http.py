"""A TextGenerator over an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, hosted APIs, our server).

Requests run in a bounded thread pool, are retried with exponential backoff and jitter on 429/5xx,
connection errors and timeouts (honouring Retry-After), and come back in input order. Successful
responses are appended to a JSONL cache (a `ResultStore` keyed by `record_key(model, messages, params)`),
so a killed run restarted with the same cache re-requests only what is missing. The API key is read
from an environment variable at request time and is never stored, logged, cached or put in errors.
"""
from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Sequence

import requests

from ..errors import InterpError
from ..store import ResultStore, record_key

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIChatBackend:
    """Chat completions from an OpenAI-compatible HTTP server, cached and retried; implements TextGenerator."""

    max_wait = 60.0  # upper bound on one backoff / Retry-After sleep, seconds

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_concurrency: int = 8,
                 timeout: float = 60, max_retries: int = 5, backoff: float = 0.5, cache_path=None):
        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model_id = model
        self.api_key_env = api_key_env
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.stats = {"requests": 0, "retries": 0, "cached": 0}
        self._lock = threading.Lock()
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.max_concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self.store = ResultStore(cache_path) if cache_path else None
        self._cache = {r["key"]: r for r in self.store.records()} if self.store else {}

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(url={self.url!r}, model={self.model_id!r})"

    def generate_texts(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256,
                       temperature: float = 0.0, seed: int = 0, stop: Sequence[str] = ()) -> list[str]:
        """One completion text per conversation, in order (see `generate` for finish reasons and usage)."""
        return [r["text"] for r in self.generate(conversations, max_new_tokens, temperature, seed, stop)]

    def generate(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int = 0, stop: Sequence[str] = ()) -> list[dict]:
        """Per conversation a dict: text, finish_reason, usage, key, cached. Raises InterpError on final failure.

        With a cache, stored results are reused; identical requests in one call are always sent once. If one
        request fails for good, queued ones are cancelled, in-flight ones finish (and are cached), then it raises.
        """
        params = {"max_tokens": int(max_new_tokens), "temperature": float(temperature), "seed": int(seed),
                  "stop": list(stop)}
        keys = [record_key(model=self.model_id, messages=list(c), params=params) for c in conversations]
        todo = {k: list(c) for k, c in zip(keys, conversations) if k not in self._cache}
        self.stats["cached"] += sum(k in self._cache for k in keys)
        done = {k: dict(self._cache[k], cached=True) for k in keys if k in self._cache}
        if todo:
            with ThreadPoolExecutor(min(self.max_concurrency, len(todo))) as pool:
                futs = {pool.submit(self._complete, k, conv, params): k for k, conv in todo.items()}
                finished, pending = wait(futs, return_when=FIRST_EXCEPTION)
                for f in pending:
                    f.cancel()
                for f in finished:
                    if f.exception() is not None:
                        raise f.exception()
                for f in futs:
                    done[futs[f]] = dict(f.result(), cached=False)
        return [{f: done[k][f] for f in ("text", "finish_reason", "usage", "key", "cached")} for k in keys]

    def _complete(self, key: str, messages: list[dict], params: dict) -> dict:
        """Request one completion (with retries) and append it to the cache."""
        payload = {"model": self.model_id, "messages": messages, **params}
        if not payload["stop"]:
            del payload["stop"]
        body = self._post(payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise InterpError(f"{self.url} returned a response without choices[0].message.content: "
                              f"{self._excerpt(str(body))}") from None
        rec = {"key": key, "model": self.model_id, "messages": messages, "params": params, "text": text,
               "finish_reason": choice.get("finish_reason"), "usage": body.get("usage")}
        if self.store is not None:
            with self._lock:
                self._cache[key] = rec
                self.store.append(rec)
        return rec

    def _post(self, payload: dict) -> dict:
        """POST with retries on 429/5xx/connection errors/timeouts; one-line InterpError after the last try."""
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
            with self._lock:
                self.stats["requests"] += 1
            retry_after = None
            try:
                r = self._session.post(self.url, json=payload, headers=self._headers(), timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                problem = f"{type(e).__name__} ({self._excerpt(str(e))})"
            except requests.RequestException as e:
                raise InterpError(f"cannot request {self.url}: {type(e).__name__} ({self._excerpt(str(e))})") from None
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        raise InterpError(f"{self.url} returned invalid JSON: {self._excerpt(r.text)}") from None
                problem = f"HTTP {r.status_code}: {self._excerpt(self._error_text(r))}"
                if r.status_code not in RETRY_STATUS:
                    raise InterpError(f"{self.url} failed with {problem}")
                retry_after = _parse_retry_after(r.headers.get("Retry-After"))
            if attempt < self.max_retries:
                delay = retry_after
                if delay is None:
                    delay = self.backoff * 2 ** attempt * random.uniform(0.5, 1.5)
                log.warning("request to %s failed (%s); retry %d/%d in %.2fs", self.url, problem, attempt + 1,
                            self.max_retries, delay)
                time.sleep(min(delay, self.max_wait))
        raise InterpError(f"{self.url} failed after {self.max_retries + 1} attempts: {problem}")

    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    @staticmethod
    def _error_text(r: requests.Response) -> str:
        try:
            err = r.json().get("error")
            return str(err.get("message", err) if isinstance(err, dict) else err or r.text)
        except (ValueError, AttributeError):
            return r.text

    def _excerpt(self, text: str, n: int = 200) -> str:
        """One line of at most `n` characters with the API key (if any) masked."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            text = text.replace(key, "***")
        text = " ".join(text.split())
        return text if len(text) <= n else text[: n - 3] + "..."


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unparseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
