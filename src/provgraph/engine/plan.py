"""Checking inputs and hashing jobs.

Every value a job receives passes :func:`check_value` (its declared type, and the existence of
input files) and :func:`digest` (its content hash, named by field in errors). A job's hash is
``H("Job", definition hash, sorted (field name hash, value hash)...)``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePath
from typing import Any

import xxhash

from .._filetypes import Directory, File
from ..exceptions import HashingError
from ..hashing import digest_of, hash_value
from ..spec.fields import Field, check_allowed, coerce

__all__ = ["check_value", "digest", "job_hash", "split_hash"]


_SCALARS = frozenset((int, float, str, bool))


def check_value(field: Field, value: Any) -> Any:
    """``value`` in canonical form for ``field``; input files must exist."""
    kind = type(value)
    if kind is field.type and kind in _SCALARS and field.allowed_values is None:
        return value  # (what the checks below give such a value: on every job's inputs)
    if value is None and (not field.mandatory and field.default is None):
        return None
    value = coerce(field.name, field.type, value)
    if field.allowed_values is not None:
        check_allowed(field, value)
    if field.type in (Path, PurePath) and not os.path.lexists(value):
        return value  # a path the task may create (as in Pydra): hashed by its name
    _check_paths(field.name, value)
    return value


def _check_paths(name: str, value: Any) -> None:
    if isinstance(value, (File, Directory)):
        value.check(name)
    elif isinstance(value, Path):
        if not value.exists():
            File(value).check(name)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_paths(name, item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_paths(name, item)


def digest(name: str, value: Any) -> bytes:
    """The content hash of input ``name``'s value; a ``HashingError`` names the input."""
    try:
        return digest_of(value)
    except HashingError as err:
        raise HashingError(f"input {name!r}: {err}") from err


_NAME_DIGESTS: dict[str, bytes] = {}


def _name_digest(name: str) -> bytes:
    found = _NAME_DIGESTS.get(name)
    if found is None:
        found = _NAME_DIGESTS[name] = hash_value(name)
    return found


def job_hash(definition_hash: bytes, digests: dict[str, bytes]) -> str:
    """H("Job", definition hash, sorted (field, value hash)...) as 32 hex digits."""
    parts = [b"Job:", definition_hash]
    for name in sorted(digests):  # (every job's: joined once)
        parts += (_name_digest(name), digests[name])
    return xxhash.xxh3_128_hexdigest(b"".join(parts))


def split_hash(definition_hash: bytes, job_hashes: list[str], state: Any) -> str:
    """The hash naming a split task's own directory: its elements' job hashes (as the job hash
    of inputs named ``#0``, ``#1``... would take them), splitter and combiner."""
    parts = [b"Job:", definition_hash]
    for position, name in _element_order(len(job_hashes)):
        parts += (name, bytes.fromhex(job_hashes[position]))
    elements = xxhash.xxh3_128_hexdigest(b"".join(parts))
    return xxhash.xxh3_128_hexdigest(b"Split:" + hash_value(repr(state)) + elements.encode())


@functools.lru_cache(maxsize=2)  # (a large split's: once per size, not kept for every size)
def _element_order(n: int) -> tuple[tuple[int, bytes], ...]:
    """The positions ``0..n-1`` in the order of their names ``#i`` sorted as text, each with
    its name's digest."""
    names = sorted(f"#{i}" for i in range(n))
    return tuple((int(name[1:]), hash_value(name)) for name in names)
