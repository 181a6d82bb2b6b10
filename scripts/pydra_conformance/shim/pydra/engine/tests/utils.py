"""``pydra.engine.tests.utils``: the checkout's own ``utils.py``, executed here.

The checkout is named by ``PYDRA_CONFORMANCE_CHECKOUT`` (set by ``run.py``). Its task
definitions (``@python.define`` ...) then go through this shim and become provgraph tasks.
"""

import os
from pathlib import Path

_checkout = os.environ.get("PYDRA_CONFORMANCE_CHECKOUT")
if not _checkout:
    raise ImportError("set PYDRA_CONFORMANCE_CHECKOUT to an extracted Pydra checkout")
_source = Path(_checkout) / "pydra" / "engine" / "tests" / "utils.py"
__file__ = str(_source)
exec(compile(_source.read_text(), str(_source), "exec"), globals())
