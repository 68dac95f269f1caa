"""The sandbox stops or contains hostile programs, reports why, and still passes correct ones."""
import os
import pwd
import time

import pytest

from interp.tasks.sandbox import Limits, RunResult, network_namespace_available, run_many, run_program

FAST = dict(timeout_s=2.0, memory_mb=256)


def test_correct_program_passes_and_captures_output():
    r = run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('done')", **FAST)
    assert isinstance(r, RunResult)
    assert r.passed and r.reason == "ok" and r.returncode == 0
    assert r.stdout.strip() == "done"
    assert r.wall_s < 2.0


def test_stdlib_imports_and_temp_files_work():
    code = ("import math, re, collections, hashlib, itertools, json, random, tempfile, os\n"
            "open('a.txt', 'w').write('hi')\nos.makedirs('d/e')\n"
            "with tempfile.NamedTemporaryFile('w') as f: f.write('x')\n"
            "assert open('a.txt').read() == 'hi'\nassert os.path.expanduser('~') == os.getcwd()\n")
    r = run_program(code, **FAST)
    assert r.passed, r


def test_failing_assertion_is_reported():
    r = run_program("assert 1 + 1 == 3", **FAST)
    assert not r.passed and r.reason == "exit code 1" and r.error == "AssertionError"


def test_infinite_loop_times_out():
    t0 = time.monotonic()
    r = run_program("while True:\n    pass", timeout_s=1.0)
    assert not r.passed and r.reason == "timeout"
    assert time.monotonic() - t0 < 5


def test_sleeping_program_is_killed_at_wall_timeout():
    r = run_program("import time\ntime.sleep(60)", timeout_s=1.0)
    assert not r.passed and r.reason == "timeout" and r.wall_s < 3


@pytest.mark.parametrize("code", ["x = bytearray(8 * 1024 ** 3)",
                                  "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))"])
def test_memory_hog_is_stopped(code):
    r = run_program(code, timeout_s=10.0, memory_mb=256)
    assert not r.passed and r.reason == "memory"


@pytest.mark.parametrize("code", [
    "import os\nwhile True:\n    os.fork()",
    "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass",
    "import subprocess\nsubprocess.run(['true'])",
    "import os\nos.system('true')",
    "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
    "import os\nos.execv('/bin/true', ['true'])",
])
def test_fork_bomb_and_process_creation_are_forbidden(code):
    r = run_program(code, timeout_s=2.0)
    assert not r.passed and r.reason == "forbidden: process", r


def test_writing_outside_the_temp_dir_is_contained(tmp_path):
    target = tmp_path / "escaped.txt"
    for code in [f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
                 f"import os\nos.chdir({str(tmp_path)!r})\nopen('escaped.txt', 'w').write('x')",
                 f"import os\nos.symlink({str(tmp_path)!r}, 'link')\nopen('link/escaped.txt', 'w').write('x')",
                 f"import os\nos.remove({str(tmp_path)!r} + '/keep.txt')"]:
        (tmp_path / "keep.txt").write_text("keep")
        r = run_program(code, **FAST)
        assert not r.passed and r.reason == "forbidden: filesystem", (code, r)
        assert not target.exists()
        assert (tmp_path / "keep.txt").read_text() == "keep"


def test_reading_the_users_home_is_forbidden(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.txt").write_text("TOP-SECRET")
    monkeypatch.setenv("HOME", str(home))
    r = run_program(f"print(open({str(home / 'secret.txt')!r}).read())", **FAST)
    assert not r.passed and r.reason == "forbidden: filesystem"
    assert "TOP-SECRET" not in r.stdout + r.stderr
    r = run_program("import os\nprint(open(os.path.expanduser('~/secret.txt')).read())", **FAST)
    assert not r.passed and "TOP-SECRET" not in r.stdout + r.stderr
    real_home = pwd.getpwuid(os.getuid()).pw_dir  # e.g. /root
    for code in [f"import os\nprint(os.listdir({real_home!r}))",
                 f"import glob\nprint(glob.glob({real_home!r} + '/.*'))",
                 f"print(open({real_home!r} + '/.bashrc').read())"]:
        r = run_program(code, **FAST)
        assert not r.passed and r.reason == "forbidden: filesystem", (code, r)
    r = run_program("print(open('/etc/passwd').read())", **FAST)
    assert not r.passed and r.reason == "forbidden: filesystem"


@pytest.mark.parametrize("netns", [False, None])
@pytest.mark.parametrize("code", [
    "import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 53))",
    "import socket\nsocket.create_connection(('example.com', 80), timeout=1)",
    "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
    "import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nexcept OSError:\n    pass",
])
def test_network_is_forbidden(code, netns):
    r = run_program(code, network_namespace=netns, **FAST)
    assert not r.passed and r.reason == "forbidden: network", r


def test_network_namespace_holds_even_when_the_prelude_is_bypassed():
    if not network_namespace_available():
        pytest.skip("unshare -n is not permitted here; only the prelude blocks sockets")
    code = ("import socket\nraw = socket.socket.__mro__[-2]  # the unguarded C class: the prelude is no jail\n"
            "s = raw(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    s.connect(('1.1.1.1', 53))\n    print('connected')\n"
            "except OSError as e:\n    print('errno', e.errno)")
    r = run_program(code, network_namespace=True, **FAST)
    assert r.stdout.strip() == "errno 101", r  # ENETUNREACH: the namespace has no interface up


def test_signals_limits_and_ctypes_are_forbidden_and_the_toolkit_survives():
    cwd, env = os.getcwd(), dict(os.environ)
    cases = {"import os, signal\nos.kill(os.getppid(), signal.SIGKILL)": "forbidden: signal",
             "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)": "forbidden: signal",
             "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))": "forbidden: limits",
             "import ctypes\nctypes.CDLL(None).fork()": "forbidden: ctypes"}
    for code, reason in cases.items():
        r = run_program(code, **FAST)
        assert not r.passed and r.reason == reason, (code, r)
    assert os.getcwd() == cwd and dict(os.environ) == env


def test_output_flood_hits_the_file_size_limit():
    r = run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 100000)", timeout_s=5.0, file_size_mb=1)
    assert not r.passed and r.reason == "file size limit"
    assert len(r.stdout) <= 2000


@pytest.mark.parametrize("code", ["import sys\nsys.exit(0)\nassert False", "import os\nos._exit(0)\nassert False"])
def test_exiting_early_does_not_count_as_passing(code):
    r = run_program(code, **FAST)
    assert not r.passed and r.reason == "exited before the end"


def test_temp_dir_is_fresh_and_removed():
    a = run_program("import os\nprint(os.getcwd())\nprint(os.listdir('.'))", **FAST)
    b = run_program("import os\nprint(os.getcwd())", **FAST)
    wd = a.stdout.splitlines()[0]
    assert a.stdout.splitlines()[1] == "[]"
    assert wd != b.stdout.strip()
    assert not os.path.exists(wd) and not os.path.exists(os.path.dirname(wd))


def test_run_many_is_parallel_and_ordered():
    progs = [f"import time\ntime.sleep(0.6)\nprint({k})" for k in range(4)]
    t0 = time.monotonic()
    res = run_many(progs, max_workers=4, limits=Limits(timeout_s=5.0))
    assert [r.stdout.strip() for r in res] == ["0", "1", "2", "3"]
    assert all(r.passed for r in res)
    assert time.monotonic() - t0 < 0.6 * 4
    assert run_many([]) == []


@pytest.mark.parametrize("bad", [dict(memory_mb=0), dict(disk_mb=-1), dict(nproc=-1), dict(timeout_s=0),
                                 dict(open_files=1.5), dict(memory_mb=True)])
def test_limits_are_checked_at_the_door(bad):
    from interp.errors import InterpError
    with pytest.raises(InterpError, match="Limits\\."):
        Limits(**bad)


def test_remove_tree_copes_with_any_depth_and_follows_no_symlink(tmp_path):
    import tempfile
    from pathlib import Path
    from interp.tasks.jail.fs import remove_tree
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))  # a tmpfs: 9,000 entries on the loaded disk take seconds
    try:
        _deep_tree_check(remove_tree, tmp_path / "outside", shm / "tree")
    finally:
        remove_tree(shm)


def _deep_tree_check(remove_tree, outside, tree):
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY)
    for _ in range(3000):  # far past the recursion limit of shutil.rmtree
        os.mkdir("d", dir_fd=fd)
        os.symlink(str(outside), "link", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep.txt").read_text() == "keep"
