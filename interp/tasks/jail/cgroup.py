"""A cgroup per sandboxed run (trusted side): memory (shmem, memfd and tmpfs pages included), processes, CPU.

cgroup v1 (a `memory` and a `pids` hierarchy under /sys/fs/cgroup, as on this kind of machine) or, where
those are absent, cgroup v2 (needs `memory` and `pids` delegated to this process's cgroup's parent: a
systemd scope with Delegate=yes). The runner moves itself in before any program code runs (`procs_files`);
`kill` freezes and SIGKILLs everything in it and waits until it is empty.
"""
from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Layout:
    """Where run cgroups go: for v1 one parent folder per controller, for v2 a single parent folder."""

    version: int
    parents: dict[str, Path]


def _own(controller: str) -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path
    return None


@lru_cache(maxsize=1)
def layout() -> Layout | str:
    """The layout, or why no run cgroup can be made here."""
    v1 = {}
    for c in ("memory", "pids", "cpu", "freezer"):
        own = _own(c)
        if (ROOT / c / "cgroup.procs").exists() and own is not None:
            v1[c] = ROOT / c / own.lstrip("/")
    if "memory" in v1 and "pids" in v1:
        return _probe(Layout(1, v1))
    own2 = _own("")
    if (ROOT / "cgroup.controllers").exists() and own2 is not None:
        parent = ROOT / own2.lstrip("/")
        have = (parent / "cgroup.controllers").read_text().split() if (parent / "cgroup.controllers").exists() else []
        if {"memory", "pids"} <= set(have):
            return _probe(Layout(2, {"": parent}))
        return f"cgroup v2 at {parent} does not offer the memory and pids controllers (has: {' '.join(have) or 'none'})"
    return "no cgroup hierarchy with the memory and pids controllers is mounted under /sys/fs/cgroup"


def _probe(lay: Layout) -> Layout | str:
    try:
        RunCgroup(lay, memory_mb=64, pids=4).remove()
    except OSError as e:
        return f"cannot create a cgroup under {', '.join(map(str, lay.parents.values()))}: {e.strerror or e}"
    sweep(lay)
    return lay


def sweep(lay: Layout) -> list[str]:
    """Kill and remove the run cgroups of toolkit processes that are gone (a crash mid-run leaves its jailed
    process running with nobody to stop it); the names removed."""
    names: set[str] = set()
    for parent in lay.parents.values():
        try:
            names.update(e.name for e in os.scandir(parent) if e.is_dir() and e.name.startswith("interp-"))
        except OSError:
            pass
    removed = []
    prefix = _owner_prefix()
    for name in sorted(names):
        owner = name[len(prefix):].split("-")[0]
        if not name.startswith(prefix) or not owner.isdigit() or _alive(int(owner)):
            continue
        cg = RunCgroup(lay, 0, 0, name=name)
        if not cg.kill(timeout=2.0):
            cg.remove()
            removed.append(name)
    return removed


def _owner_prefix() -> str:
    """`interp-<pid namespace>-`: run cgroups are named after the toolkit process (in its pid namespace) that
    made them, so `sweep` can tell a dead owner from one it cannot see."""
    try:
        return f"interp-{os.stat('/proc/self/ns/pid').st_ino}-"
    except OSError:
        return "interp-0-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class RunCgroup:
    """One run's cgroup(s), created with their limits set."""

    def __init__(self, lay: Layout, memory_mb: int, pids: int, cpus: float = 1.0, name: str | None = None):
        """A new cgroup with these limits; with `name`, the existing one of that name (to kill and remove)."""
        self.lay = lay
        existing = name is not None
        name = name or f"{_owner_prefix()}{os.getpid()}-{secrets.token_hex(6)}"  # one name in every hierarchy
        self.dirs = {c: p / name for c, p in lay.parents.items()}
        if existing:
            return
        made: list[Path] = []
        try:
            for d in self.dirs.values():
                d.mkdir()
                made.append(d)
            mem = memory_mb << 20
            if lay.version == 1:
                m = self.dirs["memory"]
                (m / "memory.limit_in_bytes").write_text(str(mem))
                if (m / "memory.memsw.limit_in_bytes").exists():
                    (m / "memory.memsw.limit_in_bytes").write_text(str(mem))
                (self.dirs["pids"] / "pids.max").write_text(str(pids))
                if "cpu" in self.dirs:
                    (self.dirs["cpu"] / "cpu.cfs_period_us").write_text("100000")
                    (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(int(100000 * cpus)))
            else:
                d = self.dirs[""]
                (d / "memory.max").write_text(str(mem))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(pids))
                if (d / "cpu.max").exists():
                    (d / "cpu.max").write_text(f"{int(100000 * cpus)} 100000")
        except BaseException:
            for d in reversed(made):
                _rmdir(d)
            raise

    def procs_files(self) -> list[str]:
        """The `cgroup.procs` files the runner writes itself into."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        d = next(iter(self.dirs.values())) if self.lay.version == 2 else self.dirs["pids"]
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def out_of_memory(self) -> bool:
        """Whether the memory limit killed or stopped something in this run."""
        try:
            if self.lay.version == 1:
                oom = (self.dirs["memory"] / "memory.oom_control").read_text()
                return any(ln.split()[1] != "0" for ln in oom.splitlines() if ln.startswith("oom_kill "))
            ev = (self.dirs[""] / "memory.events").read_text().split()
            return dict(zip(ev[::2], ev[1::2])).get("oom_kill", "0") != "0"
        except (OSError, IndexError):
            return False

    def kill(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process in the cgroup (frozen first, so none can fork meanwhile); the pids still there
        after `timeout` (empty when all are gone)."""
        if self.lay.version == 2 and (self.dirs[""] / "cgroup.kill").exists():
            (self.dirs[""] / "cgroup.kill").write_text("1")
        freezer = self.dirs.get("freezer")
        if freezer is not None:
            _write(freezer / "freezer.state", "FROZEN")
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if freezer is not None:
                _write(freezer / "freezer.state", "THAWED")
            if not pids or time.monotonic() > deadline:
                return pids
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def remove(self) -> None:
        for d in self.dirs.values():
            _rmdir(d)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError:
        pass


def _rmdir(d: Path) -> None:
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)  # the last exiting task is still being released


def processes_of_uid(uid: int) -> list[int]:
    """Host processes whose real or effective uid is `uid` (read from /proc/<pid>/status)."""
    found = []
    want = str(uid)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if want in line.decode().split()[1:5]:
                            found.append(int(entry.name))
                        break
        except OSError:
            pass
    return found
