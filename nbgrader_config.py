"""nbgrader set-up for the imgrec course (instructors: see the README's instructor guide).

The repository is the course directory: instructor notebooks live in solutions/<lesson>/ and
`nbgrader generate_assignment` writes the student versions to lessons/<lesson>/. Submissions,
autograded copies, feedback and the gradebook are run-time files that git ignores.
"""

import sys
from pathlib import Path

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import NbGraderPreprocessor

import imgrec_lib

# Headless runs can stall for minutes after a widget cell (a missed ZeroMQ wake-up); the course's
# grading/jupyter_fix.py makes such a stall cost at most a second. grading/ sits beside this file
# and beside imgrec_lib/ (this file may be copied into a scratch course: `make check`, the tests).
for folder in (Path(__file__).resolve().parent, Path(imgrec_lib.__file__).resolve().parents[1]):
    if (folder / "grading" / "jupyter_fix.py").is_file():
        sys.path.insert(0, str(folder))
        import grading
        from grading import jupyter_fix

        jupyter_fix.apply()
        grading.open_gradebook_quickly()  # a new gradebook without starting `alembic heads` (~1.4 s)
        break

c = get_config()  # noqa: F821  (nbgrader provides get_config)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "lessons"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.CourseDirectory.course_id = "imgrec"
# Only the notebooks travel with a lesson; data come from imgrec_lib.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.pt", "checkpoints"]

# Student code must not hang the grader: every cell gets a time limit (seconds), after which the
# kernel is interrupted, the cell scores as an error and the notebook goes on. `make autograde`
# (grading/) reads this timeout for its sandboxes; the whole notebook also has a limit there.
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.interrupt_on_timeout = True
c.ExecutePreprocessor.iopub_timeout = 10
c.ExecutePreprocessor.kernel_name = "python3"


class ClearRunRecords(NbGraderPreprocessor):
    """Drop what executing the solutions left in the metadata: widget state (up to 0.4 MB a lesson)
    and each cell's execution timestamps.

    A released lesson has no outputs to show the widgets in, the state holds what the solved code
    computed (e.g. the images an interactive filter widget drew), and the timestamps would change
    every lesson file each time the solutions are re-run."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        return nb, resources


c.GenerateAssignment.preprocessors = [*GenerateAssignment.class_traits()["preprocessors"].default(),
                                      ClearRunRecords]

# A test cell a student deleted is put back from the source (an edited one always is).
c.OverwriteCells.add_missing_cells = True

# Stubs that replace solutions in the released notebooks.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
