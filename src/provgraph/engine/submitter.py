"""The submitter: expand tasks into jobs, reuse what the cache has, run the rest on a worker.

State of one submission (:class:`_Run`), as plain data changed by the small methods below:

``ready``    deque of jobs whose inputs all exist, not yet looked up or sent (newly ready
             downstream jobs go to the front, so one element flows down the graph first)
``waiting``  dict ``Future -> job`` of jobs handed to the worker and not finished
``completed`` queue of the futures of ``waiting`` that finished, in the order they did (each
             future puts itself there when done: the loop takes the next one in constant time,
             however many are waiting)
``nodes``    each node knows its jobs, how many are unfinished, and its downstream nodes,
             which are expanded as soon as what they need is known

A job moves waiting -> ready -> (cache hit) succeeded, or -> running -> succeeded | failed;
a job downstream of a failure becomes skipped, with the failed job as its cause. Cache lookups
happen here, in the submitting process; only misses reach the worker. A workflow job that
misses the cache opens an instance of its graph, and succeeds when every node of it has.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import os
import queue
import sys
import threading
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import cache
from ..config import Config
from ..exceptions import CacheError, HashingError, ProvgraphError, SpecError, WorkerError
from ..graph import lazy_inputs
from ..hashing import FileHashCache, hash_value, unhashable_in, use_file_hash_cache
from ..spec.base import Outputs, TaskDef, as_own_task
from ..spec.shell import check_environment
from ..spec.workflow import built
from ..workers import Worker, get_worker
from . import events
from . import runtime as rt
from .job import Job, Outcome, error_info
from .result import JobFailure, Result

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .progress import Progress

__all__ = ["DryRun", "PlannedJob", "Submitter"]

Hook = Callable[[events.Event], Any]
_COUNTS = ("executed", "reused", "failed", "skipped")


class Submitter:
    """Runs tasks on a worker with a cache directory; use it as a context manager.

    ``Submitter(cache_dir=..., worker="serial" | "cf", hooks=[...], progress=True,
    **worker_options)``; ``sub(task)`` returns a :class:`Result`. ``progress`` shows a live
    table of jobs per node on a terminal and a one-line summary at the end (only the summary
    elsewhere); ``progress=False`` turns both off. ``provenance=True`` (the default) records
    every job run as W3C PROV in the cache (see :class:`provgraph.ProvenanceStore`).

    ``environment`` (from :mod:`provgraph.environments`) is where shell tasks' commands run
    when neither the call (``sub(task, environment=...)``) nor the task definition names one;
    each environment used is checked, and described for the provenance, once per submission,
    before any job runs. ``environment_in_hash=True`` makes the environment (runtime, image
    and its digest) part of each shell job's hash, so another image means another job; by
    default (or ``PROVGRAPH_ENVIRONMENT_IN_HASH=0``) it is not, as a result should not depend
    on where it was computed.

    ``provenance_store="http://host:7878"`` (or ``PROVGRAPH_PROVENANCE_STORE``) sends each
    submission's records, at its end, to that SPARQL server (one named graph per run, replaced
    when sent again); a server that is down costs a warning, never the run, and the next
    submission (or ``provgraph push``) sends what is pending. See docs/sharing.md.

    ``readonly_caches=[...]`` are further caches (a lab's shared one) where a job's result is
    looked up when ``cache_dir`` has none; they are never written. The provenance of a result
    taken from one is copied into ``cache_dir``'s store, so lineage stays whole there.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        worker: str | Worker | None = None,
        *,
        hooks: Iterable[Hook] = (),
        progress: Any = True,
        provenance: bool = True,
        environment: Any = None,
        environment_in_hash: bool | None = None,
        readonly_caches: Iterable[str | Path] = (),
        provenance_store: str | None = None,
        cache_root: str | Path | None = None,
        **worker_options: Any,
    ) -> None:
        if cache_root is not None:  # Pydra's name for the cache directory
            if cache_dir is not None and Path(cache_dir) != Path(cache_root):
                raise SpecError(
                    f"cache_dir={str(cache_dir)!r} and cache_root={str(cache_root)!r}: "
                    "cache_root is another name for cache_dir; give one",
                    field="cache_root",
                    value=cache_root,
                )
            cache_dir = cache_root
        config = Config.from_env()
        self.environment = check_environment("environment", environment)
        if environment_in_hash is None:
            environment_in_hash = config.environment_in_hash
        if not isinstance(environment_in_hash, bool):
            raise SpecError(
                f"environment_in_hash={environment_in_hash!r}; expected True or False",
                field="environment_in_hash",
                value=environment_in_hash,
            )
        self.environment_in_hash = environment_in_hash
        self.cache_dir = Path(
            os.path.abspath(cache_dir if cache_dir is not None else config.cache_dir)
        )
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheError(f"cache_dir {str(self.cache_dir)!r} cannot be created: {err}") from err
        if not os.access(self.cache_dir, os.W_OK | os.X_OK):
            raise CacheError(
                f"cache_dir {str(self.cache_dir)!r} is not writable by you; give a cache of "
                "your own, and this one as Submitter(readonly_caches=[...]) to reuse its results"
            )
        records = self.cache_dir / ".provenance"
        if provenance and records.is_dir() and not os.access(records, os.W_OK | os.X_OK):
            raise CacheError(
                f"cache_dir {str(self.cache_dir)!r}: its records folder {str(records)!r} is not "
                "writable by you (a read-only mount, or another user's); give a cache of your "
                "own, and this one as Submitter(readonly_caches=[...]) to reuse its results"
            )
        self.readonly_caches = _readonly_caches(readonly_caches, self.cache_dir)
        try:
            self.worker = get_worker(
                worker if worker is not None else config.worker, **worker_options
            )
        except WorkerError as err:
            if worker is not None or not os.environ.get("PROVGRAPH_WORKER"):
                raise
            # (said of the variable: the caller named no worker)
            raise WorkerError(f"PROVGRAPH_WORKER={config.worker!r}: {err}") from err
        self.hooks: list[Hook] = list(hooks)
        if provenance:
            # imported by name: the engine knows the recorder only as a hook
            recorder = importlib.import_module("provgraph.provenance.recorder")
            remote = provenance_store if provenance_store is not None else config.provenance_store
            self.hooks.append(recorder.Recorder(self.cache_dir, remote=remote))
        self.progress: Progress | None = None
        if progress is not False and progress is not None:
            from .progress import make_progress  # (rich, 30 ms: only for a submitter showing it)

            self.progress = make_progress(progress)
        if self.progress is not None:
            self.progress.capacity_source = self.worker.capacity
            self.hooks.append(self.progress)
        self.file_hashes = FileHashCache(self.cache_dir / ".file-hashes")
        # its hooks and worker serve one submission at a time: calls from several threads wait
        # for each other (a Submitter per thread runs them at once)
        self._one_at_a_time = threading.RLock()
        # hooks that also act in the process that runs each job (the provenance recorder)
        self.job_preparers = [h.prepare_job for h in self.hooks if hasattr(h, "prepare_job")]
        # and that finish what they started, whatever ended a submission (an error included)
        self.submission_closers = [
            h.submission_ended for h in self.hooks if hasattr(h, "submission_ended")
        ]

    def __enter__(self) -> Submitter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release the worker's processes."""
        self.worker.close()

    def emit(self, event: events.Event) -> None:
        """Hand ``event`` to every hook."""
        for hook in self.hooks:
            hook(event)

    @typing.overload
    def __call__(
        self,
        task: TaskDef,
        *,
        environment: Any = None,
        dry_run: typing.Literal[False] = False,
        rerun: bool = False,
        propagate_rerun: bool = True,
    ) -> Result: ...

    @typing.overload
    def __call__(
        self,
        task: TaskDef,
        *,
        environment: Any = None,
        dry_run: typing.Literal[True],
        rerun: bool = False,
        propagate_rerun: bool = True,
    ) -> DryRun: ...

    def __call__(
        self,
        task: TaskDef,
        *,
        environment: Any = None,
        dry_run: bool = False,
        rerun: bool = False,
        propagate_rerun: bool = True,
    ) -> Any:
        """Run ``task`` (a task or a workflow, split or not) and return its :class:`Result`.

        ``environment`` overrides, for this submission, where every shell task's command runs.
        ``dry_run=True`` runs nothing and writes nothing: it returns a :class:`DryRun` saying,
        node by node, which jobs would run, which would be taken from the cache, and which
        cannot be known yet (their inputs come from jobs that would run).
        ``rerun=True`` runs every job again, cached or not (one node:
        ``workflow.add(..., rerun=True)``); each new run replaces the saved result, and its
        record says which run it reran and whether each output came out the same
        (``pg:rerunOf``, ``pg:reproduced``). ``propagate_rerun=False`` (as in Pydra) reruns
        only the submitted task's own jobs: a workflow's result is put together again from
        its nodes, which are taken from the cache.
        """
        environment = check_environment("environment", environment)
        flags = (("dry_run", dry_run), ("rerun", rerun), ("propagate_rerun", propagate_rerun))
        for name, flag in flags:
            if not isinstance(flag, bool):
                raise SpecError(f"{name}={flag!r}; expected True or False", field=name, value=flag)
        with self._one_at_a_time, use_file_hash_cache(self.file_hashes):
            run = _Run(self, task, environment, dry=dry_run, rerun=rerun, propagate=propagate_rerun)
            if dry_run:
                return run.dry_run()
            try:
                with cache.submitting(self.cache_dir):  # no cleanup while it runs
                    return run.execute()
            except KeyboardInterrupt:  # stop now: running jobs are stopped, not waited for
                self.worker.abort()
                self.emit(events.RunInterrupted(run_id=run.run_id))
                raise
            except BaseException:  # an error escaped the engine: the run ends here, and says so
                if run.started and not run.finishing:
                    self.worker.abort()
                    with contextlib.suppress(Exception):  # (the error that escaped goes on)
                        self.emit(events.RunInterrupted(run_id=run.run_id))
                raise
            finally:
                for close in self.submission_closers:
                    close()
                if self.progress is not None:
                    self.progress.close()


class _Run:
    """One submission."""

    def __init__(
        self,
        sub: Submitter,
        task: TaskDef,
        environment: Any = None,
        *,
        dry: bool = False,
        rerun: bool = False,
        propagate: bool = True,
    ) -> None:
        task = built(as_own_task(task))
        if not isinstance(task, TaskDef):
            raise SpecError(
                f"cannot submit {task!r} ({type(task).__name__}); expected a task instance, "
                "e.g. AddTwo(a=1)",
                value=task,
            )
        self.sub = sub
        self.dry = dry  # a dry run: nothing runs, nothing is written, no hook hears of it
        self.rerun = rerun  # every job runs again, cached or not
        self.propagate = propagate  # False: only the submitted node's own jobs rerun
        self.emit: Any = (lambda event: None) if dry else sub.emit
        self.task = task
        self.run_id = f"urn:uuid:{rt.new_run_id()}"
        self.memo: dict[int, bytes] = {}
        self.environment = environment  # the call's; wins over the task's and the submitter's
        self.env_info: dict[Any, dict[str, str] | None] = {}  # described once per submission
        self.env_digests: dict[int, bytes | None] = {}  # per task class, when in the hash
        self.ready: collections.deque[rt.JobRun] = collections.deque()
        self.round_checked = 0  # jobs of this round looked up in the cache
        self.round_sent = 0  # ... and of those, sent to the worker
        self.waiting: dict[Future[Any], rt.JobRun] = {}
        self.listing = cache.Listing(sub.cache_dir)  # job directories known to be absent
        self.completed: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self.failures: list[JobFailure] = []
        self._to_expand: collections.deque[rt.NodeRun] = collections.deque()
        self._expanding = False
        self.node_stats: dict[str, dict[str, int]] = {}
        self.root = rt.root_node(task, rt.new_run_id())
        self._split_dir: Path | None = None  # a split root's own directory, once named
        self.started = self.finishing = False  # its start, and its end, said to the hooks

    # -- the run loop ----------------------------------------------------------------------------
    def execute(self) -> Result:
        self._prepare_root()
        root = self.root
        self.emit(
            events.RunStarted(
                run_id=self.run_id,
                task_name=root.name,
                output_dir=self._root_dir(),
                n_jobs=len(root.jobs),
                workflow_run=root.instance.run_id,
                task=self.task,
            )
        )
        self.started = True
        self._expanded(root)
        self.ready.extend(root.jobs)
        if not root.jobs:
            self._node_complete(root)
        while True:
            self.round_checked = self.round_sent = 0
            while self.ready:
                self._dispatch(self.ready.popleft())
            self.sub.worker.flush()
            if not self.waiting:
                break
            future = self.completed.get()  # the next job to finish
            while True:
                self._finish_atomic(self.waiting.pop(future), future.result())
                try:  # and every other that finished meanwhile
                    future = self.completed.get_nowait()
                except queue.Empty:
                    break
        if not root.complete:  # pragma: no cover - a scheduling bug, never a user error
            raise ProvgraphError(f"internal error: submission of {root.name} stopped unfinished")
        result = self._result()
        self.finishing = True
        outputs = sources = None
        if not result.errored:  # the whole's outputs, and the job output each is (one job's)
            outputs = {name: result.outputs[name] for name in result.outputs}
            one = root.jobs[0] if len(root.jobs) == 1 else None
            sources = {name: rt.job_sources(one, name) if one else [] for name in outputs}
        self.emit(
            events.RunFinished(
                run_id=self.run_id,
                task_name=root.name,
                executed=result.stats["executed"],
                reused=result.stats["reused"],
                failed=result.stats["failed"],
                skipped=result.stats["skipped"],
                workflow_run=root.instance.run_id,
                outputs=outputs,
                output_sources=sources,
            )
        )
        return result

    def _expected_more(self) -> int:
        """How many more jobs this round is likely to send to the worker, besides the one about
        to be sent: those still ready, at the share of the jobs checked so far (this one
        included) that missed the cache."""
        return len(self.ready) * (self.round_sent + 1) // max(1, self.round_checked)

    def _prepare_root(self) -> None:
        """Expand the submitted task and hash its jobs: bad input raises before anything runs."""
        root = self.root
        for field, lazy in lazy_inputs(self.task):
            raise SpecError(
                f"{root.name}: input {field!r} is connected to {lazy.label}; submit the workflow "
                "that holds both",
                field=field,
            )
        for path, task in rt.tasks_within(self.task):  # a missing runtime or image stops us
            self._describe(self._environment_of(task))
            _check_hashable_inputs(path or root.name, task)
        rt.prepare_fixed(root)
        rt.expand_node(root)
        for job in root.jobs:
            self._identify(job)

    def _identify(self, job: rt.JobRun) -> None:
        rt.resolve_inputs(job)
        job.environment = self._environment_of(job.node.task)
        job.environment_info = self._describe(job.environment)
        job.job_hash = rt.hash_job(job, self.memo, self._environment_digest(job.node.task))
        job.digests = None  # (what the hash was made of: not kept for the rest of the run)
        job.output_dir = cache.job_dir(
            self.sub.cache_dir, type(job.node.task)._task_name, job.job_hash
        )

    # -- environments ------------------------------------------------------------------------
    def _environment_of(self, task: TaskDef) -> Any:
        """Where a shell task's command runs: the call's, else the task's, else the
        submitter's environment (None: natively). Python tasks and workflows have none."""
        if type(task)._kind != "shell":
            return None
        own = getattr(type(task), "_environment", None)
        for env in (self.environment, own, self.sub.environment):
            if env is not None:
                return env
        return None

    def _describe(self, env: Any) -> dict[str, str] | None:
        """The environment's description, asked of its runtime once per submission."""
        if env is None:
            return None
        if env not in self.env_info:
            self.env_info[env] = env.describe()
        return self.env_info[env]

    def _environment_digest(self, task: TaskDef) -> bytes | None:
        """What the environment adds to the hash of ``task``'s jobs, when it is in the hash;
        a workflow's jobs take in the environments of the shell tasks inside it."""
        if not self.sub.environment_in_hash:
            return None
        key = id(type(task))
        if key not in self.env_digests:
            found = []  # which node runs where: moving an image to another node is a change
            for path, inner in rt.tasks_within(task):
                info = self._describe(self._environment_of(inner))
                if info is not None:
                    found.append((path, rt.environment_digest(info)))
            self.env_digests[key] = None if not found else hash_value(sorted(found))
        return self.env_digests[key]

    def _root_dir(self) -> Path:
        root = self.root
        if root.expansion_is_single:
            assert root.jobs[0].output_dir is not None
            return root.jobs[0].output_dir  # (a read-only cache's, once found there)
        if self._split_dir is None:  # (named by every element's job hash: made once)
            name = rt.split_name(root, self.memo)
            self._split_dir = cache.job_dir(self.sub.cache_dir, root.name, name)
        return self._split_dir

    # -- jobs ----------------------------------------------------------------------------------
    def _dispatch(self, job: rt.JobRun) -> None:
        if job.done:
            return
        if job.job_hash is None:
            try:
                self._identify(job)
            except (SpecError, HashingError) as err:
                self._fail(job, type(err).__name__, str(err), "")
                return
        assert job.output_dir is not None
        kind = type(job.node.task)._kind
        rerun = self._rerun(job)
        if kind != "workflow" and not rerun and self.listing.lacks(job.output_dir):
            stored = None  # (a job sent to the worker: one saved meanwhile is found there)
        else:
            stored = cache.read_result(job.output_dir)
            if stored is None:
                self.listing.missed()
        if stored is None and self.sub.readonly_caches and not rerun:
            stored = self._read_only_hit(job)
        if stored is not None and rerun:
            job.replaces = stored  # run again; the record compares the outputs with these
            stored = None
        if stored is not None and kind == "workflow" and _always_opened(type(job.node.task)):
            stored = None  # nodes that always run again, or a graph built per job: opened
        if kind != "workflow":  # (a workflow job opens: never sent)
            self.round_checked += 1
        if stored is not None:
            job.outputs = stored.outputs
            job.run_id = stored.run_id
            job.output_sources = stored.sources
            job.status = "succeeded"
            self._count(job, "reused")
            self.emit(events.JobReused(run_id=self.run_id, job=job, outcome=stored))
            self._complete(job)
            return
        if kind == "workflow":
            self._open(job)
            return
        if self.dry:  # it would run: what needs its outputs cannot be known yet
            job.status = "would run"
            self._count(job, "executed")
            self._complete(job)
            return
        assert job.inputs is not None and job.job_hash is not None
        job.run_id = rt.new_run_id()
        context: dict[str, Any] = {}
        after = []
        for prepare in self.sub.job_preparers:
            more, hook = prepare(job)
            context.update(more)
            after.append(hook)
        job.job = Job(
            task_cls=type(job.node.task),
            inputs=job.inputs,
            job_hash=job.job_hash,
            output_dir=job.output_dir,
            index=job.index,
            run_id=job.run_id,
            context=context or None,
            after=tuple(after),
            environment=(
                job.environment.pinned(job.environment_info)
                if job.environment is not None and job.environment_info is not None
                else job.environment
            ),
            replaces=job.replaces.run_id if job.replaces is not None else None,
        )
        job.status = "running"
        self.listing.made(job.output_dir)
        self.sub.worker.expect(self._expected_more())  # (a job taken from the cache: no hint)
        self.round_sent += 1
        future = self.sub.worker.submit(job.job)
        self.emit(events.JobSubmitted(run_id=self.run_id, job=job))
        if future.done():
            self._finish_atomic(job, future.result())
        else:
            self.waiting[future] = job
            future.add_done_callback(self.completed.put)

    def _rerun(self, job: rt.JobRun) -> bool:
        """Whether ``job`` runs again even if cached: the submission's ``rerun``, or its node's
        ``workflow.add(..., rerun=True)`` (or an enclosing workflow node's)."""
        if self.rerun and (self.propagate or job.node.instance.parent is None):
            return True
        return job.node.rerun

    def _read_only_hit(self, job: rt.JobRun) -> cache.StoredResult | None:
        """The job's result in a read-only cache, if one has it; the job then points there."""
        assert job.output_dir is not None
        for other in self.sub.readonly_caches:
            directory = other / job.output_dir.name
            stored = cache.read_result(directory)
            if stored is not None:
                job.output_dir = directory
                return stored
        return None

    def _finish_atomic(self, job: rt.JobRun, outcome: Outcome) -> None:
        job.outcome = outcome
        if not outcome.executed:  # another process ran it meanwhile
            job.run_id = outcome.run_id
        for warning in outcome.warnings:
            print(f"provgraph: warning: job {job.label}: {warning}", file=sys.stderr)
        self.emit(events.JobFinished(run_id=self.run_id, job=job, outcome=outcome))
        if outcome.ok:
            job.outputs = outcome.outputs
            job.status = "succeeded"
            self._count(job, "executed" if outcome.executed else "reused")
            self._complete(job)
        else:
            error = outcome.error
            assert error is not None
            self._fail(job, error.type, error.message, error.traceback)

    def _fail(self, job: rt.JobRun, kind: str, message: str, traceback: str) -> None:
        job.status = "failed"
        self._count(job, "failed")
        self.failures.append(self._failure(job, kind, message, traceback or message))
        self._complete(job)

    def _failure(self, job: rt.JobRun, kind: str, message: str, traceback: str) -> JobFailure:
        split = set(job.node.task.split_fields)
        inputs = job.inputs or {}
        return JobFailure(
            task_name=type(job.node.task)._task_name,
            node=job.node.path,
            job_hash=job.job_hash or "",
            output_dir=job.output_dir,
            index=job.index,
            inputs={k: v for k, v in inputs.items() if k in split} if split else dict(inputs),
            error_type=kind,
            message=message,
            traceback=traceback,
            status=job.status,
            cause=job.cause.label if job.cause is not None else None,
        )

    def _count(self, job: rt.JobRun, what: str) -> None:
        stats = self.node_stats.get(job.node.path)
        if stats is None:
            stats = self.node_stats[job.node.path] = dict.fromkeys(_COUNTS, 0)
        stats[what] += 1

    def _complete(self, first: rt.JobRun) -> None:
        """Release the dependents of finished jobs; skip those downstream of a failure."""
        stack = [first]
        while stack:
            job = stack.pop()
            if job.status == "succeeded":
                job.job = None  # what the worker needed; outputs stay for downstream jobs
                job.outcome = None  # (hooks had it: about 600 bytes a job, kept to the end)
                for dep in job.dependents:
                    dep.n_wait -= 1
                    if dep.n_wait == 0 and dep.status == "waiting":
                        if dep.cause is not None:
                            stack.append(self._skip(dep, dep.cause))
                        else:
                            dep.status = "ready"
                            self.ready.appendleft(dep)
            else:
                cause = job.cause or job
                for dep in job.dependents:
                    if not dep.done:
                        stack.append(self._skip(dep, cause))
            node = job.node
            node.n_unfinished -= 1
            if node.n_unfinished == 0:
                self._node_complete(node)

    def _skip(self, job: rt.JobRun, cause: rt.JobRun) -> rt.JobRun:
        job.status = "skipped"
        job.cause = cause
        self._count(job, "skipped")
        self.emit(events.JobSkipped(run_id=self.run_id, job=job, cause=cause))
        why = "runs" if cause.status == "would run" else "failed"
        self.failures.append(
            self._failure(job, "Skipped", f"skipped because upstream job {cause.label} {why}", "")
        )
        return job

    # -- nodes and workflow instances --------------------------------------------------------
    def _node_complete(self, node: rt.NodeRun) -> None:
        node.complete = True
        for down in node.downstream:
            self._try_expand(down)
        instance = node.instance
        instance.n_incomplete -= 1
        if instance.n_incomplete == 0 and instance.parent is not None:
            self._instance_done(instance)

    def _open(self, job: rt.JobRun) -> None:
        job.status = "running"
        job.run_id = rt.new_run_id()
        self.emit(events.JobSubmitted(run_id=self.run_id, job=job))
        try:
            instance = rt.open_instance(job)
        except Exception as err:  # a dynamic workflow's constructor failed on these values
            self._fail(job, type(err).__name__, str(err), error_info(err).traceback)
            return
        if not instance.nodes:
            self._instance_done(instance)
            return
        for node in instance.nodes.values():
            self._try_expand(node)

    def _try_expand(self, node: rt.NodeRun) -> None:
        """Expand ``node`` if it can be; nodes this makes expandable follow (a worklist, so
        long chains of nodes need no deep recursion)."""
        self._to_expand.append(node)
        if self._expanding:
            return
        self._expanding = True
        try:
            while self._to_expand:
                self._expand_one(self._to_expand.popleft())
        finally:
            self._expanding = False

    def _expand_one(self, node: rt.NodeRun) -> None:
        if node.expansion is not None or node.complete:
            return
        if any(True for _ in rt.blocked_by(node)):
            return
        split = set(node.task.split_fields)
        for field, lazy in lazy_inputs(node.task):
            if field in split and lazy.node is not None:
                up = node.upstream[lazy.node]
                bad = next((j for j in up.jobs if j.status != "succeeded"), None)
                if bad is not None:
                    self._node_fails(node, bad.cause or bad, f"its split input {lazy.label} failed")
                    return
        try:
            rt.prepare_fixed(node)
            rt.expand_node(node)
        except ProvgraphError as err:
            self._node_fails(node, None, f"{type(err).__name__}: {err}")
            return
        self._expanded(node)
        for job in node.jobs:
            if job.cause is not None and job.n_wait == 0:
                self._skip(job, job.cause)
                self._complete(job)
            elif job.n_wait == 0:
                job.status = "ready"
                self.ready.append(job)
        for down in node.downstream:
            self._try_expand(down)
        if not node.jobs:
            self._node_complete(node)

    def _expanded(self, node: rt.NodeRun) -> None:
        self.emit(events.NodeExpanded(run_id=self.run_id, node=node.path, n_jobs=len(node.jobs)))

    def _node_fails(self, node: rt.NodeRun, cause: rt.JobRun | None, why: str) -> None:
        """A node that cannot even be expanded: one failure for it, and it counts as done."""
        placeholder = rt.JobRun(node, 0, {})
        placeholder.status = "skipped" if cause is not None else "failed"
        placeholder.cause = cause
        node.jobs = [placeholder]
        node.n_unfinished = 1
        node.expansion_is_single = True
        node.space = None
        self._count(placeholder, placeholder.status)
        kind = "Skipped" if cause is not None else "NodeError"
        self.failures.append(self._failure(placeholder, kind, f"node {node.path}: {why}", ""))
        node.expansion = rt._state.Expansion((), [()], [{}])
        node.space = rt._state.Space((), [()], {(): [0]})
        self._expanded(node)
        self.emit(events.JobSkipped(run_id=self.run_id, job=placeholder, cause=cause))
        self._complete(placeholder)

    def _instance_done(self, instance: rt.Instance) -> None:
        parent = instance.parent
        assert parent is not None and parent.output_dir is not None
        inner_failure = next(
            (j for n in instance.nodes.values() for j in n.jobs if j.status != "succeeded"), None
        )
        if inner_failure is not None:
            parent.status = "failed"
            parent.cause = inner_failure.cause or inner_failure
            self.emit(events.WorkflowFinished(run_id=self.run_id, job=parent, ok=False))
            self._complete(parent)
            return
        outputs = rt.instance_outputs(instance, parent.graph)
        wrong = rt.output_type_error(instance, parent.graph, outputs)
        if wrong is not None:  # (a TypeError, as Pydra raises it)
            self._fail(parent, "SpecError", wrong, "")
            return
        parent.outputs = outputs
        parent.output_sources = rt.instance_output_sources(instance, parent.graph)
        parent.status = "succeeded"
        if self.dry:  # (every job inside came from the cache)
            self.emit(events.WorkflowFinished(run_id=self.run_id, job=parent, ok=True))
            self._complete(parent)
            return
        parent.output_dir.mkdir(parents=True, exist_ok=True)
        cache.write_result(
            parent.output_dir,
            cache.StoredResult(
                outputs=outputs,
                task_name=parent.node.task._task_name,
                job_hash=parent.job_hash or "",
                started=0.0,
                ended=0.0,
                host="",
                pid=0,
                run_id=parent.run_id,
                sources=parent.output_sources,
            ),
        )
        self.emit(events.WorkflowFinished(run_id=self.run_id, job=parent, ok=True))
        parent.inner = None  # the instance's jobs are no longer needed
        self._complete(parent)

    # -- the result ----------------------------------------------------------------------------
    def _result(self) -> Result:
        root = self.root
        names = list(type(self.task)._output_fields)
        values = {n: root.result_value(n) for n in names}
        totals = dict.fromkeys(_COUNTS, 0)
        for stats in self.node_stats.values():
            for key, count in stats.items():
                totals[key] += count
        output_dir = self._root_dir()
        result = Result(
            outputs=getattr(type(self.task), "_outputs_class", Outputs)(values),
            output_dir=output_dir,
            errors=self.failures,
            stats=totals,
            node_stats=self.node_stats,
            job_dirs=[j.output_dir for j in root.jobs if j.output_dir is not None],
        )
        if not root.expansion_is_single and not self.dry:
            _write_split_record(self, result)
        return result

    def dry_run(self) -> DryRun:
        """Plan the submission as :meth:`execute` would run it, running and writing nothing."""
        self.execute()
        jobs = []
        for node in _nodes(self.root):
            for job in node.jobs:
                if job.node.task._kind == "workflow" and job.inner is not None:
                    continue  # opened: its own jobs say what it would do
                jobs.append(_planned(job))
        return DryRun(task=self.root.name, jobs=jobs)


def _check_hashable_inputs(where: str, task: TaskDef) -> None:
    """An input whose annotation names a type provgraph cannot hash fails now, before any job
    runs, rather than when the jobs upstream of it have run."""
    for name, field in type(task)._input_fields.items():
        bad = unhashable_in(field.type)
        if bad is not None:
            raise HashingError(
                f"{where}: input {name!r} is annotated {field.type!r}, and provgraph has no "
                f"hash rule for {bad.__module__}.{bad.__qualname__}: register one with "
                "@provgraph.hash_value.register (see docs/tasks.md, 'Values provgraph can hash')"
            )


def _always_opened(task_cls: Any) -> bool:
    """Whether a workflow's saved result is never reused whole, but the workflow opened again
    (its jobs reused one by one): it (or one nested in it) has nodes added with
    ``rerun=True``, or is a dynamic workflow built per job, whose job hash cannot cover the
    graph its values build (so not a change in the tasks inside it either)."""
    if getattr(task_cls, "_kind", "") != "workflow":
        return False
    if getattr(task_cls, "_rerun_nodes", ()) or task_cls._graph is None:
        return True
    return any(_always_opened(type(t)) for t in getattr(task_cls, "_nodes", {}).values())


def _nodes(root: rt.NodeRun) -> Iterator[rt.NodeRun]:
    """Every node of the submission, nested ones after their workflow job."""
    yield root
    for job in root.jobs:
        inner = getattr(job, "inner", None)
        if inner is not None:
            for node in inner.nodes.values():
                yield from _nodes(node)


def _planned(job: rt.JobRun) -> PlannedJob:
    action = {"succeeded": "reuse", "would run": "run", "skipped": "wait"}.get(job.status, "error")
    cause = job.cause.label if job.cause is not None else None
    return PlannedJob(
        node=job.node.path,
        index=job.index,
        job_hash=job.job_hash,
        action=action,
        waits_for=cause if action == "wait" else None,
    )


@attrs.frozen
class PlannedJob:
    """One job of a dry run: ``action`` is ``"run"``, ``"reuse"`` (its result is in the cache),
    ``"wait"`` (its inputs come from ``waits_for``, a job that would run, so its hash and fate
    cannot be known yet) or ``"error"`` (it could not even be prepared)."""

    node: str
    index: int
    job_hash: str | None
    action: str
    waits_for: str | None = None


@attrs.frozen
class DryRun:
    """What a submission would do: its jobs, and counts per node (``by_node``) and in all."""

    task: str
    jobs: list[PlannedJob]

    @property
    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(("run", "reuse", "wait", "error"), 0)
        for job in self.jobs:
            totals[job.action] += 1
        return totals

    @property
    def by_node(self) -> dict[str, dict[str, int]]:
        nodes: dict[str, dict[str, int]] = {}
        for job in self.jobs:
            counts = nodes.setdefault(job.node, dict.fromkeys(("run", "reuse", "wait", "error"), 0))
            counts[job.action] += 1
        return nodes

    def __str__(self) -> str:
        lines = [f"dry run of {self.task}: nothing ran, nothing was written"]
        width = max((len(n) for n in self.by_node), default=4)
        lines.append(f"  {'node':{width}}  run  reuse  wait  error")
        for node, c in self.by_node.items():
            lines.append(
                f"  {node:{width}}  {c['run']:>3}  {c['reuse']:>5}  {c['wait']:>4}  {c['error']:>5}"
            )
        waiting = sorted({j.waits_for for j in self.jobs if j.waits_for})
        if waiting:
            lines.append(
                "  'wait': its inputs come from a job that would run: " + ", ".join(waiting[:5])
            )
        return "\n".join(lines)


def _readonly_caches(given: Iterable[str | Path], own: Path) -> tuple[Path, ...]:
    """The read-only caches, checked: existing directories, other than ``own`` (one path is a
    list of one, as in Pydra)."""
    if isinstance(given, (str, os.PathLike)):
        given = [given]
    found = []
    for item in given:
        path = Path(os.path.abspath(item))
        if not path.is_dir():
            raise CacheError(f"readonly_caches: {str(path)!r} is not a directory")
        if path != own:
            found.append(path)
    return tuple(found)


def _write_split_record(run: _Run, result: Result) -> None:
    """The split task's own directory: its element jobs and, when all succeeded, its result."""
    import json  # (not imported by every import of provgraph)

    directory = result.output_dir
    directory.mkdir(parents=True, exist_ok=True)
    listing = {
        "splitter": repr(run.task.splitter),
        "combiner": run.task.combiner,
        "jobs": [d.name for d in result.job_dirs],
        "failed": [e.output_dir.name for e in result.errors if e.output_dir is not None],
    }
    cache.atomic_write(directory / "_jobs.json", json.dumps(listing, indent=1).encode())
    # (whether a result is there: its outputs, each element's, are not looked at again)
    if not result.errored and cache.read_result_and_record(directory, outputs=False) is None:
        cache.write_result(
            directory,
            cache.StoredResult(
                outputs=result.outputs.asdict(),
                task_name=run.root.name,
                job_hash=directory.name.rsplit("-", 1)[-1],
                started=0.0,
                ended=0.0,
                host="",
                pid=0,
                run_id=run.root.instance.run_id,
            ),
        )
