"""A learner's self-check: grade your own notebooks in lessons/ against the tests in this clone's solutions/.

    python -m grading check [LESSON ...]        (make check, or make check LESSON=01_convolution)

Each notebook is copied and graded by the same sandboxed path as `make autograde`, against the
reference tests published in this clone's solutions/ (hidden tests included), in a scratch course
with its own gradebook: lessons/ is only read, never written. Your instructor grades with their own
copy of the tests, which may differ. It prints the score of each exercise (with the error an answer
cell raised, if one did), notes an answer that calls its reference (as `make autograde` does), and
writes nbgrader's feedback page to checked/LESSON.html.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from grading import autograde, sandbox, worker

NOTICE = ("graded against the reference tests published in this clone's solutions/ (hidden tests included); "
          "your instructor's own tests may differ")
LIMIT = 400  # characters of a test's message shown per exercise; the whole message is on the feedback page


def _where(error: dict) -> str:
    """ " (raised at Cell In[17], line 3, in relu_backward)": the innermost frame of the learner's code that
    the judge put under the test's own frames (grading/judge.py), or "" when the learner's code raised nothing."""
    lines = [str(line) for line in error.get("traceback") or []]
    frames = [line.strip() for line in lines if line.startswith("  ") and not line.startswith(("    ", '  File "'))]
    return f" (raised at {frames[-1][:200]})" if frames else ""


def score_lines(source, graded: worker.Graded) -> list[str]:
    """One line per exercise: points earned of points possible, and the first failure's reason."""
    points = {worker.notebooks.grade_id(c): float(worker.notebooks.nbgrader_meta(c).get("points", 0))
              for c in source.cells if worker.notebooks.is_test_cell(c)}
    outputs = {worker.notebooks.grade_id(c): c.outputs for c in graded.notebook.cells
               if worker.notebooks.is_test_cell(c)}
    owner = worker.notebooks.exercises_of_tests(source)
    passed = set(graded.report.get("passed", []))
    raised = worker.notebooks.answer_errors(graded.notebook)
    lines = []
    for exercise in dict.fromkeys(owner.values()):
        tests = [t for t in points if owner.get(t) == exercise]
        got = sum(points[t] for t in tests if t in passed)
        line = f"  {exercise:28s} {got:g} / {sum(points[t] for t in tests):g}"
        if exercise in raised and any(t not in passed for t in tests):
            line += f"   {raised[exercise]}; the tests below fail because of it"
        for test in tests:
            errors = [o for o in outputs.get(test, []) if o.get("output_type") == "error"]
            if test not in passed and errors:
                ename, evalue = errors[0].get("ename", ""), str(errors[0].get("evalue", ""))
                why = "not answered yet" if ename == "NotImplementedError" and not evalue.strip() else \
                    f"{ename}: {worker.notebooks.reason(evalue, LIMIT)}{_where(errors[0])}"
                line += ("\n    " if exercise in raised else "   ") + f"{test}: {why}"
                break
        lines.append(line)
    flags = graded.report.get("reference_copies", {})
    lines += [f"  note: {exercise} calls its reference or hides what it calls (flagged for your instructor, who may "
              f"score it 0): {'; '.join(r)}" for exercise, r in flags.items()]
    return lines + [f"  note: {note}" for note in graded.report.get("notes", [])]


def release_of(source):
    """The lesson as handed out, made from the instructor's `source` in memory: solutions and hidden
    tests cleared as `nbgrader generate_assignment` clears them. lessons/ holds the learner's own
    answers, so it cannot serve to tell their code from the release's (grading/references.py)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    release = copy.deepcopy(source)
    for step in (ClearSolutions(), ClearHiddenTests()):  # nbgrader's default stubs, as nbgrader_config.py keeps them
        release, _ = step.preprocess(release, {})
    return release


def feedback_page(course: Path, lesson: str, graded, out: Path) -> None:
    """nbgrader's own feedback page for the graded notebook, made in a scratch course."""
    with tempfile.TemporaryDirectory(prefix="imgrec-check-") as scratch:
        root = Path(scratch)
        shutil.copy(course / "nbgrader_config.py", root)
        shutil.copytree(course / "solutions" / lesson, root / "solutions" / lesson)
        folder = root / "staged" / "me" / lesson
        folder.mkdir(parents=True)
        nbformat.write(graded, folder / f"{lesson}.ipynb")
        here = Path.cwd()
        os.chdir(root)
        try:
            autograde.register([lesson], quiet=True)
            for result in (autograde.merge(lesson, root / "staged"),
                           autograde.nbgrader("generate_feedback", lesson, "--force")):
                if result.returncode != 0:
                    raise RuntimeError(result.stderr[-1500:])
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "feedback" / "me" / lesson / f"{lesson}.html", out)
        finally:
            os.chdir(here)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading check", description=__doc__.splitlines()[0],
                                     epilog=f"The score is {NOTICE}.")
    parser.add_argument("lessons", nargs="*", help="lesson folders, e.g. 01_convolution (default: all)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="run without a sandbox")
    args = parser.parse_args(argv)
    course = Path.cwd()
    if not (course / "solutions").is_dir() or not (course / "lessons").is_dir():
        sys.exit("run this in the course folder (the one with lessons/ and solutions/)")
    names = args.lessons or sorted(p.name for p in (course / "lessons").iterdir() if p.is_dir())
    options = worker.Options(sandboxed=not args.unsafe_no_sandbox, cell_timeout=autograde.cell_timeout(None))
    model = course / "checkpoints" / "course_cnn.pt"  # lesson 08 loads what lesson 07 saved, as in the lab
    options.model = model if model.is_file() else None
    if options.sandboxed:
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as error:
            sys.exit(str(error))
    judge = worker.Judge(options)
    print(f"make check: {NOTICE}", flush=True)
    total = [0.0, 0.0]
    try:
        for name in names:
            name = Path(name).name
            path = course / "lessons" / name / f"{name}.ipynb"
            source_path = course / "solutions" / name / f"{name}.ipynb"
            if not path.is_file() or not source_path.is_file():
                print(f"{name}: no lessons/{name}/{name}.ipynb with a solutions/ counterpart; skipped")
                continue
            with tempfile.TemporaryDirectory(prefix="imgrec-copy-") as scratch:
                copied = Path(scratch) / path.name
                shutil.copy(path, copied)  # graded from a copy: lessons/ is never opened for writing
                source = nbformat.read(source_path, as_version=4)
                graded = worker.grade(copied, source, release_of(source), judge, options)
            if graded.notebook is None:
                print(f"{name}: could not be graded: {graded.report['not_graded']}")
                continue
            lines = score_lines(source, graded)
            points = {worker.notebooks.grade_id(c): float(worker.notebooks.nbgrader_meta(c).get("points", 0))
                      for c in source.cells if worker.notebooks.is_test_cell(c)}
            got = sum(points[t] for t in graded.report.get("passed", []) if t in points)
            total[0] += got
            total[1] += sum(points.values())
            out = course / "checked" / f"{name}.html"
            try:
                feedback_page(course, name, graded.notebook, out)
                where = f"feedback: {out.relative_to(course)}"
            except RuntimeError as error:
                where = f"(no feedback page: {str(error).strip().splitlines()[-1][:200]})"
            print(f"{name}: {got:g} / {sum(points.values()):g} points   {where}")
            print("\n".join(lines), flush=True)
    finally:
        judge.close()
    if total[1]:
        print(f"total: {total[0]:g} / {total[1]:g} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
