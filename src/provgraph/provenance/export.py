"""Exports of recorded provenance: JSON-LD, PROV-N, PROV-JSON, PROV-XML, Turtle, TriG, N-Triples.

What is exported is a *selection* of run graphs: everything, one submission (its workflow runs
and every job run part of them), or the lineage of one result (every run upstream of a file,
content hash or entity). Environment graphs used by the selected runs come along.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..exceptions import ProvenanceError
from . import vocab as V

__all__ = ["FORMATS", "export"]

FORMATS = ("jsonld", "turtle", "trig", "nt", "provn", "provjson", "provxml", "html", "ro-crate")


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


def _crate_graph_names(store: Any, run: str | None, output: Any) -> list[str] | None:
    """What a crate holds: the selection, made whole. A run selection also takes in the runs it
    is part of, up to its submission (who ran it, when), and the earlier runs its jobs and
    workflows reused (how its results were made); a lineage also takes in the
    workflow runs and submissions its runs were part of (which steps ran them). Reused runs
    come with the runs they were part of, up to their own submission (who first ran them)."""
    import rdflib

    names = _graph_names(store, run, output)
    if names is None:
        return None
    runs = " ".join(f"<{n}>" for n in names)
    if output is None:
        sparql = (
            "SELECT DISTINCT ?g WHERE { VALUES ?r { " + runs + " } { ?r pg:partOf+ ?g } UNION "
            "{ ?r pg:reused ?used . { ?g pg:partOf* ?used } UNION { ?used pg:partOf+ ?g } } }"
        )
    else:
        sparql = "SELECT DISTINCT ?g WHERE { VALUES ?r { " + runs + " } ?r pg:partOf+ ?g }"
    extra = {str(g) for (g,) in store.query(sparql) if isinstance(g, rdflib.URIRef)}
    if not extra - set(names):
        return names
    more = set(names) | extra
    for (g,) in store.query(
        "SELECT DISTINCT ?g WHERE { VALUES ?r { " + " ".join(f"<{r}>" for r in more) + " } "
        "?r prov:used ?g . ?g a pg:Environment }"
    ):
        more.add(str(g))
    return sorted(more)


def crate_quads(store: Any, run: str | None = None, output: Any = None) -> list[Any]:
    """The quads an RO-Crate of the selection describes (see :func:`_crate_graph_names`), with
    the description of every task definition a selected workflow names as a step (a lineage
    selects only some of a workflow's runs, but the crate describes the whole workflow)."""
    quads = selected_quads(store, run, output, names=_crate_graph_names(store, run, output))
    described = {q.subject.value for q in quads if q.predicate.value == V.PG + "definitionHash"}
    named = {
        q.object.value for q in quads if q.predicate.value == V.PG + "stepDefinition"
    } - described
    return quads + _descriptions(store, sorted(named)) if named else quads


def _descriptions(store: Any, definitions: list[str]) -> list[Any]:
    """The facts recorded about some task definitions and their parameters, in any graph."""
    import pyoxigraph as ox
    import rdflib

    def term(value: Any) -> Any:
        if isinstance(value, rdflib.URIRef):
            return ox.NamedNode(str(value))
        if isinstance(value, rdflib.BNode):
            return ox.BlankNode(str(value))
        if value.language:
            return ox.Literal(str(value), language=value.language)
        datatype = value.datatype or rdflib.XSD.string
        return ox.Literal(str(value), datatype=ox.NamedNode(str(datatype)))

    rows = store.query(
        "SELECT DISTINCT ?s ?p ?o WHERE { VALUES ?d { "
        + " ".join(f"<{d}>" for d in definitions)
        + " } { ?d ?p ?o BIND(?d AS ?s) } UNION { ?s pg:parameterOf ?d ; ?p ?o } }"
    )
    graph = ox.NamedNode("urn:provgraph:definitions")
    return [ox.Quad(term(s), term(p), term(o), graph) for s, p, o in rows]


_UNSET: Any = object()


def selected_quads(
    store: Any, run: str | None = None, output: Any = None, *, names: Any = _UNSET
) -> list[Any]:
    """The selected run graphs (and their environments) as pyoxigraph quads."""
    import pyoxigraph as ox

    if names is _UNSET:
        names = _graph_names(store, run, output)
    native = store.oxigraph()
    if native is None:  # the memory backend: its dataset, handed over as N-Quads
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data = store.graph.serialize(format="nquads").encode()
        quads = [q for q in ox.parse(data, format=ox.RdfFormat.N_QUADS)]
        quads = [q for q in quads if not isinstance(q.graph_name, ox.DefaultGraph)]
        if names is not None:
            wanted = set(names)
            quads = [q for q in quads if q.graph_name.value in wanted]
        return quads
    if names is None:
        return [q for q in native if not isinstance(q.graph_name, ox.DefaultGraph)]
    return [q for n in names for q in native.quads_for_pattern(None, None, None, ox.NamedNode(n))]


def _triples(quads: list[Any]) -> list[Any]:
    import pyoxigraph as ox

    return list({ox.Triple(q.subject, q.predicate, q.object) for q in quads})


def selected_dataset(store: Any, run: str | None = None, output: Any = None) -> Any:
    """An rdflib Dataset holding the selected run graphs (and their environments)."""
    import pyoxigraph as ox
    import rdflib

    data = ox.serialize(selected_quads(store, run, output), format=ox.RdfFormat.N_QUADS) or b""
    dataset = rdflib.Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset.parse(data=data, format="nquads")
    return dataset


def _union_from_quads(quads: list[Any]) -> Any:
    import pyoxigraph as ox
    import rdflib

    graph = rdflib.Graph(bind_namespaces="none")
    for prefix, namespace in (("prov", V.PROV), ("pg", V.PG), ("rdfs", V.RDFS), ("xsd", V.XSD)):
        graph.bind(prefix, namespace)
    data = ox.serialize(_triples(quads), format=ox.RdfFormat.N_TRIPLES) or b""
    graph.parse(data=data, format="nt")
    return graph


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


def _jsonld(target: Path, native: Any, store: Any, run: str | None, output: Any) -> Path:
    """A compact, flattened JSON-LD report with its context inlined (readable offline): every
    node (run, entity, usage, plan, agent, environment) described once, at the top level under
    ``@graph`` (the form generic consumers such as ro-crate-py read), referring to each other
    by ``id``. Written in one pass: the whole store streams from the index's default graph
    (the union of all runs, grouped by subject); a selection is sorted by subject first."""
    import pyoxigraph as ox

    from ._jsonld import write_flat

    context = json.loads(V.ontology_path("context.jsonld").read_text())["@context"]
    if native is not None and run is None and output is None:
        triples: Any = native.quads_for_pattern(None, None, None, ox.DefaultGraph())
    else:
        triples = sorted(
            _triples(selected_quads(store, run, output)),
            key=lambda t: (type(t.subject).__name__, t.subject.value),
        )
    with open(target, "w", encoding="utf-8") as out:
        write_flat(triples, context, out)
    return target


def _html(store: Any, target: Path, run: str | None, output: Any) -> Path:
    """The HTML report: of one submission (the newest unless ``run`` names one; a workflow
    run works too), or of one output's lineage."""
    from .report import html_report

    info = None
    others: list[dict[str, Any]] = []
    if output is None:
        submissions = store.runs()
        if run is None and submissions:
            run = submissions[0]["run"]
        if run is not None:
            run = V.run_iri(str(run))
            info = next((s for s in submissions if s["run"] == run), None)
            others = [s for s in submissions if s["run"] != run]
    graph = _union_from_quads(selected_quads(store, names=_crate_graph_names(store, run, output)))
    if output is not None:
        title = f"provgraph report: lineage of {output}"
    elif info is not None:
        title = f"provgraph report: {info['task']}, submitted {info['started'][:19]}"
    else:
        title = f"provgraph report: {run or 'all runs'}"
    page = html_report(graph, title, submission=run, info=info, others=others)
    target.write_text(page)
    return target


def export(
    store: Any,
    path: str | os.PathLike[str],
    format: str = "jsonld",
    *,
    run: str | None = None,
    output: Any = None,
    **crate: Any,
) -> Path:
    """Write the selected provenance to ``path`` in ``format``; returns the path. The
    ``ro-crate`` format takes the options of :func:`provgraph.provenance.rocrate.write_crate`
    (``data``, ``agent_name``, ``agent_orcid``, ``license``, ``name``)."""
    if format not in FORMATS:
        raise ProvenanceError(f"export format {format!r}; expected one of {list(FORMATS)}")
    if getattr(store, "remote", None) is not None:  # exports read the records themselves
        from .store import ProvenanceStore

        store = ProvenanceStore(store.cache_dir)
    if format == "ro-crate":
        from .rocrate import write_crate

        return write_crate(store, path, run=run, output=output, **crate)
    if crate:
        raise ProvenanceError(
            f"export: {sorted(crate)} are options of the ro-crate format, not of {format!r}"
        )
    import pyoxigraph as ox

    target = Path(path)
    if target.is_dir():
        raise ProvenanceError(f"export: {str(target)!r} is a directory; expected a file to write")
    if not target.absolute().parent.is_dir():
        raise ProvenanceError(
            f"export: the folder of {str(target)!r} does not exist; expected a file to write in "
            "an existing folder"
        )
    prefixes = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
    native = store.oxigraph()
    if format == "jsonld":
        return _jsonld(target, native, store, run, output)
    if native is not None and run is None and output is None and format in ("turtle", "nt"):
        # everything: the index's default graph is already the union of all runs, as a set
        fmt = ox.RdfFormat.TURTLE if format == "turtle" else ox.RdfFormat.N_TRIPLES
        native.dump(str(target), fmt, from_graph=ox.DefaultGraph(), prefixes=prefixes)
        return target
    if format == "html":
        return _html(store, target, run, output)
    quads = selected_quads(store, run, output)
    if format in ("trig", "turtle", "nt"):  # written by Oxigraph, without rdflib
        if format == "trig":
            data = ox.serialize(quads, format=ox.RdfFormat.TRIG, prefixes=prefixes)
        elif format == "turtle":
            data = ox.serialize(_triples(quads), format=ox.RdfFormat.TURTLE, prefixes=prefixes)
        else:
            data = ox.serialize(_triples(quads), format=ox.RdfFormat.N_TRIPLES)
        target.write_bytes(data or b"")
        return target
    from ._provdm import prov_document_text

    kind = {"provn": "provn", "provjson": "json", "provxml": "xml"}[format]
    target.write_text(prov_document_text(_union_from_quads(quads), kind))
    return target
