"""Autograde every submission under submitted/, export grades.csv, and say what went wrong.

    python scripts/autograde.py [--force] [--timeout SECONDS] [--csv grades.csv]

Run it in the course directory (the repository root; `make autograde` does). The grading is
nbgrader's own (`nbgrader autograde`, `nbgrader export`); this script adds only what nbgrader
does not do (see docs/INSTRUCTOR_GUIDE.md):

1. it reads every submitted notebook first, and names the student and the file of each one that
   is not a valid notebook (nbgrader would print a long traceback); those are left out of the run;
2. it puts every student with a folder under submitted/ in the gradebook, so nobody is missing
   from the CSV (a submission that could not be graded scores 0 there);
3. it grades lesson by lesson and lists, at the end, the submissions nbgrader could not grade
   (a kernel that died or could not be interrupted) with the reason;
4. it lists, for a person to review, code that replaces a module's function or a Python builtin
   (e.g. `np.allclose = ...`, `abs = ...`): a test cell could be fooled by it.

Exit status: 0 when every submission was graded, 1 otherwise (grades.csv is written either way).
"""

import argparse
import ast
import builtins
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbgrader.api import Gradebook, MissingEntry

BIN = Path(sys.executable).parent
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs `alembic` as a program
DB_URL = "sqlite:///gradebook.db"
BUILTIN_NAMES = {name for name in dir(builtins) if not name.startswith("_")}
RISKY_CALLS = {"setattr", "exec", "eval", "compile", "__import__", "globals"}


def nbgrader(*args: str) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` in the course directory; its log comes back in .stderr."""
    return subprocess.run([str(BIN / "nbgrader"), *args], capture_output=True, text=True)


def submissions(submitted: Path) -> dict[tuple[str, str], list[Path]]:
    """{(lesson, student): [notebook paths]} for submitted/<student>/<lesson>/*.ipynb."""
    found: dict[tuple[str, str], list[Path]] = {}
    for folder in sorted(submitted.glob("*/*/")):
        student, lesson = folder.parent.name, folder.name
        if not (student.startswith(".") or lesson.startswith(".")):  # e.g. .ipynb_checkpoints
            found[(lesson, student)] = sorted(folder.glob("*.ipynb"))
    return found


def unreadable(path: Path) -> str | None:
    """Why `path` is not a valid notebook, or None when it is."""
    try:
        nbformat.validate(nbformat.read(path, as_version=4))
    except Exception as error:  # bad JSON, not a notebook, an unknown format version ...
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return None


def suspicious_code(nb: nbformat.NotebookNode) -> list[str]:
    """Lines of student code that replace a module's attribute or a builtin, or use setattr/exec.

    Only a hint for a person: every test cell runs in the student's kernel, so such code can make
    a test pass without a right answer. Locked cells are skipped (nbgrader restores them)."""
    transform = TransformerManager().transform_cell  # turns %magics into plain Python
    modules = {"np", "torch", "F", "nn", "math", "builtins", "sys"}
    trees = []
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("locked"):
            continue
        try:
            trees.append(ast.parse(transform(cell.source)))
        except SyntaxError:
            continue  # graded as an error anyway
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
    found = []
    for tree in trees:
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in BUILTIN_NAMES:
                found.append(f"redefines the builtin {node.name}(): line {node.lineno}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RISKY_CALLS:
                found.append(f"calls {node.func.id}(): {ast.unparse(node)[:80]}")
            for target in targets:
                root = target
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                if isinstance(target, ast.Attribute) and isinstance(root, ast.Name) and root.id in modules:
                    found.append(f"replaces {ast.unparse(target)}")
                elif isinstance(target, ast.Name) and target.id in BUILTIN_NAMES:
                    found.append(f"rebinds the builtin {target.id}")
    return found


def failures(log: str) -> dict[str, str]:
    """{student: reason} for each submission nbgrader reports it could not grade."""
    # nbgrader logs "There was an error processing assignment: <submitted>/<student>/<lesson>",
    # then the traceback as the next log record; each record starts with "[".
    records = re.split(r"\n(?=\[)", log)
    reasons = {}
    for record, traceback in zip(records, records[1:] + [""]):
        match = re.search(r"There was an error processing assignment: (.+)", record)
        if not match:
            continue
        if "Kernel died" in traceback:
            reason = "the kernel died (the notebook called os._exit, crashed Python, or ran out of memory)"
        elif "Timeout waiting for IOPub output" in traceback:
            reason = "a cell ran past the time limit and could not be interrupted"
        else:
            lines = [line.strip() for line in traceback.splitlines() if line.strip()]
            reason = lines[-1] if lines else "see .nbgrader.log"
        reasons[Path(match.group(1).strip()).parent.name] = reason
    return reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-grade submissions graded before")
    parser.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py)")
    parser.add_argument("--csv", default="grades.csv", help="where to export the grades")
    options = parser.parse_args()
    if not Path("nbgrader_config.py").exists():
        sys.exit("run this in the course directory (the folder with nbgrader_config.py)")
    found = submissions(Path("submitted"))
    if not found:
        sys.exit("nothing to grade: put submissions in submitted/<student>/<lesson>/<lesson>.ipynb "
                 "(docs/INSTRUCTOR_GUIDE.md, 'Collect')")

    # 1. Every notebook must be a notebook of a lesson in solutions/; name those that are not.
    bad: dict[tuple[str, str], str] = {}
    for (lesson, student), paths in found.items():
        if not Path("solutions", lesson).is_dir():
            bad[(lesson, student)] = f"submitted/{student}/{lesson}/: there is no lesson solutions/{lesson}"
        elif not paths:
            bad[(lesson, student)] = f"submitted/{student}/{lesson}/ holds no .ipynb file"
        for path in paths:
            why = unreadable(path)
            if why:
                bad[(lesson, student)] = f"{path} is not a valid notebook ({why})"
    for (lesson, student), why in bad.items():
        print(f"NOT GRADED  student {student}, lesson {lesson}: {why}", file=sys.stderr)

    # 2. The gradebook knows every lesson and every student.
    lessons = sorted({lesson for lesson, _ in found if Path("solutions", lesson).is_dir()})
    with Gradebook(DB_URL) as gradebook:
        for student in sorted({student for _, student in found}):
            gradebook.update_or_create_student(student)
        known = {assignment.name for assignment in gradebook.assignments}
    for lesson in lessons:
        if lesson not in known:  # a fresh clone: gradebook.db is not in git
            print(f"registering {lesson} in the gradebook (nbgrader generate_assignment)")
            result = nbgrader("generate_assignment", lesson, "--force", "--log-level=WARN")
            if result.returncode != 0:
                sys.exit(f"nbgrader generate_assignment {lesson} failed:\n{result.stderr[-2000:]}")

    # 3. Grade, lesson by lesson, leaving out the unreadable notebooks.
    not_graded = {key: why for key, why in bad.items()}
    for lesson in lessons:
        students = sorted(student for (name, student) in found if name == lesson)
        skip = [student for student in students if (lesson, student) in bad]
        print(f"autograding {lesson}: {len(students) - len(skip)} submissions ...", flush=True)
        if len(skip) == len(students):
            continue
        args = ["autograde", lesson, "--CourseDirectory.student_id_exclude=" + ",".join(skip),
                "--NbGrader.logfile=.nbgrader.log"]
        args += ["--force"] if options.force else []
        args += [f"--ExecutePreprocessor.timeout={options.timeout}"] if options.timeout else []
        result = nbgrader(*args)
        for student, why in failures(result.stderr).items():
            not_graded[(lesson, student)] = why
        if result.returncode != 0 and not failures(result.stderr):
            sys.exit(f"nbgrader autograde {lesson} failed:\n{result.stderr[-3000:]}")

    # 4. Code to review: replaced functions or builtins that the released notebook does not hold.
    for (lesson, student), paths in found.items():
        if (lesson, student) in bad:
            continue
        for path in paths:
            release = Path("lessons", lesson, path.name)
            in_release = set(suspicious_code(nbformat.read(release, as_version=4))) if release.exists() else set()
            for line in suspicious_code(nbformat.read(path, as_version=4)):
                if line not in in_release:
                    print(f"REVIEW      student {student}, lesson {lesson}: {line} ({path})")

    # 5. Export, and the summary.
    result = nbgrader("export", "--to", options.csv)
    if result.returncode != 0:
        sys.exit(f"nbgrader export failed:\n{result.stderr[-2000:]}")
    with Gradebook(DB_URL) as gradebook:
        for lesson in lessons:
            graded = []
            for student in sorted(student for (name, student) in found if name == lesson):
                try:
                    submission = gradebook.find_submission(lesson, student)
                except MissingEntry:
                    continue
                graded.append(submission.score)
            if graded:
                print(f"{lesson}: {len(graded)} in the gradebook, mean {sum(graded) / len(graded):.2f} "
                      f"of {gradebook.find_assignment(lesson).max_score:g}")
    print(f"grades exported to {options.csv}")
    for (lesson, student), why in sorted(not_graded.items()):
        print(f"NOT GRADED  student {student}, lesson {lesson}: {why}", file=sys.stderr)
    if not_graded:
        print(f"{len(not_graded)} submission(s) not graded (0 in {options.csv}); fix or grade them by hand "
              "in formgrader, then run `make autograde` again. Full log: .nbgrader.log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
