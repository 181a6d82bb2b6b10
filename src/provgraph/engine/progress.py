"""Progress of a submission: a live table on a terminal or in Jupyter, a summary at the end.

:class:`Progress` is a hook: it only counts events. On a terminal (or in a Jupyter notebook)
it draws, a few times a second, one row per node (element indices folded together) with jobs
done, cached, running, queued, failed, skipped and pending, and the elapsed time. Elsewhere it
prints only the summary.

Jobs handed to the worker are *running* up to the worker's capacity (its processes or threads),
oldest first, and *queued* beyond it: a pool of 2 processes shows 2 running and the rest
queued, as it runs them. A worker that cannot say (SLURM: the batch system decides) counts every
job handed over as running. A workflow job runs no code itself: its row counts it running while
its inner jobs run, whatever the capacity.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import events

__all__ = ["Progress"]

_COLUMNS = ("done", "cached", "running", "queued", "failed", "skipped", "pending")
_INDEX = re.compile(r"\[\d+\]")


def _row_name(path: str) -> str:
    return _INDEX.sub("", path)


def _can_live(console: Console) -> bool:
    """A terminal redraws in place; a notebook does through ipywidgets (the ``jupyter`` extra),
    and without it shows the summary only (rich would warn at every refresh)."""
    if console.is_jupyter:
        import importlib.util

        return importlib.util.find_spec("ipywidgets") is not None
    return console.is_terminal


class Progress:
    """Counts jobs per node from events and shows them."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.capacity: int | None = None  # jobs the worker runs at once, once known
        self.capacity_source: Any = None  # asked until it knows (the Submitter's worker)
        self.flight: dict[int, str] = {}  # jobs handed to the worker, oldest first: their row
        self.rows: dict[str, dict[str, int]] = {}
        self.started = time.monotonic()
        self.task = ""
        self.workflow_counts = {"done": 0, "failed": 0}  # workflow jobs run no code themselves
        self._live: Live | None = None

    def _row(self, path: str) -> dict[str, int]:
        name = _row_name(path)
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = dict.fromkeys((*_COLUMNS, "total", "open", "in_flight"), 0)
        return row

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.RunStarted):
            self._start(event.task_name)
        elif isinstance(event, events.NodeExpanded):
            self._row(event.node)["total"] += event.n_jobs
        elif isinstance(event, events.JobReused):
            self._row(event.job.node.path)["cached"] += 1
        elif isinstance(event, events.JobSubmitted):
            row = self._row(event.job.node.path)
            if type(event.job.node.task)._kind == "workflow":
                row["open"] += 1
            else:
                row["in_flight"] += 1
                self.flight[id(event.job)] = _row_name(event.job.node.path)
        elif isinstance(event, events.JobFinished):
            row = self._row(event.job.node.path)
            if self.flight.pop(id(event.job), None) is not None:
                row["in_flight"] -= 1
            row["done" if event.outcome.ok else "failed"] += 1
        elif isinstance(event, events.WorkflowFinished):
            row = self._row(event.job.node.path)
            row["open"] -= 1
            column = "done" if event.ok else "failed"
            row[column] += 1
            self.workflow_counts[column] += 1
        elif isinstance(event, events.JobSkipped):
            self._row(event.job.node.path)["skipped" if event.cause is not None else "failed"] += 1
        elif isinstance(event, events.RunFinished):
            self._finish()

    def _start(self, task: str) -> None:
        self.task = task
        self.started = time.monotonic()
        self.rows.clear()
        self.flight.clear()
        self.capacity = None  # (a Dask cluster may have changed between submissions)
        self.workflow_counts = {"done": 0, "failed": 0}
        if _can_live(self.console):
            self._live = Live(
                get_renderable=self.table,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()

    def counts(self) -> dict[str, dict[str, int]]:
        """Per row (node), the jobs in each column, now."""
        if self.capacity is None and self.capacity_source is not None:
            self.capacity = self.capacity_source()
        running: dict[str, int] = {}
        limit = len(self.flight) if self.capacity is None else self.capacity
        for name in itertools.islice(self.flight.values(), limit):  # the oldest run first
            running[name] = running.get(name, 0) + 1
        shown: dict[str, dict[str, int]] = {}
        for name, row in self.rows.items():
            cells = {c: row[c] for c in _COLUMNS}
            cells["running"] = running.get(name, 0) + row["open"]
            cells["queued"] = row["in_flight"] - running.get(name, 0)
            settled = sum(cells[c] for c in _COLUMNS if c != "pending")
            cells["pending"] = max(row["total"] - settled, 0)
            shown[name] = cells
        return shown

    def table(self) -> Table:
        """The current counts as a rich table."""
        elapsed = time.monotonic() - self.started
        table = Table(title=f"{self.task}: {elapsed:.1f} s", title_justify="left")
        table.add_column("node")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for name, cells in self.counts().items():
            table.add_row(name, *(str(cells[c]) for c in _COLUMNS))
        return table

    def summary(self) -> str:
        """One line: what ran, what was reused, what failed, and how long it took."""
        totals = {c: sum(r[c] for r in self.rows.values()) for c in _COLUMNS}
        for column, count in self.workflow_counts.items():
            totals[column] -= count
        elapsed = time.monotonic() - self.started
        parts = [f"{totals['done']} executed", f"{totals['cached']} reused"]
        if totals["failed"]:
            parts.append(f"{totals['failed']} failed")
        if totals["skipped"]:
            parts.append(f"{totals['skipped']} skipped")
        return f"provgraph: {self.task} finished in {elapsed:.2f} s: {', '.join(parts)}"

    def _finish(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.console.print(self.summary(), highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the live display if a run was interrupted."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def make_progress(option: Any) -> Progress | None:
    """``True``: progress on stderr; ``False``/``None``: none; a rich ``Console``: on it."""
    if option is False or option is None:
        return None
    if option is True:
        return Progress()
    if isinstance(option, Console):
        return Progress(option)
    from ..exceptions import SpecError

    raise SpecError(
        f"progress={option!r}; expected True, False or a rich Console", field="progress"
    )
