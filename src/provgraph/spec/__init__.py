"""What to run: task definitions. No execution and no I/O here."""

from . import python, shell, workflow

__all__ = ["python", "shell", "workflow"]
