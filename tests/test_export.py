"""Exports: every format parses back to what was selected."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import rdflib
from rdflib.compare import isomorphic

from prov_tasks import Study, make_inputs
from provgraph import ProvenanceError, ProvenanceStore, Submitter, python
from provgraph.provenance.export import _union, selected_dataset


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("export")
    inputs = make_inputs(root / "inputs")
    with Submitter(cache_dir=root / "cache", progress=False) as sub:
        sub(Study(files=inputs))
    return {"root": root, "cache": root / "cache", "inputs": inputs}


def _expected(store: ProvenanceStore, **selection: Any) -> rdflib.Graph:
    return _union(selected_dataset(store, **selection))


@pytest.mark.parametrize("fmt, parser", [("turtle", "turtle"), ("nt", "nt")])
def test_triples_formats_round_trip(recorded: dict[str, Any], fmt: str, parser: str) -> None:
    """Turtle and N-Triples parse back to a graph isomorphic to the selection."""
    store = ProvenanceStore(recorded["cache"])
    path = store.export(recorded["root"] / f"all.{fmt}", fmt)
    back = rdflib.Graph().parse(path, format=parser)
    assert len(back) > 100 and isomorphic(back, _expected(store))


def test_trig_keeps_the_run_graphs(recorded: dict[str, Any]) -> None:
    """TriG keeps one named graph per run, and its union is the selection."""
    store = ProvenanceStore(recorded["cache"])
    path = store.export(recorded["root"] / "all.trig", "trig")
    dataset = rdflib.Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset.parse(data=path.read_bytes(), format="trig")
        names = {str(g.identifier) for g in dataset.graphs() if len(g)}
    assert sum(n.startswith("urn:uuid:") for n in names) >= 8  # 7 job runs and the submission
    assert isomorphic(_union(dataset), _expected(store))


def test_jsonld_report_reads_offline(recorded: dict[str, Any]) -> None:
    """The JSON-LD report inlines its context and lists every node once under a real
    ``@graph`` key: pyld and rdflib read it with no network, as the same triples, and it is
    within twice the size of the Turtle export."""
    from pyld import jsonld

    store = ProvenanceStore(recorded["cache"])
    path = store.export(recorded["root"] / "all.jsonld")
    report = json.loads(path.read_text())
    assert list(report) == ["@context", "@graph"]
    assert isinstance(report["@context"], dict) and report["@context"]["used"]["@id"] == "prov:used"
    ids = [node["id"] for node in report["@graph"]]
    assert len(ids) == len(set(ids))  # each node described once
    runs = [n for n in report["@graph"] if "JobRun" in n["type"]]
    assert len(runs) == 7 and all("qualifiedUsage" in r and "startedAtTime" in r for r in runs)
    expanded = jsonld.expand(report)
    assert any("http://www.w3.org/ns/prov#used" in node for node in expanded)
    text = path.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # rdflib's own JSON-LD parser
        back = rdflib.Graph().parse(data=text, format="json-ld")
    assert isomorphic(back, _expected(store))
    nquads = jsonld.to_rdf(report, {"format": "application/n-quads"})
    assert isomorphic(rdflib.Graph().parse(data=nquads, format="nt"), _expected(store))  # pyld too
    turtle = store.export(recorded["root"] / "size.ttl", "turtle").stat().st_size
    assert path.stat().st_size <= 2 * turtle


def test_prov_formats(recorded: dict[str, Any]) -> None:
    """PROV-JSON and PROV-XML are read back by the prov package; PROV-N names the runs."""
    import prov

    store = ProvenanceStore(recorded["cache"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt, reader in (("provjson", "json"), ("provxml", "xml")):
            path = store.export(recorded["root"] / f"all.{fmt}", fmt)
            document = prov.read(str(path), format=reader)
            activities = [r for r in document.get_records() if r.get_type().localpart == "Activity"]
            assert len(activities) >= 7
    provn = store.export(recorded["root"] / "all.provn", "provn").read_text()
    assert provn.startswith("document") and "activity(" in provn and "wasGeneratedBy(" in provn


def test_selections(recorded: dict[str, Any]) -> None:
    """One result's lineage, and one submission, select the right runs."""
    store = ProvenanceStore(recorded["cache"])
    copied = next(recorded["cache"].glob("Copy-*/out_file.txt"))
    lineage = _expected(store, output=copied)
    runs = set(
        lineage.subjects(rdflib.RDF.type, rdflib.URIRef("https://w3id.org/provgraph/ns#JobRun"))
    )
    assert len(runs) == 1  # only the copy that made it
    (submission,) = [str(s) for (s,) in store.query("SELECT ?s WHERE { ?s a pg:Submission }")]
    whole = _expected(store, run=submission)
    assert isomorphic(whole, _expected(store))  # one submission holds everything here
    with pytest.raises(ProvenanceError, match="no recorded"):
        store.export(recorded["root"] / "x.ttl", "turtle", run="urn:uuid:nothing-here")
    with pytest.raises(ProvenanceError, match="format"):
        store.export(recorded["root"] / "x.bad", "yaml")


def test_export_command(recorded: dict[str, Any]) -> None:
    """provgraph export writes the file it names."""
    target = recorded["root"] / "cli.ttl"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "export",
            str(recorded["cache"]),
            "--of",
            str(recorded["inputs"][0]),
            "--format",
            "turtle",
            "-o",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "no recorded run produced" in out.stderr  # an input
    copied = next(recorded["cache"].glob("Copy-*/out_file.txt"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "export",
            str(recorded["cache"]),
            "--of",
            str(copied),
            "--format",
            "turtle",
            "-o",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert len(rdflib.Graph().parse(target, format="turtle")) > 20


def test_every_declared_term_has_a_short_name_in_the_context() -> None:
    """JSON-LD reports use short names for every pg: term the ontology declares."""
    import json

    import rdflib

    from provgraph.provenance import vocab

    ontology = rdflib.Graph().parse(vocab.ontology_path("provgraph.ttl"))
    declared = {
        str(s).removeprefix(vocab.PG)
        for s in ontology.subjects()
        if str(s).startswith(vocab.PG) and str(s) != vocab.PG.rstrip("#")
    }
    context = json.loads(vocab.ontology_path("context.jsonld").read_text())["@context"]
    named = {
        (v if isinstance(v, str) else v.get("@id", "")).removeprefix("pg:")
        for v in context.values()
        if isinstance(v, (str, dict))
    }
    assert declared and declared <= named, declared - named


PROV_SCRIPT = """
import sys
from provgraph import ProvenanceStore
store = ProvenanceStore(sys.argv[1])
store.export(sys.argv[2], sys.argv[3])
"""


def test_prov_formats_are_lossless_and_deterministic(tmp_path: Path) -> None:
    """PROV-JSON/XML/N keep error messages, tracebacks and package versions, give one
    relation per recorded relation (not one per form), are read back and unified by prov, and
    two exports, from two processes, are byte-identical."""
    import prov

    from prov_tasks import Explode

    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Study(files=make_inputs(tmp_path / "inputs")))
        assert sub(Explode(x=3)).errored
    store = ProvenanceStore(cache)
    for fmt, reader in (("provjson", "json"), ("provxml", "xml"), ("provn", None)):
        paths = [tmp_path / f"{i}.{fmt}" for i in (1, 2)]
        for path in paths:  # each from a process of its own (another hash seed)
            subprocess.run(
                [sys.executable, "-c", PROV_SCRIPT, str(cache), str(path), fmt], check=True
            )
        assert paths[0].read_bytes() == paths[1].read_bytes(), fmt
        text = paths[0].read_text()
        assert "exploded on 3" in text and "RuntimeError" in text  # the error, kept
        assert "Traceback (most recent call last)" in text
        assert metadata.version("xxhash") in text  # the packages, kept
        if reader is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                document = prov.read(str(paths[0]), format=reader)
                assert len(document.unified().get_records()) == len(document.get_records())
    document = json.loads((tmp_path / "1.provjson").read_text())
    for relation in ("used", "wasGeneratedBy", "wasAssociatedWith", "wasDerivedFrom"):
        ((count,),) = list(
            store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ ?a prov:{relation} ?b }}")
        )
        assert len(document[relation]) == int(count), relation


def test_jsonld_writer_keeps_every_kind_of_value(tmp_path: Path) -> None:
    """The one-pass JSON-LD writer gives back exactly its triples: values that fit a term's
    coercion and values that do not, language strings, blank nodes, unknown predicates."""
    import pyoxigraph as ox

    from provgraph.provenance._jsonld import write_flat
    from provgraph.provenance.vocab import PG, PROV, RDF, XSD, ontology_path

    run, env, blank = ox.NamedNode("urn:uuid:1"), ox.NamedNode("urn:x:env"), ox.BlankNode("u1")
    triples = [
        ox.Triple(run, ox.NamedNode(RDF + "type"), ox.NamedNode(PROV + "Activity")),
        ox.Triple(run, ox.NamedNode(RDF + "type"), ox.NamedNode("urn:x:SomeClass")),
        ox.Triple(run, ox.NamedNode(PROV + "used"), env),  # an @id term
        ox.Triple(
            run,
            ox.NamedNode(PG + "elementIndex"),
            ox.Literal("3", datatype=ox.NamedNode(XSD + "integer")),
        ),
        ox.Triple(
            run, ox.NamedNode(PG + "elementIndex"), ox.Literal("three")
        ),  # not the term's type
        ox.Triple(run, ox.NamedNode(PG + "taskName"), ox.Literal("Add")),
        ox.Triple(run, ox.NamedNode("urn:x:note"), ox.Literal("bonjour", language="fr")),
        ox.Triple(run, ox.NamedNode("urn:x:link"), env),  # no term at all
        ox.Triple(run, ox.NamedNode(PROV + "qualifiedUsage"), blank),
        ox.Triple(blank, ox.NamedNode(PROV + "entity"), env),
        ox.Triple(
            blank,
            ox.NamedNode("urn:x:weight"),
            ox.Literal("0.5", datatype=ox.NamedNode(XSD + "double")),
        ),
    ]
    context = json.loads(ontology_path("context.jsonld").read_text())["@context"]
    path = tmp_path / "out.jsonld"
    with open(path, "w") as out:
        assert write_flat(triples, context, out) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        back = rdflib.Graph().parse(path, format="json-ld")
    expected = rdflib.Graph().parse(
        data=ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES).decode(), format="nt"
    )
    assert isomorphic(back, expected)
    (node,) = [n for n in json.loads(path.read_text())["@graph"] if n["id"] == "urn:uuid:1"]
    assert node["used"] == "urn:x:env" and node["taskName"] == "Add"  # short names kept
    with pytest.raises(ValueError, match="not consecutive"):
        write_flat([triples[0], triples[-1], triples[1]], context, io.StringIO())


@python.define
def Shout(text: str) -> str:
    return "\x1b[31m" + text + "\x1b[0m"


def test_prov_xml_holds_text_that_xml_cannot(tmp_path: Path) -> None:
    """A value with characters XML 1.0 cannot hold (a terminal colour's ESC, a NUL) is written
    to PROV-XML as ``\\uXXXX`` text instead of failing the whole export; the other formats
    keep it as it is."""
    import prov

    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        sub(Shout(text="red\x00alert"))
    store = ProvenanceStore(tmp_path / "cache")
    path = store.export(tmp_path / "p.xml", "provxml")
    text = path.read_text()
    assert "\\u001b[31mred\\u0000alert\\u001b[0m" in text
    document = prov.read(str(path), format="xml")
    assert document is not None and document.get_records()
    turtle = rdflib.Graph().parse(store.export(tmp_path / "p.ttl", "turtle"))
    assert rdflib.Literal("\x1b[31mred\x00alert\x1b[0m") in set(turtle.objects())
