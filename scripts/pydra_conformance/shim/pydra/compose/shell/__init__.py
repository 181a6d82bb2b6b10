"""``pydra.compose.shell`` -> ``provgraph.shell``.

Two call shapes are adapted: Pydra's ``xor=("a", "b")`` (a flat sequence of names is one
group) is provgraph's ``xor=[["a", "b"]]`` (a sequence of groups passes as it is); and
``shell.define(["cmd", "-v"])`` (the command as a list of words) is the template string of
those words, quoted.
"""

import shlex

from provgraph.spec.shell import ShellTask, arg, out, outarg
from provgraph.spec.shell import define as _define


def _groups(xor):
    if xor and all(isinstance(x, str) or x is None for x in xor):
        return [list(xor)]
    return xor


def define(wrapped=None, /, **kwargs):
    if "xor" in kwargs:
        kwargs["xor"] = _groups(kwargs["xor"])
    if isinstance(wrapped, (list, tuple)) and all(isinstance(w, str) for w in wrapped):
        wrapped = " ".join(shlex.quote(w) for w in wrapped)
    if wrapped is None:
        return _define(**kwargs)
    return _define(wrapped, **kwargs)


class Task:
    """Pydra's base for class-form shell tasks; provgraph's class form needs no base."""

    def __class_getitem__(cls, item):  # ``shell.Task["Name.Outputs"]``
        return cls


class Outputs:
    """Pydra's base for a shell task's ``class Outputs``; any class does in provgraph."""


__all__ = ["Outputs", "ShellTask", "Task", "arg", "define", "out", "outarg"]
