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

Only where it pays and is safe: on Linux (``fork``), with two CPUs or more, after the first
:data:`START_AFTER` jobs of a submission (a small one never forks); failed runs, shell tasks,
runs sent to a provenance server and everything run by other workers are written as before,
in the process that ran the job. A hook pickled for another process is the plain writer.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
from typing import Any

from .record import publish_from_result, record_data, write_job_run

__all__ = ["BATCH", "START_AFTER", "DeferredRecords", "available"]

START_AFTER = 16  # jobs of a submission recorded in-process before a renderer is forked
BATCH = 16  # saved results handed to the renderer per message


def available() -> bool:
    """Whether records can be written by a forked renderer here."""
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return len(os.sched_getaffinity(0)) >= 2


def _plain_writer() -> Any:
    return write_job_run


class DeferredRecords:
    """The job hook of the submitting process: records of succeeded Python runs are written
    from their saved results by the renderer process; the rest as :func:`write_job_run`."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._sent: list[str] = []  # job directories handed over since the submission began
        self._batch: list[tuple[str, bytes]] = []  # not sent to the renderer yet
        self._renderer: _Renderer | None = None  # this submission's, once handed a record
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
        try:
            data = record_data(job, outcome)
        except Exception:  # (unpicklable context: never expected) written here, as before
            return write_job_run(job, outcome)
        return _Deferred(data, os.fspath(job.output_dir), self)

    # -- after the result is saved ----------------------------------------------------------
    def publish(self, directory: str, saved: bytes) -> None:
        """The result in ``directory`` is saved (``saved``, its bytes): have its run's record
        written (handed to the renderer in batches of :data:`BATCH`)."""
        with self._lock:  # (jobs run in threads of this process share it)
            self._sent.append(directory)
            if len(self._sent) > START_AFTER:
                self._batch.append((directory, saved))
                if len(self._batch) >= BATCH:
                    self._send()
                return
        publish_from_result(directory, saved=saved or None)

    def _send(self) -> None:
        batch, self._batch = self._batch, []
        if self._renderer is None:
            self._renderer = _renderer()
        if self._renderer.send(pickle.dumps(batch)):
            self.handed += len(batch)
            return
        for directory, saved in batch:  # it died: what it had not written is written at the end
            publish_from_result(directory, saved=saved or None)

    def finish(self) -> None:
        """Wait until every record handed over is written (at the end of a submission)."""
        with self._lock:
            if self._batch:
                self._send()
            renderer, self._renderer = self._renderer, None
            sent, self._sent = self._sent, []
        if renderer is not None and not renderer.sync():
            self.failures += 1  # dead or failing: the records it had not written, here
            for directory in sent:
                publish_from_result(directory)


class _Deferred:
    """A succeeded run's record data, to store with its result; called once the result is
    saved (``saved``: the result file's bytes, set by ``run_job``), it hands both to the
    renderer."""

    __slots__ = ("directory", "owner", "record_data", "saved")

    def __init__(self, record_data: bytes, directory: str, owner: DeferredRecords) -> None:
        self.record_data = record_data
        self.directory = directory
        self.owner = owner
        self.saved: bytes | None = None

    def __call__(self) -> None:
        if self.saved is None:  # (never: run_job sets it) the saved file is read instead
            self.owner.publish(self.directory, b"")
        else:
            self.owner.publish(self.directory, self.saved)

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
        if found is None or found.pid != os.getpid() or not found.process.is_alive():
            found = _RENDERER = _Renderer()
        return found


class _Renderer:
    """The renderer process and the pipe to it. Kept for the submitting process's life (a
    fork, and the copies of the pages the parent writes after it, are paid once): it ends when
    its pipe closes, that is when this process ends."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        here, there = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_render, args=(there,), name="provgraph-records", daemon=True
        )
        self.process.start()
        there.close()
        self.conn = here
        self.pid = os.getpid()
        self.lock = threading.Lock()  # (submitters in several threads share it)

    def send(self, message: bytes) -> bool:
        """Hand over a batch; False when the renderer is gone."""
        with self.lock:
            try:
                self.conn.send_bytes(message)
            except OSError:
                return False
        return True

    def sync(self) -> bool:
        """Wait until the renderer has written what it was handed; whether all of it was."""
        with self.lock:
            try:
                self.conn.send_bytes(b"")
                return bool(self.conn.recv_bytes() == b"ok")
            except (OSError, EOFError):
                return False


def _render(conn: Any) -> None:
    """The renderer process: write the record of each job directory received; answer each
    empty message with whether every record since the last one was written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the submission, not this
    keep = conn.fileno()  # what it inherited (job locks, sockets, pipes) is not held open
    os.closerange(3, keep)
    os.closerange(keep + 1, _FD_LIMIT)
    failed = False
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the submitting process is gone: nothing more comes
            break
        if not message:
            conn.send_bytes(b"failed" if failed else b"ok")
            failed = False
            continue
        for directory, saved in pickle.loads(message):  # (from the submitting process)
            try:
                if not publish_from_result(directory, saved=saved or None):
                    failed = True
            except Exception as err:
                failed = True
                os.write(
                    2, f"provgraph: the record in {directory} was not written: {err}\n".encode()
                )


_FD_LIMIT = min(os.sysconf("SC_OPEN_MAX"), 1 << 20) if hasattr(os, "sysconf") else 1 << 16
