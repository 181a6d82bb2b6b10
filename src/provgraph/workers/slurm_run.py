"""Runs one job written by the ``slurm`` worker, inside a SLURM job.

``python -m provgraph.workers.slurm_run <batch folder> [<index> [<attempt>]]``: the index is
the array task id (``SLURM_ARRAY_TASK_ID``) unless given; a requeued job's attempt (1, 2...)
gives it files of its own (``<index>.<attempt>.outcome.pkl``, ``.err``, ``.out``). The job runs
under its cache lock like on any worker, its provenance names the SLURM job id and its log
files, and its outcome goes to ``<batch>/<index>.outcome.pkl`` (written atomically). The exit
status is 0 whenever an outcome was written, a failed job included: failures are data, read
from the outcome. On SIGTERM (``scancel``, a time limit) it stops the containers it started and
exits without an outcome: the worker then reports the job by its SLURM state.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from .. import _signing
from ..cache import atomic_write
from ..engine.job import run_job
from ._payload import failed_outcome, unpack

__all__ = ["main"]


def _slurm_job_id() -> str:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID", "")


def _verified(path: Path) -> bytes:
    """A file the submitting process sealed; one that does not verify is never unpickled."""
    data = _signing.unseal_file(path)
    if data is None:
        raise SystemExit(f"slurm_run: {path} is not sealed with this user's key: not loaded")
    return data


def _terminated(signum: int, frame: Any) -> None:
    from ..spec.shell import stop_commands_in_environments

    stop_commands_in_environments()
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2, 3):
        print(
            "usage: python -m provgraph.workers.slurm_run BATCH_DIR [INDEX [ATTEMPT]]",
            file=sys.stderr,
        )
        return 2
    batch = Path(args[0])
    index = args[1] if len(args) >= 2 else os.environ.get("SLURM_ARRAY_TASK_ID")
    attempt = f".{args[2]}" if len(args) == 3 and args[2] != "0" else ""
    if index is None or not index.isdigit():
        print(
            f"slurm_run: no job index (argument or SLURM_ARRAY_TASK_ID): {index!r}", file=sys.stderr
        )
        return 2
    # scancel and time limits send SIGTERM first: stop containers the job started, and leave
    # no outcome, so that the worker reports the job by its SLURM state
    signal.signal(signal.SIGTERM, _terminated)
    paths_file = batch / "sys_path.json"
    if paths_file.exists():  # what the submitting process could import (sealed like the rest)
        paths = json.loads(_verified(paths_file))
        sys.path.extend(p for p in paths if p not in sys.path)
    key, fields = cloudpickle.loads(_verified(batch / f"{index}.job.pkl"))
    fields["placement"] = {
        **(fields.get("placement") or {}),
        "slurm_job_id": _slurm_job_id(),
        "log": str(batch / f"{index}{attempt}.err"),
    }
    try:
        job = unpack(lambda _: _verified(batch / "task.pkl"), key, fields)
    except Exception as err:  # the task cannot be rebuilt here (a missing module...)
        from ..engine.job import Job

        stub = Job(task_cls=None, **fields)
        message = f"the job cannot be loaded on {os.uname().nodename}: {type(err).__name__}: {err}"
        outcome = failed_outcome(stub, "WorkerError", message, **fields["placement"])
    else:
        outcome = run_job(job)
    sealed = _signing.seal(cloudpickle.dumps(outcome))
    atomic_write(batch / f"{index}{attempt}.outcome.pkl", sealed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
