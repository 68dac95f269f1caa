"""The jail's seccomp policy, compiled here (trusted side) with libseccomp via `pyseccomp`.

Default allow; what no solution needs fails with EPERM: kernel keyrings, new sessions and process groups,
namespaces (unshare, setns, clone with CLONE_NEW* flags; clone3 reports ENOSYS so libc falls back to clone,
whose flags are checked), io_uring, ptrace and cross-process memory access, bpf, perf events, userfaultfd,
mounts, module and kexec loading, and netlink, packet and vsock sockets. Syscalls of other architectures
(x32, i386) are killed by libseccomp's default bad-arch action.
"""
from __future__ import annotations

import errno
import tempfile
from functools import lru_cache

DENIED = (
    "add_key", "keyctl", "request_key",
    "setsid", "setpgid",
    "unshare", "setns",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "bpf", "perf_event_open", "userfaultfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "open_by_handle_at", "name_to_handle_at",
)
DENIED_SOCKET_FAMILIES = {"AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40}
CLONE_NEW_FLAGS = 0x7E020080  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME


@lru_cache(maxsize=1)
def compiled() -> bytes:
    """The filter as a BPF program (bytes of `struct sock_filter`), ready for prctl(PR_SET_SECCOMP)."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            continue  # a syscall this kernel/libseccomp does not know is one the program cannot make either
    for fam in DENIED_SOCKET_FAMILIES.values():
        f.add_rule(sc.ERRNO(errno.EPERM), "socket", sc.Arg(0, sc.EQ, fam))
        f.add_rule(sc.ERRNO(errno.EPERM), "socketpair", sc.Arg(0, sc.EQ, fam))
    for flag in (1 << b for b in range(32) if CLONE_NEW_FLAGS >> b & 1):
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as t:
        f.export_bpf(t)
        t.seek(0)
        return t.read()


def problem() -> str | None:
    """Why the filter cannot be compiled here (None when it can)."""
    try:
        compiled()
    except ImportError:
        return "the `pyseccomp` package is not installed (pip install pyseccomp)"
    except OSError as e:
        return f"libseccomp (libseccomp.so.2) is not usable: {e}"
    return None
