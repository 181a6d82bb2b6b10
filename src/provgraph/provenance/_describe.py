"""What a record says of one value: its content hash, kind, and location and size (a file)
or the value itself (a small one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xxhash

from .._fileformats import is_fileset
from .._filetypes import Directory, File
from ..exceptions import HashingError
from ..hashing import file_content_digest, hash_value

__all__ = [
    "LITERAL_TYPES",
    "SMALL_TEXT",
    "describe_later",
    "describe_value",
    "described",
    "is_plain",
    "recorded_value",
]

SMALL_TEXT = 256
# the values a record can hold exactly as literals (None: an entity with no value)
LITERAL_TYPES = (bool, int, float, str, type(None))


def describe_value(value: Any) -> dict[str, Any]:
    """Content hash, kind, and location/size or small value, of one input or output value.

    A list (or tuple) of files is described by its members too, so that each file has its own
    entity; a value with no content hash is hashed by its pickled bytes.
    """
    if is_fileset(value):
        return _describe_fileset(value)
    plain_path = isinstance(value, Path) and not isinstance(value, (File, Directory))
    if plain_path and not os.path.lexists(value):  # a path a task may create: its name
        return {"kind": "Value", "hash": hash_value(value).hex(), "value": str(value)}
    if isinstance(value, (File, Directory, Path)):
        path = Path(value)
        if path.is_dir():
            digest = hash_value(Directory(path)).hex()
            return {"kind": "Directory", "hash": digest, "location": str(path), "size": None}
        digest = file_content_digest(path).hex()
        return {"kind": "File", "hash": digest, "location": str(path), "size": path.stat().st_size}
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (File, Directory)) or is_fileset(v) for v in value)
    ):
        members = [describe_value(v) for v in value]
        return {"kind": "Value", "hash": hash_value(value).hex(), "members": members}
    small = None
    if isinstance(value, (bool, int, float)) or (
        isinstance(value, str) and len(value) <= SMALL_TEXT
    ):
        small = value
    try:
        digest = hash_value(value).hex()
    except HashingError:  # recorded all the same, by its pickled bytes
        import cloudpickle

        digest = xxhash.xxh3_128_hexdigest(cloudpickle.dumps(value))
    return {"kind": "Value", "hash": digest, "value": small}


def is_plain(value: Any) -> bool:
    """Whether ``value`` is exactly a bool, int, float, None, or a string of at most
    :data:`SMALL_TEXT` characters: a value a record can hold as a literal, whose description
    depends on the value alone (no file it names)."""
    kind = type(value)
    return kind in LITERAL_TYPES and (kind is not str or len(value) <= SMALL_TEXT)


def describe_later(value: Any) -> dict[str, Any]:
    """An input as a record's context holds it: a plain value (:func:`is_plain`) as it is,
    described where the record is written (:func:`described`), off the submitting process's
    path when that is another process; anything else described now, before the job runs (its
    files hashed as the job found them)."""
    return {"plain": value} if is_plain(value) else describe_value(value)


def described(given: dict[str, Any]) -> dict[str, Any]:
    """An input as :func:`describe_later` gave it, described (a plain value's description is
    a function of the value alone: the same wherever it is made)."""
    return describe_value(given["plain"]) if "plain" in given else given


def recorded_value(given: dict[str, Any]) -> Any:
    """The value an input's entity holds in the record, as :func:`describe_later` gave the
    input (None: none)."""
    return given["plain"] if "plain" in given else given.get("value")


def _describe_fileset(value: Any) -> dict[str, Any]:
    """A fileformats file set: a one-file set is that file, a larger set a value whose
    members are its files; both with the format's MIME-like name."""
    from .._fileformats import format_name, is_mock, members

    if is_mock(value):  # no files to read: its paths are what it is
        paths = sorted(str(p) for p in value.fspaths)
        shown = paths[0] if len(paths) == 1 else str(paths)
        return {"kind": "Value", "hash": hash_value(value).hex(), "value": shown}
    files = [describe_value(File(p)) for p in members(value)]
    if len(files) == 1:
        return {**files[0], "format": format_name(value)}
    digest = hash_value(value).hex()
    return {"kind": "Value", "hash": digest, "members": files, "format": format_name(value)}
