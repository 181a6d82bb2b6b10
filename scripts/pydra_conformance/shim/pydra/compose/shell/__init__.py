"""``pydra.compose.shell`` -> ``provgraph.shell``."""

from provgraph.spec.shell import ShellTask, arg, define, out, outarg


class Task:
    """Pydra's base for class-form shell tasks; provgraph's class form needs no base."""

    def __class_getitem__(cls, item):  # ``shell.Task["Name.Outputs"]``
        return cls


class Outputs:
    """Pydra's base for a shell task's ``class Outputs``; any class does in provgraph."""


__all__ = ["Outputs", "ShellTask", "Task", "arg", "define", "out", "outarg"]
