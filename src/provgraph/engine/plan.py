"""From a task instance to its jobs: validation, state expansion and job hashes.

Everything that can be wrong with the inputs is found here, before any job runs: missing
mandatory inputs, values of the wrong type, split values that do not line up, missing input
files and values that cannot be hashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import xxhash

from .. import cache
from .. import state as _state
from .._filetypes import Directory, File
from ..exceptions import HashingError, SpecError
from ..hashing import H, hash_value
from ..spec.base import TaskDef
from ..spec.fields import NOTHING, Field, coerce
from .job import Job

__all__ = ["Plan", "plan_task"]


@attrs.frozen(kw_only=True)
class Plan:
    """The jobs of one task, in element order, and where its combined result lives."""

    task: TaskDef
    jobs: list[Job]
    expansion: _state.Expansion | None
    output_dir: Path
    split_hash: str | None


def _check_value(field: Field, value: Any) -> Any:
    if value is None and (not field.mandatory and field.default is None):
        return None
    value = coerce(field.name, field.type, value)
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


def _digest(name: str, value: Any) -> bytes:
    try:
        return hash_value(value)
    except HashingError as err:
        raise HashingError(f"input {name!r}: {err}") from err


_NAME_DIGESTS: dict[str, bytes] = {}


def _name_digest(name: str) -> bytes:
    digest = _NAME_DIGESTS.get(name)
    if digest is None:
        digest = _NAME_DIGESTS[name] = hash_value(name)
    return digest


def job_hash(definition_hash: bytes, digests: dict[str, bytes]) -> str:
    """H("Job", definition hash, sorted (field, value hash)...) as 32 hex digits."""
    parts = b"".join(_name_digest(n) + digests[n] for n in sorted(digests))
    return xxhash.xxh3_128_hexdigest(b"Job:" + definition_hash + parts)


def plan_task(task: TaskDef, cache_dir: Path) -> Plan:
    """Validate ``task`` and expand it into jobs; raise before anything runs."""
    if not isinstance(task, TaskDef):
        raise SpecError(
            f"cannot submit {task!r} ({type(task).__name__}); expected a task instance, e.g. "
            "AddTwo(a=1)",
            value=task,
        )
    cls = type(task)
    fields = cls._input_fields
    values = task._values
    missing = [n for n, f in fields.items() if values[n] is NOTHING]
    if missing:
        raise SpecError(
            f"{cls._task_name}: mandatory input(s) not set: {', '.join(missing)}",
            field=missing[0],
        )
    split_names = task.split_fields
    fixed: dict[str, Any] = {}
    digests: dict[str, bytes] = {}
    for name, field in fields.items():
        if name in split_names:
            continue
        value = values[name]
        if getattr(value, "_provgraph_lazy", False):
            raise SpecError(
                f"{cls._task_name}: input {name!r} is connected to another node's output; "
                "submit the workflow that holds both",
                field=name,
            )
        fixed[name] = _check_value(field, value)
        digests[name] = _digest(name, fixed[name])
    def_hash = cls._definition_hash
    name = cls._task_name
    if task.splitter is None:
        jh = job_hash(def_hash, digests)
        directory = cache.job_dir(cache_dir, name, jh)
        job = Job(task_cls=cls, inputs=fixed, job_hash=jh, output_dir=directory)
        return Plan(task=task, jobs=[job], expansion=None, output_dir=directory, split_hash=None)

    expansion = _state.expand(task.splitter, {n: values[n] for n in split_names})
    jobs = []
    for index, element in enumerate(expansion.elements()):
        inputs = dict(fixed)
        element_digests = dict(digests)
        for fname, value in element.items():
            inputs[fname] = checked = _check_value(fields[fname], value)
            element_digests[fname] = _digest(fname, checked)
        jh = job_hash(def_hash, element_digests)
        jobs.append(
            Job(
                task_cls=cls,
                inputs=inputs,
                job_hash=jh,
                output_dir=cache.job_dir(cache_dir, name, jh),
                index=index,
            )
        )
    split_digests = dict(digests)
    for fname in split_names:
        split_digests[fname] = _digest(fname, values[fname])
    state_digest = hash_value([repr(task.splitter), list(task.combiner)])
    split_hash = xxhash.xxh3_128_hexdigest(
        b"Split:" + H(b"state", state_digest) + job_hash(def_hash, split_digests).encode()
    )
    return Plan(
        task=task,
        jobs=jobs,
        expansion=expansion,
        output_dir=cache.job_dir(cache_dir, name, split_hash),
        split_hash=split_hash,
    )
