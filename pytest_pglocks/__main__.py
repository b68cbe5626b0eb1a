"""``python -m pytest_pglocks``: see :mod:`pytest_pglocks._cli`."""

import sys

from ._cli import main

sys.exit(main())
