"""Where a shell task's command runs: natively, or in a container.

::

    from provgraph.environments import Podman
    with Submitter(environment=Podman("localhost/tool", "1.2")) as sub: ...
    sub(task, environment=Bubblewrap("/srv/rootfs"))          # for one submission
    Tool = shell.define("tool <in_file:File>", environment=Podman("localhost/tool"))

The one given to the call wins over the task's, which wins over the submitter's; Python tasks
always run natively. See ``docs/environments.md`` for what each runtime records.
"""

from __future__ import annotations

from .apptainer import Apptainer, Singularity
from .base import Environment, Mount, Placement
from .bwrap import Bubblewrap
from .docker import Docker
from .native import Native
from .podman import Podman

__all__ = [
    "Apptainer",
    "Bubblewrap",
    "Docker",
    "Environment",
    "Mount",
    "Native",
    "Placement",
    "Podman",
    "Singularity",
]
