"""What a submission returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ..exceptions import TaskFailedError
from ..spec.base import Outputs

__all__ = ["JobFailure", "Result"]


@attrs.frozen(kw_only=True)
class JobFailure:
    """One failed job: where it ran, which element it was, and why it failed."""

    task_name: str
    job_hash: str
    output_dir: Path
    index: int
    inputs: dict[str, Any]
    error_type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return (
            f"job {self.output_dir.name} (element {self.index}) failed: "
            f"{self.error_type}: {self.message}\n  directory: {self.output_dir}"
        )


@attrs.frozen(kw_only=True)
class Result:
    """The outputs of a submitted task, its directory and its failures.

    ``stats`` counts the jobs ``executed`` here, ``reused`` from the cache and ``failed``.
    """

    outputs: Outputs
    output_dir: Path
    errors: list[JobFailure]
    stats: dict[str, int]
    job_dirs: list[Path]

    @property
    def errored(self) -> bool:
        """True when at least one job failed."""
        return bool(self.errors)

    def raise_for_errors(self) -> None:
        """Raise ``TaskFailedError`` listing every failed job, if any failed."""
        if self.errors:
            text = "\n".join(str(e) for e in self.errors)
            last = self.errors[-1].traceback.rstrip()
            raise TaskFailedError(
                f"{len(self.errors)} job(s) failed:\n{text}\n\nlast traceback:\n{last}",
                errors=self.errors,
            )
