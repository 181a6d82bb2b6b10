"""What a job ran on: captured once per process, named by the hash of its description."""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
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
        "hostname": os.uname().nodename,  # (what socket.gethostname() says on Linux)
        "cpu_count": os.cpu_count() or 1,
        "executable": sys.executable,
        "packages": dict(sorted(packages.items())),
    }
    text = repr(sorted(description.items())).encode()
    description["hash"] = xxhash.xxh3_128_hexdigest(text)
    return description


_HEAD = 4096  # bytes of a metadata file read first: its name and version are at its top


def _name_and_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the head of a distribution's metadata file: the same values
    as ``dist.metadata``, without parsing the whole file as e-mail (10x faster; every process
    that records a job does this once, and a SLURM job is one process). Only the file's first
    lines are read where the distribution is a folder on disk (metadata files hold the whole
    description: 1.4 MB for 120 packages); the whole file when they do not tell. (So a file
    whose description, past its head, is not UTF-8 gives its head's values, where the full
    parse fails.)"""
    head = _head(dist)
    if head is not None:
        found = _header(*head)
        if found is not None:
            return found
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    return _header((text or "").splitlines(), True) or (None, None)


def _head(dist: metadata.Distribution) -> tuple[list[str], bool] | None:
    """The whole lines at the top of the metadata file ``dist.read_text`` would read, and
    whether they are the whole file; None where that cannot be read so (not a folder on disk,
    a file that is not UTF-8 at its top: the caller reads it as before)."""
    folder = getattr(dist, "_path", None)  # (a PathDistribution's folder: 3.8 to 3.13)
    if not isinstance(folder, Path):
        return None
    for name in ("METADATA", "PKG-INFO"):  # (as read_text: a missing or empty one is skipped)
        try:
            with open(folder / name, "rb") as fh:
                data = fh.read(_HEAD)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            continue
        if not data:
            continue
        complete = len(data) < _HEAD
        if not complete:  # (a line cut short is not read: nor a character cut in two)
            data = data[: data.rfind(b"\n") + 1]
        try:
            return data.decode("utf-8").splitlines(), complete
        except UnicodeDecodeError:
            return None
    return [], True


def _header(lines: list[str], whole: bool) -> tuple[str | None, str | None] | None:
    """``Name`` and ``Version`` from a metadata file's lines, once its header ends or both are
    found, or the file ends (``whole``: ``lines`` are all of it); None when ``lines`` end
    first and are not the whole file."""
    name = version = None
    for line in lines:
        if not line.strip():  # the end of the header
            return name, version
        key, _, value = line.partition(":")
        if key == "Name" and name is None:
            name = value.strip()
        elif key == "Version" and version is None:
            version = value.strip()
        if name is not None and version is not None:
            return name, version
    return (name, version) if whole else None
