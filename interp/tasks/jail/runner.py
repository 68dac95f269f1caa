"""The untrusted side: the process that runs one program, started by `interp.tasks.sandbox`.

Run as ``python -I -S -B -c "<loader>" CONFIG`` with this folder first on sys.path (it imports `config`,
`codec` and `bootstrap` as top-level modules: the jail's interpreter has no site-packages and no `interp`).
It joins the run's cgroups, builds the jail (`bootstrap.enter`), sets the rlimits, installs the in-process
prelude (a courtesy layer that names ordinary violations, e.g. "forbidden: network"; NOT a boundary) and
then either runs the program to its end (printing the nonce the parent sent when it did) or, in serve
mode, loads it and answers one call of the entry point per request line, replies on the reply pipe.
"""
from __future__ import annotations

import _io
import _posixsubprocess
import _socket
import builtins
import io
import json
import linecache
import os
import posix
import resource
import signal
import socket
import sys
import traceback

import bootstrap
import codec
from config import RunnerConfig

VIOLATION_EXIT = 86
_TRUSTED_LIMITS = dict(max_nodes=1 << 62, max_depth=1 << 20, max_same_hash=1 << 62)  # requests come from the parent

cfg: dict = {}
config: RunnerConfig
nonce = ""
vfd = -1
violations: list[str] = []
work = ""
read_roots: list[str] = []
ok_read = {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"}
real = os.path.realpath
_open = _io.open
_open_code = _io.open_code


def deny(kind: str, what: str):
    violations.append(kind)
    try:
        os.write(vfd, ("%s\t%s\n" % (kind, what)).encode("utf-8", "replace"))
    except OSError:
        pass
    raise PermissionError("sandbox: %s is not allowed (%s)" % (kind, what))


def under(p: str, roots: list[str]) -> bool:
    return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)


def check_path(p, write: bool, dir_fd=None) -> None:
    if isinstance(p, int):
        return
    p = os.fsdecode(os.fspath(p))
    if dir_fd is not None and not os.path.isabs(p):
        p = os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), p)
    rp = real(p)
    good = (under(rp, [work]) or rp == "/dev/null") if write else (under(rp, read_roots) or rp in ok_read)
    if not good:
        deny("filesystem", ("write " if write else "read ") + p)


def is_write_mode(mode) -> bool:
    return any(c in str(mode) for c in "wax+")


def g_open(file, mode="r", *a, **k):
    check_path(file, is_write_mode(mode))
    return _open(file, mode, *a, **k)


def g_open_code(path):
    check_path(path, False)
    return _open_code(path)


class GFileIO(_io.FileIO):
    def __init__(self, file, mode="r", *a, **k):
        check_path(file, is_write_mode(mode))
        super().__init__(file, mode, *a, **k)


def wrap_open(f):
    wflags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def g(path, flags, *a, dir_fd=None, **k):
        check_path(path, bool(flags & wflags), dir_fd)
        return f(path, flags, *a, dir_fd=dir_fd, **k)
    return g


def wrap_paths(f, nargs: int, write: bool):
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


def refuse(kind: str, name: str):
    def g(*a, **k):
        deny(kind, name)
    return g


def g_kill(f):
    def g(pid, sig, *a):
        if pid != os.getpid():
            deny("signal", "kill %r" % (pid,))
        return f(pid, sig, *a)
    return g


class GSocket(socket.socket):
    def __init__(self, *a, **k):
        deny("network", "socket")


class GRawSocket(_socket.socket):
    def __init__(self, *a, **k):
        deny("network", "socket")


class Blocker:
    blocked = {"ctypes", "_ctypes", "cffi", "_cffi_backend"}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in cls.blocked:
            deny("ctypes", "import " + name)
        return None


def install_prelude() -> None:
    """Name ordinary violations (files, processes, signals, limits, sockets, ctypes); a courtesy, not a boundary."""
    builtins.open = io.open = _io.open = g_open
    io.open_code = _io.open_code = g_open_code
    io.FileIO = _io.FileIO = GFileIO  # type: ignore[misc]
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
    socket.socket = socket.SocketType = GSocket  # type: ignore[misc]
    _socket.socket = _socket.SocketType = GRawSocket  # type: ignore[misc]
    for name in ["socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr"]:
        for mod in (socket, _socket):
            if hasattr(mod, name):
                setattr(mod, name, refuse("network", "socket." + name))
    sys.meta_path.insert(0, Blocker)
    for m in list(Blocker.blocked):
        sys.modules.pop(m, None)


def reply(obj) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(config.reply_fd, data):]


def describe(e: BaseException) -> str:
    try:
        return "%s: %s" % (type(e).__name__, str(e)[:500])
    except BaseException:
        return type(e).__name__


def serve(src: str, main_ns: dict, req_fd: int) -> None:
    """Load the program, then answer each request line with the entry point's result (or its error)."""
    try:
        exec(compile(src, "<program>", "exec"), main_ns)
        fn = main_ns[config.serve]
    except BaseException as e:
        traceback.print_exc()
        reply({"ready": False, "error": describe(e)})
        os._exit(1)
    reply({"ready": True})
    for line in os.fdopen(req_fd, "rb"):
        try:
            req = json.loads(line)
            args, kwargs = codec.decode(req["args"], **_TRUSTED_LIMITS), codec.decode(req["kwargs"], **_TRUSTED_LIMITS)
            out = {"ok": codec.encode(fn(*args, **kwargs))}
        except BaseException as e:
            out = {"err": describe(e)}
        reply(out)
    os._exit(0)


def run(src: str, main_ns: dict) -> None:
    """Run the program to its end; print the nonce after it only when it got there."""
    code = 0
    try:
        exec(compile(src, "<program>", "exec"), main_ns)
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
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    if violations:
        os._exit(VIOLATION_EXIT)
    if code == 0:
        os.write(1, ("\n" + nonce + "\n").encode())
    os._exit(max(code, 0))


def main() -> None:
    global cfg, config, nonce, vfd, work, read_roots
    cfg = json.loads(sys.argv[1])
    config = RunnerConfig.from_json(sys.argv[1])
    bootstrap.join_cgroups(config.cgroup_procs)
    sys.argv = ["<program>"]
    work = config.work
    sys.dont_write_bytecode = True
    nonce = sys.stdin.readline().strip()
    req_fd = os.dup(0)
    dn = os.open(os.devnull, os.O_RDONLY)
    os.dup2(dn, 0)
    os.close(dn)
    with open(config.program, encoding="utf-8") as f:
        src = f.read()
    vfd = os.open(config.violations, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if config.jail:
        bootstrap.enter(config.jail)
    for lim, soft, hard in config.rlimits:
        resource.setrlimit(getattr(resource, lim), (soft, hard))
    # this folder too: tracebacks read the runner's own lines (in the jail the folder is not there at all)
    read_roots = [real(p) for p in sys.path if p and os.path.isabs(p)] + [work, os.path.dirname(real(__file__))]
    install_prelude()
    linecache.cache["<program>"] = (len(src), None, src.splitlines(True), "<program>")
    main_mod = type(sys)("__main__")
    main_mod.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main_mod
    if config.serve:
        serve(src, main_mod.__dict__, req_fd)
    os.close(req_fd)
    run(src, main_mod.__dict__)
