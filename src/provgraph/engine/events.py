"""Events the submitter emits; hooks (such as the provenance recorder) subscribe to them.

Events are frozen attrs objects; a hook is any callable taking one event. The engine never
knows what a hook does with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "Event",
    "JobFinished",
    "JobReused",
    "JobSkipped",
    "JobSubmitted",
    "NodeExpanded",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
    "WorkflowFinished",
]


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events: the submission they belong to."""

    run_id: str


@attrs.frozen(kw_only=True)
class RunStarted(Event):
    """A task was submitted: its name, its directory and how many jobs it expands to."""

    task_name: str
    output_dir: Path
    n_jobs: int
    workflow_run: str = ""  # the run of the submitted task as a whole (its root instance)
    task: Any = None  # the task submitted (its definition and input values)


@attrs.frozen(kw_only=True)
class NodeExpanded(Event):
    """A node's elements are known: its path and how many jobs it has."""

    node: str
    n_jobs: int


@attrs.frozen(kw_only=True)
class JobSkipped(Event):
    """A job will not run: an upstream job it needs failed (``cause``)."""

    job: Any
    cause: Any


@attrs.frozen(kw_only=True)
class JobReused(Event):
    """A job's result was found in the cache; nothing was sent to a worker."""

    job: Any
    outcome: Any


@attrs.frozen(kw_only=True)
class JobSubmitted(Event):
    """A job was handed to the worker."""

    job: Any


@attrs.frozen(kw_only=True)
class JobFinished(Event):
    """A job ran (or failed) on the worker."""

    job: Any
    outcome: Any


@attrs.frozen(kw_only=True)
class WorkflowFinished(Event):
    """A workflow job finished running its graph (``ok`` is False when a job in it failed)."""

    job: Any
    ok: bool


@attrs.frozen(kw_only=True)
class RunInterrupted(Event):
    """The submission was interrupted (Ctrl-C): the worker was stopped, no more jobs run."""


@attrs.frozen(kw_only=True)
class RunFinished(Event):
    """The submission ended; counts of jobs executed, reused, failed and skipped; and, when
    every job succeeded, the submitted task's outputs as a whole, with the (run UUID, field)
    of the job output each is (a task of one job, or a workflow: one; a split: none named)."""

    task_name: str
    executed: int
    reused: int
    failed: int
    skipped: int = 0
    workflow_run: str = ""
    outputs: dict[str, Any] | None = None
    output_sources: dict[str, list[tuple[str, str]]] | None = None
