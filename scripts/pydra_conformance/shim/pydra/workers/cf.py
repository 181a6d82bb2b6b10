"""``pydra.workers.cf``: Pydra internals, not provided."""

import sys

from .._internal import internal_module

sys.modules[__name__] = internal_module(__name__)
