"""Job records written beside the run, not on its path: the serial worker's records.

A job that runs in the submitting process (the ``serial`` worker) would otherwise wait for its
record to be rendered as TriG before its result is saved, about half of the engine's time per
job. Instead, for a Python task that succeeded, the hook (:class:`DeferredRecords`) stores what
the record needs besides the result (:func:`.record.record_data`: the provenance context, the
environment, the rerun files' pointers) *with* the result, in the same sealed file and the same
atomic rename. Once the result is saved, the job's directory and the result's bytes are
handed to a renderer process, forked from this one (once, and kept: :class:`_Renderer`), which
writes the record from the result alone (:func:`.record.publish_from_result`) while the next
jobs run. The submission waits for the renderer before it ends: when ``sub()`` returns, every
record is on disk.

Nothing is lost if either process dies. A result saved with its record data is a record still
to write: the index's catch-up writes it (:func:`.record.finish_abandoned`), as it finishes
records left aside, and so does the submitting process when its renderer died. A record says
"succeeded" only when written from a saved result, so the invariant of
``docs/design/provenance.md`` holds as before.

Only where it pays and is safe: on Linux (``fork``), with two CPUs or more, once the process
has forked its renderer, or after the first :data:`START_AFTER` such jobs of a submission (a
small one never forks: a first fork costs about 10 ms in copied pages), or after the first
:data:`EARLY` of a submission expected to run :data:`START_AFTER` jobs or more
(:meth:`DeferredRecords.expect`: one that size pays for the fork); failed runs, shell tasks,
runs sent to a provenance server and everything run by other workers are written as before,
in the process that ran the job. A hook pickled for another process is the plain writer.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from .record import publish_from_result, record_data, write_job_run

__all__ = ["BATCH", "EARLY", "START_AFTER", "DeferredRecords", "available"]

START_AFTER = 256  # records of a submission written as before until a renderer is forked
EARLY = 16  # ... of a submission expected to run START_AFTER jobs or more
BATCH = 16  # saved results handed to the renderer per message


def available() -> bool:
    """Whether records can be written by a forked renderer here: Linux, two CPUs or more, and
    not inside a daemonic process (a ``multiprocessing`` pool's, which may have no children)."""
    pool = sys.modules.get("multiprocessing")  # (a process it started has it: not imported here)
    if sys.platform != "linux" or (pool is not None and pool.current_process().daemon):
        return False
    return len(os.sched_getaffinity(0)) >= 2


def _plain_writer() -> Any:
    return write_job_run


class DeferredRecords:
    """The job hook of the submitting process: records of succeeded Python runs are written
    from their saved results by the renderer process; the rest as :func:`write_job_run`."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._sent: list[tuple[str, str]] = []  # (job directory, run) handed over, this submission
        self._batch: list[tuple[str, bytes | None]] = []  # not sent to the renderer yet
        self._renderer: _Renderer | None = None  # this submission's, once handed a record
        self._broken = False  # its renderer failed it: what was handed over is written here
        self._given_up = False  # its renderer died: the rest of the submission is written here
        self._seen = 0  # succeeded Python jobs of this submission so far
        self._expected = 0  # the jobs this submission was started with (a hint: expect())
        self._reused: Callable[[], int] = lambda: 0  # ... and how many it took from the cache
        self._lock = threading.Lock()
        self.handed = 0  # records handed to a renderer (for the curious and the tests)
        self.failures = 0  # submissions whose renderer failed (their records written here)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_plain_writer, ())  # sent to another process: that process writes its records

    def __call__(self, job: Any, outcome: Any) -> Any:
        context = job.context
        if (
            context is None
            or not job.run_id
            or not outcome.ok
            or outcome.stale_lock
            or os.getpid() != self._pid
            or getattr(job.task_cls, "_kind", "") != "python"
            or context.get("remote")
            or context.get("record_dir")
        ):
            return write_job_run(job, outcome)
        with self._lock:
            self._seen += 1
            if self._seen <= START_AFTER and not _forked() and not self._runs_many():
                return write_job_run(job, outcome)  # (a small submission never forks)
        try:
            data = record_data(job, outcome)
        except Exception:  # (unpicklable context: never expected) written here, as before
            return write_job_run(job, outcome)
        return _Deferred(data, os.fspath(job.output_dir), job.run_id, self)

    def expect(self, n_jobs: int, reused: Callable[[], int]) -> None:
        """A submission starts with ``n_jobs`` jobs (a split's elements; a workflow is one);
        ``reused()`` says how many it has taken from the cache so far. One expected to run
        :data:`START_AFTER` jobs or more hands its records to a renderer after the first
        :data:`EARLY` (a fresh process's 1,000 cold jobs: 10 ms less than after 256)."""
        with self._lock:
            self._expected, self._reused = n_jobs, reused

    def _runs_many(self) -> bool:
        """Past the first :data:`EARLY` runs, whether this submission will run
        :data:`START_AFTER` or more: the jobs left, at the share of those seen so far that
        ran (a rerun of 1,000 jobs that runs 30 anew does not fork for them)."""
        ran = self._seen
        if ran <= min(EARLY, START_AFTER) or self._expected < START_AFTER:
            return False
        reused = self._reused()
        left = max(0, self._expected - ran - reused)
        return ran + left * ran / (ran + reused) >= START_AFTER

    # -- after the result is saved ----------------------------------------------------------
    def publish(self, directory: str, run_id: str, saved: bytes | None) -> None:
        """The result of run ``run_id`` in ``directory`` is saved (``saved``, its bytes; None:
        read the file): have the run's record written (handed to the renderer in batches of
        :data:`BATCH`)."""
        with self._lock:  # (jobs run in threads of this process share it)
            self._sent.append((directory, run_id))
            self._batch.append((directory, saved))
            if len(self._batch) >= BATCH:
                self._send()

    def _send(self) -> None:
        batch, self._batch = self._batch, []
        try:
            if self._renderer is None and not self._given_up:
                self._renderer = _renderer()
            if self._renderer is None:
                raise OSError("no renderer")
            self._renderer.send(pickle.dumps(("batch", id(self), batch)))
            self.handed += len(batch)
            return
        except Exception:  # not forked, or gone: the rest are written here, and what it was
            self._renderer = None  # handed before, at the end (the next submission forks anew)
            self._given_up = self._broken = True
        except BaseException:  # Ctrl-C: this batch may not have gone (nor, if it was being
            # written, may what the renderer had: it was closed); all are written at the end
            self._renderer = None
            self._given_up = self._broken = True
            raise
        for directory, saved in batch:
            publish_from_result(directory, saved=saved)

    def finish(self) -> None:
        """Wait until every record handed over is written (at the end of a submission, or of
        ``sub()`` whatever ended it); if the renderer died or failed, or was interrupted, write
        here what it may not have (from the results, skipping the records that are there)."""
        with self._lock:
            if self._batch and not self._broken:
                self._send()
            renderer, self._renderer = self._renderer, None
            sent, self._sent = self._sent, []
            broken, self._broken = self._broken, False
            self._batch, self._given_up, self._seen, self._expected = [], False, 0, 0
            self._reused = lambda: 0
        try:
            if renderer is not None and not broken and not renderer.sync(id(self)):
                broken = True
        except BaseException:  # (Ctrl-C while waiting: the renderer was killed) here, then on
            self._write_here(sent)
            raise
        if broken:
            self._write_here(sent)

    def _write_here(self, sent: list[tuple[str, str]]) -> None:
        if sent:
            self.failures += 1
        for directory, run_id in sent:
            publish_from_result(directory, run_id)


class _Deferred:
    """A succeeded run's record data, to store with its result; called once the result is
    saved (``saved``: the result file's bytes, set by ``run_job``), it hands both to the
    renderer."""

    __slots__ = ("directory", "owner", "record_data", "run_id", "saved")

    def __init__(
        self, record_data: bytes, directory: str, run_id: str, owner: DeferredRecords
    ) -> None:
        self.record_data = record_data
        self.directory = directory
        self.run_id = run_id
        self.owner = owner
        self.saved: bytes | None = None

    def __call__(self) -> None:
        self.owner.publish(self.directory, self.run_id, self.saved)  # (set by run_job)

    def discard(self) -> None:
        """The result could not be saved: there is nothing to write."""


# -- the renderer: one process per submitting process, forked when first needed, kept -------
_RENDERER: _Renderer | None = None
_STARTING = threading.Lock()


def _renderer() -> _Renderer:
    """This process's renderer (forked anew if there is none, or it died)."""
    global _RENDERER
    with _STARTING:
        found = _RENDERER
        if found is None or found.pid != os.getpid() or not found.alive():
            _drop(found)
            found = _RENDERER = _Renderer()
        return found


def _forked() -> bool:
    """Whether this process has forked its renderer already (alive or not: see ``_send``)."""
    found = _RENDERER
    return found is not None and found.pid == os.getpid()


def _drop(renderer: _Renderer | None) -> None:
    """Stop using ``renderer``: killed, reaped, its pipes closed."""
    global _RENDERER
    if renderer is None:
        return
    if _RENDERER is renderer:
        _RENDERER = None
    renderer.close()


def _forget_in_child() -> None:
    """In a process forked from this one: the parent's renderer is not its own (its pipes are
    closed, so that the renderer sees its parent's death, and is never written to twice)."""
    global _RENDERER
    found, _RENDERER = _RENDERER, None
    if found is not None and not found.closed:
        found.closed = found.reaped = True  # (not this process's child: never killed here)
        for fd in (found.to_child, found.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class _Renderer:
    """The renderer process (a plain ``fork``) and the two pipes to and from it. Kept for the
    submitting process's life: a fork, and the copies of the pages the parent writes after it,
    are paid once. It ends when its pipe closes, that is when this process ends.

    A message is a length (4 bytes) and a pickle: ``("batch", owner, [(directory, result
    bytes), ...])`` or ``("sync", owner, token)``, answered with ``(token, failures)``: how many
    of the owner's records could not be written since its last sync. Anything that goes wrong
    while a message is written or awaited (Ctrl-C included) closes it for every user: the
    process is killed and its pipes closed, so no message is ever read or written half-way,
    and no one writes to a descriptor number the process has given to another file since."""

    def __init__(self) -> None:
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the renderer
            code = 1
            try:
                os.close(down_w)
                os.close(up_r)
                _render(down_r, up_w)
                code = 0
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        self.pid_of_child = pid
        self.to_child, self.from_child = down_w, up_r
        self.pid = os.getpid()
        self.lock = threading.Lock()  # (submitters in several threads share it)
        self.tokens = 0
        self.closed = False
        self.reaped = False

    def alive(self) -> bool:
        with self.lock:
            if self.closed or self.reaped:
                return False
            try:
                done, _ = os.waitpid(self.pid_of_child, os.WNOHANG)
            except ChildProcessError:
                done = self.pid_of_child
            self.reaped = done != 0
            return not self.reaped

    def send(self, message: bytes) -> None:
        """Hand over a message (``OSError`` when the renderer is gone)."""
        with self.lock:
            if self.closed:
                raise OSError("the record renderer is gone")
            try:
                _write_message(self.to_child, message)
            except BaseException:
                self._close()
                raise

    def sync(self, owner: int) -> bool:
        """Wait until the renderer has written what ``owner`` handed it; whether all of it
        was (False when it is gone)."""
        with self.lock:
            if self.closed:
                return False
            self.tokens += 1
            token = self.tokens
            try:
                _write_message(self.to_child, pickle.dumps(("sync", owner, token)))
                while True:
                    answer = _read_message(self.from_child)
                    if answer is None:
                        self._close()
                        return False  # it died
                    got, failures = pickle.loads(answer)  # (from this process's child)
                    if got == token:
                        return bool(failures == 0)
            except Exception:
                self._close()
                return False
            except BaseException:
                self._close()
                raise

    def close(self) -> None:
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self.reaped:  # (never a process that took its number since)
            self.reaped = True
            with contextlib.suppress(OSError):
                os.kill(self.pid_of_child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid_of_child, 0)


def _write_message(fd: int, message: bytes) -> None:
    view = memoryview(len(message).to_bytes(4, "little") + message)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> bytes | None:
    head = _read_exactly(fd, 4)
    return None if head is None else _read_exactly(fd, int.from_bytes(head, "little"))


def _render(down: int, up: int) -> None:
    """The renderer process: write the record of each job directory received; answer each
    sync with how many of that submitter's records could not be written since its last."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the submission, not this
    gc.freeze()  # what it inherited is never collected here (nor its files closed again)
    for name in os.listdir("/proc/self/fd"):  # nor held open: job locks, the cache's lock,
        fd = int(name)  # sockets, pipes a parent process reads to their end
        if fd > 2 and fd not in (down, up):
            with contextlib.suppress(OSError):
                os.close(fd)
    failures: dict[int, int] = {}
    while True:
        message = _read_message(down)
        if message is None:  # the submitting process is gone: nothing more comes
            return
        kind, owner, body = pickle.loads(message)  # (from the submitting process)
        if kind == "sync":
            _write_message(up, pickle.dumps((body, failures.pop(owner, 0))))
            continue
        for directory, saved in body:
            try:
                written = publish_from_result(directory, saved=saved)
            except Exception as err:
                written = False
                os.write(
                    2, f"provgraph: the record in {directory} was not written: {err}\n".encode()
                )
            if not written:
                failures[owner] = failures.get(owner, 0) + 1
