"""``pydra.compose.workflow`` -> ``provgraph.workflow``.

Pydra runs a workflow's constructor with the input values; provgraph runs it once when the
workflow is defined, unless ``dynamic=True``. ``PCONF_WORKFLOW_DYNAMIC=1`` makes the shim
pass ``dynamic=True`` to every ``workflow.define`` (Pydra's timing, provgraph's limits).
"""

import os

from provgraph.spec import workflow as _wf
from provgraph.spec.workflow import add

_DYNAMIC = os.environ.get("PCONF_WORKFLOW_DYNAMIC", "0") not in ("", "0")


def define(wrapped=None, /, **kwargs):
    if _DYNAMIC:
        kwargs.setdefault("dynamic", True)
    if wrapped is None:
        return lambda fn: _wf.define(fn, **kwargs)
    return _wf.define(wrapped, **kwargs)


class Task:
    """Pydra's base for class-form workflows."""

    def __class_getitem__(cls, item):
        return cls


class Outputs:
    """Pydra's base for a workflow's ``class Outputs``."""


__all__ = ["Outputs", "Task", "add", "define"]
