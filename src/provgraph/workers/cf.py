"""The ``cf`` worker: a local pool of processes (``concurrent.futures.ProcessPoolExecutor``).

Jobs are sent in batches (one pickled message runs several jobs) to keep the per-job cost
near that of a bare pool. A task class is pickled once per batch and unpickled once per
process. Told how many more jobs a round is expected to bring (:meth:`expect`, before each
job), the worker sends a batch as soon as the buffer holds one of the size the round would give
it, while the pool has room: the pool starts with the first job that must run, and works while
the submitter prepares the rest.

A pool process that dies mid-job (killed, out of memory) breaks the whole executor, and every
job in flight with it. The worker then replaces the pool and sorts the lost jobs: one whose
result exists finished; one whose lock was left behind was running, and is retried alone
(``max_retries`` times, then reported failed by name); the rest never started and are sent
again as they were. So a crash costs no other job.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

import cloudpickle

from .. import cache
from ..engine.job import Job, Outcome, outcome_from_stored
from ..exceptions import WorkerError
from ._payload import Packer, failed_outcome, run_packed
from .base import BufferedWorker, batch_size

__all__ = ["ConcurrentFuturesWorker"]

_Item = tuple[Job, "Future[Outcome]"]


class ConcurrentFuturesWorker(BufferedWorker):
    """Runs jobs on ``n_procs`` local processes."""

    name = "cf"

    def __init__(
        self,
        n_procs: int | None = None,
        *,
        max_retries: int = 1,
        max_batch: int = 32,
        mp_context: str | None = None,
    ) -> None:
        super().__init__()
        for label, value in (("n_procs", n_procs), ("max_batch", max_batch)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise WorkerError(f"cf worker: {label}={value!r}; expected a positive integer")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise WorkerError(f"cf worker: max_retries={max_retries!r}; expected an integer >= 0")
        self.n_procs = n_procs or os.cpu_count() or 1
        self.max_retries = max_retries
        self.max_batch = max_batch
        self._ctx = multiprocessing.get_context(mp_context)
        self._pool: ProcessPoolExecutor | None = None
        self._queue: deque[list[_Item]] = deque()
        self._suspects: deque[_Item] = deque()
        self._in_flight = 0
        self._suspect_in_flight = False
        self._attempts: dict[str, int] = {}
        self._killed: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # by abort()
        self._packer = Packer()
        self.pools_replaced = 0
        self._aborted = False  # interrupted: no pool is started again

    # -- the contract ---------------------------------------------------------------------------
    def capacity(self) -> int | None:
        return self.n_procs

    def expect(self, n_jobs: int) -> None:
        with self._lock:
            self._aborted = False  # a submission is dispatching: after an interrupted one
            super().expect(n_jobs)

    def submit(self, job: Any) -> Future[Any]:
        """Buffered; while the pool has room, a batch is sent as soon as the buffer holds one
        of the size the whole round is expected to give (never larger: see ``expect``)."""
        future = super().submit(job)
        with self._lock:
            if self._queue or self._in_flight >= self.n_procs * 2:
                return future  # the pool is busy: what comes is batched later
            batch = self._full_batch(self.n_procs, self.max_batch)
            if batch:
                self._queue.append(batch)
                self._pump()
        return future

    def flush(self) -> None:
        buffer, sent = self._end_round()
        with self._lock:
            self._aborted = False  # a new round: a submission after an interrupted one
            size = batch_size(sent + len(buffer), self.n_procs, self.max_batch)
            for i in range(0, len(buffer), size):
                self._queue.append(buffer[i : i + size])
            self._pump()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Kill the pool's processes (their jobs' locks are freed by the kernel, and the next
        run of each records it as interrupted), then let the pool go without waiting. Jobs
        not sent yet fail as not run, and so do those of the killed pool that its recovery
        would send again: none of them runs in a later submission."""
        with self._lock:
            self._aborted = True
            pool, self._pool = self._pool, None
            waiting = [*self._end_round()[0], *self._suspects, *(i for b in self._queue for i in b)]
            self._queue.clear()
            self._suspects.clear()
            if pool is not None:
                self._killed.add(pool)
        _not_run(waiting)
        if pool is None:
            return
        _kill_processes(pool)
        pool.shutdown(wait=False, cancel_futures=True)

    # -- dispatch -------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Send what may be sent now. Suspects of a crash run alone, one at a time."""
        while True:
            if self._suspect_in_flight:
                return
            if self._suspects:
                if self._in_flight:
                    return
                self._send([self._suspects.popleft()], suspect=True)
                return
            if not self._queue or self._in_flight >= self.n_procs * 2:
                return
            self._send(self._queue.popleft())

    def _payload(self, batch: list[_Item]) -> bytes:
        return self._packer.pack((job for job, _ in batch), {"worker": self.name})

    def _send(self, batch: list[_Item], suspect: bool = False) -> None:
        try:
            payload = self._payload(batch)
        except Exception as err:
            for job, future in batch:
                future.set_result(_failed(job, "cannot send the job to a pool process", err))
            return
        if self._aborted:
            _not_run(batch)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.n_procs,
                mp_context=self._ctx,
                initializer=_pool_process_setup,
                initargs=(os.getpid(),),
            )
        pool = self._pool
        try:
            pool_future = pool.submit(run_packed, payload)
        except (BrokenProcessPool, RuntimeError):
            self._pool = None
            self._queue.appendleft(batch)
            return
        self._in_flight += 1
        self._suspect_in_flight = self._suspect_in_flight or suspect
        pool_future.add_done_callback(partial(self._done, batch, pool, suspect))

    def _done(
        self, batch: list[_Item], pool: ProcessPoolExecutor, suspect: bool, pf: Future[Any]
    ) -> None:
        if pf.cancelled():  # close() cancelled it before it started: it never ran
            err: BaseException | None = WorkerError("the worker was closed before the job started")
        else:
            err = pf.exception()
        if isinstance(err, BrokenProcessPool):
            # Recover outside the pool's own thread: it is tearing that pool down.
            threading.Thread(target=self._recover, args=(batch, pool, suspect), daemon=True).start()
            return
        with self._lock:
            self._in_flight -= 1
            if suspect:
                self._suspect_in_flight = False
            outcomes: list[Outcome] = []
            if err is None:
                try:
                    outcomes = cloudpickle.loads(pf.result())
                except Exception as unreadable:  # (never left unanswered: sub() would wait)
                    err = unreadable
                    what = "the pool ran the job, but its outcome cannot be read here"
            else:
                what = "the pool could not run the job"
            if err is not None:
                for job, future in batch:
                    future.set_result(_failed(job, what, err))
            else:
                for (job, future), outcome in zip(batch, outcomes, strict=True):
                    self._attempts.pop(job.job_hash, None)  # a later loss starts afresh
                    future.set_result(outcome)
            self._pump()

    def _recover(self, batch: list[_Item], pool: ProcessPoolExecutor, suspect: bool) -> None:
        # the broken pool's other processes may still be running jobs: gone before the locks
        # are read, so that a running job is not taken for one that never started
        _kill_processes(pool)
        with self._lock:
            self._in_flight -= 1
            if suspect:
                self._suspect_in_flight = False
            if self._pool is pool:
                self._pool = None
                self.pools_replaced += 1
                pool.shutdown(wait=False)
            if pool in self._killed:  # interrupted: nothing of it runs again
                _not_run(batch)
                return
            resend: list[_Item] = []
            for job, future in batch:
                stored = cache.read_result(job.output_dir)
                if stored is not None:  # ours, or another process's that finished it
                    ours = stored.run_id == job.run_id
                    future.set_result(outcome_from_stored(stored, executed=ours))
                elif cache.lock_was_abandoned(job.output_dir):
                    attempts = self._attempts[job.job_hash] = (
                        self._attempts.get(job.job_hash, 0) + 1
                    )
                    if attempts > self.max_retries:
                        self._attempts.pop(job.job_hash, None)
                        future.set_result(_lost(job, attempts))
                    else:
                        self._suspects.append((job, future))
                else:
                    resend.append((job, future))
            if resend:
                self._queue.appendleft(resend)
            self._pump()


def _kill_processes(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's processes and wait for them (a pool being given up)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


_WATCH_SECONDS = 0.5


def _dropped(signum: int, frame: Any) -> None:
    """Ctrl-C in a pool process: nothing (the submitter stops the pool)."""


def _pool_process_setup(submitter: int) -> None:
    """In each pool process: leave Ctrl-C to the submitter (which stops the pool), and exit
    when the submitter is gone (killed), instead of living on holding its pipes.

    Ctrl-C is caught and dropped rather than ignored: an ignored signal stays ignored in the
    commands a shell task starts, a caught one is reset for them, so they stop on Ctrl-C. The
    watch follows this process's own parent (the submitter, or a fork server that ends with
    it) and the submitter itself."""
    signal.signal(signal.SIGINT, _dropped)
    parent = os.getppid()

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def watch() -> None:
        while os.getppid() == parent and not gone(submitter):
            time.sleep(_WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="provgraph-parent-watch", daemon=True).start()


def _failed(job: Job, what: str, err: BaseException) -> Outcome:
    return failed_outcome(job, type(err).__name__, f"{what}: {err}", worker="cf")


def _not_run(items: list[_Item]) -> None:
    """Jobs of an interrupted submission that never ran: failed so."""
    for job, future in items:
        if not future.done():
            error = WorkerError("the submission was interrupted")
            future.set_result(_failed(job, "the job was not run", error))


def _lost(job: Job, attempts: int) -> Outcome:
    message = (
        f"the pool process running job {job.name} died (killed, or out of memory) "
        f"{attempts} time(s); not retried again"
    )
    return failed_outcome(job, "WorkerError", message, worker="cf")
