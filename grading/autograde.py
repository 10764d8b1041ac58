"""Grade every submission under submitted/ in sandboxes, N at a time, into nbgrader's gradebook.

    python -m grading autograde [--force] [--workers N] [--timeout S] [--zero-reference-copies] ...

Run it in the course folder (`make autograde` does). For each lesson with submissions:
1. the lesson is registered in the gradebook if it is not yet (written to a scratch folder,
   never to lessons/);
2. every submission is graded by grading/worker.py, `--workers` at a time (default: the number
   of cores), each in its own sandbox, the verdicts decided by a judge where no student code runs;
3. the graded notebooks go into the gradebook through nbgrader (grading/merge.py: nbgrader's own
   autograde, with nothing executed), then `grades.csv` is exported.
The report names each submission that could not be graded and why, what stopped a notebook
(its time or memory limit), and each exercise answered by delegating to a reference; it is also
written to grading_report.json. Exit status 0 when every submission was graded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

import grading
from grading import sandbox, worker

BIN = Path(sys.executable).parent
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs `alembic` as a program
DB_URL = "sqlite:///gradebook.db"


def printable(text: str) -> str:
    """`text` with its control characters written out (``\\x1b``): what a student's code said (an error, a
    name the kernel reported) must not move the instructor's cursor or erase lines of this report."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def nbgrader_env() -> dict:
    """The environment for nbgrader and grading.merge (which must find this package)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(worker.GRADING.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def nbgrader(*args: str) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` in the course folder, the gradebook opened quickly (grading.open_gradebook_quickly)."""
    start = ("import grading, sys; grading.open_gradebook_quickly(); from nbgrader.apps.nbgraderapp import main; "
             "sys.argv[0] = 'nbgrader'; main()")
    return subprocess.run([sys.executable, "-c", start, *args], capture_output=True, text=True, env=nbgrader_env())


def merge(lesson: str, staging: Path) -> subprocess.CompletedProcess:
    """Store the graded notebooks under `staging` in the gradebook (grading/merge.py); `lesson` may be
    a pattern ("*": every lesson there)."""
    return subprocess.run([sys.executable, "-m", "grading.merge", lesson, str(staging), "--NbGrader.logfile=.nbgrader.log"],
                          capture_output=True, text=True, env=nbgrader_env())


def submissions(submitted: Path) -> dict[tuple[str, str], list[Path]]:
    """{(lesson, student): [notebook paths]} for submitted/<student>/<lesson>/*.ipynb."""
    found: dict[tuple[str, str], list[Path]] = {}
    for folder in sorted(submitted.glob("*/*/")):
        student, lesson = folder.parent.name, folder.name
        if not (student.startswith(".") or lesson.startswith(".")):  # e.g. .ipynb_checkpoints
            found[(lesson, student)] = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    return found


def interleaved(todo: list[tuple[str, str, Path]]) -> list[tuple[str, str, Path]]:
    """One submission of each lesson in turn, so that a lesson of long notebooks is spread over the
    run instead of left to the end, where one worker would grade it while the others wait."""
    turn: dict[str, int] = {}
    position = []
    for lesson, _, _ in todo:
        turn[lesson] = turn.get(lesson, -1) + 1
        position.append(turn[lesson])
    return [item for _, item in sorted(zip(position, todo), key=lambda pair: (pair[0], pair[1][0]))]


def register(lessons: list[str], quiet: bool = False) -> None:
    """Put lessons that the gradebook does not know yet into it, without touching lessons/."""
    from nbgrader.api import Gradebook

    with Gradebook(DB_URL) as gradebook:
        known = {assignment.name for assignment in gradebook.assignments}
    for lesson in sorted(set(lessons) - known):
        if not quiet:
            print(f"registering {lesson} in the gradebook (nbgrader generate_assignment, into a scratch folder)")
        with tempfile.TemporaryDirectory(prefix="imgrec-release-") as scratch:
            result = nbgrader("generate_assignment", lesson, "--force",
                              f"--CourseDirectory.release_directory={scratch}", "--log-level=WARN")
        if result.returncode != 0:
            sys.exit(f"nbgrader generate_assignment {lesson} failed:\n{result.stderr[-2000:]}")


class Grader:
    """The workers: each thread has its own judge; `grade` may be called from any of them."""

    def __init__(self, options: worker.Options):
        self.options, self.local, self.judges = options, threading.local(), []

    def grade(self, path: Path, lesson: str) -> worker.Graded:
        if not hasattr(self.local, "judge"):
            self.local.judge = worker.Judge(self.options)
            self.judges.append(self.local.judge)
        source_path = Path("solutions", lesson, path.name)
        if not source_path.is_file():
            return worker.Graded(None, {"not_graded": f"{path.name} is not a notebook of {lesson} "
                                                      f"(expected {', '.join(p.name for p in source_path.parent.glob('*.ipynb'))})"})
        source = nbformat.read(source_path, as_version=4)
        release_path = Path("lessons", lesson, path.name)
        release = nbformat.read(release_path, as_version=4) if release_path.exists() else None
        return worker.grade(path, source, release, self.local.judge, self.options)

    def close(self):
        for judge in self.judges:
            judge.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m grading autograde", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-grade submissions graded before")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="sandboxes at a time (default: cores)")
    parser.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py's, else 120)")
    parser.add_argument("--notebook-timeout", type=float, default=900, help="seconds per notebook (default 900)")
    parser.add_argument("--memory", type=float, default=4, help="GiB of memory per sandbox (default 4)")
    parser.add_argument("--model", type=Path, default=Path("checkpoints/course_cnn.pt"),
                        help="the instructor's trained model the lessons load (default checkpoints/course_cnn.pt)")
    parser.add_argument("--zero-reference-copies", action="store_true",
                        help="score 0 the tests of an exercise answered by calling its reference")
    parser.add_argument("--csv", default="grades.csv", help="where to export the grades")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run student code without a sandbox, with your permissions (not for a class)")
    return parser.parse_args(argv)


def cell_timeout(given: int | None) -> int:
    if given:
        return given
    from traitlets.config import PyFileConfigLoader

    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=".").load_config()
        return int(config.ExecutePreprocessor.get("timeout", 120))
    except Exception:  # noqa: BLE001 - no config, or one that needs nbgrader's loader: the default
        return 120


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    grading.open_gradebook_quickly()
    if not Path("nbgrader_config.py").exists() or not Path("solutions").is_dir():
        sys.exit("run this in the course folder (the one with nbgrader_config.py and solutions/)")
    found = submissions(Path("submitted"))
    if not found:
        sys.exit("nothing to grade: put submissions in submitted/<student>/<lesson>/<lesson>.ipynb "
                 "(docs/INSTRUCTOR_GUIDE.md, 'Collect')")
    if args.unsafe_no_sandbox:
        print("WARNING: --unsafe-no-sandbox: student code runs with your permissions", file=sys.stderr)
    else:
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as error:
            sys.exit(str(error))
    needs_model = any(lesson.startswith("08") for lesson, _ in found)
    if needs_model and not args.model.is_file():
        sys.exit(f"lesson 08 is graded with your trained model, and {args.model} does not exist: "
                 "run `make train` (or pass --model PATH)")

    options = worker.Options(cell_timeout=cell_timeout(args.timeout), sandboxed=not args.unsafe_no_sandbox,
                             model=args.model if args.model.is_file() else None,
                             zero_reference_copies=args.zero_reference_copies,
                             limits=sandbox.Limits(memory_bytes=int(args.memory * 2**30),
                                                   wall_seconds=args.notebook_timeout))
    try:
        worker.check_course_python(options)
    except worker.CoursePythonBroken as error:
        sys.exit(str(error))

    not_graded: dict[tuple[str, str], str] = {}
    for (lesson, student), paths in found.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", student):  # formgrader shows ids unescaped
            not_graded[(lesson, student)] = (f"submitted/{student!r}/: a student id may hold only letters, digits, "
                                             "'_', '-' and '.'")
        elif not Path("solutions", lesson).is_dir():
            not_graded[(lesson, student)] = f"submitted/{student}/{lesson}/: there is no lesson solutions/{lesson}"
        elif not paths:
            not_graded[(lesson, student)] = f"submitted/{student}/{lesson}/ holds no .ipynb file"
    lessons = sorted({lesson for lesson, _ in found if Path("solutions", lesson).is_dir()})
    from nbgrader.api import Gradebook

    with Gradebook(DB_URL) as gradebook:
        for student in sorted({student for _, student in found if re.fullmatch(r"[A-Za-z0-9_.-]+", student)}):
            gradebook.update_or_create_student(student)
    register(lessons)

    todo = interleaved([(lesson, student, path) for (lesson, student), paths in sorted(found.items())
                        if (lesson, student) not in not_graded for path in paths
                        if args.force or not Path("autograded", student, lesson).exists()])
    print(f"grading {len(todo)} submission(s) with {args.workers} worker(s) ...", flush=True)
    grader = Grader(options)
    reports: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="imgrec-graded-") as staging:
        def one(item):
            lesson, student, path = item
            try:
                graded = grader.grade(path, lesson)
            except Exception as error:  # noqa: BLE001 - one submission must not stop the class
                graded = worker.Graded(None, {"not_graded": f"grading failed: {type(error).__name__}: {error}"})
            if graded.notebook is not None:
                folder = Path(staging, student, lesson)
                folder.mkdir(parents=True, exist_ok=True)
                nbformat.write(graded.notebook, folder / path.name)
                stamp = path.parent / "timestamp.txt"
                if stamp.is_file() and not stamp.is_symlink() and stamp.stat().st_size < 200:
                    text = stamp.read_bytes().decode("utf-8", "replace").strip()
                    try:
                        from nbgrader.utils import parse_utc
                        parse_utc(text)
                        (folder / "timestamp.txt").write_text(text)
                    except Exception:  # noqa: BLE001 - nbgrader would fail the whole lesson on it
                        graded.report.setdefault("notes", []).append(
                            f"timestamp.txt is not a date ({text[:40]!r}): graded without a time")
                # from nbgrader's exchange (submit, collect): release_feedback names the feedback
                # with it, so that only this submission's student can fetch it
                secret = path.parent / "submission_secret.txt"
                if secret.is_file() and not secret.is_symlink() and secret.stat().st_size < 200:
                    (folder / secret.name).write_bytes(secret.read_bytes())
            return item, graded

        try:
            with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
                for (lesson, student, path), graded in pool.map(one, todo):
                    reports[f"{student}/{lesson}/{path.name}"] = graded.report
                    if graded.notebook is None:
                        not_graded[(lesson, student)] = graded.report["not_graded"]
                    raised = worker.notebooks.answer_errors(graded.notebook) if graded.notebook is not None else {}
                    if raised:  # the first thing to look at: the tests of those exercises fail because of it
                        graded.report["answer_errors"] = raised
                    said = [*graded.report.get("notes", []),
                            *(why.replace("your answer cell", "the answer cell", 1) for why in raised.values())]
                    line = (f"  {student} {lesson}: {len(graded.report.get('passed', []))} tests passed, "
                            f"{len(graded.report.get('failed', []))} failed" + (f" ({'; '.join(said)})" if said else ""))
                    print(printable(line), flush=True)
        finally:
            grader.close()
        graded_lessons = sorted({p.name for p in Path(staging).glob("*/*")})
        if graded_lessons:  # every lesson in one nbgrader process (~2 s of start-up each)
            result = merge("*", Path(staging))
            if result.returncode != 0:
                sys.exit(f"storing the grades of {', '.join(graded_lessons)} in the gradebook failed:\n"
                         f"{result.stderr[-3000:]}")

    report_lines = []
    for key, report in sorted(reports.items()):
        student, lesson, _ = key.split("/", 2)
        for exercise, reasons in sorted(report.get("reference_copies", {}).items()):
            report_lines.append(f"REFERENCE   student {student}, lesson {lesson}, exercise {exercise}: "
                                + "; ".join(reasons)
                                + (" (scored 0)" if args.zero_reference_copies else " (flagged; --zero-reference-copies scores it 0)"))
        for note in report.get("notes", []):
            report_lines.append(f"NOTE        student {student}, lesson {lesson}: {note}")
    Path("grading_report.json").write_text(json.dumps(reports, indent=1))

    result = nbgrader("export", "--to", args.csv)
    if result.returncode != 0:
        sys.exit(f"nbgrader export failed:\n{result.stderr[-2000:]}")
    with Gradebook(DB_URL) as gradebook:
        for lesson in lessons:
            scores = []
            for student in sorted(s for (name, s) in found if name == lesson):
                try:
                    scores.append(gradebook.find_submission(lesson, student).score)
                except Exception:  # noqa: BLE001 - MissingEntry: not graded
                    continue
            if scores:
                print(f"{lesson}: {len(scores)} in the gradebook, mean {sum(scores) / len(scores):.2f} "
                      f"of {gradebook.find_assignment(lesson).max_score:g}")
    for line in report_lines:
        print(printable(line))
    print(f"grades exported to {args.csv}; details in grading_report.json")
    for (lesson, student), why in sorted(not_graded.items()):
        print(f"NOT GRADED  student {student}, lesson {lesson}: {why}", file=sys.stderr)
    if not_graded:
        print(f"{len(not_graded)} submission(s) not graded (0 in {args.csv}); fix or grade them by hand "
              "in formgrader, then run `make autograde` again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
