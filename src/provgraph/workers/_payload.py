"""Jobs as compact pickled units, shared by the workers that send jobs to other processes.

A task class is pickled once per batch (and unpickled once per receiving process, by the
digest of its pickle); each job travels as its plain fields. Two classes with one definition
hash (closures over different values) have different pickles, so they are never confused.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import xxhash

from .. import cache
from ..engine.job import ErrorInfo, Job, Outcome, job_fields, run_job

__all__ = ["Packer", "capture_logs", "failed_outcome", "run_packed", "unpack"]

_CLASSES: dict[bytes, Any] = {}  # in receiving processes: task classes by their pickle's digest


class Packer:
    """Pickles jobs for another process, each task class once."""

    def __init__(self) -> None:
        # id(class) -> (digest of its pickle, the pickle, the class)
        self._blobs: dict[int, tuple[bytes, bytes, Any]] = {}

    def class_blob(self, task_cls: Any) -> tuple[bytes, bytes]:
        """The digest and pickle of ``task_cls`` (made once per class)."""
        found = self._blobs.get(id(task_cls))
        if found is None or found[2] is not task_cls:
            blob = cloudpickle.dumps(task_cls)
            found = (xxhash.xxh3_128_digest(blob), blob, task_cls)
            self._blobs[id(task_cls)] = found
        return found[0], found[1]

    def fields(self, job: Job, placement: dict[str, str]) -> tuple[bytes, dict[str, Any]]:
        """The digest of the job's class pickle and the job's fields, placed on ``placement``."""
        fields = job_fields(job)
        fields["placement"] = placement
        return self.class_blob(job.task_cls)[0], fields

    def pack(self, jobs: Iterable[Job], placement: dict[str, str]) -> bytes:
        """One message running ``jobs`` in order, each placed on ``placement``."""
        blobs: dict[bytes, bytes] = {}
        items = []
        for job in jobs:
            key, blob = self.class_blob(job.task_cls)
            blobs[key] = blob
            items.append(self.fields(job, placement))
        # (cloudpickle, always: an input whose class lives in the submitter's __main__ goes by
        # value, for a pool process that cannot import it by name: spawn, forkserver, or a
        # class (re)defined after the pool started)
        return cloudpickle.dumps((blobs, items))


def unpack(
    blobs: dict[bytes, bytes] | Callable[[bytes], bytes], key: bytes, fields: dict[str, Any]
) -> Job:
    """A job from its class digest and fields; ``blobs`` maps (or loads) digests to pickles."""
    cls = _CLASSES.get(key)
    if cls is None:
        blob = blobs[key] if isinstance(blobs, dict) else blobs(key)
        cls = _CLASSES[key] = cloudpickle.loads(blob)
    return Job(task_cls=cls, **fields)


def run_packed(
    payload: bytes, where: dict[str, str] | None = None, *, log_name: str | None = None
) -> bytes:
    """In the receiving process: run each job of a packed batch; ``where`` adds to placement.

    With ``log_name``, the log records a job's thread emits while it runs go to that file in
    its directory, named in its provenance.
    """
    blobs, items = cloudpickle.loads(payload)
    outcomes = []
    for key, fields in items:
        placement = {**(fields.get("placement") or {}), **(where or {})}
        if log_name is None:
            job = unpack(blobs, key, {**fields, "placement": placement})
            outcomes.append(run_job(job))
            continue
        log = fields["output_dir"] / log_name
        job = unpack(blobs, key, {**fields, "placement": {**placement, "log": str(log)}})
        with capture_logs(log):
            outcomes.append(run_job(job))
    return cache.dumps(outcomes)  # (pickle, else cloudpickle: as results are stored)


@contextlib.contextmanager
def capture_logs(path: Path) -> Iterator[None]:
    """Copy the log records this thread emits meanwhile to ``path`` (made only if any are)."""
    handler = logging.FileHandler(path, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    thread = threading.get_ident()
    handler.addFilter(lambda record: record.thread == thread)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def failed_outcome(job: Job, kind: str, message: str, **placement: str) -> Outcome:
    """A failure that happened outside the job (lost, killed, never sent)."""
    return Outcome(
        job_hash=job.job_hash,
        status="failed",
        error=ErrorInfo(type=kind, message=message, traceback=message),
        run_id=job.run_id,
        placement=placement or None,
    )
