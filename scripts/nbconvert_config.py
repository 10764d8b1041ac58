"""nbconvert settings for `make execute` (jupyter nbconvert --config scripts/nbconvert_config.py).

Widget state is stored so that the book shows each widget's first picture; cell timestamps are
not (they would change every notebook on each run); a cell may take up to ten minutes; and the missed-wake-up workaround in grading/jupyter_fix.py keeps a widget cell
from stalling the run for minutes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the course's own tooling, grading/
from grading import jupyter_fix  # noqa: E402

jupyter_fix.apply()

c = get_config()  # noqa: F821  (nbconvert provides get_config)
c.ExecutePreprocessor.store_widget_state = True
c.ExecutePreprocessor.record_timing = False
c.ExecutePreprocessor.timeout = 600
