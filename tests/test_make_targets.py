"""Nothing saved is lost: a learner's answers in lessons/ survive every make target; and one
submission can be graded in steps, as the Kubernetes Job in deploy/ does.

The make targets run in a copy of the course (one lesson, the repository's .venv linked in), with
an answer written into lessons/ and a checkpoint in checkpoints/, as a learner would have them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LESSON = "04_loss_functions"
MY_ANSWER = "def mse(pred, target):\n    # my own answer, written in lessons/\n    return float(((pred - target) ** 2).mean())\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make(course: Path, *targets: str) -> subprocess.CompletedProcess:
    # -o: the copy's venv stamp is older than its pyproject.toml, but the venv is the repository's
    return subprocess.run(["make", "-o", ".venv/.installed", *targets], cwd=course, capture_output=True, text=True,
                          timeout=900, env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})


@pytest.fixture(scope="module")
def learner_course(tmp_path_factory):
    course = tmp_path_factory.mktemp("learner_course")
    for name in ("Makefile", "nbgrader_config.py", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, course)
    for folder in ("scripts", "grading", "imgrec_lib"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("solutions", "lessons"):
        shutil.copytree(ROOT / folder / LESSON, course / folder / LESSON)
    (course / ".venv").symlink_to(ROOT / ".venv")
    path = course / "lessons" / LESSON / f"{LESSON}.ipynb"
    nb = nbformat.read(path, as_version=4)
    next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "mse").source = MY_ANSWER
    nbformat.write(nb, path)
    (course / "checkpoints").mkdir()
    (course / "checkpoints" / "course_cnn.pt").write_bytes(b"a learner's trained model")
    submitted = course / "submitted" / "ana" / LESSON
    submitted.mkdir(parents=True)
    shutil.copy(path, submitted / f"{LESSON}.ipynb")
    return course


def test_a_learners_answers_survive_every_make_target(learner_course):
    course = learner_course
    mine = course / "lessons" / LESSON / f"{LESSON}.ipynb"
    kept = {p: digest(p) for p in [mine, course / "checkpoints" / "course_cnn.pt",
                                   *sorted((course / "solutions").rglob("*.ipynb"))]}
    for target in ("lessons", "autograde", "check", "feedback", "clean"):
        result = make(course, target)
        assert result.returncode == 0, f"make {target}: {result.stdout[-1500:]}{result.stderr[-1500:]}"
        if target == "autograde":  # graded for real through the linked .venv: its kernel started, imgrec_lib imported
            assert "FileNotFoundError" not in result.stdout and "ModuleNotFoundError" not in result.stdout, result.stdout
        changed = [str(p.relative_to(course)) for p, d in kept.items() if not p.exists() or digest(p) != d]
        assert not changed, f"make {target} changed or removed {changed}"
        if target == "lessons":  # the new release goes beside the learner's notebook
            assert "holds your work: kept it" in result.stdout, result.stdout
            assert (course / "lessons" / LESSON / f"{LESSON}.new.ipynb").exists()
        if target == "check":  # graded from a copy, the score printed, the feedback page written
            assert "mse" in result.stdout and "/ 9 points" in result.stdout, result.stdout[-2000:]
            assert (course / "checked" / f"{LESSON}.html").exists()
    assert MY_ANSWER.splitlines()[1] in mine.read_text()


def quiz_course(folder: Path) -> Path:
    """A one-exercise course: solutions/quiz with a test cell in the graded form, and its release."""
    from nbformat.v4 import new_code_cell, new_notebook

    def meta(gid, **flags):
        return {"nbgrader": {"schema_version": 3, "grade_id": gid, "grade": False, "solution": False,
                             "locked": False, "task": False, **flags}}

    nb = new_notebook(cells=[
        new_code_cell("import numpy as np"),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * np.asarray(x)\n    ### END SOLUTION",
                      metadata=meta("double", solution=True)),
        new_code_cell("def test_double(double):\n    import numpy as np\n    got = double(np.arange(3.0))\n"
                      "    assert (np.asarray(got) == [0, 2, 4]).all(), f'expected [0, 2, 4], got {got}'\n\n\n"
                      "test_double(double)\n", metadata=meta("test_double", grade=True, locked=True, points=1)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (folder / "solutions" / "quiz").mkdir(parents=True)
    nbformat.write(nb, folder / "solutions" / "quiz" / "quiz.ipynb")
    return folder / "solutions" / "quiz" / "quiz.ipynb"


def quiz_check(folder: Path, exercises: list[tuple[str, str, str, str]], answers: dict[int, str]):
    """`python -m grading check quiz` in `folder`: a made-up lesson of `exercises` (name, arguments,
    solution body, test body) in solutions/, and the learner's copy in lessons/ with `answers`
    ({cell index: source}) in place of the solutions."""
    from nbformat.v4 import new_code_cell, new_notebook

    def meta(gid, **flags):
        return {"nbgrader": {"schema_version": 3, "grade_id": gid, "grade": False, "solution": False,
                             "locked": False, "task": False, **flags}}

    cells = [new_code_cell("import numpy as np")]
    for name, args, body, test in exercises:
        cells += [new_code_cell(f"def {name}({args}):\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION",
                                metadata=meta(name, solution=True)),
                  new_code_cell(f"def test_{name}({name}):\n    import numpy as np\n    {test}\n\n\ntest_{name}({name})\n",
                                metadata=meta(f"test_{name}", grade=True, locked=True, points=1))]
    source = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
    for place in ("solutions", "lessons"):
        (folder / place / "quiz").mkdir(parents=True)
    nbformat.write(source, folder / "solutions" / "quiz" / "quiz.ipynb")
    mine = nbformat.from_dict(source)
    for index, text in answers.items():
        mine.cells[index].source = text
    nbformat.write(mine, folder / "lessons" / "quiz" / "quiz.ipynb")
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    return subprocess.run([sys.executable, "-m", "grading", "check", "quiz", "--unsafe-no-sandbox"], cwd=folder,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_check_notes_an_answer_that_calls_its_reference(tmp_path):
    """`make check` flags what `make autograde` flags: a learner's mse that calls torch's, not their own relu."""
    result = quiz_check(tmp_path, [
        ("mse", "x, y", "return float(np.mean((np.asarray(x) - np.asarray(y)) ** 2))",
         "assert mse(np.ones(3), np.zeros(3)) == 1.0, 'mse: expected 1.0'"),
        ("relu", "x", "return np.maximum(x, 0)", "assert (relu(np.array([-1.0, 2.0])) == [0, 2]).all(), 'relu: expected [0, 2]'"),
    ], {1: "def mse(x, y):\n    import torch\n"
           "    return torch.nn.functional.mse_loss(torch.as_tensor(x), torch.as_tensor(y)).item()\n",
        3: "def relu(x):\n    return np.where(np.asarray(x) > 0, x, 0.0)\n"})  # relu: the learner's own
    assert "quiz: 2 / 2 points" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    notes = [line for line in result.stdout.splitlines() if "calls its reference" in line]
    assert len(notes) == 1 and "note: mse calls its reference" in notes[0] and "mse_loss" in notes[0], result.stdout



def test_check_says_what_it_grades_with_and_shows_the_named_mistake_and_an_answer_cells_error(tmp_path):
    """`make check` says it grades with this clone's solutions/; a long message keeps its "that is ..."
    clause; an answer cell that raised is reported before the test it breaks."""
    long_test = ("got = np.asarray(double(np.arange(300.0)))\n    assert (got == 2 * np.arange(300.0)).all(), "
                 "f'expected {(2 * np.arange(300.0)).tolist()}, got {got.tolist()}; that is x + 1, not 2 * x'")
    result = quiz_check(tmp_path, [("double", "x", "return 2 * np.asarray(x)", long_test),
                                   ("half", "x", "return np.asarray(x) / 2", "assert half(4.0) == 2.0, 'half: expected 2.0'")],
                        {1: "def double(x):\n    return np.asarray(x) + 1\n",
                         3: "import not_a_module_anyone_has\n\ndef half(x):\n    return np.asarray(x) / 2\n"})
    out = result.stdout
    assert "quiz: 0 / 2 points" in out, out[-2000:] + result.stderr[-2000:]
    assert "reference tests published in this clone's solutions/" in out.splitlines()[0], out
    double = next(line for line in out.splitlines() if line.strip().startswith("double"))
    assert double.endswith("... that is x + 1, not 2 * x") and len(double) < 500, double
    half = out[out.index("  half"):]
    # named by its exercise (JupyterLab numbers no cells), not by a count of cells
    said = "your answer cell for half raised ModuleNotFoundError: No module named 'not_a_module_anyone_has'"
    assert half.index(said) < half.index("test_half: RuntimeError"), out
    page = (tmp_path / "checked" / "quiz.html").read_text()
    assert page.count("your answer cell for half raised ModuleNotFoundError") == 1, "said once, on the test it breaks"
    help_text = subprocess.run([sys.executable, "-m", "grading", "check", "--help"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    assert "this clone's solutions/" in " ".join(help_text.split()) and "may differ" in help_text, help_text


def grade_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grading", "grade", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_runner_started_elsewhere_gets_the_verdicts_of_one_run(tmp_path):
    """The Job's way: the runner listens in its own container, the grader connects and judges."""
    source = quiz_course(tmp_path)
    right, wrong = tmp_path / "right.ipynb", tmp_path / "wrong.ipynb"
    shutil.copy(source, right)
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].source = "def double(x):\n    return 3 * np.asarray(x)\n"
    nbformat.write(nb, wrong)
    for submission, passed in ((right, ["test_double"]), (wrong, [])):
        whole = grade_cli("quiz", str(submission), "--out", str(tmp_path / "whole.ipynb"), cwd=tmp_path)
        assert json.loads(whole.stdout)["passed"] == passed, whole.stderr[-2000:]
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        listening = scratch / "runner.sock"
        listening.unlink(missing_ok=True)
        runner = subprocess.Popen([sys.executable, "-m", "grading.runner", "--listen", str(listening)], cwd=scratch,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(scratch),
                                           IMGREC_SERVE_SOCKET=str(scratch / "serve.sock")))
        try:
            steps = grade_cli("quiz", str(submission), "--out", str(tmp_path / "steps.ipynb"), "--runner-socket",
                              str(listening), "--unsafe-no-sandbox", cwd=tmp_path)
            assert runner.wait(timeout=60) == 0
        finally:
            runner.kill()
        assert json.loads(steps.stdout)["passed"] == passed, steps.stderr[-2000:]


def test_the_kubernetes_job_parses_and_uses_the_commands_that_exist():
    job, policy = yaml.safe_load_all((ROOT / "deploy" / "grading-job.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed" and policy["kind"] == "NetworkPolicy"
    pod = job["spec"]["template"]["spec"]
    kernel, grader = pod["containers"]
    assert kernel["securityContext"]["runAsNonRoot"] and kernel["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "grading.runner --listen /exchange/runner.sock" in kernel["args"][0] and "limits" in kernel["resources"]
    assert not pod["automountServiceAccountToken"]
    help_text = grade_cli("--help", cwd=ROOT).stdout
    for flag in ("--runner-socket /exchange/runner.sock", "--unsafe-no-sandbox"):
        assert flag in grader["args"][0] and flag.split()[0] in help_text, flag
    assert all(m.get("readOnly") is True for m in grader["volumeMounts"] if m["name"] == "exchange")
    assert not any(m["name"] == "work" for m in kernel["volumeMounts"])


@pytest.mark.skipif(os.geteuid() != 0, reason="checks what root does in a course someone else owns")
def test_sudo_make_hub_builds_nothing_in_an_instructors_course_until_they_installed_it(tmp_path):
    course = tmp_path / "course"
    (course / "hub").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "hub/package.json", "hub/package-lock.json"):
        shutil.copy(ROOT / name, course / name)
    tmp_path.chmod(0o755)
    subprocess.run(["chown", "-R", "nobody:", str(course)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    for target, says in (("hub", "run make install and make hub-proxy as nobody first, then sudo make hub"),
                         ("autograde", "run make install as nobody first, then sudo make autograde")):
        result = subprocess.run(["make", target], cwd=course, capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode != 0 and f"course folder is nobody's: {says}" in result.stderr, result.stderr
        assert not (course / ".venv").exists() and not (course / "hub" / "node_modules").exists()
    # Once the owner has installed both, the check lets `make hub` go on.
    for stamp in (".venv/.installed", "hub/node_modules/configurable-http-proxy/package.json"):
        (course / stamp).parent.mkdir(parents=True, exist_ok=True)
        (course / stamp).touch()
    checked = subprocess.run(["make", "owner-first", "OWNER_BUILDS=.venv/.installed "
                              "hub/node_modules/configurable-http-proxy/package.json"],
                             cwd=course, capture_output=True, text=True, timeout=60, env=env)
    assert checked.returncode == 0, checked.stderr


def test_make_install_with_a_too_old_python_says_which_and_what_to_do(tmp_path):
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    old = tmp_path / "python3.11.2"  # answers as Debian 12's python3 does
    old.write_text('#!/bin/sh\ncase "$2" in *platform*) echo 3.11.2;; *) exit 1;; esac\n')
    old.chmod(0o755)
    result = subprocess.run(["make", "install", f"PYTHON={old}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})
    assert result.returncode != 0 and "is Python 3.11.2; the course needs 3.11.5 or newer" in result.stderr
    assert "make PYTHON=" in result.stderr and not (tmp_path / ".venv").exists()


def test_make_in_a_checkout_whose_venv_links_elsewhere_installs_nothing_into_it(tmp_path):
    """A second checkout with .venv linked to the first one's venv: installing the course there would
    re-point the first checkout's imgrec_lib at the second (an outside tester's clone did that)."""
    other_venv, course = tmp_path / "other" / ".venv", tmp_path / "course"
    (other_venv / "bin").mkdir(parents=True)
    used = tmp_path / "python-was-run"
    fake = other_venv / "bin" / "python"
    fake.write_text(f'#!/bin/sh\ntouch {used}\n')
    fake.chmod(0o755)
    course.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, course / name)  # newer than the other venv's (missing) stamp
    (course / ".venv").symlink_to(other_venv)
    result = subprocess.run(["make", "install"], cwd=course, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})
    assert result.returncode == 0, result.stderr
    assert f".venv links to {other_venv}: using it as it is" in result.stdout, result.stdout
    assert not used.exists(), "the linked venv's python was run to install into it"
    assert not (other_venv / ".installed").exists()


def test_check_says_where_in_the_learners_function_a_call_raised(tmp_path):
    """An error inside the learner's function while the test calls it: the line says the cell and line
    of the learner's code (the kernel's Cell In[N] numbering, the feedback page's In [N])."""
    result = quiz_check(tmp_path, [("scale", "x", "return 3 * np.asarray(x)",
                                    "assert (scale(np.arange(3.0)) == [0, 3, 6]).all(), 'scale: expected [0, 3, 6]'")],
                        {1: "def scale(x):\n    y = np.asarray(x)\n    return 3 * yy\n"})
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("scale"))
    assert "NameError" in line and "Cell In[2], line 3, in scale" in line, result.stdout[-2000:] + result.stderr[-2000:]
