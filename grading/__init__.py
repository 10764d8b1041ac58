"""Grading a class can trust (instructors and maintainers; not part of the learner's library).

Every submission runs in its own sandbox (sandbox.py, runner.py); the tests run in a process where
no student code runs (judge.py), and each call they make to a student's function goes to the
sandbox's kernel and back as plain values (serve.py, values.py). worker.py grades one
submission; autograde.py grades a class with N workers and stores the results in nbgrader's
gradebook; `python -m grading` is the command line (`make autograde`, `make check`).
"""

import functools
import os
import threading

# The mark grading/runner.py puts on each line that comes from the kernel (where the student's code
# runs), so that grading/worker.Run can tell those lines from the runner's own events.
KERNEL = b"kernel "

# CPython 3.11 and 3.12 can fail ast.parse in two threads at once ("AST constructor recursion depth
# mismatch", when a finalizer runs in the middle of a parse): the workers' threads take turns for
# the steps that parse code in this process (notebooks.to_run; references._aliases, once). references.find_reference_copies
# reads a submission in a child process of its own and takes no turn: a notebook made to be slow
# to read must not hold up the other workers.
PARSING = threading.RLock()


def open_gradebook_quickly() -> None:
    """nbgrader stamps a new gradebook with the newest revision of its schema, which it asks of
    `alembic heads`: a new Python process, over a second, far more on a busy machine. The answer is
    fixed for an installed nbgrader: read it from nbgrader's own alembic folder, in this process."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = _alembic_head


@functools.cache
def _alembic_head() -> str:
    import nbgrader.api
    from alembic.script import ScriptDirectory

    return ScriptDirectory(os.path.join(os.path.dirname(nbgrader.api.__file__), "alembic")).get_current_head()
