"""What a submission returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from ..exceptions import TASK_FAILED_AS, TaskFailedError
from ..spec.base import Outputs

__all__ = ["JobFailure", "Result"]


@attrs.frozen(kw_only=True)
class JobFailure:
    """One failed job: where it ran, which element it was, and why it failed."""

    task_name: str
    job_hash: str
    output_dir: Path | None
    index: int
    inputs: dict[str, Any]
    error_type: str
    message: str
    traceback: str
    node: str = ""
    status: str = "failed"  # "failed" | "skipped"
    cause: str | None = None  # for skipped jobs: the failed upstream job

    def __str__(self) -> str:
        where = self.output_dir.name if self.output_dir is not None else self.node
        text = f"job {where} (node {self.node}, element {self.index}) {self.status}: "
        text += f"{self.error_type}: {self.message}"
        if self.output_dir is not None:
            text += f"\n  directory: {self.output_dir}"
        return text


@attrs.frozen(kw_only=True)
class Result:
    """The outputs of a submitted task, its directory and its failures.

    ``stats`` counts the jobs ``executed`` here, ``reused`` from the cache, ``failed`` and
    ``skipped`` (downstream of a failure); ``node_stats`` the same per node path
    (``"node"``, ``"Workflow[2]/node"`` inside a workflow element). ``errors`` lists each
    failed and each skipped job, the latter with the failed job that caused it.
    """

    outputs: Outputs
    output_dir: Path
    errors: list[JobFailure]
    stats: dict[str, int]
    job_dirs: list[Path]
    node_stats: dict[str, dict[str, int]] = attrs.field(factory=dict)

    @property
    def errored(self) -> bool:
        """True when at least one job failed."""
        return bool(self.errors)

    def raise_for_errors(self) -> None:
        """Raise ``TaskFailedError`` listing every failed job, if any failed."""
        if self.errors:
            text = "\n".join(str(e) for e in self.errors)
            failed = [e for e in self.errors if e.status != "skipped"]
            skipped = len(self.errors) - len(failed)
            last = (failed or self.errors)[-1].traceback.rstrip()
            counts = f"{len(failed)} job(s) failed" + (f", {skipped} skipped" if skipped else "")
            kinds = {e.error_type for e in failed}
            # also of the built-in type every job failed with, when it pairs with it
            error = TASK_FAILED_AS.get(kinds.pop() if len(kinds) == 1 else "", TaskFailedError)
            submitted = self.errors[0].node.split("/", 1)[0].split("[", 1)[0]
            raise error(
                f"{submitted} failed with errors ({counts}):\n{text}\n\nlast traceback:\n{last}",
                errors=self.errors,
            )
