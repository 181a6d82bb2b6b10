"""The worker contract."""

from __future__ import annotations

import abc
from concurrent.futures import Future
from typing import Any, ClassVar

__all__ = ["Worker"]


class Worker(abc.ABC):
    """Runs jobs somewhere and reports each job's ``Outcome`` through a future."""

    name: ClassVar[str] = "worker"

    @abc.abstractmethod
    def submit(self, job: Any) -> Future[Any]:
        """Accept one job; the future resolves to its ``Outcome`` (never to an exception)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Send jobs buffered by ``submit``; called by the run loop after each round."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes, clients or clusters held by the worker."""

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
