"""Store graded notebooks in nbgrader's gradebook: `nbgrader autograde` without executing anything.

    python -m grading.merge LESSON STAGING_DIR [--student-exclude a,b] (run by grading/autograde.py)

LESSON may be a pattern, as for nbgrader: "*" stores every lesson under STAGING_DIR in one process.
STAGING_DIR holds <student>/<LESSON>/<notebook>.ipynb as grading/worker.py made them: outputs
already in place, test cells holding the judge's verdicts. nbgrader then does what it always
does (restores locked cells from the gradebook, scores each test cell from its outputs, late
penalties, writes autograded/), except clearing and executing: no student code runs here.
"""

import functools
import sys

import grading

grading.open_gradebook_quickly()
import nbgrader.api  # noqa: E402
from nbgrader.apps import AutogradeApp  # noqa: E402

# nbgrader opens a new Gradebook, with a new engine, about nine times per notebook, and each new engine
# compiles its SQL again: one engine (and its compiled statements) for this run, ~1 s in 27 notebooks.
# Gradebook.close still disposes of its connections, so each Gradebook opens the file anew.
nbgrader.api.create_engine = functools.cache(nbgrader.api.create_engine)

SANITIZE = ["nbgrader.preprocessors.DeduplicateIds", "nbgrader.preprocessors.OverwriteKernelspec",
            "nbgrader.preprocessors.OverwriteCells", "nbgrader.preprocessors.CheckCellMetadata"]
SCORE = ["nbgrader.preprocessors.IgnorePattern", "nbconvert.preprocessors.ClearMetadataPreprocessor",
         "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
         "nbgrader.preprocessors.AssignLatePenalties", "nbgrader.preprocessors.CheckCellMetadata"]


def main(argv: list[str]) -> int:
    lesson, staging, *rest = argv
    app = AutogradeApp()
    app.initialize([lesson, "--force", f"--CourseDirectory.submitted_directory={staging}", *rest])
    app.config.Autograde.sanitize_preprocessors = SANITIZE
    app.config.Autograde.autograde_preprocessors = SCORE
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
