"""The dask worker against an external ``dask scheduler`` + ``dask worker`` pair on 127.0.0.1,
and its LocalCluster's life: started only when a job must run, closed with the submitter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prov_tasks import Study, make_inputs
from provgraph import File, ProvenanceStore, Submitter, python
from provgraph.exceptions import WorkerError

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def external_cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and one worker as separate processes, as a user would start them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    logs = [open(tmp_path / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
        env=env,
    )
    worker = None
    try:
        _wait_for(port, time.monotonic() + 60)
        worker = subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            env=env,
        )
        yield address
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in logs:
            log.close()


def test_external_scheduler(external_cluster: str, tmp_path: Path) -> None:
    """Jobs run on the external worker; its address is in each job's provenance."""
    inputs = make_inputs(tmp_path / "inputs")
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker="dask", address=external_cluster, progress=False) as sub:
        result = sub(Study(files=inputs))
        assert sub.worker.cluster is None  # nothing started by provgraph
    assert not result.errored, result.errors
    assert result.outputs.out == 6
    rows = ProvenanceStore(cache).query(
        "SELECT DISTINCT ?address WHERE { ?run a pg:JobRun ; pg:workerAddress ?address }"
    )
    [address] = [str(r[0]) for r in rows]
    assert address.startswith("tcp://127.0.0.1:") and address != external_cluster


def test_local_cluster_starts_only_for_work_and_closes(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=tmp_path / "c", worker="dask", n_workers=1, progress=False) as sub:
        assert sub(Study(files=inputs)).outputs.out == 6
        cluster = sub.worker.cluster
        assert cluster is not None and cluster.status.name == "running"
    assert cluster.status.name == "closed"
    with Submitter(cache_dir=tmp_path / "c", worker="dask", n_workers=1, progress=False) as sub:
        assert sub(Study(files=inputs)).stats["reused"] == 1
        assert sub.worker.cluster is None and sub.worker.client is None  # all from the cache


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    inputs = make_inputs(tmp_path / "inputs")
    with (
        Submitter(
            cache_dir=tmp_path / "c",
            worker="dask",
            address=address,
            connect_timeout=2,
            progress=False,
        ) as sub,
        pytest.raises(WorkerError, match=r"cannot connect to the scheduler at 'tcp://127"),
    ):
        sub(Study(files=inputs))


def test_cluster_options_with_an_address_are_refused() -> None:
    with pytest.raises(WorkerError, match=r"cluster options \['n_workers'\].*LocalCluster"):
        Submitter(worker="dask", address="tcp://127.0.0.1:8786", n_workers=2)


@python.define
def WriteMine(x: int) -> File:
    """Writes a file by a relative name: it must land in this job's own directory."""
    time.sleep(0.05)  # long enough for the jobs of one worker to overlap if they could
    Path("mine.txt").write_text(str(x))
    time.sleep(0.05)
    return File(Path("mine.txt").absolute())


def test_threads_of_one_dask_worker_do_not_mix_up_job_directories(tmp_path: Path) -> None:
    """A Dask worker process with several threads runs one job at a time (jobs change the
    process's working directory), so every file lands in its own job's directory."""
    with Submitter(
        cache_dir=tmp_path, worker="dask", n_workers=1, threads_per_worker=4, progress=False
    ) as sub:
        result = sub(WriteMine().split(x=list(range(8))))
    assert not result.errored, result.errors
    for x, made in enumerate(result.outputs.out):
        assert Path(made).read_text() == str(x)
        assert Path(made).parent.parent == tmp_path


@python.define
def Plus(x: int) -> int:
    return x + 1


def test_a_refused_connection_leaves_no_job_behind(tmp_path: Path) -> None:
    """A submission whose scheduler cannot be reached keeps nothing buffered: once the
    scheduler is up, the same submitter runs the same jobs, each once, as its own."""
    import distributed

    port = _free_port()
    sub = Submitter(
        cache_dir=tmp_path / "c",
        worker="dask",
        address=f"tcp://127.0.0.1:{port}",
        connect_timeout=2,
        progress=False,
    )
    with pytest.raises(WorkerError, match="cannot connect to the scheduler"):
        sub(Plus().split(x=[0, 1]))
    with (
        distributed.LocalCluster(
            scheduler_port=port, n_workers=1, processes=False, dashboard_address=None
        ),
        sub,
    ):
        result = sub(Plus().split(x=[0, 1]))
    assert result.outputs.out == [1, 2]
    assert result.stats == {"executed": 2, "reused": 0, "failed": 0, "skipped": 0}
