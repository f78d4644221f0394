"""``python -m fastbert ...``: the ``fastbert`` command without its console script."""

import sys

from fastbert.cli import main

sys.exit(main())
