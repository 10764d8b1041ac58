"""grading/sandbox.py: what a program inside the sandbox can and cannot do.

Each test starts a real bubblewrap sandbox (`make sandbox` installs it) with a few lines of Python
and reads what they print; the limits are small so that a test costs a second or two.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from grading import sandbox

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sandbox.shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def inside(code: str, **limits) -> sandbox.Result:
    """Run `code` with the course's Python in a fresh sandbox."""
    limits = sandbox.Limits(**{"wall_seconds": 60, **limits})
    return sandbox.run([sys.executable, "-c", code], b"", {}, sandbox.sandbox_env(limits), limits)


def test_the_sandbox_starts_here():
    sandbox.check()  # raises, saying what to install, if it cannot


def test_the_course_folder_home_and_network_are_out_of_reach(tmp_path):
    code = f"""
import json, os, socket
seen = {{}}
for path in [{str(ROOT / 'solutions')!r}, {str(ROOT / 'nbgrader_config.py')!r}, "/root", os.path.expanduser("~root"),
             "/etc/shadow"]:
    try:
        seen[path] = sorted(os.listdir(path))[:3] if os.path.isdir(path) else open(path).read(10)
    except OSError as error:
        seen[path] = type(error).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    seen["net"] = "connected"
except OSError as error:
    seen["net"] = type(error).__name__
seen["uid"] = os.getuid()
for target in [{str(ROOT / 'imgrec_lib' / 'x.py')!r}, {str(Path(sys.prefix) / 'x.py')!r}, "/usr/x"]:
    try:
        open(target, "w").write("planted")
        seen[target] = "written"
    except OSError as error:
        seen[target] = type(error).__name__
print(json.dumps(seen))
"""
    result = inside(code)
    seen = json.loads(result.stdout)
    assert seen[str(ROOT / "solutions")] == "FileNotFoundError", seen  # not even there
    assert seen[str(ROOT / "nbgrader_config.py")] == "FileNotFoundError", seen
    assert seen["/etc/shadow"] in ("PermissionError", "FileNotFoundError"), seen
    assert seen["net"] != "connected", seen
    if os.geteuid() == 0:
        assert seen["uid"] == sandbox.NOBODY, "a sandbox started by root runs as nobody"
    for target in (ROOT / "imgrec_lib" / "x.py", Path(sys.prefix) / "x.py", Path("/usr/x")):
        assert seen[str(target)] in ("OSError", "PermissionError"), seen  # read-only
        assert not target.exists()


def test_processes_it_leaves_behind_end_with_it():
    marker = f"imgrec-left-behind-{os.getpid()}-{time.time_ns()}"
    code = f"""
import os, subprocess
subprocess.Popen(["sleep", "300", {marker!r}], start_new_session=True)  # a daemon in its own session
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "301", {marker!r}])
    os._exit(0)
print("started")
"""
    result = inside(code)
    assert result.stdout.strip() == b"started"
    time.sleep(0.5)
    left = [p for p in Path("/proc").glob("[0-9]*")
            if marker.encode() in (p / "cmdline").read_bytes() if (p / "cmdline").exists()]
    assert not left, f"processes outlived their sandbox: {left}"


def test_wall_time_output_and_memory_limits_stop_it():
    slow = inside("import time\nprint('a', flush=True)\ntime.sleep(60)", wall_seconds=2)
    assert slow.ended == "wall time" and slow.stdout.startswith(b"a") and slow.seconds < 20
    loud = inside("import sys\nwhile True: sys.stdout.write('x' * 65536)", output_bytes=1_000_000)
    assert loud.ended == "output limit" and len(loud.stdout) == 1_000_000
    if sandbox._cgroup_dirs("probe"):  # memory is limited by a cgroup when the grader is root
        hungry = inside("chunks = []\nwhile True: chunks.append(bytearray(64 * 2**20))",
                        memory_bytes=512 * 2**20, wall_seconds=60)
        assert hungry.returncode != 0 and hungry.seconds < 50, hungry


def test_its_private_tmp_is_small_and_gone_afterwards():
    marker = f"imgrec-tmp-{time.time_ns()}"
    result = inside(f"""
import os
open("/tmp/{marker}", "w").write("x")
try:
    open("/tmp/big", "wb").write(b"0" * (64 * 2**20))
    print("wrote 64 MB")
except OSError as error:
    print(type(error).__name__)
""", tmp_bytes=16 * 2**20)
    assert result.stdout.strip() == b"OSError" or b"Error" in result.stdout, result.stdout
    assert not Path("/tmp", marker).exists()


def test_a_course_under_tmp_is_reachable_inside(tmp_path):
    """CI clones the course anywhere, /tmp too: a folder bound under the sandbox's own /tmp must be
    reachable by the sandbox's user (bubblewrap makes missing parents 0700 unless told)."""
    folder = tmp_path / "course" / "tools"
    folder.mkdir(parents=True)
    script = folder / "hello.py"
    script.write_text("print('reached')\n")
    os.chmod(tmp_path, 0o755)
    limits = sandbox.Limits(wall_seconds=60)
    result = sandbox.run([sys.executable, str(script)], b"", {str(folder): str(folder)}, sandbox.sandbox_env(limits),
                         limits)
    assert result.stdout.strip() == b"reached", result.stderr_tail[-500:]


NOT_ROOT = """
import json, mmap, os, subprocess, sys
sys.path.insert(0, {folder!r})
import sandbox

sandbox.python_binds = lambda: []  # the system's Python, in /usr: bound anyway
others = [subprocess.Popen(["sleep", "60"]) for _ in range(40)]  # the grader's other processes
limits = sandbox.Limits(wall_seconds=60, pids=32, memory_bytes=256 * 2**20)
code = '''
import json, mmap, os
forks = 0
try:
    while forks < 100:
        if os.fork() == 0:
            os.read(os.pipe()[0], 1)  # waits until the sandbox ends
        forks += 1
except OSError:
    pass
try:
    mmap.mmap(-1, 5 * 2**30)  # address space only: nothing is touched
    mapped = True
except OSError:
    mapped = False
print(json.dumps({{"forks": forks, "mapped": mapped, "uid": os.getuid()}}))
'''
result = sandbox.run(["/usr/bin/python3", "-c", code], b"", {{}}, sandbox.sandbox_env(limits), limits)
for other in others:
    other.kill()
print(result.stdout.decode() or result.stderr_tail)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root to become another account, and the system's Python")
@pytest.mark.skipif(not sandbox.counts_tasks_per_user_namespace(), reason="Linux before 5.14")
def test_without_root_a_sandbox_caps_its_processes_and_address_space():
    """The hub's course service grades as the course's owner, without cgroups: here the grader is
    `nobody`, with 40 processes of its own running, and the system's Python (this one's may live
    where `nobody` cannot enter). A sandbox of 32 processes forks about 30 times whatever the
    grader runs elsewhere, and cannot map 5 GiB (256 MiB of memory + 4 GiB of address space)."""
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        shutil.copy(ROOT / "grading" / "sandbox.py", folder)
        done = subprocess.run(["setpriv", f"--reuid={sandbox.NOBODY}", f"--regid={sandbox.NOBODY}", "--clear-groups",
                               "/usr/bin/python3", "-c", NOT_ROOT.format(folder=folder)],
                              capture_output=True, text=True, cwd="/", timeout=120,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    seen = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    assert seen, done.stdout + done.stderr
    assert seen["uid"] == sandbox.NOBODY
    assert 20 <= seen["forks"] < 32, seen  # its own processes only: not the grader's 40
    assert not seen["mapped"], seen


def course_python_options(sandboxed: bool = True):
    from grading import worker
    return worker.Options(cell_timeout=60, sandboxed=sandboxed, model=None, zero_reference_copies=False,
                          limits=sandbox.Limits())


def test_autograde_first_checks_that_the_course_python_runs_where_notebooks_are_graded():
    from grading import worker
    worker.check_course_python(course_python_options())  # raises if it cannot


def test_a_course_python_that_cannot_start_in_the_sandbox_stops_grading_with_what_to_do(monkeypatch):
    from grading import worker
    monkeypatch.setattr(sys, "executable", "/nonexistent/venv/bin/python")  # e.g. a venv linked from elsewhere
    with pytest.raises(worker.CoursePythonBroken, match="nothing was graded(.|\n)*make autograde"):
        worker.check_course_python(course_python_options())


def test_a_torch_that_cannot_be_imported_stops_the_judge_before_any_notebook(monkeypatch, tmp_path):
    """The course check leaves torch out (~2 s per run): the judge imports it first and, failing, starts
    no notebook, so nothing is scored 0 for it (autograde reports those submissions not graded)."""
    from grading import worker
    (tmp_path / "fake" / "torch").mkdir(parents=True)
    (tmp_path / "fake" / "torch" / "__init__.py").write_text("raise ImportError('a broken torch')")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "fake"}:$PYTHONPATH exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))
    options = course_python_options(sandboxed=False)
    worker.check_course_python(options)  # imgrec_lib, the runner and the kernel import
    judge = worker.Judge(options)
    try:
        with pytest.raises(RuntimeError, match="the judge did not start"):
            worker.run_and_judge({"cells": []}, {}, {}, judge, options)
    finally:
        judge.close()


def test_a_course_python_without_imgrec_lib_stops_grading_and_says_why(monkeypatch, tmp_path):
    from grading import worker
    fake = tmp_path / "imgrec_lib"  # what another checkout's editable install can leave: no course to import
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('imgrec_lib of another checkout')")
    real = worker.runner_env

    def shadowed(options, scratch):
        binds, env = real(options, scratch)
        env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
        return binds, env

    monkeypatch.setattr(worker, "runner_env", shadowed)
    with pytest.raises(worker.CoursePythonBroken, match="imgrec_lib of another checkout"):
        worker.check_course_python(course_python_options(sandboxed=False))


def test_without_a_sandbox_the_kernel_has_ended_when_its_run_returns():
    """Without a sandbox jupyter_client starts the kernel in a session of its own, which ending the
    runner does not reach: the grader then waits for the runner, which shuts the kernel down, so no
    student code outlives its run (with a sandbox, ending the sandbox ends everything in it)."""
    from nbformat.v4 import new_code_cell, new_notebook

    from grading import worker
    options = course_python_options(sandboxed=False)
    judge = worker.Judge(options)
    try:
        run, _ = worker.run_and_judge(new_notebook(cells=[new_code_cell("import os\nprint(os.getpid())")]),
                                      {}, {}, judge, options)
    finally:
        judge.close()
    kernel = int(run.outputs[0][0]["text"])
    assert not Path(f"/proc/{kernel}").exists(), f"the kernel {kernel} is still running"
