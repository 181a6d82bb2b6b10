"""Records of jobs run in the submitting process, written beside the run (issue 17).

A Python job that succeeds on the ``serial`` worker saves its record's data with its result;
a renderer process forked from the submitter writes the record from both while the next jobs
run, and the submission waits for it before it ends (``provenance/deferred.py``). These tests
run real submissions, with a real renderer process, and kill it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest
import xxhash

from provgraph import File, ProvenanceStore, Submitter, cache, python, workflow
from provgraph.provenance import deferred
from provgraph.provenance.index import Index

pytestmark = pytest.mark.skipif(
    not deferred.available(), reason="the renderer needs Linux's fork and two CPUs"
)

N = deferred.START_AFTER + 24  # enough jobs for the renderer to be forked


@pytest.fixture(autouse=True)
def no_renderer_yet() -> None:
    """Each test starts as a fresh process does: no renderer forked yet."""
    deferred._drop(deferred._RENDERER)


@python.define
def Square(x: int) -> int:
    return x * x


def _writer(sub: Submitter) -> Any:
    (recorder,) = [h for h in sub.hooks if hasattr(h, "prepare_job")]
    return recorder._writer


def _saved_with_records(cache_dir: Path) -> list[Path]:
    """The job directories holding a saved result, each checked to have its run's record."""
    saved = [d for d in cache_dir.glob("Square-*") if (d / cache.RESULT_NAME).exists()]
    for directory in saved:
        stored = cache.read_result(directory)
        assert stored is not None and (directory / f"_prov-{stored.run_id}.trig").exists()
    return saved


def _shapes(cache: Path) -> dict[int, Counter[str]]:
    """Per element index, how many triples of each predicate its record holds."""
    found = {}
    for path in cache.glob("Square-*/_prov-*.trig"):
        quads = list(ox.parse(path=path, format=ox.RdfFormat.TRIG, base_iri=path.as_uri()))
        index = next(int(q.object.value) for q in quads if q.predicate.value.endswith("Index"))
        found[index] = Counter(q.predicate.value for q in quads)
    return found


def test_a_serial_run_s_records_are_written_by_the_renderer(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        result = sub(Square().split(x=list(range(N))))
        writer = _writer(sub)
    assert result.outputs.out == [x * x for x in range(N)]
    assert isinstance(writer, deferred.DeferredRecords)
    # a submission this size hands its records over after the first few
    assert writer.handed == N - deferred.EARLY and writer.failures == 0
    # every record is on disk when sub() returns, nothing is left aside
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N
    assert list(cache.glob("Square-*/*.pending")) == []
    store = ProvenanceStore(cache)
    rows = store.query(
        "SELECT ?x ?y WHERE { ?run a pg:JobRun ; pg:status 'succeeded' ; prov:used ?in . "
        "?in prov:value ?x . ?out prov:wasGeneratedBy ?run ; prov:value ?y }"
    )
    assert sorted((int(x), int(y)) for x, y in rows) == [(x, x * x) for x in range(N)]


@workflow.define
def SquareAll(xs: list[int]) -> list[int]:
    return workflow.add(Square().split(x=xs), name="square").out


def test_when_the_renderer_is_forked(tmp_path: Path) -> None:
    """A submission of fewer than START_AFTER jobs never forks a renderer; one of more forks it
    after the first EARLY records, unless most of its jobs are taken from the cache; one whose
    size is not known when it starts (a workflow, one job, splitting inside) after the first
    START_AFTER; once forked, it is used from the first job (EARLY: fails before it)."""
    small = deferred.START_AFTER - 1
    with Submitter(cache_dir=tmp_path / "small", progress=False) as sub:
        sub(Square().split(x=list(range(small))))
        assert _writer(sub).handed == 0 and deferred._RENDERER is None
    assert len(list((tmp_path / "small").glob("Square-*/_prov-*.trig"))) == small
    with Submitter(cache_dir=tmp_path / "inner", progress=False) as sub:
        sub(SquareAll(xs=list(range(N))))
        assert _writer(sub).handed == N - deferred.START_AFTER
    deferred._drop(deferred._RENDERER)  # (a fresh process again)
    with Submitter(cache_dir=tmp_path / "split", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
        assert _writer(sub).handed == N - deferred.EARLY
        before = _writer(sub).handed
        sub(Square().split(x=list(range(N, N + 8))))  # (the next one: a renderer is there)
        assert _writer(sub).handed == before + 8
    for name, n in (("inner", N), ("split", N + 8)):
        assert len(list((tmp_path / name).glob("Square-*/_prov-*.trig"))) == n
    deferred._drop(deferred._RENDERER)
    with Submitter(cache_dir=tmp_path / "split", progress=False) as sub:  # 30 new of N + 38
        sub(Square().split(x=list(range(N + 38))))
        assert _writer(sub).handed == 0 and deferred._RENDERER is None
    assert len(list((tmp_path / "split").glob("Square-*/_prov-*.trig"))) == N + 38


def test_records_from_the_renderer_say_what_records_written_in_the_job_s_process_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same jobs recorded both ways: each record holds the same triples (by predicate)."""
    shapes = []
    for defer in (True, False):
        monkeypatch.setattr(deferred, "available", lambda defer=defer: defer)
        cache = tmp_path / f"cache-{defer}"
        with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
            sub(Square().split(x=list(range(N))))
            handed = getattr(_writer(sub), "handed", 0)
        assert (handed > 0) is defer
        shapes.append(_shapes(cache))
    assert len(shapes[0]) == N and shapes[0] == shapes[1]


def test_a_dead_renderer_costs_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The renderer dies at once: the submission writes what it handed over, from the
    results, and the next submission forks a renderer anew."""
    monkeypatch.setattr(deferred, "_render", lambda *pipes: os._exit(3))
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N
    query = "SELECT ?run WHERE { ?run a pg:JobRun ; pg:status 'succeeded' }"
    rows = ProvenanceStore(cache).query(query)
    assert len(list(rows)) == N
    monkeypatch.undo()
    cache = tmp_path / "again"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
        writer = _writer(sub)
    assert writer.failures == 0 and writer.handed == N  # (forked before: from the first job)
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N


def test_a_record_lost_after_its_result_is_written_from_it_if_its_data_is_authentic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record missing beside a result that holds its data (a killed renderer) is written by
    the next question to the store; data that does not verify with the user's key is never
    unpickled nor written from, and its result is no longer reused (a reusable result always
    has the record of the run that computed it): the next submission runs that job again."""
    monkeypatch.setattr(deferred, "START_AFTER", 0)  # (two jobs, both handed over)
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Square().split(x=[1, 2]))
    lost, forged = sorted(cache_dir.glob("Square-*/_prov-*.trig"))
    lost.unlink()
    forged.unlink()
    result = forged.parent / cache.RESULT_NAME
    data = bytearray(result.read_bytes())
    assert data[:4] == b"PGR1"
    data[8 + 4 + 32 + 5] ^= 0xFF  # a byte of the record data, after its magic and MAC
    result.write_bytes(bytes(data))
    store = ProvenanceStore(cache_dir)
    rows = store.query("SELECT ?run WHERE { ?run a pg:JobRun ; pg:status 'succeeded' }")
    assert len(list(rows)) == 1
    assert lost.exists() and not forged.exists()
    assert cache.read_result(forged.parent) is None  # a miss: its record can never be written
    assert not Index(cache_dir).behind()  # and no longer awaited
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        again = sub(Square().split(x=[1, 2]))
    assert again.stats["executed"] == 1 and again.outputs.out == [1, 4]
    store = ProvenanceStore(cache_dir)
    rows = store.query("SELECT ?run WHERE { ?run a pg:JobRun ; pg:status 'succeeded' }")
    assert len(list(rows)) == 2


@python.define
def Echo(a: Any) -> Any:
    return a


# plain values (kept as values, described by whoever writes the record) and others
VALUES = [1, -7, "s", "", 2.5, float("nan"), None, True, "x" * 300, [1, 2], {"k": 1}, b"by"]


def _values(cache_dir: Path) -> dict[int, set[tuple[str, str]]]:
    """Per element index, what its record says of each entity: its hash, value and type."""
    kept = ("contentHash", "value", "#type")
    found = {}
    for path in cache_dir.glob("Echo-*/_prov-*.trig"):
        quads = list(ox.parse(path=path, format=ox.RdfFormat.TRIG, base_iri=path.as_uri()))
        index = next(int(q.object.value) for q in quads if q.predicate.value.endswith("Index"))
        found[index] = {
            (q.predicate.value, str(q.object))
            for q in quads
            if q.predicate.value.endswith(kept) and not isinstance(q.subject, ox.BlankNode)
        }
    return found


def test_values_described_by_the_renderer_are_those_described_in_the_job_s_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain inputs and outputs travel as values and are described by the renderer: each
    record says of them (hashes, values, types) what a record written beside the job says."""
    monkeypatch.setattr(deferred, "START_AFTER", 0)
    said = []
    for defer in (True, False):
        monkeypatch.setattr(deferred, "available", lambda defer=defer: defer)
        cache_dir = tmp_path / f"cache-{defer}"
        with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
            sub(Echo().split(a=VALUES))
            assert (getattr(_writer(sub), "handed", 0) == len(VALUES)) is defer
        said.append(_values(cache_dir))
    assert len(said[0]) == len(VALUES) and said[0] == said[1]
    hashes = {
        index: {o for p, o in facts if p.endswith("contentHash")}
        for index, facts in said[0].items()
    }
    assert all(len(found) == 1 for found in hashes.values())  # echoed: used what it generated
    assert len({h for found in hashes.values() for h in found}) == len(VALUES)


def test_record_data_saved_by_an_earlier_provgraph_is_still_written_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result saved with record data in the earlier form (the whole context, outputs
    described) still gives its record, as the index's catch-up writes it after a kill."""
    import pickle

    from provgraph.provenance import record

    monkeypatch.setattr(deferred, "START_AFTER", 0)
    saved = []

    def earlier_form(job: Any, outcome: Any) -> bytes:
        env_hash, extra = record._in_this_process(job, outcome, job.output_dir)
        context = {**job.context}
        context["inputs"] = {k: record.describe_value(v) for k, v in job.inputs.items()}
        saved.append(job.run_id)
        return pickle.dumps(
            {
                "run_id": job.run_id,
                "outputs": {k: record.describe_value(v) for k, v in outcome.outputs.items()},
                "context": context,
                "index": job.index,
                "environment": env_hash,
                "extra": extra,
                "placement": outcome.placement,
                "usage": outcome.usage,
            }
        )

    monkeypatch.setattr(deferred, "record_data", earlier_form)
    monkeypatch.setattr(deferred, "_render", lambda *pipes: os._exit(3))  # never written now
    monkeypatch.setattr(deferred.DeferredRecords, "finish", lambda self: None)
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Square().split(x=[3, 4]))
    assert len(saved) == 2 and list(cache_dir.glob("Square-*/_prov-*.trig")) == []
    rows = ProvenanceStore(cache_dir).query(
        "SELECT ?x ?y WHERE { ?run a pg:JobRun ; pg:status 'succeeded' ; prov:used ?in . "
        "?in prov:value ?x . ?out prov:wasGeneratedBy ?run ; prov:value ?y }"
    )
    assert sorted((int(x), int(y)) for x, y in rows) == [(3, 9), (4, 16)]


def test_record_data_is_passed_by_by_a_provgraph_of_the_earlier_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache shared with an earlier provgraph: that version's reader compared the data's
    ``run_id`` with the result's run before it used the data (and its ``context``, which the
    data no longer holds), so the data must not name the run there: it passes it by instead
    of failing every question to the store."""
    import pickle

    from provgraph import _signing

    monkeypatch.setattr(deferred, "START_AFTER", 0)
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Square().split(x=[5]))
    (record,) = cache_dir.glob("Square-*/_prov-*.trig")
    found = cache.read_result_and_record(record.parent)
    assert found is not None and found[1] is not None
    stored, sealed = found
    data = _signing.unseal(sealed)
    assert data is not None
    given = pickle.loads(data)
    assert "context" not in given and given["run_id"] != stored.run_id  # the earlier check
    assert given["run"] == stored.run_id


def test_a_forced_rerun_first_writes_the_record_of_the_result_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose record was never written (killed before the renderer wrote it), its result
    replaced by a forced rerun before any question to the store: its record is written from
    that result before the rerun replaces it, and the rerun's record names it."""
    monkeypatch.setattr(deferred, "START_AFTER", 0)
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Square().split(x=[1, 2]))
    lost = sorted(cache_dir.glob("Square-*/_prov-*.trig"))[0]
    lost.unlink()  # as if the submitter had been killed before it was written
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        assert sub(Square().split(x=[1, 2]), rerun=True).outputs.out == [1, 4]
    assert lost.exists()
    rows = ProvenanceStore(cache_dir).query(
        "SELECT ?run ?earlier WHERE { ?run a pg:JobRun ; pg:status 'succeeded' . "
        "OPTIONAL { ?run pg:rerunOf ?earlier } }"
    )
    runs = {str(run): earlier for run, earlier in rows}
    assert len(runs) == 4
    reran = {str(earlier) for earlier in runs.values() if earlier is not None}
    assert len(reran) == 2 and reran <= set(runs)  # each earlier run has its record


@python.define
def Make(x: int, folder: str) -> File:
    path = Path(folder) / f"made-{x}.txt"
    path.write_text(f"made {x}")
    return File(path)


@python.define
def Consume(made: File) -> int:
    text = Path(made).read_text()
    Path(made).unlink()  # a file used once, then removed: before its record is written
    return len(text)


@workflow.define
def MakeAndConsume(xs: list[int], folder: str) -> list[int]:
    made = workflow.add(Make(folder=folder).split(x=xs), name="make")
    return workflow.add(Consume(made=made.out), name="consume").out


def test_outputs_are_described_when_the_job_ends_not_when_its_record_is_written(
    tmp_path: Path,
) -> None:
    """A job's output file removed by the next job: its record still says what it was (its
    content hash), as when the record was written before the result was saved."""
    folder = tmp_path / "files"
    folder.mkdir()
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(MakeAndConsume(xs=list(range(N)), folder=str(folder)))
    assert list(folder.iterdir()) == []  # every file was removed
    assert len(list(cache_dir.glob("Make-*/_prov-*.trig"))) == N
    rows = ProvenanceStore(cache_dir).query(
        "SELECT ?hash WHERE { ?run a pg:JobRun ; pg:taskName 'Make' . "
        "?out prov:wasGeneratedBy ?run ; pg:contentHash ?hash }"
    )
    made = {xxhash.xxh3_128_hexdigest(f"made {x}".encode()) for x in range(N)}
    assert {str(h).removeprefix("xxh3-128:") for (h,) in rows} == made


def _in_a_pool_worker(cache_dir: str) -> tuple[int, int]:
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
    found = Path(cache_dir)
    results = [d for d in found.glob("Square-*") if (d / "_lock").exists()]  # (not the split's)
    return len(list(found.glob("Square-*/_prov-*.trig"))), len(results)


def test_a_submission_inside_a_daemonic_process_writes_its_own_records(tmp_path: Path) -> None:
    """A pool worker (daemonic) may have no children: its records are written in-process."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        records, jobs = pool.apply(_in_a_pool_worker, (str(tmp_path / "cache"),))
    assert records == jobs == N


@python.define
def Pointer(x: int) -> object:
    return ctypes.pointer(ctypes.c_int(x))  # pickling it raises ValueError, not PicklingError


def test_an_output_that_pickle_refuses_with_any_error_fails_only_its_job(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    with Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub:
        result = sub(Pointer().split(x=[1, 2]))
    assert result.stats["failed"] == 2
    for error in result.errors:
        assert (error.output_dir / "_error.json").exists()
    query = "SELECT ?r WHERE { ?r a pg:JobRun ; pg:status 'failed' }"
    assert len(list(ProvenanceStore(cache_dir).query(query))) == 2


def test_ctrl_c_while_a_batch_is_handed_over_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands as a batch goes to the renderer: the submission stops, and every result it
    saved has its record when sub() has raised (written in-process, from the results)."""
    real = deferred._Renderer.send
    calls = []

    def interrupted(self: Any, message: bytes) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, message)

    monkeypatch.setattr(deferred._Renderer, "send", interrupted)
    cache_dir = tmp_path / "cache"
    with (
        pytest.raises(KeyboardInterrupt),
        Submitter(cache_dir=cache_dir, worker="serial", progress=False) as sub,
    ):
        sub(Square().split(x=list(range(N * 2))))
    assert len(_saved_with_records(cache_dir)) > deferred.EARLY + deferred.BATCH


def test_records_are_written_when_an_error_ends_the_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error escaping the engine (here a user's hook) ends sub(): every result it saved
    has its record when sub() has raised, not only after a question to the store."""
    monkeypatch.setattr(deferred, "START_AFTER", 0)
    finished = []

    def hook(event: Any) -> None:
        if type(event).__name__ == "JobFinished":
            finished.append(event)
            if len(finished) == 40:
                raise RuntimeError("a hook that fails")

    cache_dir = tmp_path / "cache"
    with (
        pytest.raises(RuntimeError, match="a hook that fails"),
        Submitter(cache_dir=cache_dir, worker="serial", progress=False, hooks=[hook]) as sub,
    ):
        sub(Square().split(x=list(range(60))))
    assert len(_saved_with_records(cache_dir)) == 40


def test_submitters_in_threads_share_a_renderer_that_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three threads submit at once; the renderer they share is killed while they run (or
    after, if they are quicker). Every record is whole, every result good, none missing."""
    monkeypatch.setattr(deferred, "START_AFTER", 0)
    errors: list[BaseException] = []

    def submit(name: str) -> None:
        try:
            with Submitter(cache_dir=tmp_path / name, worker="serial", progress=False) as sub:
                sub(Square().split(x=list(range(300))))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=submit, args=(f"cache{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    while deferred._RENDERER is None and any(t.is_alive() for t in threads):
        time.sleep(0.001)
    found = deferred._RENDERER
    if found is not None:
        os.kill(found.pid_of_child, signal.SIGKILL)
    for thread in threads:
        thread.join()
    assert errors == []
    for i in range(3):
        jobs = [d for d in (tmp_path / f"cache{i}").glob("Square-*") if (d / "_lock").exists()]
        assert len(jobs) == 300
        for directory in jobs:
            stored = cache.read_result(directory)
            assert stored is not None
            record = directory / f"_prov-{stored.run_id}.trig"
            quads = list(ox.parse(path=record, format=ox.RdfFormat.TRIG, base_iri=record.as_uri()))
            assert any(q.predicate.value.endswith("#jobHash") for q in quads)
