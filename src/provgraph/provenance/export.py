"""Exports of recorded provenance: JSON-LD, PROV-N, PROV-JSON, PROV-XML, Turtle, TriG, N-Triples.

What is exported is a *selection* of run graphs: everything, one submission (its workflow runs
and every job run part of them), or the lineage of one result (every run upstream of a file,
content hash or entity). Environment graphs used by the selected runs come along.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..exceptions import ProvenanceError
from . import vocab as V

__all__ = ["FORMATS", "export"]

FORMATS = ("jsonld", "turtle", "trig", "nt", "provn", "provjson", "provxml", "html")


def _graph_names(store: Any, run: str | None, output: Any) -> list[str] | None:
    """The named graphs selected (None: all)."""
    import rdflib

    if run is None and output is None:
        return None
    if run is not None and output is not None:
        raise ProvenanceError("export: give a submission run or an output, not both")
    if output is not None:
        runs = [r["run"] for r in store.lineage(output)]
        if not runs:
            raise ProvenanceError(f"export: no recorded run produced {str(output)!r}")
    else:
        rows = store.query(
            "SELECT DISTINCT ?r WHERE { ?r pg:partOf* ?top }",
            top=rdflib.URIRef(V.run_iri(str(run))),
        )
        runs = [str(r) for (r,) in rows if r is not None]
        if len(runs) <= 1:
            raise ProvenanceError(f"export: no recorded submission or workflow run {run!r}")
    graphs = set(runs)
    # the submissions those runs belong to, and the environments they used
    for (g,) in store.query(
        "SELECT DISTINCT ?g WHERE { VALUES ?r { " + " ".join(f"<{r}>" for r in runs) + " } "
        "{ ?r prov:used ?g . ?g a pg:Environment } UNION "
        "{ ?r pg:partOf+ ?g . ?g a pg:Submission } }"
    ):
        graphs.add(str(g))
    return sorted(graphs)


def selected_dataset(store: Any, run: str | None = None, output: Any = None) -> Any:
    """An rdflib Dataset holding the selected run graphs (and their environments)."""
    import rdflib

    names = _graph_names(store, run, output)
    restrict = ""
    if names is not None:
        restrict = "VALUES ?g { " + " ".join(f"<{n}>" for n in names) + " } "
    rows = store.query(f"SELECT ?g ?s ?p ?o WHERE {{ {restrict}GRAPH ?g {{ ?s ?p ?o }} }}")
    dataset = rdflib.Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graphs: dict[Any, Any] = {}
        string = rdflib.XSD.string
        for g, s, p, o in rows:
            if isinstance(o, rdflib.Literal) and o.datatype == string:
                o = rdflib.Literal(str(o))  # RDF 1.1: the same literal, written plainly
            target = graphs.get(g)
            if target is None:
                target = graphs[g] = dataset.graph(g)
            target.add((s, p, o))
    return dataset


def _union(dataset: Any) -> Any:
    import rdflib

    graph = rdflib.Graph(bind_namespaces="none")
    for prefix, namespace in (("prov", V.PROV), ("pg", V.PG), ("rdfs", V.RDFS), ("xsd", V.XSD)):
        graph.bind(prefix, namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for s, p, o, _ in dataset.quads():
            graph.add((s, p, o))
    return graph


def jsonld_report(graph: Any) -> dict[str, Any]:
    """A JSON-LD report with its context inlined (readable offline): the runs at the top, each
    with its usages, generated outputs (``generated``), plan and agents nested inside it."""
    from pyld import jsonld

    context = json.loads(V.ontology_path("context.jsonld").read_text())["@context"]
    expanded = json.loads(graph.serialize(format="json-ld"))
    frame = {
        "@context": context,
        "@type": ["JobRun", "WorkflowRun", "Submission", "Environment"],
        "generated": {},
    }
    return dict(jsonld.frame(expanded, frame))


def export(
    store: Any,
    path: str | os.PathLike[str],
    format: str = "jsonld",
    *,
    run: str | None = None,
    output: Any = None,
) -> Path:
    """Write the selected provenance to ``path`` in ``format``; returns the path."""
    if format not in FORMATS:
        raise ProvenanceError(f"export format {format!r}; expected one of {list(FORMATS)}")
    dataset = selected_dataset(store, run, output)
    target = Path(path)
    if format == "trig":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            target.write_text(dataset.serialize(format="trig"))
        return target
    graph = _union(dataset)
    if format == "turtle":
        target.write_text(graph.serialize(format="turtle"))
    elif format == "nt":
        target.write_text(graph.serialize(format="nt"))
    elif format == "jsonld":
        target.write_text(json.dumps(jsonld_report(graph), indent=2))
    elif format == "html":
        from .report import html_report

        what = f"lineage of {output}" if output is not None else (run or "all runs")
        target.write_text(html_report(graph, f"provgraph report: {what}"))
    else:
        import prov

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prov notes the terms it does not model
            document = prov.read(
                io.StringIO(graph.serialize(format="turtle")), format="rdf", rdf_format="turtle"
            )
            kind = {"provn": "provn", "provjson": "json", "provxml": "xml"}[format]
            if document is None:
                raise ProvenanceError("the prov package could not read the selection")
            target.write_text(str(document.serialize(format=kind)))
    return target
