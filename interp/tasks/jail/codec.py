"""Plain data across the jail boundary: `encode` to JSON-ready values, `decode` back, on both sides.

Only None, bool, int, float, str, list, tuple, set, frozenset, dict, bytes and complex cross; anything else
is refused. `decode` reads what the untrusted side sent, so it is bounded: at most `MAX_NODES` values and
`MAX_DEPTH` levels, and it refuses a reply in which more than `MAX_SAME_HASH` distinct values share one
`hash()` (ints, floats and tuples have hashes a program can choose; a set or dict of such values costs
quadratic time to build, here or in the test that uses it). Distinctness is judged by a keyed digest
(a secret key of this process), so the screen itself cannot be steered and runs in linear time.

This module is stdlib-only: the jail's runner imports it before any program code runs.
"""
from __future__ import annotations

import os

try:
    from _blake2 import blake2b  # the C module itself: importing hashlib (OpenSSL) costs the runner milliseconds
except ImportError:  # pragma: no cover
    from hashlib import blake2b

MAX_NODES = 500_000
MAX_DEPTH = 64
MAX_SAME_HASH = 8

_PLAIN = (type(None), bool, int, float, str)
_SEQ = {"tuple": tuple, "set": set, "frozenset": frozenset}
_KEY = os.urandom(16)


class DecodeError(ValueError):
    """The value is not plain data within the limits (the message says which limit)."""


def encode(x):
    """`x` as JSON-ready data (tagged dicts for tuple, set, frozenset, dict, bytes, complex); TypeError otherwise."""
    t = type(x)
    if t in _PLAIN:
        return x
    if t is list:
        return [encode(v) for v in x]
    if t is dict:
        return {"#": "dict", "v": [[encode(k), encode(v)] for k, v in x.items()]}
    if t in (tuple, set, frozenset):
        return {"#": t.__name__, "v": [encode(v) for v in x]}
    if t is bytes:
        return {"#": "bytes", "v": x.hex()}
    if t is complex:
        return {"#": "complex", "v": [x.real, x.imag]}
    raise TypeError("a %s cannot cross the sandbox boundary (plain data only)" % t.__name__)


def _digest(tag: bytes, body: bytes) -> bytes:
    return blake2b(tag + body, digest_size=8, key=_KEY).digest()


class _Decoder:
    def __init__(self, max_nodes: int, max_depth: int, max_same_hash: int):
        self.nodes, self.max_nodes, self.max_depth, self.max_same = 0, max_nodes, max_depth, max_same_hash
        self.seen: set[tuple[int, bytes]] = set()
        self.per_hash: dict[int, int] = {}

    def screen(self, value, digest: bytes) -> None:
        h = hash(value)
        if (h, digest) not in self.seen:
            self.seen.add((h, digest))
            n = self.per_hash[h] = self.per_hash.get(h, 0) + 1
            if n > self.max_same:
                raise DecodeError(f"more than {self.max_same} distinct values share one hash (a hash-collision flood)")

    def scalar(self, x) -> tuple[object, bytes | None]:
        t = type(x)
        if t is int:
            d = _digest(b"i", x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True))
        elif t is float:
            d = _digest(b"f", x.hex().encode())
        elif t is str:
            d = _digest(b"s", x.encode("utf-8", "surrogatepass"))
        else:  # None, bool
            return x, _digest(b"c", repr(x).encode())
        self.screen(x, d)
        return x, d

    def dec(self, x, depth: int) -> tuple[object, bytes | None]:
        """The value and its keyed digest (None for unhashable values)."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise DecodeError(f"more than {self.max_nodes} values")
        if depth > self.max_depth:
            raise DecodeError(f"nested deeper than {self.max_depth} levels")
        t = type(x)
        if t in _PLAIN:
            return self.scalar(x)
        if t is list:
            return [self.dec(v, depth + 1)[0] for v in x], None
        if t is dict and len(x) == 2 and type(x.get("v")) is list:
            tag, v = x.get("#"), x["v"]
            if tag in _SEQ:
                parts = [self.dec(e, depth + 1) for e in v]
                if tag == "set":
                    return set(p[0] for p in parts), None
                if any(d is None for _, d in parts):
                    raise DecodeError(f"unhashable element in a {tag}")
                digests = [d for _, d in parts if d is not None]
                if tag == "frozenset":
                    digests.sort()
                value = _SEQ[tag](p[0] for p in parts)
                d = _digest(tag.encode(), b"".join(digests))
                self.screen(value, d)
                return value, d
            if tag == "dict" and all(type(p) is list and len(p) == 2 for p in v):
                items = [(self.dec(k, depth + 1)[0], self.dec(e, depth + 1)[0]) for k, e in v]
                return dict(items), None
            if tag == "complex" and len(v) == 2 and all(type(e) is float for e in v):
                c = complex(*v)
                d = _digest(b"j", (v[0].hex() + "," + v[1].hex()).encode())
                self.screen(c, d)
                return c, d
        if t is dict and x.get("#") == "bytes" and type(x.get("v")) is str:
            try:
                b = bytes.fromhex(x["v"])
            except ValueError:
                raise DecodeError("bad bytes") from None
            d = _digest(b"b", b)
            self.screen(b, d)
            return b, d
        raise DecodeError("not plain data")


def decode(x, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH, max_same_hash: int = MAX_SAME_HASH):
    """The value `encode` made, rebuilt in linear time; DecodeError when `x` is not plain data within the limits."""
    try:
        return _Decoder(max_nodes, max_depth, max_same_hash).dec(x, 0)[0]
    except TypeError:  # an unhashable element in a set or dict key
        raise DecodeError("unhashable element in a set or dict") from None
