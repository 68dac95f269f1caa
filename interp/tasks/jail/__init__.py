"""The code jail behind `interp.tasks.sandbox`.

Trusted side (imported by the toolkit): `policy` (the seccomp filter), `cgroup` (a cgroup per run), `fs`
(removing what a run wrote). Untrusted side (run by the jail's interpreter from this folder, stdlib only):
`runner` (the process that runs one program), `bootstrap` (builds the jail around it), shared by both:
`codec` (plain data across the boundary), `config` (the runner's configuration).
"""
from pathlib import Path

RUNNER_DIR = str(Path(__file__).resolve().parent)


def precompile() -> None:
    """Write the runner's bytecode next to it when missing or stale: the jail's interpreter runs with -B
    (never writes any) and would otherwise compile these modules from source at every run."""
    import compileall

    try:
        compileall.compile_dir(RUNNER_DIR, maxlevels=0, quiet=2)
    except OSError:
        pass  # a read-only install: its bytecode was written when it was installed
