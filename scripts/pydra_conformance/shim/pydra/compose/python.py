"""``pydra.compose.python`` -> ``provgraph.python`` (same names, same call shapes)."""

from provgraph.spec.python import Outputs, Task, arg, define, out

__all__ = ["Outputs", "Task", "arg", "define", "out"]
