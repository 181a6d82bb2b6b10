"""The ``slurm`` worker: each job is a SLURM batch job, and a split node's jobs one job array.

``Submitter(worker="slurm", sbatch_args="--partition=short", poll_interval=1.0,
max_array=1000, resources={"time": "00:10:00", "mem": "2G"})``.

How a job travels: the worker writes it, pickled, to a batch folder under the cache
(``<cache>/.slurm/<batch>/``: the task class once, then ``<i>.job.pkl`` per job) and submits
``python -m provgraph.workers.slurm_run <batch> [<i>]`` with ``sbatch``, using the submitting
interpreter, so the job sees the user's environment. Jobs of one task with the same resources,
buffered in one round of the run loop, go as one job array (at most ``max_array`` elements).
The job runs under the cache's lock, records its provenance (with its SLURM job id) and
writes ``<i>.outcome.pkl``.

How the worker follows them: one thread polls every ``poll_interval`` seconds with a single
``squeue`` call for all its jobs; an element whose outcome file exists is done. One that left
the queue without an outcome gets its final state from ``sacct``, or from
``scontrol show job`` where accounting is off (either may be missing on a site). Jobs lost to
a node failure or preemption are submitted again, up to ``max_requeue`` times; TIMEOUT,
OUT_OF_MEMORY, CANCELLED and failed exits become failed jobs whose error names the SLURM state
and ends with the tail of the job's stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs
import cloudpickle

from .. import _signing
from ..cache import atomic_write
from ..engine.job import Job, Outcome
from ..exceptions import SpecError, WorkerError
from ..spec.resources import check_resources, merge_resources
from ._payload import Packer, failed_outcome
from .base import BufferedWorker

__all__ = [
    "SlurmState",
    "SlurmWorker",
    "parse_sacct",
    "parse_scontrol",
    "parse_squeue",
    "write_batch",
]

_TAIL_LINES = 20
REQUEUE_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})
_KILLED_STATES = frozenset({"TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "DEADLINE"})
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "CANCELLED",
        "DEADLINE",
        "REVOKED",
        *REQUEUE_STATES,
    }
)
_WHAT = {
    "TIMEOUT": "hit its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "CANCELLED": "was cancelled",
    "FAILED": "failed",
    "DEADLINE": "missed its deadline",
    "NODE_FAIL": "was lost with its node",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not boot its node",
    "COMPLETED": "ended without writing its outcome",
    "PENDING": "could not start",
}
_SETTLE_INTERVAL = 5.0  # seconds between two accounting queries for jobs still settling
# what sbatch says when the controller is busy or briefly unreachable: worth asking again
_TRANSIENT = (
    "socket timed out",
    "unable to contact slurm controller",
    "temporarily unavailable",
    "try again",
    "connection refused",
    "communication",
)
# pending reasons that never clear by themselves: such a job is cancelled and reported
HOPELESS_REASONS = (
    "DependencyNeverSatisfied",
    "PartitionTimeLimit",
    "PartitionNodeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "launch failed requeued held",
)
_RESOURCE_FLAGS = {
    "time": "--time",
    "mem": "--mem",
    "cpus": "--cpus-per-task",
    "gpus": "--gpus",
    "partition": "--partition",
    "qos": "--qos",
    "account": "--account",
    "constraint": "--constraint",
}


@attrs.frozen
class SlurmState:
    """A job's state as SLURM reports it."""

    state: str  # the first word: "CANCELLED by 0" -> "CANCELLED"
    exit_code: str = ""  # "<code>:<signal>"
    node: str = ""


@attrs.define(eq=False)
class _Element:
    """One job at SLURM: where its files are and which SLURM job runs it."""

    job: Job
    future: Future[Outcome]
    batch: Path
    index: int
    resources: dict[str, Any] = attrs.Factory(dict)
    slurm_id: str = ""  # "<job>" or "<array job>_<task>"
    attempts: int = 0  # requeues so far; each attempt has files of its own
    gone_since: float | None = None

    def _name(self, suffix: str) -> Path:
        attempt = f".{self.attempts}" if self.attempts else ""
        return self.batch / f"{self.index}{attempt}.{suffix}"

    @property
    def outcome_path(self) -> Path:
        return self._name("outcome.pkl")

    @property
    def out_path(self) -> Path:
        return self._name("out")

    @property
    def err_path(self) -> Path:
        return self._name("err")


def _expand_ids(text: str) -> list[str]:
    """``123_[0-2,5]`` -> ``123_0 123_1 123_2 123_5``; other ids unchanged (``%4`` dropped)."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", text)
    if match is None:
        return [text]
    base, spec = match.groups()
    ids = []
    for part in spec.split("%")[0].split(","):
        first, _, last = part.partition("-")
        for task in range(int(first), int(last or first) + 1):
            ids.append(f"{base}_{task}")
    return ids


def parse_squeue(text: str) -> dict[str, str]:
    """``squeue -h -r -o '%i|%T|%r'`` output -> ``{slurm id: "STATE|reason"}`` (the reason
    part is absent when squeue was not asked for it)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            for one in _expand_ids(job_id):
                states[one] = state
    return states


def parse_sacct(text: str) -> dict[str, SlurmState]:
    """``sacct -n -P -X -o JobID,State,ExitCode,NodeList`` output -> ``{slurm id: state}``."""
    states: dict[str, SlurmState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        state = SlurmState(
            parts[1].split()[0] if parts[1] else "", parts[2], parts[3] if len(parts) > 3 else ""
        )
        for one in _expand_ids(parts[0]):
            states[one] = state
    return states


def parse_scontrol(text: str) -> dict[str, SlurmState]:
    """``scontrol show job -o <ids>`` output (one ``Key=Value ...`` line per job)."""
    states: dict[str, SlurmState] = {}
    for line in text.splitlines():
        fields = dict(
            item.split("=", 1) for item in line.split() if "=" in item and not item.startswith("=")
        )
        if "JobId" not in fields:
            continue
        state = SlurmState(
            fields.get("JobState", ""), fields.get("ExitCode", ""), fields.get("NodeList", "")
        )
        array_id, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array_id and task:
            for one in _expand_ids(f"{array_id}_[{task}]"):
                states[one] = state
        else:
            states[fields["JobId"]] = state
    return states


def _run(argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


class SlurmWorker(BufferedWorker):
    """Runs each job as a SLURM batch job (split nodes as job arrays)."""

    name = "slurm"

    def __init__(
        self,
        *,
        sbatch_args: str | Sequence[str] = (),
        poll_interval: float = 1.0,
        max_array: int = 1000,
        max_requeue: int = 2,
        array: bool = True,
        resources: dict[str, Any] | None = None,
        state_source: str = "auto",
        work_dir: str | Path | None = None,
        python: str | None = None,
        grace: float = 60.0,
        sbatch_retries: int = 3,
        sbatch_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise WorkerError(
                "worker 'slurm' needs SLURM's `sbatch` on PATH, and it is not there; run on a "
                "SLURM login node (or start a local cluster: scripts/start-slurm.sh)"
            )
        if isinstance(sbatch_args, str):
            sbatch_args = shlex.split(sbatch_args)
        for label, value, low in (
            ("poll_interval", poll_interval, 0.01),
            ("grace", grace, 0.0),
        ):
            if not isinstance(value, (int, float)) or value < low:
                raise WorkerError(f"slurm worker: {label}={value!r}; expected a number >= {low}")
        if not isinstance(max_array, int) or max_array < 1:
            raise WorkerError(f"slurm worker: max_array={max_array!r}; expected an integer >= 1")
        if not isinstance(max_requeue, int) or max_requeue < 0:
            raise WorkerError(
                f"slurm worker: max_requeue={max_requeue!r}; expected an integer >= 0"
            )
        if state_source not in ("auto", "sacct", "scontrol"):
            raise WorkerError(
                f"slurm worker: state_source={state_source!r}; expected 'auto', 'sacct' or "
                "'scontrol'"
            )
        try:
            self.resources = check_resources("slurm worker", resources)
        except SpecError as err:
            raise WorkerError(str(err)) from err
        self.sbatch = sbatch
        self.sbatch_args = list(sbatch_args)
        self.poll_interval = float(poll_interval)
        self.max_array = max_array
        self.max_requeue = max_requeue
        self.array = array
        self.state_source = state_source
        self.work_dir = Path(work_dir).absolute() if work_dir is not None else None
        self.python = python or sys.executable
        self.grace = float(grace)
        if not isinstance(sbatch_retries, int) or sbatch_retries < 0:
            raise WorkerError(
                f"slurm worker: sbatch_retries={sbatch_retries!r}; expected an integer >= 0"
            )
        if not isinstance(sbatch_timeout, (int, float)) or sbatch_timeout <= 0:
            raise WorkerError(
                f"slurm worker: sbatch_timeout={sbatch_timeout!r}; expected a number of seconds > 0"
            )
        self.sbatch_retries = sbatch_retries
        self.sbatch_timeout = float(sbatch_timeout)
        self.submitted_ids: list[str] = []  # every sbatch job id, in order (arrays once)
        self._packer = Packer()
        self._pending: dict[int, _Element] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._sacct_ok: bool | None = None if state_source == "auto" else state_source == "sacct"
        self._squeue_failures = 0
        self._next_settle = 0.0

    # -- the contract ---------------------------------------------------------------------------
    def flush(self) -> None:
        buffer = self.take_buffer()
        groups: dict[tuple[int, tuple[tuple[str, Any], ...]], list[tuple[Job, Any]]] = {}
        for job, future in buffer:
            resources = merge_resources(self.resources, getattr(job.task_cls, "_resources", None))
            key = (id(job.task_cls), tuple(sorted(resources.items())))
            groups.setdefault(key, []).append((job, future))
        for (_, wanted), items in groups.items():
            size = self.max_array if self.array else 1
            for i in range(0, len(items), size):
                self._submit_group(items[i : i + size], dict(wanted))
        if self._pending and self._poller is None:
            self._stop.clear()  # a worker used again after close() follows its jobs again
            self._poller = threading.Thread(target=self._poll_loop, name="slurm-poll", daemon=True)
            self._poller.start()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10 * self.poll_interval + 5)
            self._poller = None
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        if left:  # the submitter is going away: nothing should keep running for it
            try:
                _run(["scancel", *sorted({e.slurm_id for e in left if e.slurm_id})])
            except (OSError, subprocess.TimeoutExpired) as err:
                print(f"provgraph: slurm worker: scancel failed: {err}", file=sys.stderr)
            for element in left:
                if not element.future.done():
                    element.future.set_result(
                        self._failure(element, "CANCELLED", "the submitter closed before it ended")
                    )

    # -- submission -----------------------------------------------------------------------------
    def _batch_dir(self, job: Job) -> Path:
        root = self.work_dir or job.output_dir.parent / ".slurm"
        batch = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        batch.mkdir(parents=True)
        return batch

    def _submit_group(self, items: list[tuple[Job, Any]], resources: dict[str, Any]) -> None:
        first = items[0][0]
        try:
            batch = self._batch_dir(first)
            write_batch(batch, [job for job, _ in items], self._packer, {"worker": self.name})
            elements = [
                _Element(job, future, batch, index, resources)
                for index, (job, future) in enumerate(items)
            ]
        except Exception as err:
            for job, future in items:
                message = f"cannot write job {job.name} for SLURM: {type(err).__name__}: {err}"
                future.set_result(failed_outcome(job, "WorkerError", message, worker=self.name))
            return
        name = f"pg-{getattr(first.task_cls, '_task_name', 'job')}"
        self._sbatch(elements, name, resources, array=len(elements) > 1)

    def _sbatch(
        self, elements: list[_Element], name: str, resources: dict[str, Any], *, array: bool
    ) -> None:
        batch = elements[0].batch
        # -P: the job's folder (its working directory, in the cache) is not put on sys.path,
        # so nothing planted there is imported; what is, comes from the sealed sys_path.json
        command = [self.python, "-P", "-m", "provgraph.workers.slurm_run", str(batch)]
        # a name of its own: finds the job if sbatch's answer is lost
        name = f"{name}-{uuid.uuid4().hex[:12]}"
        argv = [self.sbatch, "--parsable", f"--job-name={name}", f"--chdir={batch}"]
        if array:
            argv += [f"--array=0-{len(elements) - 1}", f"--output={batch}/%a.out"]
            argv += [f"--error={batch}/%a.err"]
        else:
            element = elements[0]
            command += [str(element.index), str(element.attempts)]
            argv += [f"--output={element.out_path}", f"--error={element.err_path}"]
        argv += [f"{_RESOURCE_FLAGS[k]}={v}" for k, v in sorted(resources.items())]
        argv += self.sbatch_args
        argv += ["--wrap", "exec " + shlex.join(command)]
        job_id, reason = self._submit(argv, name)
        if job_id is None:
            message = f"sbatch refused the job: {reason}\n  command: {shlex.join(argv)}"
            for element in elements:
                element.future.set_result(
                    failed_outcome(element.job, "SlurmJobError", message, worker=self.name)
                )
            return
        self.submitted_ids.append(job_id)
        with self._lock:
            for element in elements:
                element.slurm_id = f"{job_id}_{element.index}" if array else job_id
                element.gone_since = None
                self._pending[id(element)] = element

    def _submit(self, argv: list[str], name: str) -> tuple[str | None, str]:
        """Run sbatch: ``(job id, "")``, or ``(None, why)``. A controller that is busy or
        unreachable is asked again (``sbatch_retries`` times, waiting 1, 2, 4... s); an sbatch
        that does not answer in time may have queued the job all the same, so the queue and the
        accounting are searched for the job's name (unique) before it is submitted again."""
        reason = ""
        for attempt in range(self.sbatch_retries + 1):
            if attempt:
                time.sleep(min(2.0 ** (attempt - 1), 30.0))
            try:
                proc = _run(argv, timeout=self.sbatch_timeout)
            except OSError as err:
                return None, str(err)
            except subprocess.TimeoutExpired:
                found = self._find_named(name)
                if found is not None:
                    return found, ""
                reason = f"sbatch did not answer within {self.sbatch_timeout:g} s"
                continue
            if proc.returncode == 0:
                return proc.stdout.strip().split(";")[0], ""
            reason = proc.stderr.strip() or proc.stdout.strip()
            if not any(mark in reason.lower() for mark in _TRANSIENT):
                return None, reason  # a refusal (bad option, unknown partition...) is final
        return None, f"{reason} (tried {self.sbatch_retries + 1} times)"

    def _find_named(self, name: str) -> str | None:
        """The id of the job named ``name``, queued or (with accounting) already ended; asked a
        few times, as accounting may lag the controller by seconds."""
        for look in range(3):
            if look:
                time.sleep(1.0)
            for argv in (
                ["squeue", "-h", "-o", "%i", f"--name={name}"],
                ["sacct", "-n", "-X", "-P", "-S", "now-1days", "-o", "JobID", f"--name={name}"],
            ):
                try:
                    proc = _run(argv)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                found = proc.stdout.split()
                if proc.returncode == 0 and found:
                    return found[0].split("_")[0]
        return None

    # -- following the jobs ---------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll_once()
            except Exception as err:  # a poll must never kill the thread that follows jobs
                print(f"provgraph: slurm worker: poll failed: {err!r}", file=sys.stderr)

    def _poll_once(self) -> None:
        with self._lock:
            elements = list(self._pending.values())
        if not elements:
            return
        queued = self._squeue({e.slurm_id.split("_")[0] for e in elements})
        if queued is None:
            self._squeue_failures += 1
            if self._squeue_failures % 30 == 0:
                print(
                    f"provgraph: slurm worker: squeue has failed {self._squeue_failures} times "
                    "in a row; still waiting for the jobs",
                    file=sys.stderr,
                )
        else:
            self._squeue_failures = 0
        gone, stuck = [], []
        for element in elements:  # after squeue: a job gone from it wrote its outcome before
            in_queue = queued is not None and element.slurm_id in queued
            if element.outcome_path.exists():
                outcome = self._read_outcome(element)
                if outcome.ok:
                    self._resolve(element, outcome)
                elif queued is not None and not in_queue:
                    gone.append(element)  # failed: SLURM may know why (TIMEOUT, OOM...)
            elif queued is not None and not in_queue:
                gone.append(element)
            elif in_queue and queued is not None:
                reason = queued[element.slurm_id].partition("|")[2]
                if any(reason.startswith(r) for r in HOPELESS_REASONS):
                    stuck.append((element, reason))
        for element, reason in stuck:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _run(["scancel", element.slurm_id])
            self._resolve(
                element,
                self._failure(element, "PENDING", f"it can never start (reason: {reason})"),
            )
        # jobs already waiting for their accounting are asked about every few seconds, not at
        # every poll: sites throttle users who query sacct too often
        waited = all(e.gone_since is not None for e in gone)
        if gone and not (waited and time.monotonic() < self._next_settle):
            self._settle(gone)
            self._next_settle = time.monotonic() + max(self.poll_interval, _SETTLE_INTERVAL)

    def _squeue(self, job_ids: Iterable[str]) -> dict[str, str] | None:
        argv = ["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(sorted(job_ids))]
        try:
            proc = _run(argv)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            # every job listed has left the controller's memory: none is queued
            return {} if "Invalid job id" in proc.stderr else None
        return parse_squeue(proc.stdout)

    def final_states(self, slurm_ids: Iterable[str]) -> dict[str, SlurmState]:
        """Final states from sacct, or scontrol where accounting is not available."""
        parents = sorted({i.split("_")[0] for i in slurm_ids})
        states: dict[str, SlurmState] = {}
        if self._sacct_ok is not False:
            argv = ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,NodeList"]
            try:
                proc = _run([*argv, "-j", ",".join(parents)])
                ok = proc.returncode == 0 and "disabled" not in proc.stderr
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if self._sacct_ok is None and self.state_source == "auto":
                self._sacct_ok = ok
            if ok:
                states.update(parse_sacct(proc.stdout))
        wanted = set(slurm_ids)
        if self._sacct_ok is not True or not all(
            states.get(i, SlurmState("")).state in TERMINAL_STATES for i in wanted
        ):
            try:  # `scontrol show job` takes one id at most: ask for all, keep ours
                proc = _run(["scontrol", "show", "job", "-o"])
            except (OSError, subprocess.TimeoutExpired):
                return states
            for slurm_id, state in parse_scontrol(proc.stdout).items():
                if slurm_id.split("_")[0] not in parents:
                    continue
                if states.get(slurm_id, SlurmState("")).state not in TERMINAL_STATES:
                    states[slurm_id] = state
        return states

    def _settle(self, gone: list[_Element]) -> None:
        """Jobs that left the queue without a successful outcome: what did SLURM say?"""
        states = self.final_states(e.slurm_id for e in gone)
        now = time.monotonic()
        for element in gone:
            outcome = self._read_outcome(element) if element.outcome_path.exists() else None
            if outcome is not None and outcome.ok:  # finished between the two looks
                self._resolve(element, outcome)
                continue
            found = states.get(element.slurm_id)
            state = found.state if found is not None else ""
            if state in REQUEUE_STATES and element.attempts < self.max_requeue:
                self._requeue(element)
            elif outcome is not None:
                if state in _KILLED_STATES:  # the job's own error came from SLURM killing it
                    self._resolve(element, self._failure(element, state, "", found, outcome))
                elif state in TERMINAL_STATES or self._waited_out(element, now):
                    self._resolve(element, outcome)
            elif state in TERMINAL_STATES and state != "COMPLETED":
                self._resolve(element, self._failure(element, state, "", found))
            elif self._waited_out(element, now):
                # accounting lags the queue; a completed job's outcome file may lag on NFS
                self._resolve(element, self._failure(element, state or "UNKNOWN", "", found))

    def _waited_out(self, element: _Element, now: float) -> bool:
        if element.gone_since is None:
            element.gone_since = now
        return now - element.gone_since >= self.grace

    def _requeue(self, element: _Element) -> None:
        """Submit a job lost to its node again, with files of its own for this attempt."""
        with self._lock:
            if self._stop.is_set() or self._pending.pop(id(element), None) is None:
                return  # closing: close() cancels and reports what is left
        element.attempts += 1
        name = f"pg-{getattr(element.job.task_cls, '_task_name', 'job')}"
        self._sbatch([element], name, element.resources, array=False)

    def _resolve(self, element: _Element, outcome: Outcome) -> None:
        with self._lock:
            if self._pending.pop(id(element), None) is None:
                return
        element.future.set_result(outcome)

    def _read_outcome(self, element: _Element) -> Outcome:
        try:
            data = _signing.unseal_file(element.outcome_path)
            if data is None:
                why = "its outcome file is not sealed with your key"
                return self._failure(element, "FAILED", why)
            outcome = cloudpickle.loads(data)
        except Exception as err:
            return self._failure(element, "FAILED", f"its outcome file cannot be read ({err})")
        if not isinstance(outcome, Outcome):
            return self._failure(element, "FAILED", f"its outcome file holds {type(outcome)}")
        if outcome.job_hash != element.job.job_hash:  # another job's outcome, sealed or not
            return self._failure(element, "FAILED", "its outcome file is another job's")
        return outcome

    def _failure(
        self,
        element: _Element,
        state: str,
        why: str,
        found: SlurmState | None = None,
        outcome: Outcome | None = None,
    ) -> Outcome:
        what = _WHAT.get(state, f"ended in state {state}")
        detail = []
        if found is not None and found.exit_code:
            detail.append(f"exit code {found.exit_code}")
        if found is not None and found.node:
            detail.append(f"node {found.node}")
        if element.attempts:
            detail.append(f"after {element.attempts} requeue(s)")
        extra = f" ({', '.join(detail)})" if detail else ""
        message = f"SLURM job {element.slurm_id} of {element.job.name} {what}: {state}{extra}"
        if why:
            message += f"; {why}"
        if outcome is not None and outcome.error is not None:
            message += f"\n  the task reported: {outcome.error.type}: {outcome.error.message}"
        tail = _tail(element.err_path)
        if tail:
            message += f"\n  stderr (last {_TAIL_LINES} lines):\n" + "\n".join(
                "    " + line for line in tail
            )
        outcome = failed_outcome(
            element.job,
            "SlurmJobError",
            message,
            worker=self.name,
            slurm_job_id=element.slurm_id,
            slurm_state=state,
            log=str(element.err_path),
        )
        return attrs.evolve(outcome, host=(found.node if found is not None else "") or "")


def write_batch(
    batch: Path, jobs: Sequence[Job], packer: Packer, placement: dict[str, str]
) -> None:
    """A batch folder as ``slurm_run`` reads it (all sealed): the task class of ``jobs`` (one
    class), the submitting process's import path, and each job's fields by index."""
    blob = packer.class_blob(jobs[0].task_cls)[1]
    atomic_write(batch / "task.pkl", _signing.seal(blob))
    # the modules the submitting process can import, the job can import too
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]  # '' is the cwd
    paths = [p for p in dict.fromkeys(paths) if os.path.isdir(p)]
    atomic_write(batch / "sys_path.json", _signing.seal(json.dumps(paths).encode()))
    for index, job in enumerate(jobs):
        payload = cloudpickle.dumps(packer.fields(job, placement))
        atomic_write(batch / f"{index}.job.pkl", _signing.seal(payload))


def _tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-_TAIL_LINES:]
