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
        name, version = _name_and_version(dist)
        if name:
            packages[name.lower()] = version or ""
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


def _name_and_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the head of a distribution's metadata file: the same values
    as ``dist.metadata``, without parsing the whole file as e-mail (10x faster; every process
    that records a job does this once, and a SLURM job is one process)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    name = version = None
    for line in (text or "").splitlines():
        if not line.strip():  # the end of the header
            break
        key, _, value = line.partition(":")
        if key == "Name" and name is None:
            name = value.strip()
        elif key == "Version" and version is None:
            version = value.strip()
        if name is not None and version is not None:
            break
    return name, version
