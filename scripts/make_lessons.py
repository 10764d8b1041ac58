"""Regenerate the student notebooks lessons/ from solutions/ (`make lessons`), keeping a learner's work.

nbgrader writes each release into a scratch folder first. A notebook in lessons/ is replaced only
when it holds no work of its own: git says it is unchanged, or (outside git) every cell reads as in
the new release. Otherwise it stays as it is and the new release is written beside it as
NAME.new.ipynb, with a line saying so: `make lessons` never overwrites a learner's answers.
"""

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

BIN = Path(sys.executable).parent


def unchanged_in_git(path: Path) -> bool:
    """True when git tracks `path` and it has no uncommitted changes."""
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], capture_output=True).returncode == 0
        clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(path)], capture_output=True).returncode == 0
    except OSError:  # no git
        return False
    return tracked and clean


def same_cells(old: Path, new: Path) -> bool:
    try:
        a, b = (nbformat.read(p, as_version=4) for p in (old, new))
    except Exception:  # noqa: BLE001 - unreadable: treat as the learner's, keep it
        return False
    return [(c.cell_type, c.source) for c in a.cells] == [(c.cell_type, c.source) for c in b.cells]


def main() -> int:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")  # nbgrader runs `alembic`
    with tempfile.TemporaryDirectory(prefix="imgrec-lessons-") as scratch:
        result = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", "*", "--force", "--log-level=WARN",
                                 f"--CourseDirectory.release_directory={scratch}"], env=env)
        if result.returncode != 0:
            return result.returncode
        for new in sorted(Path(scratch).glob("*/*")):
            if not new.is_file():
                continue
            target = Path("lessons") / new.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() and not filecmp.cmp(new, target, shallow=False):
                learners = target.suffix == ".ipynb" and not unchanged_in_git(target) and not same_cells(target, new)
                if learners:
                    beside = target.with_name(target.stem + ".new.ipynb")
                    shutil.copy(new, beside)
                    print(f"{target} holds your work: kept it; the new release is {beside}")
                    continue
            shutil.copy(new, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
