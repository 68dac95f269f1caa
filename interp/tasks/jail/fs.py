"""Removing a folder the untrusted side wrote into, whatever tree it made (trusted side)."""
from __future__ import annotations

import os
import stat


def remove_tree(path: str | os.PathLike) -> None:
    """Delete `path` and everything under it without recursion and without following any symlink.

    Works on directory file descriptors (`openat` with O_NOFOLLOW, `unlinkat`), depth-first with an explicit
    stack, so a tree of any depth or a symlink planted anywhere in it cannot make it fail or reach outside.
    Errors on single entries are skipped (a best effort, like `shutil.rmtree(ignore_errors=True)`)."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(path, flags)
    except OSError:
        return
    # (dir fd, its name in the folder below it on the stack, subfolders that could not be removed)
    stack: list[tuple[int, str, set[str]]] = [(top, "", set())]
    try:
        while stack:
            fd, _, stuck = stack[-1]
            child = None
            try:
                with os.scandir(fd) as it:
                    for e in it:
                        try:
                            is_dir = e.is_dir(follow_symlinks=False)
                        except OSError:
                            is_dir = False
                        if is_dir and e.name not in stuck:
                            child = e.name
                            break
                        if not is_dir:
                            try:
                                os.unlink(e.name, dir_fd=fd)
                            except OSError:
                                pass
            except OSError:
                pass
            if child is not None:
                try:
                    stack.append((os.open(child, flags, dir_fd=fd), child, set()))
                except OSError:
                    stuck.add(child)
                continue
            os.close(fd)
            stack.pop()
            if stack:
                try:
                    os.rmdir(_, dir_fd=stack[-1][0])
                except OSError:
                    stack[-1][2].add(_)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        pass
