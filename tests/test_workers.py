"""The worker contract, the same on every worker: outputs, cache directories, errors and
provenance of a workflow with a split, a combine and a shell task with files.

serial and cf always run; dask runs on a LocalCluster (``distributed`` is a test dependency);
slurm needs ``sbatch`` (``scripts/start-slurm.sh`` starts a one-node cluster; CI does).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import requires_slurm
from prov_tasks import Copy, Explode, Study, make_inputs
from provgraph import File, ProvenanceStore, Submitter, python, workflow
from provgraph.exceptions import WorkerError
from provgraph.workers import available_workers, get_worker

needs_slurm = requires_slurm("start a one-node cluster with scripts/start-slurm.sh")

WORKERS: dict[str, dict[str, Any]] = {
    "serial": {},
    "cf": {"n_procs": 2},
    "dask": {"n_workers": 2},
    "slurm": {"poll_interval": 0.2},
}
WORKER_PARAMS = [
    pytest.param(name, marks=needs_slurm if name == "slurm" else ()) for name in WORKERS
]


@python.define
def Half(x: int) -> float:
    if x == 3:
        raise ValueError("three has no half here")
    return x / 2


def _job_dirs(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir() if not p.name.startswith(".")}


def _records(cache: Path) -> set[tuple[str, ...]]:
    """Each job run as (node, job hash, status, worker, sorted output hashes): no times, ids."""
    store = ProvenanceStore(cache)
    rows = store.query(
        """SELECT ?node ?hash ?status ?worker ?outhash WHERE {
             ?run a pg:JobRun ; pg:nodeName ?node ; pg:jobHash ?hash ; pg:status ?status ;
                  pg:worker ?worker .
             OPTIONAL { ?out prov:wasGeneratedBy ?run ; pg:contentHash ?outhash } }"""
    )
    runs: dict[tuple[str, ...], set[str]] = {}
    for node, job, status, worker, outhash in rows:
        key = (str(node), str(job), str(status), str(worker))
        runs.setdefault(key, set()).add(str(outhash))
    return {(*key, *sorted(outs)) for key, outs in runs.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The workflow and the failing split run on the serial worker, to compare against."""
    base = tmp_path_factory.mktemp("reference")
    return _run_all(base, "serial")


def _run_all(base: Path, worker: str) -> dict[str, Any]:
    inputs = make_inputs(base / "inputs")
    cache = base / "cache"
    with Submitter(cache_dir=cache, worker=worker, progress=False, **WORKERS[worker]) as sub:
        study = sub(Study(files=inputs))
        halves = sub(Half().split(x=[1, 2, 3, 4]))
        copied = sub(Copy(in_file=inputs[0]))
        again = sub(Study(files=inputs))
        submitted = list(getattr(sub.worker, "submitted_ids", []))
    return {
        "cache": cache,
        "inputs": inputs,
        "study": study,
        "halves": halves,
        "copied": copied,
        "again": again,
        "dirs": _job_dirs(cache),
        "records": _records(cache),
        "submitted": submitted,
    }


@pytest.mark.parametrize("worker", WORKER_PARAMS)
def test_worker_contract(worker: str, tmp_path: Path, reference: dict[str, Any]) -> None:
    """Same outputs, same cache directories, same errors and the same provenance as serial."""
    got = _run_all(tmp_path, worker)
    # outputs
    assert got["study"].outputs.out == reference["study"].outputs.out == 6
    assert got["halves"].outputs.out == [0.5, 1.0, None, 2.0]
    copied = Path(got["copied"].outputs.out_file)
    assert copied.read_text() == Path(got["inputs"][0]).read_text()
    assert copied.parent.parent == got["cache"]  # the output landed in the job's own dir
    # cache directories: the same names, so a cache filled by one worker serves the others
    assert got["dirs"] == reference["dirs"]
    # errors: the failing element only, with its own message and input
    [error] = got["halves"].errors
    assert (error.error_type, error.inputs) == ("ValueError", {"x": 3})
    assert "three has no half here" in error.message
    assert got["halves"].stats == {"executed": 3, "reused": 0, "failed": 1, "skipped": 0}
    # cached jobs never reach the worker
    assert got["again"].stats == {"executed": 0, "reused": 1, "failed": 0, "skipped": 0}
    # provenance: the same runs, statuses and output hashes; each names the worker that ran it
    assert {r[:3] + r[4:] for r in got["records"]} == {r[:3] + r[4:] for r in reference["records"]}
    assert {r[3] for r in got["records"]} == {worker}


@needs_slurm
def test_slurm_sends_each_node_as_one_array(tmp_path: Path, reference: dict[str, Any]) -> None:
    """On SLURM, a split node's jobs go as one job array, visible in the recorded job ids."""
    got = _run_all(tmp_path, "slurm")
    store = ProvenanceStore(got["cache"])
    rows = store.query(
        """SELECT ?node ?id WHERE { ?run a pg:JobRun ; pg:nodeName ?node ; pg:slurmJobId ?id }"""
    )
    ids: dict[str, set[str]] = {}
    for node, slurm_id in rows:
        ids.setdefault(str(node), set()).add(str(slurm_id))
    # Half over 4 values: one array of 4 elements
    [half] = [v for k, v in ids.items() if k.startswith("Half")]
    arrays = {i.split("_")[0] for i in half}
    assert len(arrays) == 1 and {i.split("_")[1] for i in half} == {"0", "1", "2", "3"}
    # the copy node of the study (3 files): one array of 3
    copy_ids = ids["Study/copy"]
    assert len({i.split("_")[0] for i in copy_ids}) == 1 and len(copy_ids) == 3
    # every array and single job is one sbatch call; 4 nodes' worth of calls, not 11 jobs
    assert len(got["submitted"]) < 11
    # `provgraph show` and the HTML report say where a job ran
    from provgraph.provenance.query import show_job

    ran = next(d for d in got["cache"].glob("Half-*") if any(d.glob("_prov-*.trig")))
    [shown] = show_job(store, ran.name)
    assert shown["placement"][0]["slurm"] in half and shown["placement"][0]["worker"] == "slurm"
    report = got["cache"] / "report.html"  # the report of the submission that ran Half
    (half_run,) = [r["run"] for r in store.runs() if r["task"] == "Half"]
    store.export(report, "html", run=half_run)
    assert f"SLURM job {shown['placement'][0]['slurm']}" in report.read_text()


def test_workers_are_registered_by_name() -> None:
    assert {"serial", "cf", "dask", "slurm"} <= set(available_workers())
    with pytest.raises(WorkerError, match=r"unknown worker 'nope'.*'dask'"):
        get_worker("nope")


def test_dask_without_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for dask where ``distributed`` cannot be imported says which extra to install."""
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "provgraph.workers.dask", raising=False)
    with pytest.raises(WorkerError, match=r"pip install 'provgraph\[dask\]'"):
        Submitter(worker="dask")


def test_slurm_without_sbatch_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(WorkerError, match=r"needs SLURM's `sbatch` on PATH"):
        Submitter(cache_dir=tmp_path / "c", worker="slurm")


def test_failures_keep_provenance_on_every_worker(tmp_path: Path) -> None:
    """A failed job on dask is recorded like on serial: status and error."""
    with Submitter(cache_dir=tmp_path, worker="dask", n_workers=1, progress=False) as sub:
        result = sub(Explode(x=2))
    assert result.errored
    rows = ProvenanceStore(tmp_path).query(
        """SELECT ?status ?message ?worker WHERE { ?run a pg:JobRun ; pg:status ?status ;
             pg:worker ?worker ; pg:error/pg:errorMessage ?message }"""
    )
    assert [tuple(map(str, r)) for r in rows] == [("failed", "exploded on 2", "dask")]


def test_cf_with_a_fork_server(cache_dir: Path) -> None:
    """The cf worker runs on the forkserver start method (Python 3.14's default on Linux):
    its pool processes watch their submitter, not only their own parent."""
    from crash_tasks import Doomed

    with Submitter(
        cache_dir=cache_dir, worker="cf", n_procs=2, mp_context="forkserver", progress=False
    ) as sub:
        result = sub(Doomed(marks=str(cache_dir)).split(x=[1, 2, 3]))
    assert not result.errored, result.errors
    assert result.outputs.out == [2, 4, 6]


@python.define
def Twice(x: int) -> int:
    return 2 * x


@workflow.define
def TwiceAll(x: list[int]) -> list[int]:
    twice = workflow.add(Twice().split("x", x=x), name="twice")
    return twice.out


def _counting(sub: Submitter) -> tuple[list[int], list[int]]:
    """The sizes of the batches ``sub``'s worker packs, and how many it had packed when each
    job was submitted."""
    sizes: list[int] = []
    sent_at_submit: list[int] = []
    pack = sub.worker._packer.pack

    def counted(jobs: Any, placement: dict[str, str]) -> bytes:
        jobs = list(jobs)
        sizes.append(len(jobs))
        return pack(jobs, placement)

    def watch(event: Any) -> None:
        if type(event).__name__ == "JobSubmitted" and type(event.job.node.task) is Twice:
            sent_at_submit.append(len(sizes))

    sub.worker._packer.pack = counted  # type: ignore[method-assign]
    sub.hooks.append(watch)
    return sizes, sent_at_submit


_POOLS = [("cf", {"n_procs": 2}), ("dask", {"n_workers": 1})]


@pytest.mark.parametrize("inside", [False, True], ids=["top level", "inside a workflow"])
@pytest.mark.parametrize(("worker", "options"), _POOLS)
def test_batches_are_sent_as_soon_as_they_are_full(
    worker: str, options: dict[str, Any], inside: bool, cache_dir: Path
) -> None:
    """Told how many more jobs a round is expected to bring, the cf and dask workers send a
    batch once it is full, while the submitter still prepares the rest (before, every job of
    a round was prepared before the first was sent); batches keep the size the round gives
    them, also for jobs that became ready during the round (a workflow's)."""
    sub = Submitter(cache_dir=cache_dir, worker=worker, max_batch=4, progress=False, **options)
    sizes, sent_at_submit = _counting(sub)
    xs = list(range(40))
    with sub:
        result = sub(TwiceAll(x=xs) if inside else Twice().split(x=xs))
    assert result.outputs.out == [2 * x for x in xs]
    assert sent_at_submit[:3] == [0, 0, 0]  # the first batch is not full yet
    assert sent_at_submit[3] == 1  # sent as it filled (cf keeps at most 2 per process in flight)
    assert sizes == [4] * 10  # what the round gives: 40 jobs, 2 processes, max_batch=4


@pytest.mark.parametrize(("worker", "options"), _POOLS)
def test_a_partly_cached_round_is_not_sent_in_larger_batches(
    worker: str, options: dict[str, Any], cache_dir: Path
) -> None:
    """Jobs found in the cache are never sent: a round whose first 30 jobs are cached sends
    its 10 others in batches no larger than those 10 alone would get (2), not in the batches
    of a 40-job round (4), which would leave processes idle beside full ones."""
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Twice().split(x=list(range(30))))
    sub = Submitter(cache_dir=cache_dir, worker=worker, max_batch=4, progress=False, **options)
    sizes, _ = _counting(sub)
    with sub:
        result = sub(Twice().split(x=list(range(40))))
    assert result.stats["reused"] == 30 and result.stats["executed"] == 10
    assert sum(sizes) == 10 and max(sizes) <= 2, sizes


def test_slurm_run_runs_a_batch_written_by_the_slurm_workers_writer(cache_dir: Path) -> None:
    """What the slurm worker writes (``write_batch``), ``slurm_run`` runs with no cluster: the
    job's result and record in its directory, the outcome beside the batch, the placement
    naming the worker. (The benchmark of a SLURM job's start-up relies on this.)"""
    import subprocess
    from concurrent.futures import Future

    import cloudpickle

    from provgraph import _signing
    from provgraph.engine.job import run_job
    from provgraph.workers._payload import Packer
    from provgraph.workers.base import Worker
    from provgraph.workers.slurm import write_batch

    jobs: list[Any] = []

    class Keep(Worker):
        def submit(self, job: Any) -> Future[Any]:
            jobs.append(job)
            future: Future[Any] = Future()
            future.set_result(run_job(job))
            return future

    with Submitter(cache_dir=cache_dir, worker=Keep(), progress=False) as sub:
        assert sub(Twice(x=21)).outputs.out == 42
    [job] = jobs
    for path in job.output_dir.iterdir():  # as if it had not run: slurm_run runs it
        path.unlink()
    batch = cache_dir / "batch"
    batch.mkdir()
    write_batch(batch, jobs, Packer(), {"worker": "slurm"})
    subprocess.run(
        [sys.executable, "-m", "provgraph.workers.slurm_run", str(batch), "0"], check=True
    )
    outcome = cloudpickle.loads(_signing.unseal_file(batch / "0.outcome.pkl"))
    assert outcome.ok and outcome.outputs == {"out": 42}
    assert outcome.placement["worker"] == "slurm"
    assert (job.output_dir / f"_prov-{job.run_id}.trig").exists()


@python.define
def MakeAdder(n: int) -> Any:
    def add(x: int) -> int:  # a closure: only cloudpickle can send it back to the submitter
        return x + n

    return add


@pytest.mark.parametrize("worker", ["cf", "dask"])
def test_outputs_only_cloudpickle_can_send_come_back_from_pool_processes(
    worker: str, cache_dir: Path
) -> None:
    """Jobs and outcomes travel by plain pickle where it can, else by cloudpickle: a closure
    made in a pool process comes back working, beside plain values, and is cached."""
    options = WORKERS[worker]
    for _ in range(2):  # (the second time, from the cache)
        with Submitter(cache_dir=cache_dir, worker=worker, progress=False, **options) as sub:
            adders = sub(MakeAdder().split(n=[1, 2, 3])).outputs.out
            halves = sub(Half().split(x=[2, 4])).outputs.out
        assert [add(10) for add in adders] == [11, 12, 13]
        assert halves == [1.0, 2.0]


def _made_in(pid: int) -> Any:
    """Unpickling a ``Fussy``: it can be read only in the process that pickled it."""
    import os

    if os.getpid() != pid:
        raise ValueError(f"made in process {pid}, cannot be read in {os.getpid()}")
    return Fussy()


class Fussy:
    def __reduce__(self) -> Any:
        import os

        return (_made_in, (os.getpid(),))


@python.define
def MakeFussy(x: int) -> Any:
    return Fussy()


def test_an_outcome_the_submitter_cannot_read_fails_its_jobs_and_the_rest_run(
    cache_dir: Path,
) -> None:
    """A pool process's answer that cannot be unpickled in the submitter fails the jobs of that
    batch, saying so, instead of leaving sub() waiting for them; other jobs still run."""
    import threading

    done: dict[str, Any] = {}

    def submit() -> None:
        with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2, progress=False) as sub:
            done["fussy"] = sub(MakeFussy().split(x=[1, 2]))
            done["half"] = sub(Half(x=4))

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "sub() waits for jobs whose outcome could not be read"
    fussy = done["fussy"]
    assert fussy.errored and len(fussy.errors) == 2
    assert all("cannot be read here" in e.message for e in fussy.errors)
    assert done["half"].outputs.out == 2.0


_MAIN_SCRIPT = """
import dataclasses
import sys
import threading
from typing import Any

from provgraph import Submitter, python


@python.define
def Value(p: Any) -> int:
    return p.value()


if __name__ == "__main__":

    @dataclasses.dataclass
    class Point:  # only in the submitter's __main__: a spawned pool process cannot import it
        x: int

        def value(self) -> int:
            return self.x * 2

    options = {"worker": "cf", "n_procs": 1, "mp_context": sys.argv[2], "progress": False}
    with Submitter(cache_dir=sys.argv[1], **options) as sub:
        first = sub(Value(p=Point(3)))
        print("first", first.errors or first.outputs.out)

        @dataclasses.dataclass
        class Point:  # noqa: F811 - defined again after the pool started
            x: int

            def value(self) -> int:
                return self.x * 100

        second = sub(Value(p=Point(4)))
        print("second", second.errors or second.outputs.out)
"""


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_inputs_of_classes_in_the_submitter_s_main_reach_pool_processes(
    start: str, tmp_path: Path
) -> None:
    """A script's class defined under its ``__main__`` guard, and one defined again after
    the pool started: their instances reach the pool's processes as they are in the
    submitter (by value), whatever the start method."""
    import subprocess

    script = tmp_path / "script.py"
    script.write_text(_MAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache"), start],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["first 6", "second 400"]


@python.define
def WriteHere(x: int) -> File:
    """Writes its input to a relative path, in pieces (other threads run meanwhile), and
    returns that file."""
    import time

    with open("value.txt", "w") as fh:
        for digit in str(x).zfill(4):
            fh.write(digit)
            fh.flush()
            time.sleep(0.0005)  # (lets the other threads' jobs run in between)
    return File("value.txt")


def test_serial_submissions_in_threads_keep_their_own_directories(tmp_path: Path) -> None:
    """Serial submissions run at once from several threads: each Python task writes its
    relative files into its own job's directory, and the process's working directory is left
    as it was (a task's directory change used to move every thread)."""
    import os

    before = os.getcwd()
    results: dict[int, Any] = {}
    start = threading.Barrier(3)

    def submit(first: int) -> None:
        xs = list(range(first, first + 20))
        start.wait()
        with Submitter(cache_dir=tmp_path / f"cache{first}", progress=False) as sub:
            results[first] = (xs, sub(WriteHere().split(x=xs)))

    threads = [threading.Thread(target=submit, args=(n * 100,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert os.getcwd() == before
    assert sorted(results) == [0, 100, 200]
    for first, (xs, result) in results.items():
        assert not result.errors, result.errors
        outs = result.outputs.out
        assert [Path(f).read_text() for f in outs] == [str(x).zfill(4) for x in xs]
        # each file in its own job's directory, in this submission's cache
        assert all(Path(f).parent.parent == tmp_path / f"cache{first}" for f in outs)


_MEET = threading.Barrier(2)


_MAIN_IN = threading.Event()


@python.define
def Meet(x: int) -> int:
    """Waits until a task of the other thread is running too (the main thread's says it is in)."""
    if threading.current_thread() is threading.main_thread():
        _MAIN_IN.set()
    _MEET.wait(timeout=60)
    return x


@python.define
def Nested(x: int, cache: str) -> int:
    """Runs a serial submission of its own, in the same thread."""
    with Submitter(cache_dir=cache, progress=False) as sub:
        return int(sub(Half(x=x)).outputs.out * 2)


def test_threads_without_directories_of_their_own_are_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Where a thread cannot have a working directory of its own (a fake here: a system without
    ``unshare``), tasks of two threads running at once (the main thread's among them) are
    warned of, once; a task running a nested submission in its own thread is not."""
    from provgraph import _workdir

    monkeypatch.setattr(_workdir, "_unshare_fs", lambda: False)
    monkeypatch.setattr(_workdir, "_warned", False)
    with Submitter(cache_dir=tmp_path / "nested", progress=False) as sub:
        assert sub(Nested(x=4, cache=str(tmp_path / "inner"))).outputs.out == 4
    assert "no working directory of its own" not in capfd.readouterr().err
    outs: dict[int, Any] = {}

    def submit(x: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            _MAIN_IN.wait(timeout=60)  # (the main thread's task first: it was not counted)
        with Submitter(cache_dir=tmp_path / str(x), progress=False) as sub:
            outs[x] = sub(Meet(x=x)).outputs.out

    thread = threading.Thread(target=submit, args=(1,))
    thread.start()
    submit(2)  # (in the main thread, at once)
    thread.join()
    assert outs == {1: 1, 2: 2}
    err = capfd.readouterr().err
    assert err.count("gives a thread no working directory of its own") == 1


_IN_TASK = threading.Event()
_THREAD_DONE = threading.Event()


@python.define
def HoldOpen(x: int) -> int:
    """Stays in its job's directory until the other thread is done."""
    _IN_TASK.set()
    _THREAD_DONE.wait(timeout=60)
    return x


def test_a_thread_starts_in_the_process_directory_while_a_task_runs(tmp_path: Path) -> None:
    """A thread's first task, while the main thread is inside a task (in that job's directory),
    gives the thread the process's directory, not that job's: its later relative files land
    where the process is."""
    import os

    before = os.getcwd()
    seen: dict[str, Any] = {}

    def other() -> None:
        try:
            _IN_TASK.wait(timeout=60)
            with Submitter(cache_dir=tmp_path / "other", progress=False) as sub:
                seen["result"] = sub(WriteHere(x=5))
            seen["cwd"] = os.getcwd()
        finally:
            _THREAD_DONE.set()

    thread = threading.Thread(target=other)
    thread.start()
    with Submitter(cache_dir=tmp_path / "main", progress=False) as sub:
        held = sub(HoldOpen(x=1))
    thread.join()
    assert held.outputs.out == 1 and os.getcwd() == before
    assert seen["cwd"] == before  # (before: the main task's job directory)
    assert Path(seen["result"].outputs.out).read_text() == "0005"


def test_one_submitter_called_from_several_threads_runs_one_submission_at_a_time(
    tmp_path: Path,
) -> None:
    """A Submitter shared by threads serves their calls one after another: every submission
    is recorded whole (its hooks hold one submission's state: calls at once lost records)."""
    results: list[Any] = []
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:

        def submit(first: int) -> None:
            results.append(sub(WriteHere().split(x=list(range(first, first + 10)))))

        threads = [threading.Thread(target=submit, args=(n * 100,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 3 and all(not r.errors for r in results)
    store = ProvenanceStore(tmp_path / "cache")
    rows = store.query("SELECT ?s ?status WHERE { ?s a pg:Submission ; pg:status ?status }")
    assert sorted(str(status) for _, status in rows) == ["succeeded"] * 3
    (count,) = next(iter(store.query("SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }")))
    assert int(count) == 30
