"""Native: the command runs on the host, as it would with no environment at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from .base import Environment, Placement

__all__ = ["Native"]


@attrs.frozen
class Native(Environment):
    """Run shell commands directly on the host (the default); nothing extra is recorded."""

    runtime = "native"

    def describe(self) -> None:
        """Nothing to check and nothing beyond the host environment to record."""
        return None

    def place(self, inputs: dict[str, Any], output_dir: Path) -> Placement:
        """Paths stay the host's."""
        return Placement(inputs=dict(inputs), job_dir=output_dir)

    def wrap(self, argv: list[str], placement: Placement) -> list[str]:
        """The command itself."""
        return list(argv)
