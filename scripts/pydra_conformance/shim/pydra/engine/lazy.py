"""``pydra.engine.lazy``: a Pydra internal, not provided (names exist, using them raises)."""

import sys

from .._internal import internal_module

sys.modules[__name__] = internal_module(__name__)
