"""The jail, built by the runner (as PID 1 of fresh namespaces) before any program code runs.

`enter(cfg)` joins the run's cgroups, builds a new root and `pivot_root`s into it, drops every capability
(and to the run's own uid when started as root), joins a fresh session keyring, adds Landlock where the
kernel has it, and finally installs the seccomp filter the trusted side compiled. Stdlib-only (ctypes):
it runs inside the jail's interpreter, which sees no site-packages.
"""
from __future__ import annotations

import ctypes
import os

from config import JailConfig  # the runner's folder is its sys.path[0] (see runner.py)

RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
_NOATIME, _NODIRATIME, _RELATIME_FLAG, _STATVFS_RELATIME = 1024, 2048, 1 << 21, 4096
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
_PROC_MASKED = ("mountinfo", "mounts", "mountstats")  # host paths and mount options of the binds
_libc = ctypes.CDLL(None, use_errno=True)


def _ok(r: int, what: str) -> None:
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, "sandbox setup: %s: %s" % (what, os.strerror(e)))


def _b(x: str | None) -> bytes | None:
    return None if x is None else x.encode()


def _mount(src: str | None, tgt: str, fs: str | None, flags: int, data: str | None = None) -> int:
    return _libc.mount(_b(src), _b(tgt), _b(fs), ctypes.c_ulong(flags), _b(data))


def mount(src: str | None, tgt: str, fs: str | None, flags: int, data: str | None = None) -> None:
    _ok(_mount(src, tgt, fs, flags, data), "mount " + tgt)


def join_cgroups(procs_files: list[str]) -> None:
    """Move this process into the run's cgroups (`0` is the writer itself), so all it starts is counted there."""
    for f in procs_files:
        with open(f, "w") as fh:
            fh.write("0")


def _place(root: str, path: str, rw: bool = False) -> None:
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
        kept = (f & (NOSUID | NODEV | NOEXEC | _NOATIME | _NODIRATIME)) | (_RELATIME_FLAG if f & _STATVFS_RELATIME else 0)
        mount(None, tgt, None, BIND | REMOUNT | RDONLY | NOSUID | NODEV | kept)


def _mount_proc(root: str) -> None:
    tgt = root + "/proc"
    os.makedirs(tgt, exist_ok=True)
    if _mount("proc", tgt, "proc", NOSUID | NODEV | NOEXEC, "subset=pid") != 0:  # no host-wide /proc files
        mount("proc", tgt, "proc", NOSUID | NODEV | NOEXEC)
    for d in ("/proc/1", "/proc/1/task/1"):
        for name in _PROC_MASKED:
            if os.path.exists(root + d + "/" + name):
                mount("/dev/null", root + d + "/" + name, None, BIND)


def enter(j: JailConfig) -> None:
    """Build the jail around this process (see the module docstring); raises OSError when a step fails."""
    root = j.root
    cap_last = int(open("/proc/sys/kernel/cap_last_cap").read())
    mount(None, "/", None, REC | PRIVATE)
    mount("tmpfs", root, "tmpfs", NOSUID | NODEV, "mode=0755,size=256k")
    for d in ("/tmp", "/dev/shm"):
        os.makedirs(root + d, exist_ok=True)
        mount("tmpfs", root + d, "tmpfs", NOSUID | NODEV, "mode=1777,size=%dk" % j.tmpfs_kb)
    for p in j.ro:
        _place(root, p)
    for p in j.masked:
        mount("tmpfs", root + p, "tmpfs", RDONLY | NOSUID | NODEV | NOEXEC, "size=4k,mode=0555")
    for p in DEVICES:
        _place(root, p, rw=True)
    os.makedirs(root + j.work, exist_ok=True)
    owner = "" if j.uid is None else ",uid=%d,gid=%d" % (j.uid, j.gid)
    mount("tmpfs", root + j.work, "tmpfs", NOSUID | NODEV, "mode=0700,size=%dk%s" % (j.work_kb, owner))
    _mount_proc(root)
    os.chdir(root)
    _ok(_libc.syscall(j.pivot_root, b".", b"."), "pivot_root")
    _ok(_libc.umount2(b".", 2), "detach the old root")
    mount(None, "/", None, REMOUNT | RDONLY | NOSUID | NODEV)
    os.chdir(j.work)
    for c in range(cap_last + 1):
        _ok(_libc.prctl(24, c, 0, 0, 0), "drop capability %d from the bounding set" % c)
    if j.uid is not None and j.gid is not None:
        os.setgroups([])
        os.setresgid(j.gid, j.gid, j.gid)
        os.setresuid(j.uid, j.uid, j.uid)
    _ok(_libc.prctl(1, 9, 0, 0, 0), "kill on parent death")  # PR_SET_PDEATHSIG again: the uid change cleared it
    _ok(_libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()), "clear capabilities")
    _ok(_libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    if _libc.syscall(250, 1, None) < 0:  # KEYCTL_JOIN_SESSION_KEYRING: a fresh, empty, anonymous session keyring
        _ok(-1, "join a fresh session keyring")
    _landlock(j)
    if j.bpf_hex:
        install_seccomp(bytes.fromhex(j.bpf_hex))


def install_seccomp(bpf: bytes) -> None:
    """Load a compiled seccomp BPF program (needs no_new_privs, set above) for this process and its children."""

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _ok(_libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "install the seccomp filter")


def _landlock(j: JailConfig) -> None:
    abi = _libc.syscall(444, None, 0, 1)
    if abi < 1:
        return
    fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    file_rights = 1 | 2 | 4 | (1 << 14) | (1 << 15)
    attr = (ctypes.c_uint64 * 3)(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    rs = _libc.syscall(444, attr, 8 * (3 if abi >= 6 else 2 if abi >= 4 else 1), 0)
    _ok(rs, "landlock ruleset")

    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    def allow(path: str, rights: int) -> None:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            _ok(_libc.syscall(445, rs, 1, ctypes.byref(Beneath(rights & fs, fd)), 0), "landlock rule " + path)
        finally:
            os.close(fd)

    for p in j.ro:
        if not os.path.islink(p):
            allow(p, 1 | 4 | 8)
    for p in DEVICES:
        allow(p, 2 | 4 | (1 << 14))
    allow("/proc", 4 | 8)
    for p in (j.work, "/tmp", "/dev/shm"):
        allow(p, fs)
    _ok(_libc.syscall(446, rs, 0), "landlock restrict")
    os.close(rs)
