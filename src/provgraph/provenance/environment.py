"""What a job ran on: captured once per process, named by the hash of its description."""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

import xxhash

__all__ = ["capture"]


@functools.lru_cache(maxsize=1)
def capture() -> dict[str, Any]:
    """Python version, platform, host, CPU count and installed packages, with their hash."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            packages[name.lower()] = dist.version
    description: dict[str, Any] = {
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count() or 1,
        "executable": sys.executable,
        "packages": dict(sorted(packages.items())),
    }
    text = repr(sorted(description.items())).encode()
    description["hash"] = xxhash.xxh3_128_hexdigest(text)
    return description
