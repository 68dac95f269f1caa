"""The code jail behind `interp.tasks.sandbox`.

Trusted side (imported by the toolkit): `policy` (the seccomp filter), `cgroup` (a cgroup per run), `fs`
(removing what a run wrote). Untrusted side (run by the jail's interpreter from this folder, stdlib only):
`runner` (the process that runs one program), `bootstrap` (builds the jail around it), shared by both:
`codec` (plain data across the boundary), `config` (the runner's configuration).
"""
from pathlib import Path

RUNNER_DIR = str(Path(__file__).resolve().parent)
