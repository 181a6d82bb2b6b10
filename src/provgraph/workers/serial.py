"""The serial worker: each job runs in the submitting process, when it is submitted."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import attrs

from ..engine.job import Job, Outcome, run_job
from .base import Worker

__all__ = ["SerialWorker"]


class SerialWorker(Worker):
    """Runs jobs one after another, in process."""

    name = "serial"

    def capacity(self) -> int | None:
        return 1

    def submit(self, job: Job) -> Future[Any]:
        future: Future[Outcome] = Future()
        future.set_result(run_job(attrs.evolve(job, placement={"worker": self.name})))
        return future
