"""``python -m benchmarks.compare``: see run.py."""

import sys

from .run import main

sys.exit(main())
