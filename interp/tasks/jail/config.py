"""The runner's configuration: built by the trusted side, read by the runner (one JSON argument).

Stdlib-only and import-light (no dataclasses: the runner's start-up time is every program's cost).
"""
from __future__ import annotations

import json


class _Record:
    """A typed record of named fields (set from keywords; all required), readable as JSON."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, **fields) -> None:
        missing = [f for f in self.__slots__ if f not in fields]
        extra = [f for f in fields if f not in self.__slots__]
        if missing or extra:
            raise TypeError(f"{type(self).__name__}: missing {missing}, unknown {extra}")
        for k, v in fields.items():
            setattr(self, k, v)

    def to_dict(self) -> dict:
        return {f: (getattr(self, f).to_dict() if isinstance(getattr(self, f), _Record) else getattr(self, f))
                for f in self.__slots__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.__slots__)})"


class JailConfig(_Record):
    """How the runner builds the jail: a new root holding read-only binds (`ro`), empty read-only tmpfs over
    `masked` (folders inside those binds the program must not see, e.g. site-packages), the work dir as a
    tmpfs of `work_kb`, private /tmp and /dev/shm of `tmpfs_kb`; then the uid/gid it drops to (None in a user
    namespace) and the seccomp filter (`bpf_hex`, a compiled BPF program; empty: none)."""

    __slots__ = ("root", "work", "ro", "masked", "uid", "gid", "pivot_root", "tmpfs_kb", "work_kb", "bpf_hex")
    root: str
    work: str
    ro: list[str]
    masked: list[str]
    uid: int | None
    gid: int | None
    pivot_root: int
    tmpfs_kb: int
    work_kb: int
    bpf_hex: str


class RunnerConfig(_Record):
    """One sandboxed run: the program file, the violations log, rlimits as (name, soft, hard), the cgroup
    `cgroup.procs` files the runner joins first, the jail (None: no jail), and for serve mode the entry point
    and the reply pipe's fd."""

    __slots__ = ("work", "violations", "program", "rlimits", "cgroup_procs", "jail", "serve", "reply_fd")
    work: str
    violations: str
    program: str
    rlimits: list[tuple[str, int, int]]
    cgroup_procs: list[str]
    jail: JailConfig | None
    serve: str | None
    reply_fd: int

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "RunnerConfig":
        d = json.loads(text)
        d["rlimits"] = [tuple(r) for r in d["rlimits"]]
        d["jail"] = JailConfig(**d["jail"]) if d["jail"] else None
        return cls(**d)
