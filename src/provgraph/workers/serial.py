"""The serial worker: each job runs in the submitting process, when it is submitted."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..engine.job import Job, Outcome, run_job
from .base import Worker

__all__ = ["SerialWorker"]


class SerialWorker(Worker):
    """Runs jobs one after another, in process."""

    name = "serial"
    _placement = {"worker": "serial"}  # (given to run_job: no copy of each job made for it)

    def capacity(self) -> int | None:
        return 1

    def submit(self, job: Job) -> Future[Any]:
        future: Future[Outcome] = Future()
        future.set_result(run_job(job, placement=self._placement))
        return future
