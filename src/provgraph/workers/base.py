"""The worker contract."""

from __future__ import annotations

import abc
import math
import threading
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # (concurrent.futures: 4 ms to import, paid by the worker that runs jobs)
    from concurrent.futures import Future

__all__ = ["BufferedWorker", "Worker", "batch_size"]


class Worker(abc.ABC):
    """Runs jobs somewhere and reports each job's ``Outcome`` through a future."""

    name: ClassVar[str] = "worker"

    @abc.abstractmethod
    def submit(self, job: Any) -> Future[Any]:
        """Accept one job; the future resolves to its ``Outcome`` (never to an exception)."""

    def capacity(self) -> int | None:
        """How many jobs run at once (None when the worker cannot say, e.g. a batch queue):
        the progress display counts jobs beyond it as queued, not running."""
        return None

    def expect(self, n_jobs: int) -> None:  # noqa: B027 - optional hook
        """About ``n_jobs`` more jobs are submitted before the next :meth:`flush`, besides the
        one about to be: a hint, given by the run loop before each job it submits, from the
        jobs still ready and the share of this round's jobs that missed the cache so far
        (jobs that become ready during the round, a workflow's, are counted as they come)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Send jobs buffered by ``submit``; called by the run loop after each round."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes, clients or clusters held by the worker."""

    def abort(self) -> None:
        """Stop at once (the user interrupted the submission): running jobs are stopped, not
        waited for. By default, the same as :meth:`close`."""
        self.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BufferedWorker(Worker):
    """A worker that collects jobs in ``submit`` and sends them together in ``flush``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._buffer: list[tuple[Any, Future[Any]]] = []
        self._expected: int | None = None  # more jobs expected this round (the hint)
        self._round_sent = 0  # jobs of this round sent before its end

    def expect(self, n_jobs: int) -> None:
        with self._lock:
            self._expected = n_jobs

    def submit(self, job: Any) -> Future[Any]:
        from concurrent.futures import Future  # (this module's import leaves it for later)

        future: Future[Any] = Future()
        with self._lock:
            self._buffer.append((job, future))
        return future

    def take_buffer(self) -> list[tuple[Any, Future[Any]]]:
        """The jobs submitted since the last call, with their futures."""
        with self._lock:
            buffer, self._buffer = self._buffer, []
        return buffer

    def _full_batch(self, n_workers: int, max_batch: int) -> list[tuple[Any, Future[Any]]]:
        """Given the round's hint, the first batch of the buffer once it holds one of the size
        the whole round would give (the batches sent so far, the buffer and the jobs still
        expected); else nothing. Taken out of the buffer."""
        with self._lock:
            if self._expected is None:
                return []
            total = self._round_sent + len(self._buffer) + self._expected
            size = batch_size(total, n_workers, max_batch)
            if len(self._buffer) < size:
                return []
            batch, self._buffer = self._buffer[:size], self._buffer[size:]
            self._round_sent += size
            return batch

    def _end_round(self) -> tuple[list[tuple[Any, Future[Any]]], int]:
        """The round is over: what is buffered, and how many jobs of the round were sent
        before (so that the rest is batched as the whole round); the hint forgotten."""
        with self._lock:
            buffer, self._buffer = self._buffer, []
            sent, self._expected, self._round_sent = self._round_sent, None, 0
        return buffer, sent


def batch_size(n_jobs: int, n_workers: int, max_batch: int) -> int:
    """Jobs per message: about a quarter of a worker's share, at least 1, at most max_batch."""
    return max(1, min(max_batch, math.ceil(n_jobs / (max(1, n_workers) * 4))))
