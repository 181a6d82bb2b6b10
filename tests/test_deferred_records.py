"""Records of jobs run in the submitting process, written beside the run (issue 17).

A Python job that succeeds on the ``serial`` worker saves its record's data with its result;
a renderer process forked from the submitter writes the record from both while the next jobs
run, and the submission waits for it before it ends (``provenance/deferred.py``). These tests
run real submissions, with a real renderer process, and kill it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyoxigraph as ox
import pytest

from provgraph import ProvenanceStore, Submitter, cache, python
from provgraph.provenance import deferred

pytestmark = pytest.mark.skipif(
    not deferred.available(), reason="the renderer needs Linux's fork and two CPUs"
)

N = deferred.START_AFTER + 24  # enough jobs for the renderer to be forked


@python.define
def Square(x: int) -> int:
    return x * x


def _writer(sub: Submitter) -> Any:
    (recorder,) = [h for h in sub.hooks if hasattr(h, "prepare_job")]
    return recorder._writer


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
    assert writer.handed == N - deferred.START_AFTER and writer.failures == 0
    # every record is on disk when sub() returns, nothing is left aside
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N
    assert list(cache.glob("Square-*/*.pending")) == []
    store = ProvenanceStore(cache)
    rows = store.query(
        "SELECT ?x ?y WHERE { ?run a pg:JobRun ; pg:status 'succeeded' ; prov:used ?in . "
        "?in prov:value ?x . ?out prov:wasGeneratedBy ?run ; prov:value ?y }"
    )
    assert sorted((int(x), int(y)) for x, y in rows) == [(x, x * x) for x in range(N)]


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
    monkeypatch.setattr(deferred, "_RENDERER", None)  # (a renderer forked anew, that dies)
    monkeypatch.setattr(deferred, "_render", lambda conn: os._exit(3))
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
        writer = _writer(sub)
    assert writer.failures == 1
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N
    query = "SELECT ?run WHERE { ?run a pg:JobRun ; pg:status 'succeeded' }"
    rows = ProvenanceStore(cache).query(query)
    assert len(list(rows)) == N
    monkeypatch.undo()
    cache = tmp_path / "again"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        sub(Square().split(x=list(range(N))))
        writer = _writer(sub)
    assert writer.failures == 0 and writer.handed == N - deferred.START_AFTER
    assert len(list(cache.glob("Square-*/_prov-*.trig"))) == N


def test_a_record_lost_after_its_result_is_written_from_it_if_its_data_is_authentic(
    tmp_path: Path,
) -> None:
    """A record missing beside a result that holds its data (a killed renderer) is written by
    the next question to the store; data that does not verify with the user's key is never
    unpickled nor written from, and the result itself stays good."""
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
    assert cache.read_result(forged.parent) is not None  # reused: only its record is lost
