"""Workers run jobs: ``submit(job) -> Future[Outcome]``, ``flush()``, ``close()``.

Workers are registered by name and imported only when asked for, so an optional one whose
library is missing costs nothing until used, and then says which extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..exceptions import WorkerError
from .base import Worker

__all__ = ["Worker", "available_workers", "get_worker", "register_worker"]

_REGISTRY: dict[str, tuple[str, str | None]] = {
    "serial": ("provgraph.workers.serial:SerialWorker", None),
    "cf": ("provgraph.workers.cf:ConcurrentFuturesWorker", None),
    "dask": ("provgraph.workers.dask:DaskWorker", "dask"),
    "slurm": ("provgraph.workers.slurm:SlurmWorker", None),
}


def register_worker(name: str, target: str, extra: str | None = None) -> None:
    """Register ``"module:Class"`` under ``name``; ``extra`` is the pip extra it needs."""
    _REGISTRY[name] = (target, extra)


def available_workers() -> list[str]:
    """The registered worker names."""
    return sorted(_REGISTRY)


def get_worker(name: str | Worker, **options: Any) -> Worker:
    """A worker by name (or the given worker instance), made with ``options``."""
    if isinstance(name, Worker):
        if options:
            raise WorkerError(f"options {sorted(options)} given with a worker instance")
        return name
    if name not in _REGISTRY:
        raise WorkerError(f"unknown worker {name!r}; expected one of {available_workers()}")
    target, extra = _REGISTRY[name]
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        hint = f"; install it with: pip install 'provgraph[{extra}]'" if extra else ""
        raise WorkerError(f"worker {name!r} cannot be loaded ({err}){hint}") from err
    cls = getattr(module, cls_name)
    try:
        return cls(**options)
    except TypeError as err:
        raise WorkerError(f"worker {name!r}: bad options {sorted(options)}: {err}") from err
