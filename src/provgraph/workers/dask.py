"""The ``dask`` worker: jobs run on a ``distributed`` cluster.

``Submitter(worker="dask")`` starts a ``LocalCluster`` when the first job needs running (a run
that finds everything cached starts none) and closes it with the submitter;
``Submitter(worker="dask", address="tcp://host:8786")`` uses a running scheduler instead.
Other keyword options go to ``LocalCluster`` (``n_workers=4``, ``threads_per_worker=1``...).

One client per worker object. Jobs travel as compact pickled batches (a task class once per
batch, then each job's fields), never the whole workflow; batches are small enough to keep
every Dask worker busy. In the Dask worker, each job's log records go to ``_worker.log`` in its
directory, and the worker's address and host are written into the job's provenance.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from functools import partial
from typing import Any

import cloudpickle
import distributed

from ..engine.job import Job, Outcome
from ..exceptions import WorkerError
from ._payload import Packer, failed_outcome, run_packed
from .base import BufferedWorker, batch_size

__all__ = ["DaskWorker"]

_Item = tuple[Job, "Future[Outcome]"]
_LOG_NAME = "_worker.log"
_CLUSTER_DEFAULTS: dict[str, Any] = {
    "processes": True,
    "threads_per_worker": 1,
    "dashboard_address": None,
}


# A job changes the process's working directory while it runs (a Python task runs in its job's
# directory), so the threads of one Dask worker process take turns; parallelism comes from
# worker processes (a LocalCluster started here has one thread per process).
_ONE_JOB_AT_A_TIME = threading.Lock()


def _run_on_dask_worker(payload: bytes) -> bytes:
    """In a Dask worker: run a packed batch, placed on this worker."""
    try:
        address = distributed.get_worker().address
    except ValueError:  # not in a worker (a client running tasks synchronously)
        address = ""
    with _ONE_JOB_AT_A_TIME:
        return run_packed(payload, {"worker": "dask", "address": address}, log_name=_LOG_NAME)


class DaskWorker(BufferedWorker):
    """Runs jobs on a Dask cluster: an external scheduler, or a ``LocalCluster`` of its own."""

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        max_batch: int = 32,
        connect_timeout: float = 30.0,
        **cluster_options: Any,
    ) -> None:
        super().__init__()
        if address is not None and not isinstance(address, str):
            raise WorkerError(
                f"dask worker: address={address!r}; expected a scheduler address such as "
                "'tcp://127.0.0.1:8786', or None to start a LocalCluster"
            )
        if address is not None and cluster_options:
            raise WorkerError(
                f"dask worker: cluster options {sorted(cluster_options)} were given with "
                f"address={address!r}; they only apply to a LocalCluster started by provgraph"
            )
        if not isinstance(max_batch, int) or max_batch < 1:
            raise WorkerError(f"dask worker: max_batch={max_batch!r}; expected a positive integer")
        self.address = address
        self.max_batch = max_batch
        self.connect_timeout = connect_timeout
        self.cluster_options = {**_CLUSTER_DEFAULTS, **cluster_options}
        self.client: distributed.Client | None = None
        self.cluster: Any = None
        self._packer = Packer()
        self._workers: int | None = None  # the cluster's workers, asked once per round

    # -- the contract ---------------------------------------------------------------------------
    def capacity(self) -> int | None:
        """The cluster's threads, once connected (it may grow or shrink later)."""
        if self.client is None:
            return None
        try:
            workers = self.client.scheduler_info().get("workers", {})
        except Exception:  # the scheduler went away: the run loop will say so
            return None
        return sum(int(w.get("nthreads", 1)) for w in workers.values()) or None

    def submit(self, job: Any) -> Future[Any]:
        """Buffered; a batch is sent as soon as the buffer holds one of the size the whole
        round is expected to give (see ``expect``): the cluster starts with the first job that
        must run, and works while the submitter prepares the rest."""
        if self._expected is None:
            return super().submit(job)
        client = self._client()  # (before the job is buffered: a refusal leaves nothing)
        future = super().submit(job)
        if self._workers is None:
            self._workers = self._n_workers(client)
        batch = self._full_batch(self._workers, self.max_batch)
        if batch:
            self._send(client, batch)
        return future

    def flush(self) -> None:
        buffer, sent = self._end_round()
        self._workers = None
        if not buffer:
            return
        client = self._client()
        # sized as the whole round's batches, those sent early included
        size = batch_size(sent + len(buffer), self._n_workers(client), self.max_batch)
        for i in range(0, len(buffer), size):
            self._send(client, buffer[i : i + size])

    @staticmethod
    def _n_workers(client: distributed.Client) -> int:
        return max(1, len(client.scheduler_info().get("workers", {})))

    def close(self) -> None:
        self._expected, self._round_sent, self._workers = None, 0, None
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    # -- dispatch -------------------------------------------------------------------------------
    def _client(self) -> distributed.Client:
        if self.client is not None:
            return self.client
        if self.address is None:
            try:
                self.cluster = distributed.LocalCluster(**self.cluster_options)
            except TypeError as err:
                raise WorkerError(
                    f"dask worker: LocalCluster refused options {self.cluster_options}: {err}"
                ) from err
            target: Any = self.cluster
        else:
            target = self.address
        try:
            self.client = distributed.Client(
                target, timeout=self.connect_timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as err:
            raise WorkerError(
                f"dask worker: cannot connect to the scheduler at {self.address!r} within "
                f"{self.connect_timeout:g} s ({err}); start one with `dask scheduler` and "
                "`dask worker <address>`, or leave address=None for a LocalCluster"
            ) from err
        return self.client

    def _send(self, client: distributed.Client, batch: list[_Item]) -> None:
        try:
            payload = self._packer.pack((job for job, _ in batch), {"worker": self.name})
        except Exception as err:
            for job, future in batch:
                message = f"cannot send job {job.name} to Dask: {type(err).__name__}: {err}"
                future.set_result(failed_outcome(job, "WorkerError", message, worker=self.name))
            return
        dask_future = client.submit(_run_on_dask_worker, payload, pure=False)
        dask_future.add_done_callback(partial(self._done, batch))

    def _done(self, batch: list[_Item], dask_future: Any) -> None:
        try:
            outcomes = cloudpickle.loads(dask_future.result())
        except Exception as err:  # the batch never ran or its worker died (KilledWorker...)
            for job, future in batch:
                message = f"Dask could not run job {job.name}: {type(err).__name__}: {err}"
                future.set_result(failed_outcome(job, "WorkerError", message, worker=self.name))
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
