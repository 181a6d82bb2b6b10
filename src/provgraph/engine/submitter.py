"""The submitter: plan a task, reuse what the cache has, run the rest on a worker.

State of one submission, as plain data (small functions below change it):

``outcomes``  list, one slot per job in element order: ``None`` until the job's outcome is
              known, then the ``Outcome`` (from the cache or from the worker)
``waiting``   dict ``Future -> job index`` of jobs handed to the worker and not finished

A job moves: planned -> (cache hit) reused, or -> submitted -> finished (succeeded or failed).
Cache lookups happen here, in the submitting process; only misses reach the worker. The run
ends when ``waiting`` is empty; the outputs are then arranged by the combiner.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from .. import cache
from .. import state as _state
from ..config import Config
from ..hashing import FileHashCache, use_file_hash_cache
from ..spec.base import Outputs, TaskDef
from ..workers import Worker, get_worker
from . import events
from .job import Outcome, outcome_from_stored
from .plan import Plan, plan_task
from .result import JobFailure, Result

__all__ = ["Submitter"]

Hook = Callable[[events.Event], Any]


class Submitter:
    """Runs tasks on a worker with a cache directory; use it as a context manager.

    ``Submitter(cache_dir=..., worker="serial" | "cf", hooks=[...], **worker_options)``;
    ``sub(task)`` returns a :class:`Result`.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        worker: str | Worker | None = None,
        *,
        hooks: Iterable[Hook] = (),
        **worker_options: Any,
    ) -> None:
        config = Config.from_env()
        self.cache_dir = Path(cache_dir if cache_dir is not None else config.cache_dir).absolute()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            from ..exceptions import CacheError

            raise CacheError(f"cache_dir {str(self.cache_dir)!r} cannot be created: {err}") from err
        self.worker = get_worker(worker if worker is not None else config.worker, **worker_options)
        self.hooks: list[Hook] = list(hooks)
        self.file_hashes = FileHashCache(self.cache_dir / ".file-hashes")

    def __enter__(self) -> Submitter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release the worker's processes."""
        self.worker.close()

    def _emit(self, event: events.Event) -> None:
        for hook in self.hooks:
            hook(event)

    def __call__(self, task: TaskDef) -> Result:
        """Run ``task`` (split or not) and return its :class:`Result`."""
        with use_file_hash_cache(self.file_hashes):
            plan = plan_task(task, self.cache_dir)
        run_id = uuid.uuid4().urn
        self._emit(
            events.RunStarted(
                run_id=run_id,
                task_name=type(task)._task_name,
                output_dir=plan.output_dir,
                n_jobs=len(plan.jobs),
            )
        )
        outcomes = self._run(plan, run_id)
        result = _assemble(plan, outcomes)
        if plan.split_hash is not None:
            _write_split_record(plan, result)
        self._emit(
            events.RunFinished(
                run_id=run_id,
                task_name=type(task)._task_name,
                executed=result.stats["executed"],
                reused=result.stats["reused"],
                failed=result.stats["failed"],
            )
        )
        return result

    def _run(self, plan: Plan, run_id: str) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(plan.jobs)
        waiting: dict[Future[Any], int] = {}
        for index, job in enumerate(plan.jobs):
            stored = cache.read_result(job.output_dir)
            if stored is not None:
                outcomes[index] = outcome = outcome_from_stored(stored)
                self._emit(events.JobReused(run_id=run_id, job=job, outcome=outcome))
            else:
                waiting[self.worker.submit(job)] = index
                self._emit(events.JobSubmitted(run_id=run_id, job=job))
        self.worker.flush()
        while waiting:
            done, _ = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                index = waiting.pop(future)
                outcomes[index] = outcome = future.result()
                job = plan.jobs[index]
                self._emit(events.JobFinished(run_id=run_id, job=job, outcome=outcome))
        return [o for o in outcomes if o is not None]


def _failure(plan: Plan, index: int, outcome: Outcome) -> JobFailure:
    job = plan.jobs[index]
    error = outcome.error
    assert error is not None
    split = set(plan.task.split_fields)
    return JobFailure(
        task_name=job.task_cls._task_name,
        job_hash=job.job_hash,
        output_dir=job.output_dir,
        index=index,
        inputs={k: v for k, v in job.inputs.items() if k in split} if split else dict(job.inputs),
        error_type=error.type,
        message=error.message,
        traceback=error.traceback,
    )


def _assemble(plan: Plan, outcomes: list[Outcome]) -> Result:
    names = list(type(plan.task)._output_fields)
    errors = [_failure(plan, i, o) for i, o in enumerate(outcomes) if not o.ok]
    stats = {
        "executed": sum(1 for o in outcomes if o.executed and o.ok),
        "reused": sum(1 for o in outcomes if not o.executed and o.ok),
        "failed": len(errors),
    }
    per_job = [o.outputs if o.ok and o.outputs is not None else {} for o in outcomes]
    if plan.expansion is None:
        values = {n: per_job[0].get(n) for n in names}
    else:
        combiner = plan.task.combiner
        values = {
            n: _state.combine_outputs(plan.expansion, combiner, [out.get(n) for out in per_job])
            for n in names
        }
    return Result(
        outputs=Outputs(values),
        output_dir=plan.output_dir,
        errors=errors,
        stats=stats,
        job_dirs=[j.output_dir for j in plan.jobs],
    )


def _write_split_record(plan: Plan, result: Result) -> None:
    """The split task's own directory: its element jobs and, when all succeeded, its result."""
    directory = plan.output_dir
    directory.mkdir(parents=True, exist_ok=True)
    listing = {
        "splitter": repr(plan.task.splitter),
        "combiner": plan.task.combiner,
        "jobs": [j.output_dir.name for j in plan.jobs],
        "failed": [e.output_dir.name for e in result.errors],
    }
    cache.atomic_write(directory / "_jobs.json", json.dumps(listing, indent=1).encode())
    if not result.errored and cache.read_result(directory) is None:
        first = result.stats  # noqa: F841 - counts are not part of the stored result
        cache.write_result(
            directory,
            cache.StoredResult(
                outputs=result.outputs.asdict(),
                task_name=type(plan.task)._task_name,
                job_hash=plan.split_hash or "",
                started=0.0,
                ended=0.0,
                host="",
                pid=0,
            ),
        )
