"""nbconvert settings for `make execute` (jupyter nbconvert --config scripts/nbconvert_config.py).

Widget state is stored so that the book shows each widget's first picture; cell timestamps are
not (they would change every notebook on each run); a cell may take up to ten minutes; and the missed-wake-up workaround in imgrec_lib/jupyter_fix.py keeps a widget cell
from stalling the run for minutes.
"""

from imgrec_lib import jupyter_fix

jupyter_fix.apply()

c = get_config()  # noqa: F821  (nbconvert provides get_config)
c.ExecutePreprocessor.store_widget_state = True
c.ExecutePreprocessor.record_timing = False
c.ExecutePreprocessor.timeout = 600
