"""Docker: Podman's command line, run as the calling user so output files are theirs."""

from __future__ import annotations

import os

import attrs

from .base import non_empty
from .podman import OciRuntime

__all__ = ["Docker"]


@attrs.frozen
class Docker(OciRuntime):
    """Run shell commands in a Docker container from a local image.

    The same arguments as :class:`Podman`. The command runs as the calling user's uid and gid
    (``--user``), since Docker's daemon would otherwise write the job's files as root.
    """

    executable: str = attrs.field(default="docker", kw_only=True, validator=non_empty)
    runtime = "docker"
    install_hint = (
        "install it (Debian/Ubuntu: 'apt-get install docker.io', or Docker Engine from "
        "https://docs.docker.com/engine/install/)"
    )

    def user_options(self) -> list[str]:
        """``--user=<uid>:<gid>`` of the process that runs the job."""
        return [f"--user={os.getuid()}:{os.getgid()}"]
