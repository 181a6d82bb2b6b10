"""``pydra.compose.base``: the common bases of task and outputs objects."""

from provgraph.spec.base import Outputs
from provgraph.spec.base import TaskDef as Task

__all__ = ["Outputs", "Task"]
