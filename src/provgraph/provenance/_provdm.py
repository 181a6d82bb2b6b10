"""The selection as a W3C PROV-DM document (PROV-JSON, PROV-XML, PROV-N, via ``prov``),
losslessly and deterministically.

The ``prov`` package reads RDF with two habits that lose data: a blank node becomes a random
literal id (an error's message and traceback, a package's name and version vanish), and a
relation given in both plain and qualified form becomes two relations. So, before it reads:

- each blank node gets an IRI named by a hash of what points to it and what it says
  (``urn:provgraph:node:xxh3-128:<hex>``): the same store gives the same names every time;
- structured values (``pg:Error``, ``pg:Package``) are typed ``prov:Entity``, so that ``prov``
  keeps them as entities with their attributes;
- a plain relation that also has its qualified form is left out: ``prov`` builds the relation,
  with its role, from the qualified form alone;
- triples are handed over in sorted order, and the document's records are sorted before it is
  written, so that two exports of the same store are byte-identical.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from typing import Any

import xxhash

from ..exceptions import ProvenanceError
from . import vocab as V

__all__ = ["prov_document_text"]

# plain relation -> (its qualified form, the property naming the object in it)
_QUALIFIED = {
    "used": ("qualifiedUsage", "entity"),
    "wasGeneratedBy": ("qualifiedGeneration", "activity"),
    "wasAssociatedWith": ("qualifiedAssociation", "agent"),
    "wasInformedBy": ("qualifiedCommunication", "activity"),
    "wasDerivedFrom": ("qualifiedDerivation", "entity"),
    "actedOnBehalfOf": ("qualifiedDelegation", "agent"),
}
_STRUCTURED = ("Error", "Package")


def _named_blank_nodes(graph: Any) -> dict[Any, Any]:
    """A stable IRI for every blank node: a hash of its referrer and of its own triples."""
    import rdflib

    memo: dict[Any, str] = {}

    def key(node: Any, seen: frozenset[Any]) -> str:
        if not isinstance(node, rdflib.BNode):
            return node.n3()
        if node in memo:
            return memo[node]
        inner = seen | {node}
        own = sorted(
            f"{p.n3()} {key(o, inner) if o not in inner else '_'}"
            for p, o in graph.predicate_objects(node)
        )
        into = sorted(f"{s.n3()} {p.n3()}" for s, p in graph.subject_predicates(node))
        digest = xxhash.xxh3_128_hexdigest("\n".join([*into, "|", *own]).encode())
        memo[node] = digest
        return digest

    nodes = {n for t in graph for n in t if isinstance(n, rdflib.BNode)}
    return {n: rdflib.URIRef(f"urn:provgraph:node:xxh3-128:{key(n, frozenset())}") for n in nodes}


# what XML 1.0 cannot hold, even escaped: C0 controls but tab, newline and carriage return,
# lone surrogates (a file name's undecodable bytes), and U+FFFE, U+FFFF
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(term: Any) -> Any:
    """A literal whose text XML cannot hold, with each such character written ``\\uXXXX``."""
    import rdflib

    if not isinstance(term, rdflib.Literal) or not _NOT_XML.search(str(term)):
        return term
    text = _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", str(term))
    return rdflib.Literal(text, lang=term.language, datatype=term.datatype)


def _for_prov(graph: Any, xml: bool = False) -> Any:
    """The graph ``prov`` reads without loss: named blank nodes, typed structured values,
    plain relations that have a qualified form left out, triples in sorted order. ``xml``:
    literals written so that XML can hold them (:func:`_xml_safe`)."""
    import rdflib

    prov = rdflib.Namespace(V.PROV)
    pg = rdflib.Namespace(V.PG)
    names = _named_blank_nodes(graph)
    qualified = set()
    for plain, (form, via) in _QUALIFIED.items():
        for subject, node in graph.subject_objects(prov[form]):
            for target in graph.objects(node, prov[via]):
                qualified.add((subject, prov[plain], target))
    triples = []
    for s, p, o in graph:
        if (s, p, o) in qualified:
            continue
        target = names.get(o, o)
        triples.append((names.get(s, s), p, _xml_safe(target) if xml else target))
    for kind in _STRUCTURED:
        for node in graph.subjects(rdflib.RDF.type, pg[kind]):
            triples.append((names.get(node, node), rdflib.RDF.type, prov.Entity))
    out = rdflib.Graph(bind_namespaces="none")
    for prefix, namespace in (("prov", V.PROV), ("pg", V.PG), ("rdfs", V.RDFS), ("xsd", V.XSD)):
        out.bind(prefix, namespace)
    for triple in sorted(set(triples), key=lambda t: tuple(x.n3() for x in t)):
        out.add(triple)
    return out


_KNOWN = {V.PROV: "prov", V.PG: "pg", V.XSD: "xsd", V.RDFS: "rdfs", V.RDF: "rdf"}


def _split(uri: str) -> tuple[str, str]:
    """A URI as (namespace, local name), split after its last '#', '/' or ':'."""
    cut = max(uri.rfind("#"), uri.rfind("/"), uri.rfind(":")) + 1
    return uri[:cut], uri[cut:]


def _sorted_document(document: Any) -> Any:
    """The same records, named and ordered by full IRIs alone: ``prov`` makes up prefixes
    (``ns1``...) and keeps records in the order it met them, both of which depend on the order
    it walked the graph in."""
    from prov.identifier import Namespace, QualifiedName
    from prov.model import ProvDocument

    records = sorted(document.get_records(), key=_record_key)
    uris: set[str] = set()
    for record in records:
        for value in (record.identifier, *(x for pair in record.attributes for x in pair)):
            if isinstance(value, QualifiedName):
                uris.add(value.uri)
    spaces = sorted({_split(uri)[0] for uri in uris} - set(_KNOWN))
    ordered = ProvDocument()
    names = {**_KNOWN, **{iri: f"ns{i + 1}" for i, iri in enumerate(spaces)}}
    made = {iri: Namespace(prefix, iri) for iri, prefix in names.items()}
    for namespace in made.values():
        ordered.add_namespace(namespace)

    def renamed(value: Any) -> Any:
        if isinstance(value, QualifiedName):
            space, local = _split(value.uri)
            return made[space][local] if space in made else value
        return value

    for record in records:
        pairs = sorted(record.attributes, key=lambda kv: (_uri(kv[0]), _uri(kv[1])))
        attributes = [(renamed(k), renamed(v)) for k, v in pairs]
        ordered.new_record(record.get_type(), renamed(record.identifier), attributes)
    return ordered


def _uri(value: Any) -> str:
    return str(getattr(value, "uri", value))


def _record_key(record: Any) -> tuple[str, ...]:
    """A record's sort key in full IRIs (never in the prefixes ``prov`` makes up)."""
    attributes = sorted(f"{_uri(k)}={_uri(v)}" for k, v in record.attributes)
    return (record.get_type().uri, _uri(record.identifier or ""), *attributes)


def prov_document_text(graph: Any, kind: str) -> str:
    """The selection as PROV-JSON (``json``), PROV-XML (``xml``) or PROV-N (``provn``)."""
    import prov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prov notes the terms it does not model
        # N-Triples in sorted order: Turtle would invent prefixes in an order of its own
        lines = sorted(_for_prov(graph, xml=kind == "xml").serialize(format="nt").splitlines())
        triples = "\n".join(line for line in lines if line.strip()) + "\n"
        document = prov.read(io.StringIO(triples), format="rdf", rdf_format="nt")
        if document is None:
            raise ProvenanceError("the prov package could not read the selection")
        text = str(_sorted_document(document).serialize(format=kind))
    if kind == "json":  # keys in a stable order too
        text = json.dumps(json.loads(text), indent=1, sort_keys=True)
    return text
