"""Record the fingerprints of the instructor's answers into a lesson's graded test cells.

    python scripts/record_fingerprints.py solutions/04_loss_functions/04_loss_functions.ipynb

After you add or change a graded test cell, write ``fingerprints=None`` in its ``run_checked(...)``
call and run this script: it executes the solution notebook (in memory), reads the
``FINGERPRINTS [...]`` line each such cell prints (see imgrec_lib/grading.py) and writes the
numbers into the cell. Then `make execute` (stored outputs) and `make lessons` (the releases).
The checks in the cell must pass on the instructor's solution, or nothing is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from imgrec_lib import jupyter_fix
from imgrec_lib.grading import RECORD_PREFIX

PLACEHOLDER = "fingerprints=None"


def number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.13g}"


def literal(records: list[list[float]]) -> str:
    """The records as a Python list literal, one call per line (wrapped at about 110 characters)."""
    lines = []
    for record in records:
        line, chunks = "    [", []
        for item in map(number, record):
            if len(line) + len(item) + 2 > 112:
                chunks.append(line.rstrip())
                line = "     "
            line += item + ", "
        chunks.append(line.rstrip().rstrip(",") + "],")
        lines += chunks
    return "[\n" + "\n".join(lines) + "\n]"


def record(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    todo = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and PLACEHOLDER in c.source]
    if not todo:
        print(f"{path}: no cell has {PLACEHOLDER}; nothing to record")
        return 0
    jupyter_fix.apply()
    run = nbformat.from_dict(nb)
    NotebookClient(run, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # raises if a check fails
    for i in todo:
        lines = [line for out in run.cells[i].outputs if out.get("name") == "stdout"
                 for line in out["text"].splitlines() if line.startswith(RECORD_PREFIX)]
        if len(lines) != 1:
            sys.exit(f"cell {i} printed {len(lines)} {RECORD_PREFIX.strip()} lines, expected 1")
        records = json.loads(lines[0][len(RECORD_PREFIX):])
        nb.cells[i].source = nb.cells[i].source.replace(PLACEHOLDER, "fingerprints=" + literal(records))
        print(f"cell {i} ({nb.cells[i].metadata.get('nbgrader', {}).get('grade_id')}): {len(records)} fingerprints")
    nbformat.write(nb, path)
    print(f"wrote {path}; now `make execute` and `make lessons`")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(record(Path(sys.argv[1])))
