"""``python -m tpcheck`` is the ``tpcheck`` command."""

import sys

from tpcheck.cli import main

sys.exit(main())
