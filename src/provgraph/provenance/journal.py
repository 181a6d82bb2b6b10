"""The journal: the record files a cache has, or is about to have, for the index to catch up on.

``<cache_dir>/.provenance/journal`` is append-only text, one line per record file, its path
relative to the cache (so a moved cache keeps its journal); a line ``-<path>`` withdraws a path
whose record will never be written (a job that another process finished meanwhile). A line is
written *before* the file it names can exist: by the submitter before it sends a job to a worker,
by the recorder before it writes a workflow run's, a submission's or a rerun's record. So a
submission killed at any point leaves every record it wrote named in the journal, and the next
reader indexes them with no manual step.

Each append is one ``write`` on a file opened with ``O_APPEND``: concurrent submitters on one
machine never interleave inside a line (on NFS, appends from several hosts are not atomic: see
``docs/design/provenance.md``). Readers read from the offset they reached, which the index keeps
in its state, never the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["JOURNAL", "Writer", "append", "read_from", "relative", "replay"]

JOURNAL = "journal"


def relative(cache_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` as the journal names it: relative to the cache when inside it."""
    root = os.path.abspath(cache_dir)
    full = os.path.abspath(path)
    return os.path.relpath(full, root) if full.startswith(root + os.sep) else full


def append(
    cache_dir: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]], *, withdraw=False
) -> None:
    """Name ``paths`` (absolute, or relative to the cache) in the journal, or withdraw them."""
    sign = "-" if withdraw else ""
    text = "".join(f"{sign}{relative(cache_dir, p)}\n" for p in paths)
    if not text:
        return
    folder = Path(cache_dir) / ".provenance"
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Writer:
    """Appends to one cache's journal through a file kept open (a submission's many lines)."""

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.cache_dir = cache_dir
        self._fd: int | None = None

    def add_relative(self, line: str) -> None:
        """Name one record, given by its path relative to the cache."""
        if self._fd is None:
            folder = Path(self.cache_dir) / ".provenance"
            folder.mkdir(exist_ok=True)
            self._fd = os.open(folder / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, f"{line}\n".encode())

    def add(self, path: str | os.PathLike[str]) -> None:
        """Name one record, as :func:`append` names it (relative to the cache when inside)."""
        self.add_relative(relative(self.cache_dir, path))

    def close(self) -> None:
        """Close the file (it is opened again when needed)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def read_from(cache_dir: str | os.PathLike[str], offset: int) -> tuple[list[tuple[bool, str]], int]:
    """The lines since ``offset``, in order, as ``(named, absolute path)`` (``named`` False for
    a withdrawal), and the offset after the last complete line (a line being written is left
    for the next reader)."""
    try:
        with open(Path(cache_dir) / ".provenance" / JOURNAL, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    root = os.path.abspath(cache_dir)
    entries = [
        (not line.startswith("-"), os.path.join(root, line.removeprefix("-")))
        for line in data[:end].decode(errors="replace").splitlines()
        if line
    ]
    return entries, offset + end


def replay(known: list[str], entries: list[tuple[bool, str]]) -> list[str]:
    """The paths still named after ``entries`` are applied, in order, to ``known``."""
    named = dict.fromkeys(known)
    for add, path in entries:
        if add:
            named[path] = None
        else:
            named.pop(path, None)
    return list(named)


def size(cache_dir: str | os.PathLike[str]) -> int:
    """The journal's length in bytes (0 when there is none)."""
    try:
        return os.stat(Path(cache_dir) / ".provenance" / JOURNAL).st_size
    except FileNotFoundError:
        return 0
