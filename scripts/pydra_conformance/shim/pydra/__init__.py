"""Conformance shim: Pydra 1.0's public names, mapped onto provgraph.

Put the directory holding this package first on ``sys.path`` (``PYTHONPATH``) and
``import pydra`` gives this package instead of the real one.  Each module here only renames
provgraph's objects or adapts a call's shape; nothing here adds behaviour to the engine.
Pydra's internal modules are stand-ins whose names fail when used (see ``_internal``).
"""

__provgraph_shim__ = True
