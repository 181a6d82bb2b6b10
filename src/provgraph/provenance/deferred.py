"""Job records written beside the run, not on its path: the serial worker's records.

A job that runs in the submitting process (the ``serial`` worker) would otherwise wait for its
record to be rendered as TriG before its result is saved, about half of the engine's time per
job. Instead, for a Python task that succeeded, the hook (:class:`DeferredRecords`) stores what
the record needs besides the result (:func:`.record.record_data`: the provenance context, the
environment, the rerun files' pointers) *with* the result, in the same sealed file and the same
atomic rename. Once the result is saved, the job's directory is handed to a renderer process,
forked from this one, which writes the record from the result alone
(:func:`.record.publish_from_result`) while the next jobs run. The submission waits for the
renderer before it ends: when ``sub()`` returns, every record is on disk.

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

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
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
    from their saved results by a renderer process; the rest as :func:`write_job_run`."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._renderer: Any = None  # the renderer process, once forked
        self._conn: Any = None  # the pipe to it
        self._sent: list[str] = []  # job directories handed over since the submission began
        self._batch: list[tuple[str, bytes]] = []  # not sent to the renderer yet
        self.handed = 0  # records handed to a renderer (for the curious and the tests)
        self.failures = 0  # renderers that ended badly (their records were written here)

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
        self._sent.append(directory)
        if self._renderer is None:
            if len(self._sent) <= START_AFTER:
                publish_from_result(directory, saved=saved or None)
                return
            self._start()
        self._batch.append((directory, saved))
        if len(self._batch) >= BATCH:
            self._send()

    def _send(self) -> None:
        batch, self._batch = self._batch, []
        if self._conn is not None:
            try:
                self._conn.send_bytes(pickle.dumps(batch))
                self.handed += len(batch)
                return
            except OSError:  # the renderer died: what it had not written is written at the end
                self._conn = None
        for directory, saved in batch:
            publish_from_result(directory, saved=saved or None)

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_render, args=(receiver,), name="provgraph-records", daemon=True
        )
        process.start()
        receiver.close()
        self._renderer, self._conn = process, sender

    def finish(self) -> None:
        """Wait until every record handed over is written (at the end of a submission)."""
        if self._batch:
            self._send()
        process, conn = self._renderer, self._conn
        self._renderer = self._conn = None
        sent, self._sent = self._sent, []
        if process is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError):  # the end: the renderer writes what it has
                conn.send_bytes(b"")
            conn.close()
        process.join()
        if process.exitcode != 0:  # killed or broken: the records it had not written, here
            self.failures += 1
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


def _render(conn: Any) -> None:
    """The renderer process: write the record of each job directory received, until the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the submission, not this
    failed = False
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:  # the submitting process is gone: what was received is written
            break
        if not message:
            break
        for directory, saved in pickle.loads(message):  # (from the submitting process)
            try:
                if not publish_from_result(directory, saved=saved or None):
                    failed = True
            except Exception as err:
                failed = True
                os.write(
                    2, f"provgraph: the record in {directory} was not written: {err}\n".encode()
                )
    conn.close()
    if failed:  # the submitting process writes what is missing
        os._exit(1)
