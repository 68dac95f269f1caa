"""Run model-written Python in a kernel-enforced jail; never in the toolkit's own process (trusted side).

Each program runs as the base interpreter's `python -I -S -B` (no site-packages) under `unshare` in fresh PID,
mount, network, IPC and UTS namespaces (plus a user namespace when the toolkit is not root), inside a cgroup
of its own. Before any program code runs, the runner (`interp.tasks.jail.runner`, a real module run from its
folder) joins the cgroup and builds the jail (`interp.tasks.jail.bootstrap`):

* a new root (tmpfs) holding only read-only binds of the system folders and the base Python install, with
  every site-packages / dist-packages folder covered by an empty read-only tmpfs (no dataset, no test, no
  package of the toolkit is readable); the work dir (its HOME and TMPDIR), `/tmp` and `/dev/shm` are
  size-limited tmpfs of its own mount namespace (nothing it writes reaches the host disk); `/dev/{null,zero,
  random,urandom}` and a `/proc` of its own PID namespace (pid entries only; mount tables masked);
  `pivot_root` into it;
* an empty capability bounding set, a uid of its own for this run when started as root (so RLIMIT_NPROC
  applies and its processes can be found on the host), no capabilities, `no_new_privs`, a fresh session
  keyring, Landlock where the kernel has it, and a seccomp filter (`interp.tasks.jail.policy`: keyrings,
  sessions, namespaces, io_uring, ptrace, bpf, perf, mounts, netlink/vsock sockets denied);
* hard limits: CPU time, address space, file size, open files, processes (none), no core dumps; the cgroup
  bounds memory (shmem, memfd and tmpfs pages included), processes and CPU.

When the run ends (or at the wall-clock timeout) this process kills everything in the run's cgroup (frozen
first), checks that the cgroup is empty and that no process of the run's uid is left on the host, and
refuses to report a verdict otherwise. Every read and write on the channel has the run's deadline; replies
are capped in size, depth, count and hash collisions (`interp.tasks.jail.codec`); a misbehaving channel
ends the check as a failure with a reason. The host-side folder is removed without recursion.

An in-process prelude also refuses process creation, signals, sockets, ctypes and file access outside the
folder, so ordinary violations get a clear reason ("forbidden: ..."). It is a courtesy layer, not a boundary.

`jail_problem()` checks once whether the jail (cgroup and seccomp filter included) works here; without it,
running untrusted code raises `InterpError` unless the caller opts out explicitly (`Limits(jail=False)` or
INTERP_SANDBOX_UNSAFE=1), in which case only the prelude (and `unshare -n` where available) stands between the
program and the machine (no cgroup, no seccomp filter).

Verdicts for code tasks come from `run_checks`: the dataset's `check(candidate)` runs in this (trusted)
process and `candidate` is a proxy whose calls run inside the jail and come back as plain data, so
overridden `__eq__`, patched builtins, printed markers or early exits in the solution cannot change them.
Everything stored from the jail's output is capped and sanitised (`sanitize`).
"""
from __future__ import annotations

import ast
import copy
import glob
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InterpError
from .jail import RUNNER_DIR, cgroup, policy, precompile
from .jail.codec import DecodeError, decode, encode
from .jail.config import JailConfig, RunnerConfig
from .jail.fs import remove_tree

TAIL_CHARS = 2000
ERROR_CHARS = 300
MAX_FAILURES = 10
MAX_REPLY_BYTES = 4 << 20
_VIOLATION_EXIT = 86
_VIOLATION_KINDS = {"network", "process", "filesystem", "signal", "limits", "ctypes"}
_UNSAFE_ENV = "INTERP_SANDBOX_UNSAFE"
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
_SYSTEM_RO = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache", "/etc/localtime"]
_PACKAGE_DIRS = ["lib/python3*/site-packages", "lib/python3*/dist-packages", "lib/python3/dist-packages",
                 "local/lib/python3*/site-packages", "local/lib/python3*/dist-packages"]
_UID_BASE, _UID_SPAN = 0x5A000000, 1 << 24  # a uid of its own per run (root only), far from real accounts
_LOADER = "import sys; sys.path.insert(0, %r); import runner; del sys.path[0]; runner.main()" % RUNNER_DIR

_enc, _dec = encode, decode


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run.

    `memory_mb` bounds the address space and the run's cgroup (heap, shmem, memfd and tmpfs pages together);
    `disk_mb` is the size of its work dir (a tmpfs in the jail). `jail=False` opts out of the kernel-enforced
    jail (only the in-process prelude remains: NOT a security boundary); `network_namespace` applies only
    then (`None`: use `unshare -n` when it works here)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 256
    nproc: int = 0
    disk_mb: int = 64
    network_namespace: bool | None = None
    jail: bool = True

    def __post_init__(self) -> None:
        for name in ("memory_mb", "file_size_mb", "open_files", "disk_mb"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise InterpError(f"Limits.{name} must be a positive int, got {v!r}")
        if type(self.nproc) is not int or self.nproc < 0:
            raise InterpError(f"Limits.nproc must be an int >= 0, got {self.nproc!r}")
        if not isinstance(self.timeout_s, (int, float)) or not 0 < self.timeout_s <= 86400:
            raise InterpError(f"Limits.timeout_s must be seconds in (0, 86400], got {self.timeout_s!r}")


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


def _base_python() -> str:
    """The base interpreter (not a venv's): the jail binds its install only."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


@lru_cache(maxsize=1)
def _ro_paths() -> list[str]:
    """System folders and the base Python install, bound read-only into the jail (outermost only, existing)."""
    exe = _base_python()
    py = [sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(exe))]
    paths = sorted({os.path.abspath(p) for p in _SYSTEM_RO + py if os.path.lexists(p)})
    out: list[str] = []
    for p in paths:
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out if not os.path.islink(q)):
            out.append(p)
    return out


@lru_cache(maxsize=1)
def _masked_paths() -> list[str]:
    """Package folders inside the binds (site-packages, dist-packages), covered by an empty tmpfs in the jail."""
    found: set[str] = set()
    for root in _ro_paths() + ["/usr"]:
        if os.path.isdir(root) and not os.path.islink(root):
            for pat in _PACKAGE_DIRS:
                found.update(p for p in glob.glob(os.path.join(root, pat)) if os.path.isdir(p)
                             and not os.path.islink(p))
    return sorted(found)


def _unshare_cmd() -> list[str]:
    exe = shutil.which("unshare") or "unshare"
    cmd = [exe, "--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts"]
    return cmd if os.geteuid() == 0 else cmd + ["--map-root-user"]


def _jail_cfg(base: Path, work: Path, limits: Limits, uid: int | None) -> JailConfig:
    return JailConfig(root=str(base / "root"), work=str(work), ro=list(_ro_paths()), masked=_masked_paths(),
                      uid=uid, gid=uid, pivot_root=_PIVOT_ROOT[os.uname().machine],
                      tmpfs_kb=limits.file_size_mb << 10, work_kb=limits.disk_mb << 10,
                      bpf_hex=policy.compiled().hex())


# uid, pid, seccomp mode, cgroup: read past the prelude (a courtesy layer that refuses /proc)
_PROBE = ("import os\nr = open.__globals__['_open']\n"
          "print(os.getuid(), os.getpid(), r('/proc/self/status').read().split('Seccomp:')[1].split()[0],"
          " 'interp-' in r('/proc/self/cgroup').read())")


@lru_cache(maxsize=1)
def jail_problem() -> str | None:
    """Why the kernel-enforced jail cannot run here (None when it works); checked once by running a probe."""
    if not sys.platform.startswith("linux"):
        return "the jail needs Linux namespaces"
    if os.uname().machine not in _PIVOT_ROOT:
        return f"unsupported architecture {os.uname().machine}"
    if not shutil.which("unshare"):
        return "the `unshare` program (util-linux) is not installed"
    lay = cgroup.layout()
    if isinstance(lay, str):
        return f"no cgroup can be made for a run ({lay}); memory (memfd, tmpfs) and processes would be unbounded"
    problem = policy.problem()
    if problem:
        return f"no seccomp filter: {problem}"
    precompile()
    r = _run(_PROBE, Limits(timeout_s=20.0, memory_mb=512), jail=True)
    out = r.stdout.split()
    if r.passed and len(out) == 4 and out[1:] == ["1", "2", "True"] and (out[0] != "0" or os.geteuid() != 0):
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
            "with util-linux `unshare`, either root or unprivileged user namespaces (sysctl "
            "user.max_user_namespaces > 0; kernel.unprivileged_userns_clone = 1 on Debian; "
            "kernel.apparmor_restrict_unprivileged_userns = 0 on Ubuntu >= 23.10; in Docker, a seccomp profile that "
            "allows unshare/mount), a cgroup it may create (v1 memory+pids, or v2 with them delegated) and "
            "libseccomp with the `pyseccomp` package (scripts/setup.sh). To run WITHOUT the jail (in-process guards "
            f"only, not a security boundary), set {_UNSAFE_ENV}=1 or the task kwarg unsafe_no_jail: true.")
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
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C1 controls (incl. U+0085 NEL, U+009B CSI), bidi marks/embeddings/isolates, zero-width and invisible characters
_INVISIBLE = re.compile(r"[\x80-\x9f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


def sanitize(text: str, cap: int = TAIL_CHARS) -> str:
    """Text from inside the jail made safe to store: values of secret-looking environment variables of this
    process redacted, lone surrogates replaced (U+FFFD), C0 controls replaced ("?"), C1 controls, bidi and
    zero-width characters removed, and capped to the last `cap` characters."""
    text = _SURROGATE.sub("\ufffd", text)
    text = _INVISIBLE.sub("", text)
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
    """Wait for `proc` to exit without reaping it; False on timeout."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))
    finally:
        os.close(fd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(timed_out: bool, rc: int | None, violations: str, stdout_ok: bool, stderr: str, oom: bool) -> str:
    if violations.strip():
        kind = violations.split("\t", 1)[0].strip()  # written inside the jail: only known kinds are reported
        return "forbidden: " + (kind if kind in _VIOLATION_KINDS else "unknown")
    if timed_out or rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "timeout"
    if oom or "MemoryError" in stderr or "Cannot allocate memory" in stderr:
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


_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


def _take_uid() -> int | None:
    """A uid for one run, distinct from every other live run of this process (None when not root)."""
    if os.geteuid() != 0:
        return None
    with _uids_lock:
        while True:
            uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
            if uid not in _uids_in_use:
                _uids_in_use.add(uid)
                return uid


def _release_uid(uid: int | None) -> None:
    if uid is not None:
        with _uids_lock:
            _uids_in_use.discard(uid)


def _make_cgroup(limits: Limits) -> cgroup.RunCgroup:
    """The run's cgroup (the jail's probe checked that one can be made here)."""
    lay = cgroup.layout()
    if isinstance(lay, str):
        raise InterpError(f"cannot make a cgroup for the sandboxed run: {lay}")
    return cgroup.RunCgroup(lay, memory_mb=limits.memory_mb, pids=limits.nproc + 4)


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
        program.write_text(code, encoding="utf-8", errors="surrogatepass")
        cpu = max(1, math.ceil(limits.timeout_s))
        mem, fsize = limits.memory_mb << 20, limits.file_size_mb << 20
        rlimits = [("RLIMIT_CPU", cpu, cpu + 1), ("RLIMIT_AS", mem, mem), ("RLIMIT_FSIZE", fsize, fsize),
                   ("RLIMIT_NOFILE", limits.open_files, limits.open_files),
                   ("RLIMIT_NPROC", limits.nproc, limits.nproc), ("RLIMIT_CORE", 0, 0)]
        self.uid = _take_uid() if jail else None
        self.proc: subprocess.Popen | None = None
        self.reply_r, reply_w = os.pipe() if serve else (-1, -1)
        self.cg: cgroup.RunCgroup | None = None
        try:
            self.cg = _make_cgroup(limits) if jail else None
            cfg = RunnerConfig(work=str(work), violations=str(self.viol), program=str(program), rlimits=rlimits,
                               cgroup_procs=self.cg.procs_files() if self.cg else [],
                               jail=_jail_cfg(base, work, limits, self.uid) if jail else None, serve=serve,
                               reply_fd=reply_w)
            cmd = [_base_python(), "-I", "-S", "-B", "-c", _LOADER, cfg.to_json()]
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
            with open(self.out, "wb") as fo, open(self.err, "wb") as fe:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=fo, stderr=fe, cwd=work, env=env,
                                             start_new_session=True, close_fds=True,
                                             pass_fds=(reply_w,) if serve else ())
        except BaseException:
            if self.cg is not None:
                self.cg.remove()
            _release_uid(self.uid)
            remove_tree(base)
            if serve:
                os.close(self.reply_r)
            raise
        finally:
            if serve:
                os.close(reply_w)
        assert self.proc.stdin is not None
        self.req_fd = self.proc.stdin.fileno()
        os.set_blocking(self.req_fd, False)
        try:
            self._send((self.nonce + "\n").encode())
            if not serve:
                self.proc.stdin.close()
        except (_Lost, OSError):
            pass

    def _poll(self, fd: int, event: int) -> bool:
        """Wait until `fd` is ready for `event`, up to the run's deadline (raises _Lost("timeout") past it)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Lost("timeout")
        poller = select.poll()
        poller.register(fd, event)
        return bool(poller.poll(left * 1000))

    def _send(self, data: bytes) -> None:
        """Write all of `data` to the request pipe before the deadline (never blocks past it)."""
        view = memoryview(data)
        while view:
            if not self._poll(self.req_fd, select.POLLOUT):
                continue
            try:
                view = view[os.write(self.req_fd, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise _Lost("the program ended") from None

    def _read_line(self) -> bytes:
        while b"\n" not in self.buf:
            if not self._poll(self.reply_r, select.POLLIN):
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
        self._send((json.dumps({"args": encode(list(args)), "kwargs": encode(kwargs)}) + "\n").encode())
        msg = self._receive()
        if "ok" in msg:
            try:
                return decode(msg["ok"])
            except DecodeError as e:
                raise _Lost(f"unreadable reply ({e})") from None
        err = msg.get("err")
        raise CandidateError(err if type(err) is str else "error")

    def _stop(self) -> bool:
        """Kill everything the run started and check nothing of it is left; whether the memory limit hit."""
        assert self.proc is not None
        left: list[int] = []
        oom = False
        if self.cg is not None:  # the run first, then `unshare` (its parent, which reaps it)
            left = self.cg.kill()
            oom = self.cg.out_of_memory()
        _kill_group(self.proc.pid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.proc.stdin, ):
            try:
                if fd is not None:
                    fd.close()
            except OSError:
                pass
        if self.serve:
            os.close(self.reply_r)
        if self.uid is not None:
            for _ in range(20):
                survivors = cgroup.processes_of_uid(self.uid)
                if not survivors:
                    break
                for pid in survivors:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            else:
                left += survivors
        if left:  # the uid stays taken: its processes are still there
            raise InterpError(f"sandboxed run left processes that could not be killed (pids {sorted(set(left))}); "
                              "refusing to report its verdict")
        if self.cg is not None:
            self.cg.remove()
        _release_uid(self.uid)
        return oom

    def finish(self, run_to_end: bool) -> RunResult:
        """Wait (run mode) or stop (serve mode) the process, kill everything it left, read what it wrote."""
        assert self.proc is not None
        try:
            try:
                finished = _wait(self.proc, max(0.0, self.deadline - time.monotonic())) if run_to_end else True
            finally:
                oom = self._stop()
            wall = time.monotonic() - self.start
            stdout, stderr, violations = _tail(self.out), _tail(self.err), _head(self.viol)
        finally:
            remove_tree(self.base)
        marker = "\n" + self.nonce + "\n"
        stdout_ok = stdout.endswith(marker)
        if stdout_ok:
            stdout = stdout[: -len(marker)]
        rc = self.proc.returncode
        reason = _reason(not finished, rc, violations, stdout_ok, stderr, oom)
        error = next((ln for ln in reversed(stderr.splitlines()) if ln.strip() and not ln.startswith("unshare: ")), "")
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
    elif lost == "the program ended" and res.reason not in ("ok", "exited before the end"):
        pass  # it died of its own accord: the process's reason (memory, exit code, signal) says why
    elif lost is not None:
        res.reason = f"exited before the end ({lost})" if lost == "the program ended" else f"bad reply ({lost})"
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
