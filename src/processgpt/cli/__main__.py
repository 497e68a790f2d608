"""``python -m processgpt.cli``: the ``processgpt`` command."""

import sys

from processgpt.cli import main

sys.exit(main())
