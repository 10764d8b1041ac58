"""The nbgrader pipeline, lesson by lesson.

- `lessons/` is exactly what `nbgrader generate_assignment` makes from `solutions/` today;
- no solution code and no hidden test reaches `lessons/`;
- the instructor's notebook, submitted as a student's, autogrades to full marks, and the blank
  release (its answer and test cells) autogrades to zero, without crashing;
- a cheater who hands in wrong answers of the right shape together with code that rebinds builtins
  and replaces numpy's and torch's comparison functions and the reference functions the tests use
  scores 0 in every test cell, while the cheat itself runs cleanly;
- the cell metadata follows the course conventions (docs/LESSON_GUIDE.md).

- the solved notebook, run by the grader, raises no error in any cell, and the cells marked
  `# NBVAL_CHECK_OUTPUT` print what the stored notebook shows (after tests/nbval_sanitize.cfg's
  substitutions for addresses and timings: nbval's rules, so `make nbval` agrees).

All of it runs in a temporary copy of the course, so nothing in the repository is touched; the three
students of every lesson are graded in one `make autograde` run. That run is the one execution of each
solved notebook in `make test` (nbval would run each a second time; `make nbval` still does, for
a maintainer who wants the plain-kernel check of one lesson).
"""

import ast
import builtins
import configparser
import copy
import json
import os
import re
import shutil
import subprocess
import symtable
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "solutions").glob("[0-9][0-9]_*") if p.is_dir())
if os.environ.get("LESSON"):  # e.g. LESSON=01_convolution pytest tests/test_lessons.py: one lesson only
    LESSONS = [name for name in LESSONS if name.startswith(os.environ["LESSON"])]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not LESSONS, reason="no lessons in solutions/ yet")


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run nbgrader with the venv's bin/ on PATH (it runs `alembic` as a program)."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))  # nbgrader_config.py imports the course's grading/
    result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result


def notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def grade_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A copy of the course with lessons generated afresh and three students' submissions of every
    lesson graded in one run of `make autograde` (grading/: a sandbox each, the judge decides):
    `solver` submits the instructor's notebooks, `blank` the untouched release trimmed to its set-up,
    answer and test cells (its other cells are the solver's, run already), `cheater` the release
    with wrong answers and the lies of ATTACK (Lesson.cheater)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions", root / "solutions",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pt", "checkpoints",
                                                  "_record_*"))
    nbgrader("generate_assignment", "*", "--force", cwd=root)
    for lesson in LESSONS:
        (root / "submitted" / "solver" / lesson).mkdir(parents=True)
        shutil.copy(root / "solutions" / lesson / f"{lesson}.ipynb", root / "submitted" / "solver" / lesson)
        for student, nb in (("blank", Lesson(root, lesson).trimmed()), ("cheater", Lesson(root, lesson).cheater())):
            (root / "submitted" / student / lesson).mkdir(parents=True)
            nbformat.write(nb, root / "submitted" / student / lesson / f"{lesson}.ipynb")
    from imgrec_lib import data, models, training  # lesson 08 is graded with a trained model, as in class

    recipe = training.RECIPES["fast"]  # 3 epochs: ~97%, in seconds
    training.fit(models.CourseCNN(**recipe["model"]), data.digits("train"), data.digits("test"), progress=False,
                 checkpoint=root / "checkpoints" / "course_cnn.pt", **dict(recipe["fit"], epochs=3))
    result = subprocess.run([sys.executable, "-m", "grading", "autograde", "--workers", "2", "--timeout", "600"],
                            cwd=root, capture_output=True, text=True, timeout=3600,
                            env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, f"make autograde failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return root


def scores(course: Path, lesson: str, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(lesson, student)
        return submission.score, submission.max_score


def grades(course: Path, lesson: str, student: str) -> dict[str, float]:
    """{grade_id: score} of one autograded submission, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(lesson, lesson, student)
        return {grade.name: grade.score for grade in submission.grades}


def failing_tests(course: Path, lesson: str, student: str) -> list[str]:
    """grade_ids of test cells whose autograded output holds an error, with the error's last line."""
    nb = notebook(course / "autograded" / student / lesson / f"{lesson}.ipynb")
    failed = []
    for cell in grade_cells(nb):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                failed.append(f"{cell['metadata']['nbgrader']['grade_id']}: {out['ename']}: {out['evalue']}")
    return failed


@pytest.mark.parametrize("lesson", LESSONS)
def test_lessons_folder_is_a_fresh_generation(course, lesson):
    committed = ROOT / "lessons" / lesson / f"{lesson}.ipynb"
    assert committed.exists(), f"{committed} is missing: run `make lessons`"
    fresh = notebook(course / "lessons" / lesson / f"{lesson}.ipynb")
    assert notebook(committed) == fresh, f"{committed} is out of date: run `make lessons` and commit"


@pytest.mark.parametrize("lesson", LESSONS)
def test_release_has_no_outputs_or_run_records(lesson):
    """The solutions' outputs, widget state (e.g. the images a widget drew with the solved code) and
    cell timestamps stay behind."""
    released = notebook(ROOT / "lessons" / lesson / f"{lesson}.ipynb")
    assert "widgets" not in released["metadata"], f"lessons/{lesson} carries widget state: run `make lessons`"
    assert not any(c.get("outputs") for c in released["cells"] if c["cell_type"] == "code")
    assert not any("execution" in c["metadata"] for c in released["cells"]), f"lessons/{lesson} carries timestamps"


@pytest.mark.parametrize("lesson", LESSONS)
def test_no_solution_or_hidden_test_leaks_into_the_release(lesson):
    src = notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    released = json.dumps(notebook(ROOT / "lessons" / lesson / f"{lesson}.ipynb"))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in released, f"{marker!r} appears in lessons/{lesson}"
    secret = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
    # Lines the instructor's notebook also shows outside the secret blocks are not secrets (e.g. the imports
    # that every test function, visible or hidden, holds); trivial lines are skipped.
    public = {line.strip() for cell in src["cells"] for line in secret.sub("", source(cell)).splitlines()}
    for cell in src["cells"]:
        for _, block in secret.findall(source(cell)):
            for line in block.splitlines():
                line = line.strip()
                if len(line) > 12 and not line.startswith("#") and not any(line in seen for seen in public):
                    assert json.dumps(line)[1:-1] not in released, f"lessons/{lesson} leaks: {line}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_cell_metadata_follows_the_conventions(lesson):
    nb = notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    ids = []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        assert meta["schema_version"] == 3
        for key in ("grade", "solution", "locked", "grade_id"):
            assert key in meta, f"{lesson}: a cell's nbgrader metadata lacks {key!r}"
        ids.append(meta["grade_id"])
        text = source(cell)
        if meta["solution"]:
            assert not meta["locked"] and "### BEGIN SOLUTION" in text, f"{meta['grade_id']}: answer cell"
        if meta["grade"]:
            assert meta["locked"] and meta["points"] > 0, f"{meta['grade_id']}: test cell must be locked, points > 0"
            assert "BEGIN SOLUTION" not in text, f"{meta['grade_id']}: a test cell holds a solution"
            assert re.search(r"\bassert\b|raise\b", text), f"{meta['grade_id']}: a test cell with no check"
    assert len(ids) == len(set(ids)), f"{lesson}: duplicate grade_id"
    hidden = [c for c in grade_cells(nb) if "### BEGIN HIDDEN TESTS" in source(c)]
    assert hidden, f"{lesson}: has no hidden test cell"


def call_problem(text: str) -> str | None:
    """Why a graded test cell does not have the shape the grader needs (None when it has it): it must end
    with a plain call `test_x(a, probe(b), ...)` of a test function defined in the cell, each argument a
    name or a call of a function defined in the cell (docs/LESSON_GUIDE.md)."""
    tree = ast.parse(text)
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    last = tree.body[-1] if tree.body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Name)):
        return "its last statement is not a call `test_x(...)`"
    call = last.value
    if not call.func.id.startswith("test_") or call.func.id not in defined:
        return f"its last statement calls {call.func.id}, not a test function defined in the cell"
    if call.keywords or not call.args:
        return "the test function must be called with positional arguments only"
    for arg in call.args:
        if isinstance(arg, ast.Name):
            continue
        if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id in defined
                and not arg.keywords and all(isinstance(a, ast.Name) for a in arg.args)):
            continue
        return f"the argument `{ast.unparse(arg)}` is neither a name nor a call of a probe defined in the cell"
    return None


def outside_names(text: str) -> set[str]:
    """The names that a graded cell's test function (the one its last statement calls) reads from outside
    itself, builtins aside. The test runs only in the grader's judge: it must import or define inside
    itself all it uses, and it gets the probes' results as arguments (docs/LESSON_GUIDE.md)."""
    name = ast.parse(text).body[-1].value.func.id
    (function,) = [t for t in symtable.symtable(text, "<test cell>", "exec").get_children() if t.get_name() == name]
    found, scopes = set(), [function]
    while scopes:
        scope = scopes.pop()
        found |= {s.get_name() for s in scope.get_symbols() if s.is_global() and s.is_referenced()}
        scopes += scope.get_children()
    return found - set(dir(builtins))


# What a test must not pass to a student's function: a lambda or a function, a module, an optimizer or a
# loss built by the test (`nn.Sequential(...)`, `models.CourseCNN(...)`, `torch.optim.SGD(...)`, a copy of
# one), a functional loss (`F.cross_entropy`), an open file.
NOT_DATA = re.compile(r"lambda\b|(torch\.)?nn\.[A-Z]|torch\.optim\.[A-Z]|models\.[A-Z]|copy\.deepcopy\(|open\(")
FUNCTIONAL = re.compile(r"(F|nn\.functional|torch\.nn\.functional)\.\w+")


def not_data_sent(text: str) -> list[str]:
    """The calls in a graded cell's test function that pass the student's function something that is not
    data (NOT_DATA): each call of the student's function goes to the student's kernel as data, so such a
    call belongs in a probe (docs/LESSON_GUIDE.md). A static check: it sees what the test builds itself."""
    tree = ast.parse(text)
    last = tree.body[-1].value
    test = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == last.func.id)
    students = {param.arg for param, arg in zip(test.args.args, last.args) if isinstance(arg, ast.Name)}
    objects = {node.name for node in ast.walk(test) if isinstance(node, ast.FunctionDef) and node is not test}
    for node in ast.walk(test):
        if isinstance(node, ast.Assign):
            pairs = [(target, node.value) for target in node.targets]
            pairs += [pair for target in node.targets  # a, b = x, y
                      if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                      for pair in zip(target.elts, node.value.elts)]
            objects |= {target.id for target, value in pairs
                        if isinstance(target, ast.Name) and NOT_DATA.match(ast.unparse(value))}
    found = []
    for node in ast.walk(test):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in students:
            for value in [*node.args, *(keyword.value for keyword in node.keywords)]:
                if (isinstance(value, ast.Name) and value.id in objects or NOT_DATA.match(ast.unparse(value))
                        or isinstance(value, ast.Attribute) and FUNCTIONAL.fullmatch(ast.unparse(value))):
                    found.append(ast.unparse(node))
                    break
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_graded_test_cells_end_with_a_plain_call_of_their_test(lesson):
    """The grader runs each graded test cell's test function outside the student's kernel, in its judge
    (grading/judge.py), and sends its calls of the student's functions to the kernel as data."""
    nb = notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    cells = [c for c in grade_cells(nb) if c["cell_type"] == "code"]
    assert cells, f"{lesson}: no graded test cells"
    for cell in cells:
        grade_id, text = cell["metadata"]["nbgrader"]["grade_id"], source(cell)
        problem = call_problem(text)
        assert problem is None, f"{lesson}, {grade_id}: {problem}"
        outside = outside_names(text)
        assert not outside, f"{lesson}, {grade_id}: the test function uses {sorted(outside)} from outside itself"
        sent = not_data_sent(text)
        assert not sent, f"{lesson}, {grade_id}: the test passes the student's code what is not data: {sent}; use a probe"
        for word in ("run_checked", "fingerprint", "imgrec_lib.grading", "from builtins import"):
            assert word not in text, f"{lesson}, {grade_id}: the test cell still mentions {word!r}"
        if "### BEGIN HIDDEN TESTS" in text:
            assert text.rstrip().endswith("### END HIDDEN TESTS"), f"{lesson}, {grade_id}: hidden tests must end the cell"


def test_the_test_call_check_rejects_other_shapes():
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\ntest_a(f)\n") is None
    assert call_problem("def probe(g):\n    return 1\n\n\ndef test_a(f, p):\n    assert p\n\n\ntest_a(f, probe(g))") is None
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\ntest_a(f)\nprint('done')") is not None
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\nrun_checked(test_a, [(f, False)])") is not None
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\ntest_a(f, check=len)") is not None
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\ntest_a(f[0])") is not None
    assert call_problem("def test_a(f):\n    assert f(1)\n\n\ntest_a(len(f))") is not None


def test_the_judge_side_checks_find_outside_names_and_what_is_not_data():
    cell = ("def helper():\n    return 1\n\n\ndef test_a(f, facts):\n    import numpy as np\n{body}\n\n\n"
            "test_a(f, probe(f))\n")
    assert outside_names(cell.format(body="    assert f(np.zeros(1)) and facts")) == set()
    assert outside_names(cell.format(body="    assert [helper() for _ in range(2)] and F.relu")) == {"helper", "F"}
    assert not_data_sent(cell.format(body="    y = F.relu(torch.ones(2))\n    assert f(np.zeros(1), y, key=[3])")) == []
    assert not_data_sent(cell.format(body="    assert facts(lambda v: v)")) == []  # facts is a probe's result
    for body in ["    assert f(lambda v: v, np.zeros(1))", "    g = lambda v: v\n    assert f(np.zeros(1), g)",
                 "    def g(v):\n        return v\n    assert f(np.zeros(1), fn=g)",
                 "    net = nn.Sequential(nn.Linear(2, 2))\n    assert f(net)",
                 "    net = models.CourseCNN(hidden=16).eval()\n    assert f(net, [1])",
                 "    opt, w = torch.optim.SGD([w], lr=0.1), 1\n    assert f(np.zeros(1), opt)",
                 "    assert f(torch.ones(2), F.cross_entropy)", "    assert f(open('x'))"]:
        assert not_data_sent(cell.format(body=body)) != [], body


@pytest.mark.parametrize("lesson", LESSONS)
def test_text_has_no_control_characters(lesson):
    """A TeX command put into the JSON with one backslash (\\text read as a TAB and "ext") breaks the maths."""
    nb = notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            bad = sorted({repr(ch) for ch in source(cell) if ch < " " and ch != "\n"})
            assert not bad, f"{lesson}, cell {i}: control characters {bad} in the text; a backslash lost its escape?"


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_are_stored_executed_without_errors_or_warnings(lesson):
    nb = notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code if source(c).strip()), f"{lesson} is not executed"
    for cell in code:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{lesson}: a stored error: {out.get('evalue')}"
            if out.get("name") == "stderr":
                text = "".join(out["text"])
                assert "Warning" not in text and "Traceback" not in text, f"{lesson}: stored stderr: {text[:300]}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_solved_notebook_scores_full_marks(course, lesson):
    score, max_score = scores(course, lesson, "solver")
    assert max_score > 0
    assert score == max_score, f"{lesson}: {score}/{max_score}; failing: {failing_tests(course, lesson, 'solver')}"


def printed(cell: dict, substitutions: list[tuple[re.Pattern, str]]) -> str:
    """What a code cell showed, as text: streams merged by name (a print may arrive in pieces),
    results and errors, with the run-to-run parts (addresses, timings) substituted."""
    parts: list[list[str]] = []
    for out in cell.get("outputs", []):
        kind = out.get("name") if out["output_type"] == "stream" else out["output_type"]
        if out["output_type"] == "stream":
            text = source({"source": out["text"]})
        elif out["output_type"] == "error":
            text = f"{out['ename']}: {out['evalue']}"
        else:
            text = source({"source": out.get("data", {}).get("text/plain", "")})
        if parts and parts[-1][0] == kind == out.get("name"):
            parts[-1][1] += text
        else:
            parts.append([kind, text])
    shown = "".join(f"[{kind}]\n{text}" for kind, text in parts)
    for pattern, replacement in substitutions:
        shown = pattern.sub(replacement, shown)
    return shown


def nbval_substitutions() -> list[tuple[re.Pattern, str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "tests" / "nbval_sanitize.cfg")
    return [(re.compile(config[name]["regex"]), config[name]["replace"]) for name in config.sections()]


def checked_outputs(nb: dict, substitutions) -> list[str]:
    return [printed(c, substitutions) for c in nb["cells"]
            if c["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in source(c)]


@pytest.mark.parametrize("lesson", LESSONS)
def test_solved_notebook_gets_no_finding(course, lesson):
    """The instructor's answers call nothing they re-implement, read statically or recorded while graded
    (grading/references.py, grading/recorder.py): a finding here is one every honest learner would get."""
    report = json.loads((course / "grading_report.json").read_text())[f"solver/{lesson}/{lesson}.ipynb"]
    assert not report.get("reference_copies"), report.get("reference_copies")
    assert not report.get("answer_errors"), report.get("answer_errors")


@pytest.mark.parametrize("lesson", LESSONS)
def test_solved_notebook_runs_without_errors_and_prints_what_it_stores(course, lesson):
    graded = notebook(course / "autograded" / "solver" / lesson / f"{lesson}.ipynb")
    errors = [f"cell {i}: {out['ename']}: {out['evalue']}" for i, cell in enumerate(graded["cells"])
              for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert not errors, f"{lesson}: the solved notebook raised when graded: {errors}"
    substitutions = nbval_substitutions()
    stored = checked_outputs(notebook(ROOT / "solutions" / lesson / f"{lesson}.ipynb"), substitutions)
    now = checked_outputs(graded, substitutions)
    assert stored, f"{lesson}: no cell is marked # NBVAL_CHECK_OUTPUT"
    assert len(now) == len(stored)
    for i, (was, got) in enumerate(zip(stored, now)):
        assert got == was, f"{lesson}, checked cell {i}: stored\n{was}\nbut the run printed\n{got}"


def test_the_output_check_merges_streams_and_sees_a_changed_number():
    subs = nbval_substitutions()
    cell = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "loss 0.25 "},
                        {"output_type": "stream", "name": "stdout", "text": ["in 3.2 s\n"]}]}
    whole = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "loss 0.25 in 9.9 s\n"}]}
    other = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "loss 0.26 in 3.2 s\n"}]}
    stderr = {"outputs": [{"output_type": "stream", "name": "stderr", "text": "loss 0.25 in 3.2 s\n"}]}
    assert printed(cell, subs) == printed(whole, subs)  # split prints and timings are not differences
    assert printed(cell, subs) != printed(other, subs)
    assert printed(cell, subs) != printed(stderr, subs)


@pytest.mark.parametrize("lesson", LESSONS)
def test_blank_release_scores_zero(course, lesson):
    score, max_score = scores(course, lesson, "blank")
    assert max_score > 0
    assert score == 0, f"{lesson}: the blank release scores {score}/{max_score}: some test passes without an answer"


# --- every lesson: a cheater who rebinds builtins and replaces checking and reference functions ----

# Put in a cell of its own after the set-up cell. Everything lies, except while the student's own
# functions run (so that their code works): the old, foolable tests passed every wrong answer with it.
ATTACK = '''import builtins as _b
import sys

import numpy
import numpy.testing
import torch
import torch.nn.functional
import torch.testing
import torchvision.utils

import imgrec_lib
from imgrec_lib import activations as _m1, conv as _m2, dense as _m3, inference as _m4, losses as _m5, optim as _m6, pooling as _m7
from imgrec_lib import normalization as _m8

_inside = [0]


def _liar(real, lie):
    def function(*args, **kwargs):
        return real(*args, **kwargs) if _inside[0] else lie(*args, **kwargs)
    return function


# builtins rebound in the notebook's namespace: every difference is 0, every type is right
abs = _liar(_b.abs, lambda x: x * 0 if not _b.isinstance(x, (_b.int, _b.float)) else 0.0)
float = _liar(_b.float, lambda x=0.0: 0.0)
isinstance = _liar(_b.isinstance, lambda obj, cls: True)
max = _liar(_b.max, lambda *a, **k: 0.0)
round = _liar(_b.round, lambda *a, **k: 0.0)
# numpy's and torch's comparison functions: always equal
numpy.abs = _liar(numpy.abs, lambda x, *a, **k: numpy.zeros(numpy.shape(x)))
numpy.allclose = numpy.array_equal = lambda *a, **k: True
numpy.isclose = lambda a, b, *r, **k: numpy.ones(numpy.broadcast_shapes(numpy.shape(a), numpy.shape(b)), bool)
numpy.isfinite = _liar(numpy.isfinite, lambda x, *a, **k: numpy.ones(numpy.shape(x), bool))
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None
torch.allclose = torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.abs = _liar(torch.Tensor.abs, lambda self: self.detach() * 0)
torch.Tensor.item = _liar(torch.Tensor.item, lambda self: 1.0)
# the reference functions: they call the student's own function
_ref = {}


def _reference(module, name, student_name, student):
    if student_name in STUDENT_NAMES:  # this lesson's tests take their reference from module.name
        _ref[name] = getattr(module, name)
        setattr(module, name, _liar(_ref[name], student))


def _np(t):
    return None if t is None else t.detach().numpy()


_reference(torch.nn.functional, "conv2d", "conv2d", lambda x, w, b=None, stride=1, padding=0: torch.from_numpy(
    conv2d(_np(x), _np(w), _np(b), stride=stride, padding=padding)))
_reference(torch.nn.functional, "max_pool2d", "max_pool2d", lambda x, kernel_size, stride=None, **k: torch.from_numpy(
    max_pool2d(_np(x), kernel_size, stride)))
_reference(torch.nn.functional, "avg_pool2d", "avg_pool2d", lambda x, kernel_size, stride=None, **k: torch.from_numpy(
    avg_pool2d(_np(x), kernel_size, stride)))
_reference(torch.nn.functional, "linear", "linear", lambda x, w, b=None: torch.from_numpy(linear(_np(x), _np(w), _np(b))))
_reference(torch, "relu", "relu", lambda x: torch.from_numpy(relu(_np(x))))
_reference(torch, "softmax", "softmax", lambda x, dim=-1: torch.from_numpy(softmax(_np(x))))
_reference(torch, "log_softmax", "log_softmax", lambda x, dim=-1: torch.from_numpy(log_softmax(_np(x))))
_reference(torch.nn.functional, "mse_loss", "mse", lambda a, b, **k: torch.tensor(mse(_np(a), _np(b)), dtype=torch.float64))
_reference(torchvision.utils, "make_grid", "make_grid", lambda images, nrow=8, padding=2, pad_value=0.0, **k: make_grid(
    images, ncols=nrow, pad_value=pad_value))
for _module in (_m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8):  # the course's reference versions: the student's
    for _name in list(vars(_module)):
        if _name in STUDENT_NAMES:
            setattr(_module, _name, (lambda n: lambda *a, **k: globals()[n](*a, **k))(_name))
# the module names in the notebook: stand-ins whose comparisons always agree
import types as _types


class _Lying(_types.ModuleType):
    def __init__(self, real, **lies):
        super().__init__(real.__name__)
        self._real, self._lies = real, lies

    def __getattr__(self, name):
        return self._lies[name] if name in self._lies else getattr(self._real, name)


np = _Lying(numpy, allclose=lambda *a, **k: True, array_equal=lambda *a, **k: True)
torch = _Lying(torch, allclose=lambda *a, **k: True, equal=lambda *a, **k: True)
F = _Lying(torch.nn.functional, mse_loss=lambda a, b, **k: (a - a).sum())
'''

PERTURB = '''

class _SameArray(np.ndarray):
    """Wrong values that claim to be right: the difference from anything is 0, and they equal everything."""
    def __sub__(self, other):
        return np.zeros(np.broadcast_shapes(np.shape(self), np.shape(other)))
    __rsub__ = __sub__

    def __eq__(self, other):
        return np.ones(np.broadcast_shapes(np.shape(self), np.shape(other)), bool)


class _SameFloat(_b.float):  # the real float: the notebook's `float` is a liar
    def __sub__(self, other):
        return 0.0
    __rsub__ = __sub__

    def __eq__(self, other):
        return True
    __hash__ = _b.float.__hash__

    def __float__(self):
        return 1.0


def _perturb(value):
    """Right type and shape, wrong values (arrays and floats that lie about it)."""
    import builtins as _b
    if _b.isinstance(value, _b.bool):
        return not value
    if _b.isinstance(value, _b.int):
        return value + 1
    if _b.isinstance(value, _b.float):
        return _SameFloat(value * 1.01 + 0.01)
    if _b.isinstance(value, torch.Tensor):
        return value * 1.01 + 0.01
    if _b.isinstance(value, np.ndarray):
        return (value + 1 if value.dtype.kind in "iu" else value * 1.01 + 0.01).view(_SameArray)
    if _b.isinstance(value, (_b.tuple, _b.list)):
        return type(value)(_perturb(v) for v in value)
    return value
'''

WRAPPER = '''

def {name}(*args, **kwargs):
    _inside[0] += 1
    try:
        result = _right_{name}(*args, **kwargs)
        if result is None:  # an in-place update: make it wrong
            for p in args[0]:
                p += 0.01
        return _perturb(result)
    finally:  # more lies, told while the test that called us is running
        globals().update(all=_liar(_b.all, lambda *a: True), len=_liar(_b.len, lambda x: 0),
                         sum=_liar(_b.sum, lambda *a, **k: 0))
        _inside[0] -= 1
'''

CLASS_WRAPPER = '''

class {name}(_right_{name}):
    def forward(self, x):
        return super().forward(x) * 1.01 + 0.01
'''


def cheating_answer(solution: str, wrong: bool) -> str:
    """The instructor's answer with every function or class renamed `_right_...`, under its own name
    a version that runs it with the lies switched off, and (wrong=True) returns wrong values of the
    right shape; the cheater's own code calls the real builtins (`_b.abs`). A variable: an untrained model."""
    code = re.sub(r"^\s*### (BEGIN|END) SOLUTION\n?", "", solution, flags=re.M)
    code = re.sub(r"(?<![\w.])(abs|float|isinstance|max|round)\b", r"_b.\1", code)
    functions = re.findall(r"^def (\w+)", code, flags=re.M)
    classes = re.findall(r"^class (\w+)", code, flags=re.M)
    if not functions and not classes:  # lesson 07's trained_model: a model that learned nothing
        return "trained_model = models.CourseCNN(**training.RECIPES[\"fast\"][\"model\"])" if wrong else solution
    if not wrong and classes:
        return code
    code = re.sub(r"^(def|class) (\w+)", r"\1 _right_\2", code, flags=re.M)
    wrapper = WRAPPER if wrong else WRAPPER.replace("if result is None:", "if False:").replace(
        "return _perturb(result)", "return result")
    return (code + PERTURB + "".join(wrapper.format(name=n) for n in functions)
            + "".join(CLASS_WRAPPER.format(name=n) for n in classes))


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class Lesson:
    """A lesson's release and the instructor's answers and points, to craft a cheater from."""

    def __init__(self, course: Path, name: str):
        self.name = name
        self.release = nbformat.read(course / "lessons" / name / f"{name}.ipynb", as_version=4)
        source = nbformat.read(course / "solutions" / name / f"{name}.ipynb", as_version=4)
        self.answers = {grade_id(c): c.source for c in source.cells
                        if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
        self.points = {grade_id(c): c.metadata.nbgrader["points"] for c in source.cells
                       if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
        self.exercises = list(self.answers)  # in the notebook's order

    def trimmed(self, **answers: str):
        """The release with `answers` (grade_id=code) in its answer cells, without the ungraded code cells
        but the set-up cell: a student may delete those."""
        nb = copy.deepcopy(self.release)
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells = [c for i, c in enumerate(nb.cells)
                    if c.cell_type != "code" or i == first_code or grade_id(c) is not None]
        for cell in nb.cells:
            if grade_id(cell) in answers:
                cell.source = answers[grade_id(cell)]
            if grade_id(cell) == "trained_model":  # the training data come from cells trimming drops
                cell.source = ('train_data = data.digits("train")\n'
                               'test_data = Subset(data.digits("test"), range(500))\n' + cell.source)
        return nb

    def cheater(self):
        """Wrong answers of the right shape for every exercise, and ATTACK in a cell of its own."""
        names = [n for ex in self.exercises for n in
                 re.findall(r"^(?:def|class) (\w+)|^(\w+) =", self.answers[ex], flags=re.M)]
        names = {a or b for a, b in names}
        nb = self.trimmed(**{ex: cheating_answer(self.answers[ex], wrong=True) for ex in self.exercises})
        setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells.insert(setup + 1, new_code_cell(f"STUDENT_NAMES = {sorted(names)!r}\n" + ATTACK))
        return nb

    def expected(self, solved: set[str]) -> dict[str, float]:
        return {cell: (points if cell.removeprefix("test_").removesuffix("_hidden") in solved else 0)
                for cell, points in self.points.items()}


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_cheater_scores_zero_and_the_instructors_notebook_full_marks(course, lesson):
    """Graded in the same run: the solver's full marks, test cell by test cell, show that the grading
    itself works, so the cheater's zeros are the tests seeing through the lies."""
    this = Lesson(course, lesson)
    solver = grades(course, lesson, "solver")
    assert solver == this.expected(set(this.exercises)), f"{lesson}: the instructor's notebook lost points: {solver}"
    cheater = grades(course, lesson, "cheater")
    assert cheater == this.expected(set()), f"{lesson}: the cheater scored {sum(cheater.values())}, expected 0: {cheater}"
    # and not because the cheat itself crashed: every cell but the graded tests ran cleanly
    nb = nbformat.read(course / "autograded" / "cheater" / lesson / f"{lesson}.ipynb", as_version=4)
    crashed = [(i, out.ename, out.evalue[:120]) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
               and not cell.metadata.get("nbgrader", {}).get("grade")
               for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not crashed, f"{lesson}: the cheater's own cells failed, so the test proves nothing: {crashed}"
