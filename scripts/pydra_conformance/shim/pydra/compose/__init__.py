"""``pydra.compose``: the python, shell and workflow task kinds."""

from . import python, shell, workflow  # noqa: F401
