"""Job records are written as text (issue 17): values that need escaping come back exact.

Each record below is read by both stores (pyoxigraph's parser and rdflib's), so a badly escaped
string, IRI or blank node would fail the parse or change the value.
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import rdflib

from provgraph import File, ProvenanceStore, Submitter, python

TRICKY = [
    'quote " and backslash \\ and a tab\tthere',
    "new\nline and carriage\rreturn, braces } { and > <",
    "unicode é ß 漢字 and an emoji \U0001f600",
    "a control \x01 character and prefixed-looking text pg:status 'x' .",
]


@python.define
def Echo(text: str, path: File) -> str:
    if text.startswith("fail"):
        raise ValueError(text)
    return text + "!"


@pytest.mark.parametrize("backend", ["oxigraph", "memory"])
def test_tricky_values_paths_and_errors_round_trip(tmp_path: Path, backend: str) -> None:
    folder = tmp_path / "in put #1 %20 é"
    folder.mkdir()
    path = folder / "data file.txt"
    path.write_text("content")
    cache = tmp_path / "cache dir é"
    failing = 'fail: "quoted" \\ and\nnewline } >'
    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(Echo(path=path).split(text=[*TRICKY, failing]))
    assert result.errored

    store = ProvenanceStore(cache, backend=backend)
    inputs = {
        str(value)
        for (value,) in store.query(
            "SELECT ?v WHERE { ?run a pg:JobRun ; prov:qualifiedUsage ?u . "
            "?u prov:hadRole/rdfs:label 'text' ; prov:entity/prov:value ?v }"
        )
    }
    assert inputs == {*TRICKY, failing}
    outputs = {
        str(value)
        for (value,) in store.query(
            "SELECT ?v WHERE { ?e prov:wasGeneratedBy ?run ; prov:value ?v . ?run a pg:JobRun }"
        )
    }
    assert outputs == {text + "!" for text in TRICKY}
    errors = [
        (str(kind), str(message))
        for kind, message in store.query(
            "SELECT ?t ?m WHERE { ?run pg:status 'failed' ; pg:error ?e . "
            "?e pg:errorType ?t ; pg:errorMessage ?m }"
        )
    ]
    assert errors == [("ValueError", failing)]
    locations = {
        where
        for (where,) in store.query(
            "SELECT DISTINCT ?where WHERE { ?run a pg:JobRun ; prov:used ?e . "
            "?e a pg:File ; prov:atLocation ?where }"
        )
    }
    assert locations == {rdflib.URIRef(path.as_uri())}
    dirs = {
        Path(urllib.parse.unquote(urllib.parse.urlparse(str(d)).path))
        for (d,) in store.query("SELECT ?d WHERE { ?run a pg:JobRun ; pg:outputDir ?d }")
    }
    assert len(dirs) == len(TRICKY) + 1
    assert all(d.parent == cache and d.is_dir() for d in dirs)


@python.define
def Half(x: float) -> float:
    return x / 2


@python.define
def Twice(y: Any) -> Any:
    return y * 2


def test_numpy_scalars_are_written_as_plain_literals(tmp_path: Path) -> None:
    """A numpy float is a float: written "3.0"^^xsd:double, not its repr; and a rerun from
    another record's literals of the same value (same content entity) is not disturbed."""
    np = pytest.importorskip("numpy")
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        plain = sub(Half(x=1.5))
        sub(Twice(y=np.float64(1.5)))
    store = ProvenanceStore(tmp_path)
    values = {
        value.n3()
        for (value,) in store.query(
            "SELECT ?v WHERE { ?e prov:wasGeneratedBy ?run ; prov:value ?v . "
            "?run pg:taskName 'Twice' }"
        )
    }
    assert values == {'"3.0"^^<http://www.w3.org/2001/XMLSchema#double>'}
    assert store.rerun(plain.output_dir.name).all_reproduced


def test_nan_and_infinities_are_written_in_their_xsd_forms(tmp_path: Path) -> None:
    """XSD spells them ``NaN``, ``INF`` and ``-INF`` (Python's ``nan``, ``inf``, ``-inf`` are not
    ``xsd:double`` lexical forms: a strict reader refuses them); each rerun from those
    literals gets back the value it recorded."""
    values = [float("nan"), float("inf"), float("-inf")]
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        result = sub(Half().split(x=values))
    written = {
        line.split(" ", 2)[2].rstrip(" .")
        for record in tmp_path.glob("Half-*/_prov-*.trig")
        for line in record.read_text().splitlines()
        if "prov:value" in line and "#out>" not in line
    }
    assert written == {f'"{form}"^^xsd:double' for form in ("NaN", "INF", "-INF")}
    store = ProvenanceStore(tmp_path)
    for job_dir in result.job_dirs:
        assert store.rerun(job_dir.name).all_reproduced


def test_environment_file_written_again_when_gone(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for _ in range(2):  # the second time in a new cache at the same place, same process
        shutil.rmtree(cache, ignore_errors=True)
        with Submitter(cache_dir=cache, progress=False) as sub:
            sub(Half(x=1.0))
        assert len(list((cache / ".provenance" / "environments").glob("*.trig"))) == 1
    rows = list(ProvenanceStore(cache).query("SELECT ?v WHERE { ?env pg:pythonVersion ?v }"))
    assert len(rows) == 1


@python.define
def Plus(x: int) -> int:
    return x + 1


@pytest.mark.parametrize("backend", ["oxigraph", "memory"])
def test_reused_runs_are_written_in_each_runs_own_graph(tmp_path: Path, backend: str) -> None:
    """The submission's end file names the runs it reused as lines, in more blocks of the
    submission's and its workflow run's graphs: both stores read each ``pg:reused`` in the
    graph of the run that reused."""
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        first = sub(Plus().split(x=[1, 2, 3]))
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        again = sub(Plus().split(x=[1, 2, 3]))
    assert first.stats["executed"] == 3 and again.stats["reused"] == 3
    store = ProvenanceStore(tmp_path, backend=backend)
    rows = store.query("SELECT ?g ?s ?earlier { GRAPH ?g { ?s pg:reused ?earlier } }")
    reused = [tuple(map(str, row)) for row in rows]
    assert len(reused) == 6  # the submission and its workflow run each reused the 3 runs
    assert all(g == s for g, s, _ in reused)  # each in the graph of the run that reused
    kinds = {str(k) for (k,) in store.query("SELECT ?k { ?s pg:reused ?e ; a ?k }")}
    assert {"https://w3id.org/provgraph/ns#Submission", V_PG + "WorkflowRun"} <= kinds
    runs = {str(r) for (r,) in store.query("SELECT ?r { ?r a pg:JobRun }")}
    assert {e for _, _, e in reused} == runs and len(runs) == 3


V_PG = "https://w3id.org/provgraph/ns#"


def test_a_removed_environment_file_is_written_again_by_the_next_submission(
    tmp_path: Path,
) -> None:
    """The environment's file is looked for once per workflow run in a process, not for
    every job: removed between two submissions of one Submitter, it is written again."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, worker="serial", progress=False) as sub:
        sub(Plus().split(x=[1, 2]))
        (written,) = (cache / ".provenance" / "environments").glob("*.trig")
        written.unlink()
        sub(Plus().split(x=[3, 4]))
    assert written.exists()
    rows = list(ProvenanceStore(cache).query("SELECT ?v WHERE { ?env pg:pythonVersion ?v }"))
    assert len(rows) == 1
