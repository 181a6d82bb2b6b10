"""Configuration: an argument wins, then the environment, then the documented default.

Only :meth:`Config.from_env` reads ``os.environ``; ``docs/configuration.md`` lists every variable.

``PROVGRAPH_CACHE_DIR``  cache directory (default: ``./provgraph-cache``)
``PROVGRAPH_WORKER``     default worker name (default: ``serial``)
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

__all__ = ["Config"]


@attrs.frozen(kw_only=True)
class Config:
    """Settings read once from the environment."""

    cache_dir: Path = attrs.field(factory=lambda: Path("provgraph-cache"))
    worker: str = "serial"

    @classmethod
    def from_env(cls) -> Config:
        """The configuration from ``PROVGRAPH_*`` variables, defaults for the rest."""
        env = os.environ
        kwargs: dict[str, object] = {}
        if env.get("PROVGRAPH_CACHE_DIR"):
            kwargs["cache_dir"] = Path(env["PROVGRAPH_CACHE_DIR"])
        if env.get("PROVGRAPH_WORKER"):
            kwargs["worker"] = env["PROVGRAPH_WORKER"]
        return cls(**kwargs)  # type: ignore[arg-type]
