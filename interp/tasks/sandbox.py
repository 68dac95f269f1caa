"""Run model-written Python in a separate, limited process; never in the toolkit's own process.

Each program runs as `python -I -B` in its own session (process group) with a fresh temporary
working directory that is also its HOME and TMPDIR, a minimal environment, and:

* hard limits set before any program code runs: CPU time (RLIMIT_CPU), address space (RLIMIT_AS),
  file size (RLIMIT_FSIZE), open files, no core dumps, and RLIMIT_NPROC (which root ignores);
* a wall-clock timeout after which the whole process group is killed; the group is also killed when
  the program ends, so nothing it started outlives it;
* no network: a fresh network namespace (`unshare -n`) where the system allows it, plus a prelude
  that refuses socket creation and name lookups;
* a prelude that refuses process creation (fork, exec, spawn, subprocess, os.system), signals to
  other processes, raising resource limits, ctypes, and file access outside the temporary folder
  (reads are also allowed in Python's own library folders).

The prelude guards are defence in depth, not a jail: code in the same interpreter can in principle
get around them. The limits, the process group kill and the network namespace are enforced by the
kernel. A program passes only if it runs to its last line without an exception and without
touching anything forbidden (a guarded call that the program catches still fails the run).
"""
from __future__ import annotations

import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

TAIL_CHARS = 2000
_VIOLATION_EXIT = 86


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run. `network_namespace=None` uses `unshare -n` when it works here."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 256
    nproc: int = 0
    network_namespace: bool | None = None


@dataclass
class RunResult:
    """Outcome of one program. `reason` is "ok", "timeout", "memory", "file size limit",
    "forbidden: <what>" (network, process, filesystem, signal, limits, ctypes), "exit code N",
    "killed by SIGNAME" or "exited before the end"; `error` is the last line of stderr."""

    passed: bool
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    error: str = ""


_RUNNER = r'''
import builtins, io, _io, os, posix, resource, signal, socket, _socket, sys, _posixsubprocess, linecache, traceback
cfg = __import__("json").loads(sys.argv[1])
sys.argv = ["<program>"]
work, vpath = cfg["work"], cfg["violations"]
for lim, soft, hard in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, lim), (soft, hard))
sys.dont_write_bytecode = True
nonce = sys.stdin.readline().strip()
_dn = os.open(os.devnull, os.O_RDONLY); os.dup2(_dn, 0); os.close(_dn)
with open(cfg["program"], encoding="utf-8") as f:
    src = f.read()
vfd = os.open(vpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
violations = []
real = os.path.realpath
read_roots = [real(p) for p in sys.path if p and os.path.isabs(p)] + [work]
ok_read = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"}

def deny(kind, what):
    violations.append(kind)
    try:
        os.write(vfd, ("%s\t%s\n" % (kind, what)).encode("utf-8", "replace"))
    except OSError:
        pass
    raise PermissionError("sandbox: %s is not allowed (%s)" % (kind, what))

def under(p, roots):
    return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

def check_path(p, write, dir_fd=None):
    if isinstance(p, int):
        return
    p = os.fsdecode(os.fspath(p))
    if dir_fd is not None and not os.path.isabs(p):
        p = os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), p)
    rp = real(p)
    if write:
        good = under(rp, [work]) or rp == "/dev/null"
    else:
        good = under(rp, read_roots) or rp in ok_read
    if not good:
        deny("filesystem", ("write " if write else "read ") + p)

def is_write_mode(mode):
    return any(c in str(mode) for c in "wax+")

_open = _io.open
def g_open(file, mode="r", *a, **k):
    check_path(file, is_write_mode(mode))
    return _open(file, mode, *a, **k)
builtins.open = io.open = _io.open = g_open

_open_code = _io.open_code
def g_open_code(path):
    check_path(path, False)
    return _open_code(path)
io.open_code = _io.open_code = g_open_code

class GFileIO(_io.FileIO):
    def __init__(self, file, mode="r", *a, **k):
        check_path(file, is_write_mode(mode))
        super().__init__(file, mode, *a, **k)
io.FileIO = _io.FileIO = GFileIO

WFLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
def wrap_open(f):
    def g(path, flags, *a, dir_fd=None, **k):
        check_path(path, bool(flags & WFLAGS), dir_fd)
        return f(path, flags, *a, dir_fd=dir_fd, **k)
    return g

def wrap_paths(f, nargs, write):
    def g(*a, **k):
        for p in a[:nargs]:
            check_path(p, write, k.get("dir_fd") or k.get("src_dir_fd"))
        return f(*a, **k)
    return g

def wrap_list(f):
    def g(path=".", *a, **k):
        check_path(path, False)
        return f(path, *a, **k)
    return g

def refuse(kind, name):
    def g(*a, **k):
        deny(kind, name)
    return g

def g_kill(f):
    def g(pid, sig, *a):
        if pid != os.getpid():
            deny("signal", "kill %r" % (pid,))
        return f(pid, sig, *a)
    return g

patches = {"open": wrap_open(os.open), "listdir": wrap_list(os.listdir), "scandir": wrap_list(os.scandir)}
for name, n in [("remove", 1), ("unlink", 1), ("rmdir", 1), ("mkdir", 1), ("chmod", 1), ("chown", 1),
                ("lchown", 1), ("truncate", 1), ("utime", 1), ("mkfifo", 1), ("mknod", 1), ("chroot", 1),
                ("rename", 2), ("replace", 2), ("link", 2), ("symlink", 2)]:
    if hasattr(posix, name):
        patches[name] = wrap_paths(getattr(posix, name), n, True)
for name in ["fork", "forkpty", "system", "popen", "execv", "execve", "posix_spawn", "posix_spawnp",
             "spawnv", "spawnve", "spawnvp", "spawnvpe", "killpg", "setsid", "setpgid", "setpgrp"]:
    patches[name] = refuse("process" if name != "killpg" else "signal", "os." + name)
patches["kill"] = g_kill(os.kill)
for name, f in patches.items():
    for mod in (os, posix):
        if mod is os or hasattr(mod, name):
            setattr(mod, name, f)
signal.pidfd_send_signal = refuse("signal", "signal.pidfd_send_signal")
_posixsubprocess.fork_exec = refuse("process", "subprocess")
resource.setrlimit = refuse("limits", "resource.setrlimit")
resource.prlimit = refuse("limits", "resource.prlimit")

class GSocket(socket.socket):
    def __init__(self, *a, **k):
        deny("network", "socket")
class GRawSocket(_socket.socket):
    def __init__(self, *a, **k):
        deny("network", "socket")
socket.socket, socket.SocketType, _socket.socket, _socket.SocketType = GSocket, GSocket, GRawSocket, GRawSocket
for name in ["socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo", "gethostbyname",
             "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "dup"]:
    for mod in (socket, _socket):
        if hasattr(mod, name):
            setattr(mod, name, refuse("network", "socket." + name))

class Blocker:
    blocked = {"ctypes", "_ctypes", "cffi", "_cffi_backend"}
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in cls.blocked:
            deny("ctypes", "import " + name)
        return None
sys.meta_path.insert(0, Blocker)
for m in list(Blocker.blocked):
    sys.modules.pop(m, None)

linecache.cache["<program>"] = (len(src), None, src.splitlines(True), "<program>")
main = type(sys)("__main__")
main.__builtins__ = builtins
sys.modules["__main__"] = main
code = 0
try:
    exec(compile(src, "<program>", "exec"), main.__dict__)
except SystemExit as e:
    if e.code is None or e.code == 0:
        code = -1
    elif isinstance(e.code, int):
        code = e.code if 0 < e.code < 256 else 1
    else:
        print(e.code, file=sys.stderr)
        code = 1
except BaseException:
    traceback.print_exc()
    code = 1
try:
    sys.stdout.flush(); sys.stderr.flush()
except BaseException:
    pass
if violations:
    os._exit(__VIOLATION_EXIT__)
if code == 0:
    os.write(1, ("\n" + nonce + "\n").encode())
os._exit(max(code, 0))
'''.replace("__VIOLATION_EXIT__", str(_VIOLATION_EXIT))


@lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether `unshare -n` can create a network namespace here (needs root or user namespaces)."""
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _tail(path: Path, n: int = TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * n))
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


def _head(path: Path, n: int = 500) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", "replace")
    except OSError:
        return ""


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for `proc` to exit without reaping it (so its process group id stays valid); False on timeout."""
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        if fd is not None:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(max(0.0, timeout) * 1000))
        delay = 0.001
        while time.monotonic() < deadline:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(timed_out: bool, rc: int | None, violations: str, stdout_ok: bool, stderr: str) -> str:
    if violations.strip():
        return "forbidden: " + violations.split("\t", 1)[0].strip()
    if timed_out or rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "timeout"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory"
    if "File too large" in stderr or rc == -signal.SIGXFSZ:
        return "file size limit"
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    if rc:
        return f"exit code {rc}"
    if not stdout_ok:
        return "exited before the end"
    return "ok"


def run_program(code: str, limits: Limits | None = None, **overrides) -> RunResult:
    """Run Python source `code` in a fresh sandboxed process and report whether it ran to the end.

    Keyword overrides set fields of `Limits` (e.g. `timeout_s=2`).
    """
    limits = replace(limits or Limits(), **overrides)
    base = Path(tempfile.mkdtemp(prefix="interp-sandbox-"))
    work = base / "work"
    work.mkdir()
    program, out, err, viol = base / "program.py", base / "stdout", base / "stderr", base / "violations"
    program.write_text(code, encoding="utf-8")
    cpu = max(1, math.ceil(limits.timeout_s))
    mem, fsize = limits.memory_mb << 20, limits.file_size_mb << 20
    rlimits = [("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_AS", mem, mem), ("RLIMIT_FSIZE", fsize, fsize),
               ("RLIMIT_NOFILE", limits.open_files, limits.open_files), ("RLIMIT_NPROC", limits.nproc, limits.nproc),
               ("RLIMIT_CORE", 0, 0)]
    cfg = json.dumps({"work": str(work), "violations": str(viol), "program": str(program), "rlimits": rlimits})
    cmd = [sys.executable, "-I", "-B", "-c", _RUNNER, cfg]
    netns = limits.network_namespace
    if netns is None:
        netns = network_namespace_available()
    if netns:
        cmd = [shutil.which("unshare") or "unshare", "-n", *cmd]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    try:
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=fo, stderr=fe, cwd=work, env=env,
                                    start_new_session=True, close_fds=True)
        try:
            try:
                proc.stdin.write((nonce + "\n").encode())
                proc.stdin.close()
            except OSError:
                pass
            finished = _wait(proc, limits.timeout_s)
        finally:
            _kill_group(proc.pid)
            proc.wait()
        wall = time.monotonic() - start
        stdout, stderr = _tail(out), _tail(err)
        violations = _head(viol)
        marker = "\n" + nonce + "\n"
        stdout_ok = stdout.endswith(marker)
        if stdout_ok:
            stdout = stdout[: -len(marker)]
        rc = proc.returncode
        reason = _reason(not finished, rc, violations, stdout_ok, stderr)
        error = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
        return RunResult(passed=reason == "ok", reason=reason, returncode=rc, stdout=stdout, stderr=stderr,
                         wall_s=round(wall, 4), error=error)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_many(programs: Sequence[str], max_workers: int | None = None, limits: Limits | None = None,
             **overrides) -> list[RunResult]:
    """Run programs in parallel (up to `max_workers`, default os.cpu_count()); results in input order."""
    if not programs:
        return []
    workers = max(1, min(max_workers or os.cpu_count() or 1, len(programs)))
    if workers == 1:
        return [run_program(p, limits, **overrides) for p in programs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: run_program(p, limits, **overrides), programs))
