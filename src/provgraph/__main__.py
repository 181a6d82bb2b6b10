"""``python -m provgraph``: the ``provgraph`` command, for environments without its script."""

import sys

from .cli import main

sys.exit(main())
