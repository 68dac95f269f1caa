"""Run model-written Python in a kernel-enforced jail; never in the toolkit's own process.

Each program runs as `python -I -B` under `unshare` in fresh PID, mount, network, IPC and UTS namespaces
(plus a user namespace when the toolkit is not root). A trusted bootstrap, before any program code runs:

* builds a new root (tmpfs) holding only read-only binds of the system and Python folders, the program's
  own folder (read-write; also its HOME and TMPDIR), private `/tmp` and `/dev/shm`, `/dev/{null,zero,
  random,urandom}` and a `/proc` of its own PID namespace, then `pivot_root`s into it: no other file,
  Unix socket or process is visible;
* empties the capability bounding set, drops to `nobody` when started as root (so RLIMIT_NPROC applies and
  files are protected by permissions), clears all capabilities and sets `no_new_privs`;
* where the kernel has Landlock, adds it on top: reads only in the bound folders, writes only in its folder,
  `/tmp` and `/dev/shm`, no TCP, no signals or abstract Unix sockets outside its own domain;
* sets hard limits: CPU time, address space, file size, open files, processes (none), no core dumps.

The program is PID 1 of its namespace: when it ends, or is killed at the wall-clock timeout, the kernel kills
every process it started, whatever session it made. The network namespace has no interface up.

On top of that an in-process prelude refuses process creation, signals, sockets, ctypes and file access
outside the folder, so ordinary violations get a clear reason ("forbidden: ..."). It is a courtesy layer,
not a boundary: code in the same interpreter can get around it, the kernel-enforced jail cannot.

`jail_problem()` checks once whether the jail works here; without it, running untrusted code raises
`InterpError` unless the caller opts out explicitly (`Limits(jail=False)` or INTERP_SANDBOX_UNSAFE=1), in
which case only the prelude (and `unshare -n` where available) stands between the program and the machine.

Verdicts for code tasks come from `run_checks`: the dataset's `check(candidate)` runs in this (trusted)
process and `candidate` is a proxy whose calls run inside the jail and come back as plain data, so
overridden `__eq__`, patched builtins, printed markers or early exits in the solution cannot change them.
Everything stored from the jail's output is capped and sanitised (`sanitize`).
"""
from __future__ import annotations

import ast
import copy
import json
import math
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InterpError

TAIL_CHARS = 2000
ERROR_CHARS = 300
MAX_FAILURES = 10
MAX_REPLY_BYTES = 4 << 20
_VIOLATION_EXIT = 86
_VIOLATION_KINDS = {"network", "process", "filesystem", "signal", "limits", "ctypes"}
_UNSAFE_ENV = "INTERP_SANDBOX_UNSAFE"
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
_SYSTEM_RO = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache", "/etc/localtime"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run.

    `jail=False` opts out of the kernel-enforced jail (only the in-process prelude remains: NOT a security
    boundary); `network_namespace` applies only then (`None`: use `unshare -n` when it works here)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 256
    nproc: int = 0
    network_namespace: bool | None = None
    jail: bool = True


@dataclass
class RunResult:
    """Outcome of one program. `reason` is "ok", "timeout", "memory", "file size limit",
    "forbidden: <what>" (network, process, filesystem, signal, limits, ctypes), "exit code N",
    "killed by SIGNAME", "exited before the end", or for checks "failed" / "load error";
    `error` is the last line of stderr (or the first failure), `failures` the failed test cases.
    All text is capped and sanitised."""

    passed: bool
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    error: str = ""
    failures: list[str] = field(default_factory=list)
    calls: int = 0


@dataclass(frozen=True)
class CheckJob:
    """A solution and the dataset's test: `test` defines `check(candidate)`; `helpers` is trusted dataset code
    (e.g. the HumanEval prompt) run before it in this process, so the test can use helper functions."""

    solution: str
    test: str
    entry_point: str
    helpers: str = ""


# Plain-data codec used on both sides of the boundary (executed here and inside the jail's runner).
_CODEC = r'''
_PLAIN = (type(None), bool, int, float, str)
_SEQ = {"tuple": tuple, "set": set, "frozenset": frozenset}

def _enc(x):
    t = type(x)
    if t in _PLAIN:
        return x
    if t is list:
        return [_enc(v) for v in x]
    if t is dict:
        return {"#": "dict", "v": [[_enc(k), _enc(v)] for k, v in x.items()]}
    if t in (tuple, set, frozenset):
        return {"#": t.__name__, "v": [_enc(v) for v in x]}
    if t is bytes:
        return {"#": "bytes", "v": x.hex()}
    if t is complex:
        return {"#": "complex", "v": [x.real, x.imag]}
    raise TypeError("a %s cannot cross the sandbox boundary (plain data only)" % t.__name__)

def _dec(x):
    t = type(x)
    if t in _PLAIN:
        return x
    if t is list:
        return [_dec(v) for v in x]
    if t is dict and len(x) == 2 and type(x.get("v")) is list:
        tag, v = x["#"], x["v"]
        if tag in _SEQ:
            return _SEQ[tag](_dec(e) for e in v)
        if tag == "dict" and all(type(p) is list and len(p) == 2 for p in v):
            return {_dec(k): _dec(e) for k, e in v}
        if tag == "complex" and len(v) == 2 and all(type(e) is float for e in v):
            return complex(*v)
    if t is dict and x.get("#") == "bytes" and type(x.get("v")) is str:
        return bytes.fromhex(x["v"])
    raise ValueError("not plain data")
'''
_codec: dict = {}
exec(_CODEC, _codec)
_enc, _dec = _codec["_enc"], _codec["_dec"]

_JAIL = r'''
def _jail(j):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def ok(r, what):
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, "sandbox setup: %s: %s" % (what, os.strerror(e)))
    def mount(src, tgt, fs, flags, data=None):
        b = lambda x: None if x is None else x.encode()
        ok(libc.mount(b(src), b(tgt), b(fs), ctypes.c_ulong(flags), b(data)), "mount " + tgt)
    RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
    root = j["root"]
    cap_last = int(open("/proc/sys/kernel/cap_last_cap").read())
    mount(None, "/", None, REC | PRIVATE)
    mount("tmpfs", root, "tmpfs", NOSUID | NODEV, "mode=0755,size=256k")
    def place(path, rw=False):
        tgt = root + path
        os.makedirs(os.path.dirname(tgt), exist_ok=True)
        if os.path.islink(path):
            os.symlink(os.readlink(path), tgt)
            return
        if os.path.isdir(path):
            os.makedirs(tgt, exist_ok=True)
        else:
            os.close(os.open(tgt, os.O_CREAT | os.O_WRONLY, 0o644))
        mount(path, tgt, None, BIND | REC)
        if not rw:
            f = os.statvfs(path).f_flag
            kept = (f & (NOSUID | NODEV | NOEXEC | 1024 | 2048)) | ((1 << 21) if f & 4096 else 0)
            mount(None, tgt, None, BIND | REMOUNT | RDONLY | NOSUID | NODEV | kept)
    for d in ("/tmp", "/dev/shm"):
        os.makedirs(root + d, exist_ok=True)
        mount("tmpfs", root + d, "tmpfs", NOSUID | NODEV, "mode=1777,size=%dk" % j["tmpfs_kb"])
    for p in j["ro"]:
        place(p)
    for p in ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"):
        place(p, rw=True)
    place(j["work"], rw=True)
    os.makedirs(root + "/proc", exist_ok=True)
    mount("proc", root + "/proc", "proc", NOSUID | NODEV | NOEXEC)
    os.chdir(root)
    ok(libc.syscall(j["pivot_root"], b".", b"."), "pivot_root")
    ok(libc.umount2(b".", 2), "detach the old root")
    mount(None, "/", None, REMOUNT | RDONLY | NOSUID | NODEV)
    os.chdir(j["work"])
    for c in range(cap_last + 1):
        ok(libc.prctl(24, c, 0, 0, 0), "drop capability %d from the bounding set" % c)
    if j["uid"] is not None:
        os.setgroups([])
        os.setresgid(j["gid"], j["gid"], j["gid"])
        os.setresuid(j["uid"], j["uid"], j["uid"])
    ok(libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()), "clear capabilities")
    ok(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    _landlock(libc, ctypes, ok, j)

def _landlock(libc, ctypes, ok, j):
    abi = libc.syscall(444, None, 0, 1)
    if abi < 1:
        return
    fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    file_rights = 1 | 2 | 4 | (1 << 14) | (1 << 15)
    attr = (ctypes.c_uint64 * 3)(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    rs = libc.syscall(444, attr, 8 * (3 if abi >= 6 else 2 if abi >= 4 else 1), 0)
    if rs < 0:
        ok(rs, "landlock ruleset")
    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]
    def allow(path, rights):
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            ok(libc.syscall(445, rs, 1, ctypes.byref(Beneath(rights & fs, fd)), 0), "landlock rule " + path)
        finally:
            os.close(fd)
    for p in j["ro"]:
        if not os.path.islink(p):
            allow(p, 1 | 4 | 8)
    for p in ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"):
        allow(p, 2 | 4 | (1 << 14))
    allow("/proc", 4 | 8)
    for p in (j["work"], "/tmp", "/dev/shm"):
        allow(p, fs)
    ok(libc.syscall(446, rs, 0), "landlock restrict")
    os.close(rs)
'''

_RUNNER = _CODEC + _JAIL + r'''
import builtins, io, _io, os, posix, resource, signal, socket, _socket, sys, _posixsubprocess, linecache, traceback
import json
cfg = json.loads(sys.argv[1])
sys.argv = ["<program>"]
work, vpath = cfg["work"], cfg["violations"]
sys.dont_write_bytecode = True
nonce = sys.stdin.readline().strip()
req_fd = os.dup(0)
_dn = os.open(os.devnull, os.O_RDONLY); os.dup2(_dn, 0); os.close(_dn)
with open(cfg["program"], encoding="utf-8") as f:
    src = f.read()
vfd = os.open(vpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
if cfg["jail"]:
    _jail(cfg["jail"])
for lim, soft, hard in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, lim), (soft, hard))
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
patches["chdir"] = wrap_paths(posix.chdir, 1, False)
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

def reply(obj):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(cfg["reply_fd"], data):]

def describe(e):
    try:
        return "%s: %s" % (type(e).__name__, str(e)[:500])
    except BaseException:
        return type(e).__name__

if cfg["serve"]:
    try:
        exec(compile(src, "<program>", "exec"), main.__dict__)
        fn = main.__dict__[cfg["serve"]]
    except BaseException as e:
        traceback.print_exc()
        reply({"ready": False, "error": describe(e)})
        os._exit(1)
    reply({"ready": True})
    for line in os.fdopen(req_fd, "rb"):
        try:
            req = json.loads(line)
            out = {"ok": _enc(fn(*_dec(req["args"]), **_dec(req["kwargs"])))}
        except BaseException as e:
            out = {"err": describe(e)}
        reply(out)
    os._exit(0)
os.close(req_fd)
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
def _ro_paths() -> list[str]:
    """System and Python folders bound read-only into the jail (outermost only, existing only)."""
    py = [sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix]
    paths = sorted({os.path.abspath(p) for p in _SYSTEM_RO + py if os.path.lexists(p)})
    out: list[str] = []
    for p in paths:
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out if not os.path.islink(q)):
            out.append(p)
    return out


def _nobody() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


def _unshare_cmd() -> list[str]:
    exe = shutil.which("unshare") or "unshare"
    cmd = [exe, "--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts"]
    return cmd if os.geteuid() == 0 else cmd + ["--map-root-user"]


def _jail_cfg(base: Path, work: Path, limits: Limits) -> dict:
    uid, gid = _nobody() if os.geteuid() == 0 else (None, None)
    return {"root": str(base / "root"), "work": str(work), "ro": list(_ro_paths()), "uid": uid, "gid": gid,
            "pivot_root": _PIVOT_ROOT[os.uname().machine], "tmpfs_kb": limits.file_size_mb << 10}


@lru_cache(maxsize=1)
def jail_problem() -> str | None:
    """Why the kernel-enforced jail cannot run here (None when it works); checked once by running a probe."""
    if not sys.platform.startswith("linux"):
        return "the jail needs Linux namespaces"
    if os.uname().machine not in _PIVOT_ROOT:
        return f"unsupported architecture {os.uname().machine}"
    if not shutil.which("unshare"):
        return "the `unshare` program (util-linux) is not installed"
    r = _run("import os\nprint(os.getuid(), os.getpid())", Limits(timeout_s=20.0, memory_mb=512), jail=True)
    if r.passed and r.stdout.split() == [str(_nobody()[0]) if os.geteuid() == 0 else "0", "1"]:
        return None
    return (r.stderr.strip().splitlines() or [r.reason])[-1]


def _use_jail(limits: Limits) -> bool:
    """Whether to run in the jail; raises InterpError when it is wanted but cannot run here."""
    if not limits.jail or os.environ.get(_UNSAFE_ENV) == "1":
        return False
    problem = jail_problem()
    if problem:
        raise InterpError(
            f"cannot run model-written code safely: the sandbox jail does not work here ({problem}). It needs Linux "
            "with util-linux `unshare` and either root or unprivileged user namespaces (sysctl "
            "user.max_user_namespaces > 0; kernel.unprivileged_userns_clone = 1 on Debian; "
            "kernel.apparmor_restrict_unprivileged_userns = 0 on Ubuntu >= 23.10; in Docker, a seccomp profile that "
            "allows unshare/mount). To run WITHOUT the jail (in-process guards only, not a security boundary), set "
            f"{_UNSAFE_ENV}=1 or the task kwarg unsafe_no_jail: true.")
    return True


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


_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASS|AUTH|CREDENTIAL|COOKIE|SESSION", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str, cap: int = TAIL_CHARS) -> str:
    """Text from inside the jail made safe to store: values of secret-looking environment variables of this
    process redacted, control characters replaced, and capped to the last `cap` characters."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"<redacted {name}>")
    text = _CONTROL.sub("?", text)
    return text if len(text) <= cap else "..." + text[-(cap - 3):]


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
        kind = violations.split("\t", 1)[0].strip()  # written inside the jail: only known kinds are reported
        return "forbidden: " + (kind if kind in _VIOLATION_KINDS else "unknown")
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


class _Lost(BaseException):
    """The jail stopped answering (timeout, crash, exit, bad reply): the check cannot go on."""


class _Session:
    """One sandboxed process: started in `__init__`, talked to with `call` (serve mode), ended by `finish`."""

    def __init__(self, code: str, limits: Limits, jail: bool, serve: str | None = None):
        self.limits, self.serve = limits, serve
        self.base = base = Path(tempfile.mkdtemp(prefix="interp-sandbox-"))
        self.work = work = base / "work"
        work.mkdir()
        (base / "root").mkdir()
        self.out, self.err, self.viol = base / "stdout", base / "stderr", base / "violations"
        program = base / "program.py"
        program.write_text(code, encoding="utf-8")
        cpu = max(1, math.ceil(limits.timeout_s))
        mem, fsize = limits.memory_mb << 20, limits.file_size_mb << 20
        rlimits = [("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_AS", mem, mem), ("RLIMIT_FSIZE", fsize, fsize),
                   ("RLIMIT_NOFILE", limits.open_files, limits.open_files),
                   ("RLIMIT_NPROC", limits.nproc, limits.nproc), ("RLIMIT_CORE", 0, 0)]
        jcfg = _jail_cfg(base, work, limits) if jail else None
        if jcfg and jcfg["uid"] is not None:
            os.chown(work, jcfg["uid"], jcfg["gid"])
        self.reply_r, reply_w = os.pipe() if serve else (-1, -1)
        cfg = json.dumps({"work": str(work), "violations": str(self.viol), "program": str(program),
                          "rlimits": rlimits, "jail": jcfg, "serve": serve, "reply_fd": reply_w})
        cmd = [sys.executable, "-I", "-B", "-c", _RUNNER, cfg]
        if jail:
            cmd = _unshare_cmd() + cmd
        elif limits.network_namespace or (limits.network_namespace is None and network_namespace_available()):
            cmd = [shutil.which("unshare") or "unshare", "-n", *cmd]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8"}
        self.nonce = secrets.token_hex(16)
        self.start = time.monotonic()
        self.deadline = self.start + limits.timeout_s
        self.buf = b""
        try:
            with open(self.out, "wb") as fo, open(self.err, "wb") as fe:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=fo, stderr=fe, cwd=work, env=env,
                                             start_new_session=True, close_fds=True,
                                             pass_fds=(reply_w,) if serve else ())
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            if serve:
                os.close(self.reply_r)
            raise
        finally:
            if serve:
                os.close(reply_w)
        try:
            self.proc.stdin.write((self.nonce + "\n").encode())
            self.proc.stdin.flush()
            if not serve:
                self.proc.stdin.close()
        except OSError:
            pass

    def _read_line(self) -> bytes:
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _Lost("timeout")
            poller = select.poll()
            poller.register(self.reply_r, select.POLLIN)
            if not poller.poll(left * 1000):
                continue
            chunk = os.read(self.reply_r, 1 << 16)
            if not chunk:
                raise _Lost("the program ended")
            self.buf += chunk
            if len(self.buf) > MAX_REPLY_BYTES:
                raise _Lost("reply too large")
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _receive(self) -> dict:
        try:
            msg = json.loads(self._read_line())
        except (ValueError, RecursionError):
            raise _Lost("unreadable reply") from None
        if type(msg) is not dict:
            raise _Lost("unreadable reply")
        return msg

    def ready(self) -> str | None:
        """Wait for the solution to load; None when ready, else why it did not."""
        msg = self._receive()
        if msg.get("ready") is True:
            return None
        err = msg.get("error")
        return err if type(err) is str else "the solution did not load"

    def call(self, args: tuple, kwargs: dict):
        """Call the entry point inside the jail; its result as plain data, or CandidateError if it raised."""
        try:
            req = json.dumps({"args": _enc(list(args)), "kwargs": _enc(kwargs)}) + "\n"
            self.proc.stdin.write(req.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _Lost("the program ended") from None
        msg = self._receive()
        if "ok" in msg:
            try:
                return _dec(msg["ok"])
            except (ValueError, TypeError, RecursionError):
                raise _Lost("unreadable reply") from None
        err = msg.get("err")
        raise CandidateError(err if type(err) is str else "error")

    def finish(self, run_to_end: bool) -> RunResult:
        """Wait (run mode) or stop (serve mode) the process, kill everything it left, read what it wrote."""
        try:
            finished = _wait(self.proc, max(0.0, self.deadline - time.monotonic())) if run_to_end else True
        finally:
            _kill_group(self.proc.pid)
            self.proc.wait()
            for f in (self.proc.stdin,):
                try:
                    f.close()
                except OSError:
                    pass
            if self.serve:
                os.close(self.reply_r)
        wall = time.monotonic() - self.start
        try:
            stdout, stderr, violations = _tail(self.out), _tail(self.err), _head(self.viol)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
        marker = "\n" + self.nonce + "\n"
        stdout_ok = stdout.endswith(marker)
        if stdout_ok:
            stdout = stdout[: -len(marker)]
        rc = self.proc.returncode
        reason = _reason(not finished, rc, violations, stdout_ok, stderr)
        error = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
        return RunResult(passed=reason == "ok", reason=reason, returncode=rc, stdout=sanitize(stdout),
                         stderr=sanitize(stderr), wall_s=round(wall, 4), error=sanitize(error, ERROR_CHARS))


def _run(code: str, limits: Limits, jail: bool) -> RunResult:
    return _Session(code, limits, jail).finish(run_to_end=True)


def run_program(code: str, limits: Limits | None = None, **overrides) -> RunResult:
    """Run Python source `code` in a fresh jailed process and report whether it ran to the end.

    Keyword overrides set fields of `Limits` (e.g. `timeout_s=2`). "passed" here only means the program
    exited normally after its last line; a hostile program can fake that, so verdicts use `run_checks`.
    """
    limits = replace(limits or Limits(), **overrides)
    return _run(code, limits, _use_jail(limits))


class CandidateError(Exception):
    """The solution raised inside the jail (the message is its exception type and text)."""


_ASSERT = ast.parse("try:\n    _interp_ok = bool(TEST)\nexcept _InterpLost:\n    raise\nexcept Exception as _interp_e:\n"
                    "    _interp_fail(LINE, _interp_e)\nelse:\n    if not _interp_ok:\n        _interp_fail(LINE, None)\n"
                    ).body[0]


class _RecordAsserts(ast.NodeTransformer):
    """Rewrite each `assert` so that a failure is recorded (with its line) and the check goes on."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        new = copy.deepcopy(_ASSERT)
        for n in ast.walk(new):
            if hasattr(n, "lineno"):
                ast.copy_location(n, node)
                n.end_lineno, n.end_col_offset = node.end_lineno, node.end_col_offset
        for n in ast.walk(new):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "bool":
                n.args[0] = node.test
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_interp_fail":
                n.args[0] = ast.copy_location(ast.Constant(node.lineno), node)
        return new


def _short(value, n: int = 120) -> str:
    s = repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


def _check(job: CheckJob, limits: Limits, jail: bool) -> RunResult:
    """Run `job.test`'s `check` here, with `candidate` calling the solution inside the jail."""
    test_lines = job.test.splitlines()
    failures: list[str] = []
    state = {"calls": 0, "last": ""}
    try:
        tree = ast.fix_missing_locations(_RecordAsserts().visit(ast.parse(job.test, "<test>")))
        test_code = compile(tree, "<test>", "exec")
    except (SyntaxError, ValueError, RecursionError) as e:
        raise InterpError(f"the dataset's test for {job.entry_point} does not compile: {e}") from None
    session = _Session(job.solution, limits, jail, serve=job.entry_point)

    def fail(line: int, exc: BaseException | None) -> None:
        src = test_lines[line - 1].strip() if 0 < line <= len(test_lines) else ""
        why = f"{type(exc).__name__}: {exc}" if exc is not None and not isinstance(exc, CandidateError) else (
            f"the solution raised {exc}" if exc is not None else f"got {state['last']}")
        if len(failures) < MAX_FAILURES:
            failures.append(sanitize(f"line {line}: {src[:150]} -- {why}", ERROR_CHARS))
        state["failed"] = state.get("failed", 0) + 1

    def candidate(*args, **kwargs):
        state["calls"] += 1
        state["last"] = f"candidate({', '.join(map(_short, args))}) raised"
        result = session.call(args, kwargs)
        state["last"] = f"candidate({', '.join(map(_short, args))}) = {_short(result)}"
        return result

    lost = load_error = None
    try:
        try:
            load_error = session.ready()
            if load_error is None:
                ns = {"__name__": "__interp_check__", "_interp_fail": fail, "_InterpLost": _Lost}
                if job.helpers:
                    try:
                        exec(compile(job.helpers, "<helpers>", "exec"), ns)
                    except Exception:
                        pass
                ns[job.entry_point] = candidate
                exec(test_code, ns)
                if "check" not in ns:
                    raise InterpError(f"the dataset's test for {job.entry_point} defines no check(candidate)")
                try:
                    ns["check"](candidate)
                except _Lost:
                    raise
                except Exception as e:
                    tb = e.__traceback__
                    line = 0
                    while tb is not None:
                        if tb.tb_frame.f_code.co_filename == "<test>":
                            line = tb.tb_lineno
                        tb = tb.tb_next
                    fail(line, e)
        except _Lost as e:
            lost = str(e)
    finally:
        res = session.finish(run_to_end=False)
    res.calls = state["calls"]
    res.failures = failures
    if lost == "timeout":
        res.reason = "timeout"
    elif res.reason.startswith("forbidden"):
        pass
    elif load_error is not None:
        res.reason, res.error = "load error", sanitize(load_error, ERROR_CHARS)
    elif lost is not None:
        rr = res.reason
        res.reason = rr if rr not in ("ok", "exited before the end") else f"exited before the end ({lost})"
    elif state.get("failed"):
        res.reason, res.error = "failed", failures[0] if failures else "failed"
    else:
        res.reason = "ok"
    res.passed = res.reason == "ok"
    return res


def run_checks(jobs: Sequence[CheckJob], max_workers: int | None = None, limits: Limits | None = None,
               **overrides) -> list[RunResult]:
    """Verdicts for solutions: each job's `check(candidate)` runs here against a jailed solution (in parallel)."""
    limits = replace(limits or Limits(), **overrides)
    jail = _use_jail(limits) if jobs else False
    return _parallel(lambda j: _check(j, limits, jail), jobs, max_workers)


def run_many(programs: Sequence[str], max_workers: int | None = None, limits: Limits | None = None,
             **overrides) -> list[RunResult]:
    """Run programs in parallel (up to `max_workers`, default os.cpu_count()); results in input order."""
    limits = replace(limits or Limits(), **overrides)
    jail = _use_jail(limits) if programs else False
    return _parallel(lambda p: _run(p, limits, jail), programs, max_workers)


def _parallel(fn: Callable, items: Sequence, max_workers: int | None) -> list:
    if not items:
        return []
    workers = max(1, min(max_workers or os.cpu_count() or 1, len(items)))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))
