"""What a job asks of a batch scheduler: time, memory, CPUs and the like.

Given on a task (``python.define(resources=...)``) or on a submitter's worker
(``Submitter(worker="slurm", resources=...)``); the task's values win key by key. Resources are
not part of any hash: a job asking for more memory computes the same result.
"""

from __future__ import annotations

import re
from typing import Any

from ..exceptions import SpecError

__all__ = ["RESOURCE_KEYS", "check_resources", "merge_resources"]

RESOURCE_KEYS = ("time", "mem", "cpus", "gpus", "partition", "qos", "account", "constraint")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


def check_resources(owner: str, value: Any) -> dict[str, Any]:
    """``value`` checked and normalised: time and mem as SLURM strings, cpus and gpus as ints."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(
            f"{owner}: resources={value!r}; expected a dict such as "
            "{'time': '00:10:00', 'mem': '2G', 'cpus': 2}",
            field="resources",
            value=value,
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in RESOURCE_KEYS:
            raise SpecError(
                f"{owner}: unknown resource {key!r}; expected one of {list(RESOURCE_KEYS)}",
                field=f"resources.{key}",
                value=item,
            )
        out[key] = _check(owner, key, item)
    return out


def _check(owner: str, key: str, item: Any) -> Any:
    def bad(expected: str) -> SpecError:
        return SpecError(
            f"{owner}: resources[{key!r}]={item!r}; expected {expected}",
            field=f"resources.{key}",
            value=item,
        )

    if key == "time":
        import datetime  # (only where a task asks for time: 1 ms off every import)

        if isinstance(item, datetime.timedelta):
            seconds = int(item.total_seconds())
            if seconds <= 0:
                raise bad("a positive duration")
            return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            return str(item)  # minutes, as sbatch reads a bare number
        if isinstance(item, str) and _TIME.match(item):
            return item
        raise bad("minutes (int), a timedelta, or 'MM:SS', 'HH:MM:SS' or 'D-HH:MM:SS'")
    if key == "mem":
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            return f"{item}M"
        if isinstance(item, str) and _MEM.match(item):
            return item.upper()
        raise bad("megabytes (int) or a size such as '512M' or '4G'")
    if key in ("cpus", "gpus"):
        if isinstance(item, int) and not isinstance(item, bool) and item >= (key == "cpus"):
            return item
        raise bad("a positive integer" if key == "cpus" else "an integer >= 0")
    if isinstance(item, str) and item and not any(c.isspace() for c in item):
        return item
    raise bad("a name without spaces")


def merge_resources(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers win, key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged
