"""fileformats classes (``fileformats.generic.File``, ``fileformats.medimage.Nifti1``...) as
input and output types: a path is checked by the format's own class, a value is hashed by the
content of every file of its set (so renaming stays invisible) and its format, and recorded
with its format's MIME-like name. Nothing here imports fileformats: it is used only when the
values or types come from it (``pip install provgraph[fileformats]``)."""

from __future__ import annotations

import os
import sys
import typing
from typing import Any

__all__ = [
    "as_fileset",
    "fileset_digest",
    "format_name",
    "is_fileset",
    "is_fileset_type",
    "is_mock",
]


def _fileset_base() -> Any:
    core = sys.modules.get("fileformats.core")
    return getattr(core, "FileSet", None)


def is_fileset_type(tp: Any) -> bool:
    """True for a fileformats class (a subclass of ``fileformats.core.FileSet``)."""
    base = _fileset_base()
    return base is not None and isinstance(tp, type) and issubclass(tp, base)


def is_fileset(value: Any) -> bool:
    """True for a fileformats object."""
    base = _fileset_base()
    return base is not None and isinstance(value, base)


def is_mock(value: Any) -> bool:
    """True for a mock file set (``File.mock("a.txt")``): paths that need not exist, for
    tests and command lines; hashed and recorded by its paths, never read."""
    mock = getattr(sys.modules.get("fileformats.core.mock"), "MockMixin", None)
    return mock is not None and isinstance(value, mock)


def format_name(value_or_type: Any) -> str:
    """The MIME-like name of a format, e.g. ``medimage/nifti1``."""
    tp: Any = value_or_type if isinstance(value_or_type, type) else type(value_or_type)
    try:
        return str(tp.mime_like)
    except Exception:  # a format without a registered name: its class
        return f"{tp.__module__}.{tp.__qualname__}"


def as_fileset(tp: Any, value: Any) -> Any:
    """``value`` (a path, or a fileformats object) as an object of format ``tp``; raises
    ``ValueError`` naming the format when the file is not of it."""
    if isinstance(value, tp):
        return value
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise ValueError(f"{value!r} is not a path")
    given: Any = value
    paths = given.fspaths if is_fileset(given) else [os.path.abspath(given)]
    try:
        return tp(paths)
    except Exception as err:
        raise ValueError(f"not a {format_name(tp)} file set: {err}") from err


def candidates(tp: Any) -> list[Any]:
    """The fileformats classes ``tp`` names (itself, or the members of a union)."""
    if is_fileset_type(tp):
        return [tp]
    return [a for a in typing.get_args(tp) if is_fileset_type(a)]


def _content(path: str) -> bytes:
    from .hashing import file_content_digest, hash_value

    return hash_value(_directory(path)) if os.path.isdir(path) else file_content_digest(path)


def members(value: Any) -> list[str]:
    """The files (or directories) of a set, in an order that does not depend on their
    names: by content."""
    paths = [os.fspath(p) for p in value.fspaths]
    return sorted(paths, key=lambda p: (_content(p), p))


def fileset_digest(value: Any) -> bytes:
    """The content hash of a file set: its format, then each member's content (names, and
    so renaming, play no part). A mock file set (``File.mock()``, for tests and command
    lines) has no content: its paths are hashed instead."""
    from .hashing import H, hash_value

    if is_mock(value):  # File.mock(): paths that need not exist
        paths = sorted(os.fspath(p) for p in value.fspaths)
        return H(b"fileformats-mock", hash_value(format_name(value)) + hash_value(paths))
    contents = sorted(_content(os.fspath(p)) for p in value.fspaths)  # by content: as members
    return H(b"fileformats", hash_value(format_name(value)) + b"".join(contents))


def _directory(path: str) -> Any:
    from ._filetypes import Directory

    return Directory(path)
