"""``python -m imgrec_lib``: see ``imgrec_lib.cli``."""

import sys

from .cli import main

sys.exit(main())
