"""Grading an instructor can trust: crafted submissions, graded by `make autograde`, with exact scores.

Temporary course copies, each graded by `python -m grading autograde` (what `make autograde`
runs), so nothing in the repository is touched. Every submission runs in its own sandbox and the
verdicts come from the judge (grading/), so:

- `lesson_course`: lesson 04 (4 exercises, 9 points) with a dozen crafted students: solved, blank,
  half-solved, test cells edited or deleted, `time.sleep(10**6)`, a first cell that raises, sys.exit(),
  a syntax error, monkeypatched helpers, a kernel that kills itself half-way (the tests before it
  count), a file that is not JSON, an answer that calls the reference (flagged);
- `class_course`: a tiny synthetic assignment (3 quick exercises, 6 points) and a class of 30
  students with known, varied answers, a few of them hostile (an endless loop, sys.exit(), a
  first cell that raises, a file that is not a notebook); every row of grades.csv is checked.
The crafted submissions of every kind of attack are in tests/test_hostile.py; the cheater of every
lesson (wrong answers of the right shape with code that rebinds builtins and replaces the checking
and reference functions) is graded in tests/test_lessons.py, in the same run as the instructor's
notebooks and the blank releases.
"""

import copy
import re
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",  # nbgrader runs `alembic`
           PYTHONPATH=str(ROOT))  # the course's grading package
LESSON = "04_loss_functions"
POINTS = {"mse": 2, "log_softmax": 2, "cross_entropy": 3, "cross_entropy_grad": 2}  # visible + hidden

pytestmark = pytest.mark.skipif(not (ROOT / "solutions" / LESSON).exists(), reason=f"no solutions/{LESSON}")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = run(str(BIN / "nbgrader"), *args, cwd=cwd)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result


def autograde(course: Path, *args: str) -> subprocess.CompletedProcess:
    """`make autograde` in `course`: python -m grading autograde, with the repository's grading/."""
    return run(sys.executable, "-m", "grading", "autograde", "--workers", "2", *args, cwd=course)


def new_course(tmp_path_factory, name: str) -> Path:
    root = tmp_path_factory.mktemp(name)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    return root


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def submit(course: Path, student: str, lesson: str, nb=None, text: str | None = None) -> None:
    folder = course / "submitted" / student / lesson
    folder.mkdir(parents=True)
    path = folder / f"{lesson}.ipynb"
    if text is not None:
        path.write_text(text)
    else:
        nbformat.write(nb, path)


def grades(course: Path, lesson: str, student: str) -> dict[str, float]:
    """{grade_id: score} of one autograded submission, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(lesson, lesson, student)
        return {grade.name: grade.score for grade in submission.grades}


# --- lesson 04: crafted students -----------------------------------------------------------

MSE_WRONG = '''def mse(pred, target):
    """The mean ABSOLUTE error: wrong, but 0 for equal arrays and it checks shapes."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError("shapes differ")
    return float(np.mean(np.abs(pred - target)))
'''
LOG_SOFTMAX_WRONG = "def log_softmax(z):\n    return np.asarray(z, dtype=float)  # forgot the log-sum-exp\n"
CROSS_ENTROPY_ALONE = '''def cross_entropy(logits, y):
    logits, y = np.asarray(logits, dtype=float), np.asarray(y)
    m = logits.max(axis=1, keepdims=True)
    log_p = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())
'''
GRAD_WRONG = '''def cross_entropy_grad(logits, y):
    logits = np.asarray(logits, dtype=float)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p  # forgot to divide by N
'''
GRAD_ALONE = GRAD_WRONG.replace("return p  # forgot to divide by N", "return p / len(y)")


class Lesson:
    """The release and the instructor's answers of LESSON, to craft submissions from."""

    def __init__(self, course: Path):
        self.release = nbformat.read(course / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
        source = nbformat.read(course / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
        self.answers = {grade_id(c): c.source for c in source.cells
                        if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
        assert set(self.answers) == set(POINTS), f"{LESSON} changed its exercises: {sorted(self.answers)}"

    def blank(self):
        return copy.deepcopy(self.release)

    def solved(self, **answers: str):
        """The release with the instructor's answers, some replaced by `answers` (grade_id=code)."""
        nb = self.blank()
        for cell in nb.cells:
            if grade_id(cell) in self.answers:
                cell.source = answers.get(grade_id(cell), self.answers[grade_id(cell)])
        return nb

    def trimmed(self, **answers: str):
        """solved(), without the lesson's ungraded code cells but the set-up cell: a student may
        delete those, and the tests run twice as fast."""
        nb = self.solved(**answers)
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells = [c for i, c in enumerate(nb.cells)
                    if c.cell_type != "code" or i == first_code or grade_id(c) is not None]
        return nb

    def release_source(self, exercise: str) -> str:
        return next(c.source for c in self.release.cells if grade_id(c) == exercise)


def crafted(lesson: Lesson) -> dict[str, tuple[object, set[str]]]:
    """{student: (notebook or text, the exercises whose real tests pass)}."""
    everything = set(POINTS)
    students = {
        "solver": (lesson.solved(), everything),
        "blank": (lesson.blank(), set()),
        "half": (lesson.trimmed(log_softmax=lesson.release_source("log_softmax"),
                              cross_entropy_grad=lesson.release_source("cross_entropy_grad"),
                              cross_entropy=CROSS_ENTROPY_ALONE), {"mse", "cross_entropy"}),
        "sleeper": (lesson.trimmed(mse="import time\ntime.sleep(10**6)\n" + lesson.answers["mse"]),
                    everything - {"mse"}),
        "allclose_patcher": (lesson.trimmed(mse="import numpy, torch\nnp.allclose = lambda *a, **k: True\n"
                                               "numpy.allclose = np.allclose\n"
                                               "torch.allclose = lambda *a, **k: True\n" + MSE_WRONG),
                             everything - {"mse"}),
        "abs_redefiner": (lesson.trimmed(mse="abs = lambda x: 0.0\n" + MSE_WRONG), everything - {"mse"}),
        "reference_patcher": (lesson.trimmed(mse="import torch.nn.functional as F_\n"
                                                "F_.mse_loss = lambda a, b: torch.tensor(float(np.mean(np.abs("
                                                "np.asarray(a) - np.asarray(b)))), dtype=torch.float64)\n"
                                            + MSE_WRONG), everything - {"mse"}),
        "not_json": ('{"cells": [{"cell_type": "code", "source": "oops"', set()),
    }
    # A first cell that raises, then sys.exit(), then a syntax error: each is one cell's error.
    nb = lesson.trimmed(log_softmax="def log_softmax(z)\n    return z\n",
                       cross_entropy=CROSS_ENTROPY_ALONE, cross_entropy_grad=GRAD_ALONE)
    nb.cells[1:1] = [new_code_cell("raise RuntimeError('the first cell fails')"), new_code_cell("  \n"),
                     new_code_cell("import sys\nsys.exit('bye')")]
    students["broken"] = (nb, everything - {"log_softmax"})
    # os._exit kills the kernel half-way: the tests that ran before it count, the others score 0.
    nb = lesson.trimmed()
    nb.cells.insert(next(i for i, c in enumerate(nb.cells) if grade_id(c) == "cross_entropy"),
                    new_code_cell("import os\nos._exit(1)"))
    students["kernel_killer"] = (nb, {"mse", "log_softmax"})
    # Calling the reference answers the exercise, but is flagged for the instructor.
    students["reference_copier"] = (lesson.trimmed(mse="def mse(pred, target):\n    import torch\n"
                                                       "    if np.shape(pred) != np.shape(target):\n"
                                                       "        raise ValueError('shapes differ')\n"
                                                       "    return torch.nn.functional.mse_loss(torch.as_tensor(pred), "
                                                       "torch.as_tensor(target)).item()\n"), everything)
    # Tests edited, deleted, re-pointed: locked cells come back from the source.
    nb = lesson.trimmed(log_softmax=LOG_SOFTMAX_WRONG, cross_entropy=CROSS_ENTROPY_ALONE,
                       cross_entropy_grad=GRAD_WRONG)
    for cell in nb.cells:
        if grade_id(cell) in ("test_log_softmax", "test_log_softmax_hidden", "test_cross_entropy_grad"):
            cell.source = "print('all tests passed')"
        if grade_id(cell) == "test_cross_entropy":
            cell.metadata.nbgrader["points"] = 50
            cell.metadata.nbgrader["locked"] = False
    nb.cells = [c for c in nb.cells if grade_id(c) not in ("test_mse", "test_cross_entropy_grad_hidden")]
    students["tamperer"] = (nb, {"mse", "cross_entropy"})
    return students


@pytest.fixture(scope="module")
def lesson_course(tmp_path_factory):
    """Lesson 04 with the crafted students, graded in one run; (course, students, result)."""
    course = new_course(tmp_path_factory, "lesson_course")
    shutil.copytree(ROOT / "solutions" / LESSON, course / "solutions" / LESSON,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    nbgrader("generate_assignment", LESSON, "--force", cwd=course)
    students = crafted(Lesson(course))
    for student, (nb, _) in students.items():
        submit(course, student, LESSON, **({"text": nb} if isinstance(nb, str) else {"nb": nb}))
    # 30 s a cell: longer than any cell of the lesson on a busy 2-core machine, short for a test.
    result = autograde(course, "--timeout", "30")
    return course, students, result


def lesson_students():
    params = []
    for student in ["solver", "blank", "half", "tamperer", "sleeper", "broken", "kernel_killer",
                    "allclose_patcher", "abs_redefiner", "reference_patcher", "reference_copier"]:
        params.append(pytest.param(student))
    return params


@pytest.mark.parametrize("student", lesson_students())
def test_crafted_submission_gets_exactly_the_points_of_what_it_solved(lesson_course, student):
    course, students, result = lesson_course
    assert f"NOT GRADED  student {student}," not in result.stderr, result.stderr[-3000:]
    solved = students[student][1]
    got = grades(course, LESSON, student)
    assert set(got) == {f"test_{ex}{suffix}" for ex in POINTS for suffix in ("", "_hidden")}, sorted(got)
    exercise = {cell: cell.removeprefix("test_").removesuffix("_hidden") for cell in got}
    wrong = {cell: score for cell, score in got.items() if (exercise[cell] in solved) != (score > 0)}
    expected = sum(POINTS[ex] for ex in solved)
    assert sum(got.values()) == expected and not wrong, (
        f"{student}: {sum(got.values())}/9, expected {expected}; cells scored wrongly: {wrong}")


def test_full_marks_and_max_score_cannot_be_changed_by_the_student(lesson_course):
    course, _, _ = lesson_course
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission(LESSON, "solver").score == 9
        assert gradebook.find_submission(LESSON, "tamperer").max_score == 9  # not 9 - 1 + 50


def test_edited_and_deleted_test_cells_are_restored_from_the_source(lesson_course):
    course, _, _ = lesson_course
    source = nbformat.read(course / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    graded = nbformat.read(course / "autograded" / "tamperer" / LESSON / f"{LESSON}.ipynb", as_version=4)
    real = {grade_id(c): c.source for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    restored = {grade_id(c): c.source for c in graded.cells if grade_id(c) in real}
    assert set(restored) == set(real), f"missing test cells: {set(real) - set(restored)}"
    for cell_id, text in real.items():
        assert restored[cell_id].endswith(text), f"{cell_id} was not restored from the source"
    assert "all tests passed" not in json.dumps(restored)


def test_a_broken_or_hostile_notebook_does_not_stop_the_class(lesson_course):
    course, _, result = lesson_course
    assert result.returncode == 1, "a submission cannot be graded: the run must say so"
    err = result.stderr
    assert f"student not_json, lesson {LESSON}: submitted/not_json/{LESSON}/{LESSON}.ipynb: not a valid notebook" in err
    assert "NOT GRADED  student" not in err.replace("student not_json", "")
    assert f"NOTE        student kernel_killer, lesson {LESSON}: kernel died" in result.stdout, result.stdout[-2000:]
    rows = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    assert set(rows) == set(lesson_course[1]), "every student with a folder is in grades.csv"
    assert float(rows["solver"]["score"]) == 9 and float(rows["blank"]["score"]) == 0
    assert float(rows["not_json"]["score"]) == 0 and rows["not_json"]["timestamp"] in ("", "None")


def test_an_answer_that_calls_the_reference_is_flagged_for_that_exercise(lesson_course):
    _, _, result = lesson_course
    flagged = [line for line in result.stdout.splitlines() if line.startswith("REFERENCE")]
    assert any("student reference_copier," in line and "exercise mse:" in line and "mse_loss" in line
               for line in flagged), "\n".join(flagged) or result.stdout[-2000:]
    assert not any("student solver," in line for line in flagged), "\n".join(flagged)


def test_feedback_shows_what_each_failing_test_expected(lesson_course):
    course, _, _ = lesson_course
    nbgrader("generate_feedback", LESSON, "--student", "allclose_patcher", cwd=course)
    html = (course / "feedback" / "allclose_patcher" / LESSON / f"{LESSON}.html").read_text()
    assert re.search(r"expected \d+\.\d+ \(torch mse_loss\), got \d+\.\d+", html), "the visible test's message"
    assert "mse for shape (5,): expected" in html  # the hidden test's message too
    assert "AssertionError" in html


def test_feedback_says_first_that_an_answer_cell_raised(lesson_course):
    """`broken`'s log_softmax answer is a syntax error: each of its failing tests starts with that in
    the graded notebook and on the feedback page, as `make check` says it (grading/notebooks.py)."""
    course, _, _ = lesson_course
    graded = nbformat.read(course / "autograded" / "broken" / LESSON / f"{LESSON}.ipynb", as_version=4)
    said = "your answer cell for log_softmax raised SyntaxError"
    for cell in graded.cells:
        if grade_id(cell) in ("test_log_softmax", "test_log_softmax_hidden"):
            assert cell.outputs[0].get("text", "").startswith(said), cell.outputs
            assert cell.outputs[0]["text"].rstrip().endswith("this test fails because of it"), cell.outputs[0]
        elif grade_id(cell) in ("test_mse", "test_cross_entropy"):  # passed: nothing said
            assert said not in json.dumps(cell.outputs)
    nbgrader("generate_feedback", LESSON, "--student", "broken", cwd=course)
    html = (course / "feedback" / "broken" / LESSON / f"{LESSON}.html").read_text()
    assert html.count(said) == 2, "once on each of log_softmax's two tests"


def test_the_summary_line_says_an_answer_cell_raised(lesson_course):
    _, _, result = lesson_course
    line = next(line for line in result.stdout.splitlines() if line.startswith("  broken "))
    assert "the answer cell for log_softmax raised SyntaxError" in line, line


def test_feedback_numbers_code_cells_as_their_tracebacks_do(lesson_course):
    """Code cell N shows "In [N]:", and an error in it says "Cell In[N]": the kernel numbers only the
    cells it runs, so `broken`'s empty cell must not shift the numbers of the cells after it."""
    course, _, _ = lesson_course
    graded = nbformat.read(course / "autograded" / "broken" / LESSON / f"{LESSON}.ipynb", as_version=4)
    code = [c for c in graded.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    raising = [c for c in code if any(o.get("output_type") == "error" for o in c.outputs) and not (grade_id(c) or "").startswith("test_")]
    tracebacks = {c.execution_count: re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(
        next(o for o in c.outputs if o.get("output_type") == "error")["traceback"])) for c in raising}
    named = {count: text for count, text in tracebacks.items() if "Cell In[" in text}  # sys.exit names none
    assert len(named) >= 2, "the first cell and the log_softmax answer (after the empty cell) raise"
    for count, text in named.items():
        assert f"Cell In[{count}]" in text, (count, text)
    nbgrader("generate_feedback", LESSON, "--student", "broken", cwd=course)
    html = (course / "feedback" / "broken" / LESSON / f"{LESSON}.html").read_text()
    shown = [int(n) for n in re.findall(r"input_prompt\">In(?:\s|&nbsp;)\[(\d+)\]", html)]  # \s: a no-break space
    assert shown == list(range(1, len(code) + 1)), shown


# --- a class of 30 on a tiny synthetic assignment --------------------------------------------

QUIZ = "quiz"
QUIZ_POINTS = {"add": 1, "square": 2, "is_even": 3}
QUIZ_RIGHT = {"add": "def add(a, b):\n    return a + b\n", "square": "def square(x):\n    return x * x\n",
              "is_even": "def is_even(n):\n    return n % 2 == 0\n"}
QUIZ_WRONG = {"add": "def add(a, b):\n    return a - b\n", "square": "def square(x):\n    return x * 2\n",
              "is_even": "def is_even(n):\n    return True\n"}
QUIZ_TESTS = {
    "add": 'def test_add(add):\n    assert add(2, 3) == 5, f"add(2, 3): expected 5, got {add(2, 3)!r}"\n\n\ntest_add(add)\n',
    "square": 'def test_square(square):\n    assert square(4) == 16, f"square(4): expected 16, got {square(4)!r}"\n'
              "    ### BEGIN HIDDEN TESTS\n"
              '    assert square(-3) == 9, f"square(-3): expected 9, got {square(-3)!r}"\n'
              "    ### END HIDDEN TESTS\n\n\ntest_square(square)\n",
    "is_even": 'def test_is_even(is_even):\n    assert is_even(4) and not is_even(7), "is_even: expected True for 4, '
               'False for 7"\n\n\ntest_is_even(is_even)\n',
}


def quiz_source():
    cells = [new_markdown_cell("# Quiz"), new_code_cell("import math")]
    for exercise, points in QUIZ_POINTS.items():
        name = QUIZ_RIGHT[exercise].split("\n")[0]
        body = QUIZ_RIGHT[exercise].split("\n")[1]
        answer = new_code_cell(f"{name}\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION")
        answer.metadata.nbgrader = {"schema_version": 3, "grade": False, "solution": True, "locked": False,
                                    "task": False, "grade_id": exercise}
        test = new_code_cell(QUIZ_TESTS[exercise])
        test.metadata.nbgrader = {"schema_version": 3, "grade": True, "solution": False, "locked": True,
                                  "task": False, "points": points, "grade_id": f"test_{exercise}"}
        cells += [answer, test]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def quiz_class() -> dict[str, tuple[object, int]]:
    """30 students: student i solves exercise k when bit k of i is set; a few are hostile."""
    students = {}
    for i in range(30):
        solved = {ex for k, ex in enumerate(QUIZ_POINTS) if i >> k & 1}
        answers = {ex: (QUIZ_RIGHT if ex in solved else QUIZ_WRONG)[ex] for ex in QUIZ_POINTS}
        score = sum(QUIZ_POINTS[ex] for ex in solved)
        if i == 7:  # an endless loop in the square cell, before defining square: stopped by the timeout
            answers["square"] = "while True:\n    pass\n" + answers["square"]
            score -= QUIZ_POINTS["square"]
        nb = quiz_source()
        for cell in nb.cells:
            if grade_id(cell) in answers:
                cell.source = answers[grade_id(cell)]
        if i == 11:
            nb.cells.insert(1, new_code_cell("import sys\nsys.exit()"))
        if i == 13:
            nb.cells.insert(1, new_code_cell("1 / 0"))
        students[f"student{i:02d}"] = (nb, score)
    students["student29"] = ("not a notebook at all", 0)
    return students


@pytest.fixture(scope="module")
def class_course(tmp_path_factory):
    course = new_course(tmp_path_factory, "class_course")
    (course / "solutions" / QUIZ).mkdir(parents=True)
    nbformat.write(quiz_source(), course / "solutions" / QUIZ / f"{QUIZ}.ipynb")
    students = quiz_class()
    for student, (nb, _) in students.items():
        submit(course, student, QUIZ, **({"text": nb} if isinstance(nb, str) else {"nb": nb}))
    (course / "submitted" / "student03" / "quizz").mkdir()  # a typo: no such lesson
    (course / "submitted" / ".ipynb_checkpoints").mkdir()  # left by Jupyter: ignored
    # No generate_assignment here: the script registers the lesson itself, as in a fresh clone.
    result = autograde(course, "--timeout", "3")
    return course, students, result


def test_a_class_autogrades_from_one_command_and_every_csv_row_is_right(class_course):
    course, students, result = class_course
    assert result.returncode == 1, result.stderr[-2000:]  # student29 sent no notebook
    assert f"student student29, lesson {QUIZ}: submitted/student29/{QUIZ}/{QUIZ}.ipynb: not a valid notebook" \
        in result.stderr
    assert "student student03, lesson quizz: submitted/student03/quizz/: there is no lesson solutions/quizz" \
        in result.stderr
    assert result.stderr.count("NOT GRADED") == 2, result.stderr[-2000:]  # 2 problems, listed at the end
    rows = list(csv.DictReader((course / "grades.csv").open()))
    assert len(rows) == 30
    for row in rows:
        assert row["assignment"] == QUIZ and float(row["max_score"]) == 6
        expected = students[row["student_id"]][1]
        assert float(row["score"]) == expected, f"{row['student_id']}: {row['score']} in the CSV, expected {expected}"
    assert sorted({float(r["score"]) for r in rows}) == [0, 1, 2, 3, 4, 5, 6]


def test_a_resubmitted_notebook_is_graded_on_the_next_run(class_course):
    course, students, _ = class_course
    nb = quiz_source()  # student29 resubmits: the instructor's answers; the typo is removed
    nbformat.write(nb, course / "submitted" / "student29" / QUIZ / f"{QUIZ}.ipynb")
    (course / "submitted" / "student03" / "quizz").rmdir()
    result = autograde(course, "--timeout", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "grading 1 submission(s)" in result.stdout, result.stdout  # the others were graded before
    rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader((course / "grades.csv").open())}
    assert rows["student29"] == 6
    assert all(rows[s] == score for s, (_, score) in students.items() if s != "student29")


def test_make_has_the_autograde_and_feedback_targets():
    for target, command in (("autograde", "-m grading autograde"), ("check", "-m grading check"),
                            ("feedback", "nbgrader generate_feedback")):
        result = run("make", "-n", target, cwd=ROOT)
        assert result.returncode == 0 and command in result.stdout, result.stdout + result.stderr


def test_the_lessons_take_turns_so_long_notebooks_are_not_left_to_the_end():
    from grading.autograde import interleaved

    todo = [("01", f"s{k}", Path("a")) for k in range(3)] + [("07", f"s{k}", Path("b")) for k in range(2)]
    order = interleaved(todo)
    assert [lesson for lesson, _, _ in order] == ["01", "07", "01", "07", "01"]
    assert sorted(order) == sorted(todo)  # every submission once


def test_what_a_student_wrote_is_printed_with_its_control_characters_written_out():
    """An error message or a name from the student's code that holds terminal escapes (erase the line,
    move the cursor up) must not hide the REFERENCE lines above it on the instructor's screen."""
    from grading.autograde import printable

    line = "NOTE        student s, lesson 01: \x1b[2K\x1b[1A\rerased\x07"
    assert printable(line) == "NOTE        student s, lesson 01: \\x1b[2K\\x1b[1A\\rerased\\x07"
    assert printable("conv2d: ÿ ü ok") == "conv2d: ÿ ü ok"


def test_a_new_gradebook_is_stamped_without_starting_alembic(tmp_path, monkeypatch):
    """grading.open_gradebook_quickly (autograde, merge, and every nbgrader run through nbgrader_config.py)
    stamps a new gradebook with the revision `alembic heads` prints, read in-process (~1.4 s saved)."""
    import sqlite3

    import nbgrader.api

    import grading

    monkeypatch.setenv("PATH", ENV["PATH"])
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", nbgrader.api.get_alembic_version)  # undone after
    expected = nbgrader.api.get_alembic_version()  # nbgrader's own way: the `alembic` program
    grading.open_gradebook_quickly()
    monkeypatch.setattr(nbgrader.api.sp, "check_output", lambda *a, **k: pytest.fail(f"started {a}"))
    with nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(expected,)]
