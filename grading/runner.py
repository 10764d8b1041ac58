"""Executes one notebook inside the sandbox and streams what happened, cell by cell.

    python -m grading.runner < notebook.json      (run by grading/sandbox.py, never by hand)

Reads the notebook to run on stdin (built by grading/notebooks.py: the student's cells, the test
cells replaced by grading/recorder.py calls), runs its code cells in a fresh kernel with a time
limit per cell, and writes one JSON line per event to stdout: `{"cell": i, "outputs": [...]}`
after each cell, `{"record": {...}}` for each test record, `{"done": ...}` at the end. The trusted
side reads at most a fixed number of bytes of this stream. Everything here runs with the
student's permissions inside the sandbox, so it is only a courier: nothing it sends is trusted.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path


import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from imgrec_lib import jupyter_fix

RECORDS = Path(os.environ.get("IMGREC_RECORDS", "/tmp/records"))


def main() -> int:
    jupyter_fix.apply()  # a widget cell must not stall the run for minutes
    results = os.fdopen(os.dup(1), "w", buffering=1)  # our channel; fd 1 goes to stderr for the kernel
    os.dup2(2, 1)
    nb = nbformat.reads(sys.stdin.read(), as_version=4)
    timeout = int(os.environ.get("IMGREC_CELL_TIMEOUT", "120"))
    RECORDS.mkdir(parents=True, exist_ok=True)
    model = Path(os.environ.get("IMGREC_MODEL", "/nonexistent"))
    if model.is_file():  # the instructor's model, where the lessons look for it (writable copy)
        Path("checkpoints").mkdir(exist_ok=True)
        shutil.copy(model, "checkpoints/course_cnn.pt")

    def send(event: dict) -> None:
        results.write(json.dumps(event) + "\n")

    def cell_done(cell, cell_index, execute_reply=None, **_):
        send({"cell": cell_index, "outputs": cell.get("outputs", [])})
        for path in sorted(RECORDS.glob("*.json")):
            try:
                send({"record": json.loads(path.read_text())})
            except (OSError, ValueError) as error:
                send({"record_error": f"{path.name}: {error}"})
            path.unlink(missing_ok=True)

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, iopub_timeout=10, record_timing=False,
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": os.getcwd()}})
    client.on_cell_executed = cell_done
    try:
        client.execute()
        send({"done": "ok"})
    except DeadKernelError as error:
        send({"done": "kernel died", "detail": str(error)[:500]})
    except Exception as error:  # a cell that would not stop, a kernel that would not start ...
        send({"done": type(error).__name__, "detail": str(error)[:500]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
