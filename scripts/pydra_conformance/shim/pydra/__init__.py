"""Conformance shim: Pydra 1.0's public names, mapped onto provgraph.

Put the directory holding this package first on ``sys.path`` (``PYTHONPATH``) and
``import pydra`` gives this package instead of the real one.  Each module here only renames
provgraph's objects or adapts a call's shape; nothing here adds behaviour to the engine.
Pydra's internal modules are stand-ins whose names fail when used (see ``_internal``).
"""

__provgraph_shim__ = True


def _map_private_names() -> None:
    """Pydra's tests read ``task._hash``: the task's hash, which provgraph gives publicly as
    ``provgraph.task_hash(task)``; and call ``task._check_rules()``, provgraph's public
    ``task.check_inputs()`` (name mappings, set on provgraph's task base class)."""
    import provgraph
    from provgraph.spec.base import TaskDef

    TaskDef._hash = property(provgraph.task_hash)  # type: ignore[attr-defined]
    TaskDef._check_rules = TaskDef.check_inputs  # type: ignore[attr-defined]


_map_private_names()
