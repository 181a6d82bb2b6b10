"""Provenance: recorded runs, their shapes, and SPARQL answers over a real workflow."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rdflib
import xxhash

from prov_tasks import Copy, Explode, Study, make_inputs
from provgraph import ProvenanceStore, Submitter
from provgraph.provenance import vocab
from provgraph.provenance.index import Index
from provgraph.provenance.store import load_trig

BACKENDS = ["oxigraph", "memory"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The study workflow run once on serial, then again (all reused)."""
    root = tmp_path_factory.mktemp("study")
    inputs = make_inputs(root / "inputs")
    cache = root / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        first = sub(Study(files=inputs))
        again = sub(Study(files=inputs))
    assert first.outputs.out == 6 and not first.errored
    return {"cache": cache, "inputs": inputs, "first": first, "again": again}


def _rows(store: ProvenanceStore, sparql: str, **bindings: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in store.query(sparql, **bindings)]


def _union(cache: Path) -> rdflib.Graph:
    """Every recorded triple of a cache, as one graph."""
    dataset = rdflib.Dataset()
    for path in cache.rglob("*.trig"):
        load_trig(dataset, path)
    graph = rdflib.Graph()
    for s, p, o, _ in dataset.quads():
        graph.add((s, p, o))
    return graph


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_produced_a_file(study: dict[str, Any], backend: str) -> None:
    """The run that produced an output file, found by its path and by its content hash."""
    store = ProvenanceStore(study["cache"], backend=backend)
    out_file = next(study["cache"].glob("Copy-*/out_file.txt"))
    by_path = _rows(
        store,
        "SELECT ?run ?name WHERE { ?e prov:atLocation ?where ; prov:wasGeneratedBy ?run . "
        "?run pg:taskName ?name }",
        where=rdflib.URIRef(out_file.as_uri()),
    )
    assert [(str(name)) for _, name in by_path] == ["Copy"]
    digest = "xxh3-128:" + xxhash.xxh3_128_hexdigest(out_file.read_bytes())
    by_hash = _rows(
        store,
        "SELECT DISTINCT ?run WHERE { ?e pg:contentHash ?h ; prov:wasGeneratedBy ?run }",
        h=rdflib.Literal(digest),
    )
    assert {r for (r,) in by_hash} == {r for r, _ in by_path}


@pytest.mark.parametrize("backend", BACKENDS)
def test_lineage_reaches_the_original_inputs(study: dict[str, Any], backend: str) -> None:
    """The final output derives, step by step, from exactly the three input files."""
    store = ProvenanceStore(study["cache"], backend=backend)
    rows = _rows(
        store,
        """SELECT DISTINCT ?where WHERE {
             ?run pg:taskName "Total" . ?final prov:wasGeneratedBy ?run .
             ?final prov:wasDerivedFrom+ ?source .
             ?source a pg:File ; prov:atLocation ?where .
             FILTER NOT EXISTS { ?source prov:wasGeneratedBy ?any }
           }""",
    )
    assert {str(w) for (w,) in rows} == {p.as_uri() for p in study["inputs"]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_that_used_an_input(study: dict[str, Any], backend: str) -> None:
    """All runs that used a given input file (content-addressed) are found."""
    store = ProvenanceStore(study["cache"], backend=backend)
    first = study["inputs"][0]
    entity = rdflib.URIRef(vocab.content_iri(xxhash.xxh3_128_hexdigest(first.read_bytes())))
    rows = _rows(
        store, "SELECT ?run ?node WHERE { ?run prov:used ?e ; pg:nodeName ?node }", e=entity
    )
    assert [str(node) for _, node in rows] == ["Study/copy"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_environment_of_a_job(study: dict[str, Any], backend: str) -> None:
    """Each job run names the environment it ran in, with Python version and packages."""
    store = ProvenanceStore(study["cache"], backend=backend)
    rows = _rows(
        store,
        """SELECT DISTINCT ?version ?pkgversion WHERE {
             ?run a pg:JobRun ; prov:used ?env .
             ?env a pg:Environment ; pg:pythonVersion ?version ;
                  pg:package [ pg:name "rdflib" ; pg:version ?pkgversion ] .
           }""",
    )
    import platform

    import rdflib as rdflib_module

    found = [tuple(map(str, row)) for row in rows]
    assert found == [(platform.python_version(), rdflib_module.__version__)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_reuse_points_to_the_computing_run(study: dict[str, Any], backend: str) -> None:
    """The second submission reused the workflow run of the first, and made no job runs."""
    store = ProvenanceStore(study["cache"], backend=backend)
    rows = _rows(
        store,
        """SELECT ?sub ?earlier ?name WHERE {
             ?sub a pg:Submission ; pg:reused ?earlier . ?earlier pg:taskName ?name .
             ?job pg:partOf ?earlier .
           }""",
    )
    assert {str(name) for _, _, name in rows} == {"Study"}
    (count,) = _rows(store, "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }")[0]
    assert int(count) == 7  # three copies, three counts, one total: the rerun added none


def test_runs_validate_against_the_shapes(study: dict[str, Any]) -> None:
    """Every recorded job run satisfies ontology/shapes.ttl; a damaged one does not."""
    import pyshacl

    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    graph = _union(study["cache"])
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report
    run = next(graph.subjects(rdflib.RDF.type, rdflib.URIRef(vocab.PG + "JobRun")))
    graph.remove((run, rdflib.URIRef(vocab.PG + "status"), None))
    conforms, _, _ = pyshacl.validate(graph, shacl_graph=shapes)
    assert not conforms


def test_prov_package_reads_records_back(study: dict[str, Any]) -> None:
    """The prov package reads each run's graph, and unified() accepts it."""
    import warnings

    import prov

    files = sorted(study["cache"].glob("*/_prov-*.trig"))
    assert len(files) == 7
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prov notes the roles it does not convert
            document = prov.read(str(path), format="rdf", rdf_format="trig")
            (bundle,) = document.bundles
            unified = bundle.unified()
        assert len(unified.records) >= 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_times_and_generations_are_sound(study: dict[str, Any], backend: str) -> None:
    """No activity ends before it starts; each output entity has exactly one generation."""
    store = ProvenanceStore(study["cache"], backend=backend)
    early = _rows(
        store,
        "SELECT ?a WHERE { ?a prov:startedAtTime ?s ; prov:endedAtTime ?e . FILTER (?e < ?s) }",
    )
    assert early == []
    multi = _rows(
        store,
        "SELECT ?e WHERE { ?e prov:wasGeneratedBy ?a } GROUP BY ?e HAVING (COUNT(?a) > 1)",
    )
    assert multi == []


def test_every_term_is_declared(study: dict[str, Any]) -> None:
    """Each pg: class and property the recorder writes is declared in ontology/provgraph.ttl."""
    ontology = rdflib.Graph().parse(vocab.ontology_path("provgraph.ttl"))
    declared = {str(s) for s in ontology.subjects() if str(s).startswith(vocab.PG)}
    graph = _union(study["cache"])
    used = {str(p) for p in graph.predicates() if str(p).startswith(vocab.PG)}
    used |= {str(o) for o in graph.objects(None, rdflib.RDF.type) if str(o).startswith(vocab.PG)}
    assert used and used <= declared, used - declared
    source = (Path(vocab.__file__).parent / "record.py").read_text()
    named = {vocab.PG + name for name in re.findall(r'\bG\("(\w+)"\)', source)}
    assert named <= declared, named - declared
    for term in declared - {vocab.PG.rstrip("#")}:
        assert (rdflib.URIRef(term), rdflib.RDFS.comment, None) in ontology, term


def _signature(cache: Path) -> set[tuple[Any, ...]]:
    """Each job run as (node, job hash, status, input hashes, output hashes): no times or ids."""
    store = ProvenanceStore(cache)
    runs: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}
    rows = _rows(
        store,
        """SELECT ?node ?hash ?status ?inhash ?outhash WHERE {
             ?run a pg:JobRun ; pg:nodeName ?node ; pg:jobHash ?hash ; pg:status ?status .
             OPTIONAL { ?run prov:used ?in . ?in pg:contentHash ?inhash }
             OPTIONAL { ?out prov:wasGeneratedBy ?run ; pg:contentHash ?outhash }
           }""",
    )
    for node, job, status, inhash, outhash in rows:
        ins, outs = runs.setdefault((str(node), str(job), str(status)), (set(), set()))
        ins.add(str(inhash))
        outs.add(str(outhash))
    return {(*key, frozenset(ins), frozenset(outs)) for key, (ins, outs) in runs.items()}


def test_serial_and_cf_record_the_same(tmp_path: Path) -> None:
    """The same workflow on serial and cf gives the same records, but for times and ids."""
    inputs = make_inputs(tmp_path / "inputs")
    signatures = []
    for worker in ("serial", "cf"):
        cache = tmp_path / worker
        with Submitter(cache_dir=cache, worker=worker, progress=False) as sub:
            assert sub(Study(files=inputs)).outputs.out == 6
        signatures.append(_signature(cache))
    assert signatures[0] == signatures[1]
    assert len(signatures[0]) == 7


def test_failed_job_is_recorded(cache_dir: Path) -> None:
    """A failed job's run carries status 'failed' and its error."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Explode(x=3))
    assert result.errored
    store = ProvenanceStore(cache_dir)
    rows = _rows(
        store,
        """SELECT ?status ?type ?message WHERE {
             ?run a pg:JobRun ; pg:status ?status ; pg:error ?e .
             ?e pg:errorType ?type ; pg:errorMessage ?message }""",
    )
    assert [tuple(map(str, r)) for r in rows] == [("failed", "RuntimeError", "exploded on 3")]


def test_provenance_can_be_turned_off(tmp_path: Path, cache_dir: Path) -> None:
    """``provenance=False`` writes no record at all."""
    src = make_inputs(tmp_path / "in")[0]
    with Submitter(cache_dir=cache_dir, progress=False, provenance=False) as sub:
        assert not sub(Copy(in_file=src)).errored
    assert list(cache_dir.rglob("*.trig")) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_opened_before_a_run_sees_it(tmp_path: Path, backend: str) -> None:
    """Two stores on one cache; both see a later run (the memory one after refresh())."""
    cache = tmp_path / "cache"
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy(in_file=inputs[0]))
    first, second = ProvenanceStore(cache, backend=backend), ProvenanceStore(cache, backend=backend)
    count = "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"
    assert int(_rows(first, count)[0][0]) == int(_rows(second, count)[0][0]) == 1
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy().split(in_file=inputs[1:]))
    if backend == "memory":
        first.refresh()
    assert int(_rows(first, count)[0][0]) == 3


HOLD_INDEX = """
import sys, time
import pyoxigraph
store = pyoxigraph.Store(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
"""


def test_busy_index_leaves_files_pending(tmp_path: Path) -> None:
    """While another process holds the index, runs still work and are indexed later."""
    cache = tmp_path / "cache"
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy(in_file=inputs[0]))
    store = ProvenanceStore(cache)  # indexes the first run
    count = "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"
    assert int(_rows(store, count)[0][0]) == 1
    index = Index(cache).store_path()
    assert index is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_INDEX, str(index)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with Submitter(cache_dir=cache, progress=False) as sub:
            assert not sub(Copy().split(in_file=inputs[1:])).errored
        assert Index(cache).behind()  # the journal names records not yet loaded
        other = ProvenanceStore(cache)  # reading works while the index is held
        assert int(_rows(other, count)[0][0]) == 1
        assert int(_rows(store, count)[0][0]) == 1
    finally:
        holder.communicate("done\n")
    # two job runs; the submission's start and end; its workflow run's start
    assert store.refresh() == 5
    assert int(_rows(store, count)[0][0]) == 3
    assert not Index(cache).behind()


def test_helpers_answer_the_common_questions(study: dict[str, Any]) -> None:
    """produced, lineage, impact, runs_of and failed_runs on the study workflow."""
    store = ProvenanceStore(study["cache"])
    out_file = next(study["cache"].glob("Copy-*/out_file.txt"))
    (made,) = store.produced(out_file)
    assert (made["task"], made["field"], made["status"]) == ("Copy", "out_file", "succeeded")
    assert Path(made["dir"].removeprefix("file://")) == out_file.parent
    final = _rows(store, "SELECT ?e WHERE { ?r pg:taskName 'Total' . ?e prov:wasGeneratedBy ?r }")
    upstream = store.lineage(str(final[0][0]))
    assert sorted(r["node"] for r in upstream) == ["Study/copy"] * 3 + ["Study/count"] * 3 + [
        "Study/total"
    ]
    downstream = store.impact(study["inputs"][1])
    assert sorted(r["node"] for r in downstream) == ["Study/copy", "Study/count", "Study/total"]
    assert len(store.runs_of("CountWords")) == 3
    assert store.failed_runs() == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provgraph.cli", *args], capture_output=True, text=True, check=False
    )


def test_cli_query_show_and_index(study: dict[str, Any], tmp_path: Path) -> None:
    """provgraph query (table, csv, json, -f), show, show JOB and index --rebuild."""
    cache = str(study["cache"])
    sparql = (
        "SELECT ?task (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun ; pg:taskName ?task } "
        "GROUP BY ?task ORDER BY ?task"
    )
    table = _cli("query", cache, sparql)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["task", "n"] and lines[2].split() == ["Copy", "3"]
    assert lines[-1] == "(3 rows)"
    csv = _cli("query", cache, sparql, "--format", "csv")
    assert csv.stdout.splitlines()[:2] == ["task,n", "Copy,3"]
    import json

    data = json.loads(_cli("query", cache, sparql, "--format", "json").stdout)
    assert [b["task"]["value"] for b in data["results"]["bindings"]] == [
        "Copy",
        "CountWords",
        "Total",
    ]
    query_file = tmp_path / "q.rq"
    query_file.write_text("ASK { ?r pg:status 'failed' }")
    assert _cli("query", cache, "-f", str(query_file)).stdout.strip() == "false"
    summary = _cli("show", cache)
    assert "CountWords" in summary.stdout and "submissions recorded: 2" in summary.stdout
    total_dir = next(study["cache"].glob("Total-*"))
    shown = _cli("show", cache, total_dir.name[:14])
    assert shown.returncode == 0, shown.stderr
    assert "task:     Total" in shown.stdout and "status:   succeeded" in shown.stdout
    assert "counts: xxh3-128:" in shown.stdout and "out: xxh3-128:" in shown.stdout
    assert f"worker:   serial on {socket.gethostname()}" in shown.stdout
    rebuilt = _cli("index", cache, "--rebuild")
    assert rebuilt.returncode == 0 and rebuilt.stdout.startswith("indexed ")
    assert int(rebuilt.stdout.split()[1]) == len(list(study["cache"].rglob("*.trig")))
    assert _cli("query", cache, sparql, "--format", "csv").stdout.splitlines()[1] == "Copy,3"
    bad = _cli("query", cache, "SELECT nonsense")
    assert bad.returncode == 2 and "SPARQL query failed" in bad.stderr


def test_records_no_journal_names_are_found_by_a_scan(tmp_path: Path) -> None:
    """A record written by hand (no journal names it) is found by refresh(scan=True)."""
    cache = tmp_path / "cache"
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy(in_file=inputs[0]))
    store = ProvenanceStore(cache)
    count = "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"
    assert int(_rows(store, count)[0][0]) == 1
    (record,) = cache.glob("Copy-*/_prov-*.trig")
    copied = record.with_name("_prov-00000000-0000-4000-8000-000000000000.trig")
    copied.write_text(
        record.read_text().replace(
            record.stem.removeprefix("_prov-"), "0" * 8 + "-0000-4000-8000-" + "0" * 12
        )
    )
    assert store.refresh() == 0
    assert store.refresh(scan=True) >= 1
    assert int(_rows(store, count)[0][0]) == 2


def test_same_bytes_at_two_paths_still_conform(tmp_path: Path, cache_dir: Path) -> None:
    """One content-addressed input used from two paths records both places, and validates."""
    import pyshacl

    from provgraph import File, python

    @python.define
    def Concat(a: File, b: File) -> str:
        return Path(a).read_text() + Path(b).read_text()

    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("same\n")
    second.write_text("same\n")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        assert sub(Concat(a=first, b=second)).outputs.out == "same\nsame\n"
    graph = _union(cache_dir)
    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report
    locations = set(graph.objects(None, rdflib.URIRef(vocab.PROV + "atLocation")))
    assert {rdflib.URIRef(first.as_uri()), rdflib.URIRef(second.as_uri())} <= locations


def test_lineage_crosses_nested_workflows_and_reuse(cache_dir: Path) -> None:
    """Lineage runs through a nested workflow's outputs, also when that workflow was reused."""
    from provgraph import python, workflow

    @python.define
    def AddTwo(a: int) -> int:
        return a + 2

    @python.define
    def Double(a: int) -> int:
        return 2 * a

    @python.define
    def Negate(a: int) -> int:
        return -a

    @workflow.define
    def Inner(x: int) -> int:
        return workflow.add(AddTwo(a=x), name="add").out

    @workflow.define
    def OuterA(x: int) -> int:
        inner = workflow.add(Inner(x=x), name="inner")
        return workflow.add(Double(a=inner.out), name="double").out

    @workflow.define
    def OuterB(x: int) -> int:
        inner = workflow.add(Inner(x=x), name="inner")
        return workflow.add(Negate(a=inner.out), name="negate").out

    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        assert sub(OuterA(x=1)).outputs.out == 6
        second = sub(OuterB(x=1))  # Inner(x=1) comes from the cache
    assert second.outputs.out == -3
    store = ProvenanceStore(cache_dir)
    for task in ("Double", "Negate"):
        (final,) = _rows(
            store, "SELECT ?e WHERE { ?r pg:taskName ?t . ?e prov:wasGeneratedBy ?r }", t=task
        )
        assert sorted(r["task"] for r in store.lineage(str(final[0]))) == sorted([task, "AddTwo"])
    dangling = _rows(
        store,
        "SELECT ?e WHERE { ?r a pg:JobRun ; prov:used ?e . FILTER(STRSTARTS(STR(?e), 'urn:uuid:')) "
        "FILTER NOT EXISTS { ?e prov:wasGeneratedBy ?any } }",
    )
    assert dangling == []
    reused = _rows(
        store,
        "SELECT ?w WHERE { ?s pg:reused ?w . FILTER NOT EXISTS { ?w pg:taskName ?n } }",
    )
    assert reused == []  # every reused run is itself recorded


def test_captured_packages_are_those_importlib_metadata_reports() -> None:
    """The fast reading of names and versions agrees with the full metadata parse."""
    from importlib import metadata

    from provgraph.provenance.environment import capture

    expected: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            expected[name.lower()] = dist.version
    packages = capture()["packages"]
    assert packages == dict(sorted(expected.items()))
    assert "rdflib" in packages and "attrs" in packages


def test_each_record_file_conforms_alone(study: dict[str, Any]) -> None:
    """Every record file of a realistic run validates against shapes.ttl on its own."""
    import pyshacl

    from provgraph.provenance.store import all_files

    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    files = all_files(study["cache"])
    assert len(files) > 10
    for path in files:
        dataset = rdflib.Dataset()
        load_trig(dataset, path)
        graph = rdflib.Graph()
        for s, p, o, _ in dataset.quads():
            graph.add((s, p, o))
        conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
        assert conforms, f"{path.name}:\n{report}"


def test_workflow_runs_are_complete_activities(study: dict[str, Any]) -> None:
    """Every workflow run and submission, a fully reused one included, has start and end times
    and a status; the reused submission's workflow run is part of it."""
    store = ProvenanceStore(study["cache"])
    rows = list(
        store.query(
            "SELECT ?run ?kind ?start ?end ?status WHERE { ?run a ?kind ; "
            "prov:startedAtTime ?start ; prov:endedAtTime ?end ; pg:status ?status "
            "FILTER (?kind IN (pg:WorkflowRun, pg:Submission)) }"
        )
    )
    kinds = sorted(str(k).rsplit("#", 1)[-1] for _, k, _, _, _ in rows)
    assert kinds == ["Submission", "Submission", "WorkflowRun", "WorkflowRun", "WorkflowRun"]
    assert all(str(s) == "succeeded" and e.toPython() >= t.toPython() for _, _, t, e, s in rows)
    reused_submission = list(
        store.query(
            "SELECT ?wf WHERE { ?sub a pg:Submission ; pg:reused ?earlier . "
            "?wf a pg:WorkflowRun ; pg:partOf ?sub . "
            "FILTER NOT EXISTS { ?job a pg:JobRun ; pg:partOf+ ?wf } }"
        )
    )
    assert len(reused_submission) == 1


def test_roles_are_parameters_of_each_task(study: dict[str, Any]) -> None:
    """Each role is a formal parameter of one task definition (not one global role per field
    name), with its field name, direction and type; the field-name query still works."""
    store = ProvenanceStore(study["cache"])
    rows = {
        (str(task), str(field), str(direction), str(kind), str(role))
        for task, field, direction, kind, role in store.query(
            "SELECT DISTINCT ?task ?field ?dir ?type ?role WHERE { "
            "?run a pg:JobRun ; pg:taskName ?task ; prov:qualifiedAssociation/prov:hadPlan ?plan . "
            "{ ?run prov:qualifiedUsage/prov:hadRole ?role } UNION "
            "{ ?e prov:wasGeneratedBy ?run ; prov:qualifiedGeneration/prov:hadRole ?role } "
            "?role a pg:Parameter ; rdfs:label ?field ; pg:direction ?dir ; "
            "pg:parameterType ?type ; pg:parameterOf ?plan }"
        )
    }
    fields = {(t, f, d, k) for t, f, d, k, _ in rows}
    assert ("Copy", "in_file", "input", "File") in fields
    assert ("CountWords", "in_file", "input", "File") in fields
    assert ("CountWords", "out", "output", "int") in fields
    assert ("Total", "counts", "input", "list[int]") in fields
    in_file_roles = {r for t, f, d, _, r in rows if f == "in_file"}
    assert len(in_file_roles) == 2  # Copy's and CountWords', not one shared role


def test_a_workflow_run_used_its_inputs_and_generated_its_outputs(study: dict[str, Any]) -> None:
    """The Study workflow's run used the workflow's inputs (the very entities its first node
    used), followed the workflow definition, and generated its output, derived from the output
    of the node that computed it."""
    store = ProvenanceStore(study["cache"])
    ((wf,),) = list(
        store.query(
            "SELECT ?wf WHERE { ?wf a pg:WorkflowRun ; pg:taskName 'Study' ; "
            "prov:qualifiedAssociation/prov:hadPlan ?plan . ?plan pg:taskKind 'workflow' }"
        )
    )
    used = {
        str(e)
        for (e,) in store.query(
            "SELECT ?e WHERE { ?wf prov:qualifiedUsage ?u . ?u prov:entity ?e ; "
            "prov:hadRole ?role . ?role rdfs:label 'files' ; pg:direction 'input' . "
            "?role pg:parameterOf ?plan . ?wf prov:qualifiedAssociation/prov:hadPlan ?plan }",
            wf=wf,
        )
    }
    copied = {
        str(e)
        for (e,) in store.query(
            "SELECT ?e WHERE { ?run pg:taskName 'Copy' ; pg:partOf ?wf ; prov:used ?e . "
            "?e a pg:File }",
            wf=wf,
        )
    }
    assert len(copied) == 3 and copied <= used
    rows = list(
        store.query(
            "SELECT ?out ?value ?node WHERE { ?out prov:wasGeneratedBy ?wf ; "
            "prov:qualifiedGeneration/prov:hadRole/rdfs:label 'out' ; prov:value ?value ; "
            "prov:wasDerivedFrom ?from . ?from prov:wasGeneratedBy ?node . "
            "?node pg:nodeName 'Study/total' }",
            wf=wf,
        )
    )
    assert len(rows) == 1 and int(rows[0][1]) == study["first"].outputs.out


@pytest.mark.parametrize(
    ("prop", "where"),
    [
        ("used", "?o pg:contentHash ?h"),
        ("qualifiedUsage", "?o prov:entity/pg:contentHash ?h"),
        ("wasInformedBy", ""),
        ("qualifiedDerivation", ""),
        ("actedOnBehalfOf", ""),
    ],
)
def test_plain_and_qualified_forms_come_in_pairs(
    study: dict[str, Any], prop: str, where: str
) -> None:
    """Every plain relation has its qualified form and the converse: the shapes say so, and a
    record with one half removed no longer conforms."""
    import pyshacl

    graph = _union(study["cache"])
    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    assert pyshacl.validate(graph, shacl_graph=shapes)[0]
    predicate = rdflib.URIRef(vocab.PROV + prop)
    rows = list(
        graph.query(
            f"SELECT ?s ?o WHERE {{ ?s ?p ?o . {where} }} LIMIT 1",
            initNs={"prov": vocab.PROV, "pg": vocab.PG},
            initBindings={"p": predicate},
        )
    )
    assert rows, prop
    graph.remove((rows[0][0], predicate, rows[0][1]))
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert not conforms and "qualified" in report


def test_which_step_fed_this_parameter(study: dict[str, Any]) -> None:
    """The workflow definition's structure is recorded: its steps, and which step's output (or
    which workflow input) feeds each step's input parameter."""
    store = ProvenanceStore(study["cache"])
    rows = {
        (str(target), str(param), str(source) if source is not None else None, str(out))
        for target, param, source, out in store.query(
            "SELECT DISTINCT ?target ?param ?source ?out WHERE { "
            "?plan a pg:TaskDefinition ; rdfs:label 'Study' ; pg:hasConnection ?c . "
            "?c pg:targetStep/rdfs:label ?target ; pg:targetParameter/rdfs:label ?param ; "
            "pg:sourceParameter/rdfs:label ?out . "
            "OPTIONAL { ?c pg:sourceStep/rdfs:label ?source } }"
        )
    }
    assert rows == {
        ("copy", "in_file", None, "files"),  # the workflow's own input
        ("count", "in_file", "copy", "out_file"),
        ("total", "counts", "count", "out"),
    }
    steps = store.query(
        "SELECT ?name ?task WHERE { ?plan rdfs:label 'Study' ; pg:hasStep ?s . "
        "?s rdfs:label ?name ; pg:stepDefinition/rdfs:label ?task }"
    )
    assert {(str(n), str(t)) for n, t in steps} == {
        ("copy", "Copy"),
        ("count", "CountWords"),
        ("total", "Total"),
    }


def test_a_reused_workflow_is_a_workflow_run_that_reused_the_earlier_one(
    study: dict[str, Any],
) -> None:
    """The second, fully cached submission has a workflow run of its own, which pg:reused the
    earlier run of the Study workflow."""
    store = ProvenanceStore(study["cache"])
    rows = list(
        store.query(
            "SELECT ?wf ?earlier WHERE { ?sub a pg:Submission ; pg:reused ?earlier . "
            "?wf a pg:WorkflowRun ; pg:partOf ?sub ; pg:reused ?earlier . "
            "?earlier a pg:WorkflowRun ; pg:taskName 'Study' }"
        )
    )
    assert len(rows) == 1


def test_prov_constraints_hold_on_a_realistic_run(study: dict[str, Any], tmp_path: Path) -> None:
    """The PROV-CONSTRAINTS shapes of tests/prov_constraints.ttl (start before end, one
    generation per entity, generation before usage) and the project's shapes (qualified and
    plain forms in pairs) hold on the study runs plus a failed one; a violation is caught."""
    import pyshacl

    from prov_tasks import Explode

    cache = tmp_path / "cache"  # a copy: the study's own cache stays as the other tests expect
    shutil.copytree(study["cache"], cache, symlinks=True)
    with Submitter(cache_dir=cache, progress=False) as sub:
        assert sub(Explode(x=1)).errored
    graph = _union(cache)
    constraints = rdflib.Graph().parse(Path(__file__).parent / "prov_constraints.ttl")
    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    for rules in (constraints, shapes):
        conforms, _, report = pyshacl.validate(graph, shacl_graph=rules)
        assert conforms, report
    (run,) = next(
        iter(graph.query("SELECT ?r WHERE { ?r a pg:JobRun } LIMIT 1", initNs={"pg": vocab.PG}))
    )
    start = next(graph.objects(run, rdflib.URIRef(vocab.PROV + "startedAtTime")))
    graph.set(
        (
            run,
            rdflib.URIRef(vocab.PROV + "endedAtTime"),
            rdflib.Literal(start.toPython().replace(year=2000), datatype=rdflib.XSD.dateTime),
        )
    )
    assert not pyshacl.validate(graph, shacl_graph=constraints)[0]


def test_a_task_submitted_alone_has_a_complete_run_of_the_whole(
    tmp_path: Path, cache_dir: Path
) -> None:
    """A split task submitted alone: the run of the whole used the task's inputs (the files its
    jobs used) and followed the task's definition."""
    from prov_tasks import CountWords

    files = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(CountWords().split(in_file=files))
    store = ProvenanceStore(cache_dir)
    ((run, task),) = list(
        store.query(
            "SELECT ?run ?task WHERE { ?run a pg:WorkflowRun ; "
            "prov:qualifiedAssociation/prov:hadPlan/rdfs:label ?task }"
        )
    )
    assert str(task) == "CountWords"
    used = {
        str(e)
        for (e,) in store.query("SELECT ?e WHERE { ?run prov:used/prov:hadMember ?e }", run=run)
    }
    by_jobs = {
        str(e)
        for (e,) in store.query(
            "SELECT ?e WHERE { ?job a pg:JobRun ; pg:partOf ?run ; prov:used ?e . ?e a pg:File }",
            run=run,
        )
    }
    assert len(by_jobs) == 3 and by_jobs == used


def test_blank_nodes_of_records_never_meet(tmp_path: Path) -> None:
    """Records written by processes forked from one parent (a cf pool) and by the parent
    itself share no blank node: the union of the records joins no unrelated usage."""
    import pyoxigraph as ox

    from provgraph.provenance.index import all_files, file_base

    inputs = make_inputs(tmp_path / "inputs")
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False, worker="cf", n_procs=2) as sub:
        sub(Study(files=inputs))
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Copy(in_file=inputs[0]))
    owners: dict[str, str] = {}
    for path in all_files(cache):
        for quad in ox.parse(path=str(path), format=ox.RdfFormat.TRIG, base_iri=file_base(path)):
            for term in (quad.subject, quad.object):
                if isinstance(term, ox.BlankNode):
                    assert owners.setdefault(term.value, str(path)) == str(path), term
    assert owners  # the records do use blank nodes (usages, associations)
    copies = ProvenanceStore(cache).query(
        "SELECT ?run ?field WHERE { ?run pg:taskName 'Copy' ; prov:qualifiedUsage ?u . "
        "?u prov:hadRole/rdfs:label ?field }"
    )
    assert {"in_file"} <= {str(f) for _r, f in copies} <= {"in_file", "environment"}


def test_a_question_that_must_index_many_records_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first question after a large run waits for the index: it says why on stderr (and how
    long it took); a question with little to index says nothing."""
    from provgraph.provenance import index
    from regression_tasks import Square

    monkeypatch.setattr(index, "NOTICE_AT", 20)
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Square().split(x=list(range(30))))
    capsys.readouterr()
    query = "SELECT ?run WHERE { ?run a pg:JobRun }"
    assert len(list(ProvenanceStore(cache).query(query))) == 30
    said = capsys.readouterr().err
    assert re.search(r"provgraph: indexing \d+ record files", said), said
    assert re.search(r"provgraph: indexed \d+ record files in [\d.]+ s", said), said
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Square().split(x=list(range(30, 35))))
    capsys.readouterr()
    assert len(list(ProvenanceStore(cache).query(query))) == 35
    assert "indexing" not in capsys.readouterr().err


def test_a_large_catch_up_nobody_waits_for_says_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index caught up outside a question (a push at a submission's end) is silent: a
    submission with ``progress=False`` prints nothing. ``provgraph index`` says it."""
    from provgraph.cli import main
    from provgraph.provenance import index
    from regression_tasks import Square

    monkeypatch.setattr(index, "NOTICE_AT", 20)
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Square().split(x=list(range(30))))
    capsys.readouterr()
    assert index.catch_up(cache) >= 30
    assert capsys.readouterr().err == ""
    assert main(["index", str(cache), "--rebuild"]) == 0
    said = capsys.readouterr()
    assert "provgraph: indexing" in said.err and "indexed" in said.out


def test_package_names_and_versions_read_from_the_top_of_metadata_files(tmp_path: Path) -> None:
    """Names and versions read from the first 4 kB of each metadata file are those of the
    full parse: where they come later, after a character cut in two at the 4 kB mark, in a
    file without a version or a final blank line, or in PKG-INFO beside an empty METADATA."""
    from importlib import metadata

    from provgraph.provenance import environment

    classifiers = "".join(f"Classifier: Topic :: {i}\n" for i in range(300))  # 8 kB
    cases = {
        "top": "Metadata-Version: 2.1\nName: top\nVersion: 1.0\n\n" + "long text\n" * 2000,
        "late": f"Metadata-Version: 2.1\n{classifiers}Name: late\nVersion: 2.0\n\nbody\n",
        "cut": "Summary: " + "é" * 2100 + "\nName: cut\nVersion: 3.0\n\nbody\n",
        "noversion": "Metadata-Version: 2.1\nName: noversion",
        "pkginfo": None,
    }
    found = {}
    for label, text in cases.items():
        folder = tmp_path / f"{label}-1.dist-info"
        folder.mkdir()
        if text is None:
            (folder / "METADATA").write_text("")
            (folder / "PKG-INFO").write_text("Name: pkginfo\nVersion: 4.0\n")
        else:
            (folder / "METADATA").write_text(text, encoding="utf-8")
        dist = metadata.PathDistribution(folder)
        meta = dist.metadata  # (the full e-mail parse)
        expected = (meta["Name"], meta["Version"])
        found[label] = environment._name_and_version(dist)
        assert found[label] == expected, label
    assert found["cut"] == ("cut", "3.0") and found["noversion"] == ("noversion", None)
    assert found["pkginfo"] == ("pkginfo", "4.0") and found["late"] == ("late", "2.0")
    latin = tmp_path / "latin-1.dist-info"  # (not UTF-8 past the head: the full parse fails)
    latin.mkdir()
    (latin / "METADATA").write_bytes(
        b"Name: latin\nVersion: 5.0\n\n" + b"x\n" * 3000 + b"caf\xe9\n"
    )
    assert environment._name_and_version(metadata.PathDistribution(latin)) == ("latin", "5.0")
    top = metadata.PathDistribution(tmp_path / "top-1.dist-info")
    top.read_text = None  # type: ignore[assignment, method-assign]  # (the head alone tells)
    assert environment._name_and_version(top) == ("top", "1.0")


def test_each_element_of_a_nested_split_used_its_own_upstream_output(tmp_path: Path) -> None:
    """A nested workflow splits over its list input, which came from upstream jobs: each inner
    job used (and was informed by) the upstream output behind its own element only, and a job
    given the whole list used it as one entity whose members are those outputs."""
    from prov_tasks import Counting
    from provgraph import File, workflow

    @workflow.define
    def Copied(files: list[File]) -> int:
        copy = workflow.add(Copy().split(in_file=files).combine("in_file"), name="copy")
        return workflow.add(Counting(files=copy.out_file), name="counting").out

    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        assert sub(Copied(files=make_inputs(tmp_path / "in"))).outputs.out == 6
    store = ProvenanceStore(cache)
    used = store.query(
        "SELECT ?run ?e ?from WHERE { ?run pg:taskName 'CountWords' ; prov:used ?e ; "
        "prov:wasInformedBy ?from . ?e prov:wasGeneratedBy ?copy }"
    )
    pairs = [(str(run), str(e), str(source)) for run, e, source in used]
    assert len({run for run, _, _ in pairs}) == 3 and len(pairs) == 3  # one each
    assert len({e for _, e, _ in pairs}) == 3  # three different files
    ((members,),) = store.query(
        "SELECT (COUNT(?m) AS ?n) WHERE { ?run pg:taskName 'Total' ; prov:qualifiedUsage ?u . "
        "?u prov:entity ?list ; prov:hadRole/rdfs:label 'counts' . ?list prov:hadMember ?m }"
    )
    assert int(members) == 3


def test_every_workflow_run_is_a_complete_activity(tmp_path: Path) -> None:
    """DESIGN §6: the run of a task submitted alone (a split) has its plan, the inputs it
    used, the outputs it generated and the directory of its result, as a workflow job's run
    has (before, a split's had no outputs nor directory). A workflow submitted alone: its
    workflow job's run has them (the run of the whole only holds it: design/provenance.md)."""
    from provgraph import python

    @python.define
    def Double(x: int) -> int:
        return 2 * x

    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        split = sub(Double().split(x=[1, 2]))
        study = sub(Study(files=make_inputs(tmp_path / "in")))
    store = ProvenanceStore(cache)
    rows = store.query(
        "SELECT ?run ?name ?dir (COUNT(DISTINCT ?plan) AS ?plans) (COUNT(DISTINCT ?used) AS ?u) "
        "(COUNT(DISTINCT ?made) AS ?g) WHERE { ?run a pg:WorkflowRun ; pg:taskName ?name . "
        "FILTER EXISTS { ?run prov:qualifiedAssociation/prov:hadPlan ?any } "
        "OPTIONAL { ?run prov:qualifiedAssociation/prov:hadPlan ?plan } "
        "OPTIONAL { ?run prov:used ?used } OPTIONAL { ?made prov:wasGeneratedBy ?run } "
        "OPTIONAL { ?run pg:outputDir ?dir } } GROUP BY ?run ?name ?dir"
    )
    found = {
        str(name): (vocab.iri_path(str(d)) if d else None, int(p), int(u), int(g))
        for _, name, d, p, u, g in rows
    }
    assert found["Double"] == (split.output_dir, 1, 1, 1)  # the list of x, the list of out
    # files: the list, and its three files as members, each used
    assert found["Study"] == (study.output_dir, 1, 4, 1)
    made = {
        str(v)
        for (v,) in store.query(
            "SELECT ?v WHERE { ?run a pg:WorkflowRun ; pg:taskName 'Study' . "
            "?e prov:wasGeneratedBy ?run ; prov:value ?v }"
        )
    }
    assert made == {str(study.outputs.out)}
