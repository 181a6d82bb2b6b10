"""One runnable unit: a task class with one state element's inputs, and how it runs.

:func:`run_job` is what every worker calls, in whatever process or node it runs: it takes the
job's lock, reuses a result that another process finished meanwhile, runs the task, and writes
the result (or the error) atomically. Failures are data: the returned :class:`Outcome` carries
the formatted traceback, so nothing unpicklable crosses a process boundary.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path
from typing import Any

import attrs

from .. import cache
from ..exceptions import CacheError

__all__ = ["ErrorInfo", "Job", "Outcome", "job_fields", "run_job"]

_HOST = os.uname().nodename  # (what socket.gethostname() gives, without importing socket)


@attrs.frozen(kw_only=True)
class Job:
    """A task class and the inputs of one element, with its hash and directory."""

    task_cls: Any
    inputs: dict[str, Any]
    job_hash: str
    output_dir: Path
    index: int = 0
    run_id: str = ""
    context: dict[str, Any] | None = None
    after: tuple[Any, ...] = ()
    # where a shell task's command runs (``provgraph.environments``); None runs it natively
    environment: Any = None
    # set by the worker in the process that runs the job: which worker, where, its log
    placement: dict[str, str] | None = None
    # a forced rerun: the run whose saved result this one replaces (it is not reused)
    replaces: str | None = None

    @property
    def name(self) -> str:
        """``<TaskName>-<hash>``, the job's directory name."""
        return self.output_dir.name


@attrs.frozen(kw_only=True)
class ErrorInfo:
    """A failure, as plain text that survives pickling."""

    type: str
    message: str
    traceback: str
    exit_code: int | None = None  # a shell command's, when it ran and failed


@attrs.frozen(kw_only=True)
class Outcome:
    """What running (or finding) a job gave."""

    job_hash: str
    status: str  # "succeeded" | "failed"
    outputs: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    started: float = 0.0
    ended: float = 0.0
    host: str = _HOST
    pid: int = 0
    executed: bool = True
    stale_lock: str | None = None
    run_id: str = ""
    warnings: tuple[str, ...] = ()
    placement: dict[str, str] | None = None  # the worker, where it ran, its log (from the Job)
    # what the job consumed: CPU seconds (user, system) of its process and the commands it ran,
    # and peak resident memory in bytes (see resource_usage)
    usage: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.status == "succeeded"


def job_fields(job: Job) -> dict[str, Any]:
    """Every field of ``job`` but its task class, to send beside a class pickled once."""
    return {f.name: getattr(job, f.name) for f in attrs.fields(Job) if f.name != "task_cls"}


def outcome_from_stored(
    stored: cache.StoredResult,
    *,
    executed: bool = False,
    placement: dict[str, str] | None = None,
    usage: dict[str, float] | None = None,
) -> Outcome:
    """An outcome for a result found in the cache (``placement`` and ``usage``: where it ran
    and what it consumed, when known)."""
    return Outcome(
        job_hash=stored.job_hash,
        status="succeeded",
        outputs=stored.outputs,
        started=stored.started,
        ended=stored.ended,
        host=stored.host,
        pid=stored.pid,
        executed=executed,
        run_id=stored.run_id,
        placement=placement,
        usage=usage,
    )


def error_info(err: BaseException) -> ErrorInfo:
    """Capture an exception as text."""
    import traceback  # (1 ms to import: paid when a job fails, not by every import)

    code = getattr(err, "return_code", None)
    return ErrorInfo(
        type=type(err).__name__,
        message=str(err),
        traceback="".join(traceback.format_exception(err)),
        exit_code=code if isinstance(code, int) else None,
    )


def _cpu() -> tuple[float, float, int]:
    """CPU seconds (user, system) used so far by this process and its waited-for children,
    and the larger of their peak resident sizes (bytes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = max(me.ru_maxrss, kids.ru_maxrss) * 1024  # Linux reports KiB
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime, peak


def resource_usage(before: tuple[float, float, int]) -> dict[str, float]:
    """What the job consumed since ``before`` (a :func:`_cpu` reading): CPU user and system
    seconds, and the peak resident memory, which is the process's (or its largest command's)
    peak so far: exact for a job run alone in its process, an upper bound otherwise."""
    user, system, peak = _cpu()
    return {
        "cpu_user": max(0.0, user - before[0]),
        "cpu_system": max(0.0, system - before[1]),
        "peak_rss": float(peak),
    }


def run_job(job: Job, placement: dict[str, str] | None = None) -> Outcome:
    """Run ``job`` under its lock, or reuse the result another process left meanwhile.

    After a run (succeeded or failed), the job's ``after`` hooks run in this same process, still
    under the lock: the provenance recorder writes the run's record aside there and returns the
    function that publishes it (or, on the serial worker, returns the record's data, as
    ``record_data``, to save inside the result file; published, it has the record written from
    the saved result: ``provenance/deferred.py``). A failed run's record is published at once; a
    succeeded run's only once its result is saved, so a record that says "succeeded" always has
    its result. When the result cannot be saved (a full disk), the run fails with that error,
    and is recorded so. A hook that fails costs a warning on the outcome, never the result. The
    lock names the run (and its workflow run), so the next run of a job whose process died can
    record that death. ``placement`` (the worker, where it ran), when given, is said instead
    of the job's own.
    """
    if placement is None:
        placement = job.placement
    directory = job.output_dir
    try:
        os.mkdir(directory)
        fresh = True
    except FileExistsError:
        fresh = False
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        fresh = True
    context = job.context or {}
    tag = f"{job.run_id} {context.get('workflow_run', '')}".strip()
    try:
        lock = cache.JobLock(directory, tag=tag).acquire()
    except CacheError as err:  # (a full disk: the lock cannot be written): this job fails
        return _failed(job, err, time.time(), None, placement)
    with lock:
        # another process may have finished it meanwhile: it found the directory or the lock
        # file made, or it ran the whole job between this one's making of the lock file and its
        # flock (the result is there: one stat tells, where this one made both)
        met = (
            not fresh
            or lock.waited
            or lock.found
            or os.path.exists(os.path.join(directory, cache.RESULT_NAME))
        )
        stored = cache.read_result(directory) if met else None
        if stored is not None and (job.replaces is None or stored.run_id != job.replaces):
            return outcome_from_stored(stored)
        if met or lock.broken_stale:
            cache.clear_for_run(directory)  # what an earlier attempt left behind
        started = time.time()
        before = _cpu()
        try:
            if job.environment is None:
                outputs = job.task_cls._execute(dict(job.inputs), directory)
            else:  # a shell task's command, run in a container (provgraph.environments)
                outputs = job.task_cls._execute(dict(job.inputs), directory, job.environment)
            stored = cache.StoredResult(
                outputs=outputs,
                task_name=job.task_cls._task_name,
                job_hash=job.job_hash,
                started=started,
                ended=time.time(),
                host=_HOST,
                pid=os.getpid(),
                run_id=job.run_id,
            )
        except KeyboardInterrupt as err:  # recorded as interrupted, then the interrupt goes on
            _failed(job, err, started, lock.broken_stale, placement, status="interrupted")
            raise
        except BaseException as err:  # sys.exit() or any other raise in a task fails that job
            usage = resource_usage(before)  # only (on every worker alike)
            return _failed(job, err, started, lock.broken_stale, placement, usage=usage)
        usage = resource_usage(before)
        outcome, publishers = _after(
            job,
            Outcome(
                job_hash=job.job_hash,
                status="succeeded",
                outputs=outputs,
                started=started,
                ended=stored.ended,
                pid=os.getpid(),
                stale_lock=lock.broken_stale,
                run_id=job.run_id,
                placement=placement,
                usage=usage,
            ),
        )
        # a hook whose record data is stored with the result (see provenance/deferred.py)
        later = next((p for p in publishers if hasattr(p, "record_data")), None)
        try:
            embedded = later.record_data if later is not None else None
            data = cache.encode_result(directory, stored, embedded)  # unpicklable outputs fail
            cache.commit_result(directory, data)
        except Exception as err:  # the result cannot be stored, or is lost: so is the success
            for written in publishers:
                getattr(written, "discard", lambda: None)()
            return _failed(job, err, started, None, placement, usage=usage)
        if later is not None:
            later.saved = data  # the result as saved: its record is written from it
        outcome = _publish(outcome, publishers)
    return outcome


def _failed(
    job: Job,
    err: BaseException,
    started: float,
    stale: str | None,
    placement: dict[str, str] | None,
    status: str = "failed",
    usage: dict[str, float] | None = None,
) -> Outcome:
    """A failed (or interrupted) run: its error saved beside the job, its record published."""
    ended = time.time()
    info = error_info(err)
    with contextlib.suppress(CacheError):  # a full disk may refuse this too
        cache.write_error(job.output_dir, {**attrs.asdict(info), "job": job.name, "ended": ended})
    outcome = Outcome(
        job_hash=job.job_hash,
        status=status,
        error=info,
        started=started,
        ended=ended,
        pid=os.getpid(),
        stale_lock=stale,
        run_id=job.run_id,
        placement=placement,
        usage=usage,
    )
    return _publish(*_after(job, outcome))


def _after(job: Job, outcome: Outcome) -> tuple[Outcome, list[Any]]:
    """Run the job's hooks; what they wrote aside (callables that publish it, and may have a
    ``discard()`` for a run whose result could not be saved)."""
    problems = []
    publishers = []
    for hook in job.after:
        try:
            publish = hook(job, outcome)
        except Exception as err:  # a record is lost, the result is not
            problems.append(f"{getattr(hook, '__name__', hook)}: {type(err).__name__}: {err}")
            continue
        if publish is not None:
            publishers.append(publish)
    if problems:
        outcome = attrs.evolve(outcome, warnings=tuple(problems))
    return outcome, publishers


def _publish(outcome: Outcome, publishers: list[Any]) -> Outcome:
    """Make what the hooks wrote aside visible; a failure costs a warning."""
    problems = []
    for publish in publishers:
        try:
            publish()
        except Exception as err:
            problems.append(f"publishing a record: {type(err).__name__}: {err}")
    if problems:
        outcome = attrs.evolve(outcome, warnings=(*outcome.warnings, *problems))
    return outcome
