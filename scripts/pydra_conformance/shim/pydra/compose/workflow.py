"""``pydra.compose.workflow`` -> ``provgraph.workflow``.

Pydra runs a workflow's constructor when the workflow runs, with the input values; provgraph
runs it once when the workflow is defined, with placeholders, unless it is defined with
``dynamic=True`` (provgraph's name for Pydra's timing). ``PCONF_WORKFLOW_MODE`` picks how
the shim maps ``workflow.define``:

* ``auto`` (default): provgraph's static definition; when the constructor cannot run with
  placeholders (it branches on a value, or breaks a definition-time rule such as two nodes
  of one name), the same call again with ``dynamic=True``, so the error, if any, comes when
  the workflow runs, as in Pydra.
* ``static``: provgraph's definition only (errors at definition time).
* ``dynamic``: ``dynamic=True`` always.
"""

import os

from provgraph.spec import workflow as _wf
from provgraph.spec.workflow import add

MODE = os.environ.get("PCONF_WORKFLOW_MODE", "auto")


def _define(fn, kwargs):
    if MODE == "dynamic":
        kwargs.setdefault("dynamic", True)
    if MODE != "auto" or "dynamic" in kwargs:
        return _wf.define(fn, **kwargs)
    try:
        return _wf.define(fn, **kwargs)
    except Exception:
        return _wf.define(fn, dynamic=True, **kwargs)


def define(wrapped=None, /, **kwargs):
    if wrapped is None:
        return lambda fn: _define(fn, dict(kwargs))
    return _define(wrapped, dict(kwargs))


class Task:
    """Pydra's base for class-form workflows."""

    def __class_getitem__(cls, item):
        return cls


class Outputs:
    """Pydra's base for a workflow's ``class Outputs``."""


__all__ = ["Outputs", "Task", "add", "define"]
