"""Compact, flattened JSON-LD written in one pass over triples grouped by subject.

Every node is compacted against provgraph's context on its own: a predicate becomes the term the
context defines for it when the object fits the term's coercion (an ``@id`` term for IRIs, a
datatype term for literals of that datatype, a plain term for strings), otherwise its compact
IRI (``pg:...``) with the value in expanded form; ``rdf:type`` becomes ``type`` with class
terms. Nodes are written as they come, so an export of the whole store holds one node at a
time, never the graph; what a JSON-LD processor reads back is exactly the triples written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from . import vocab as V

__all__ = ["Compactor", "write_flat"]

_RDF_TYPE = V.RDF + "type"
_XSD_STRING = V.XSD + "string"


class Compactor:
    """The context's terms, indexed for compaction."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.prefixes = {
            name: iri
            for name, iri in context.items()
            if isinstance(iri, str) and not name.startswith("@") and iri.endswith(("#", "/"))
        }
        self.plain: dict[str, str] = {}  # IRI -> term without coercion (classes, properties)
        self.coerced: dict[tuple[str, str], str] = {}  # (property, "@id" or datatype) -> term
        for term, definition in context.items():
            if term.startswith("@") or term in self.prefixes:
                continue
            if isinstance(definition, str):
                if not definition.startswith("@"):
                    self.plain.setdefault(self.expand(definition), term)
            elif isinstance(definition, dict) and "@id" in definition:
                iri = self.expand(definition["@id"])
                kind = definition.get("@type")
                if kind is None:
                    self.plain.setdefault(iri, term)
                else:
                    self.coerced.setdefault((iri, self.expand(kind)), term)

    def expand(self, text: str) -> str:
        prefix, _, local = text.partition(":")
        return self.prefixes[prefix] + local if prefix in self.prefixes else text

    def compact_iri(self, iri: str) -> str:
        for name, namespace in self.prefixes.items():
            if iri.startswith(namespace) and iri != namespace:
                return f"{name}:{iri[len(namespace) :]}"
        return iri

    def node(self, subject: Any, pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
        """One node: its ``id`` and its properties, each value a scalar or a list."""
        found: dict[str, list[Any]] = {}
        for predicate, obj in pairs:
            key, value = self._pair(predicate.value, obj)
            found.setdefault(key, []).append(value)
        node: dict[str, Any] = {"id": _id(subject, self)}
        for key in sorted(found):
            values = found[key]
            node[key] = values[0] if len(values) == 1 else values
        return node

    def _pair(self, predicate: str, obj: Any) -> tuple[str, Any]:
        if predicate == _RDF_TYPE and not _is_literal(obj):
            return "type", self.plain.get(obj.value) or self.compact_iri(obj.value)
        if not _is_literal(obj):
            term = self.coerced.get((predicate, "@id"))
            if term is not None:
                return term, _id(obj, self)
            return self.plain.get(predicate) or self.compact_iri(predicate), {"id": _id(obj, self)}
        datatype = obj.datatype.value if obj.datatype is not None else _XSD_STRING
        if obj.language:
            key = self.plain.get(predicate) or self.compact_iri(predicate)
            return key, {"@value": obj.value, "@language": obj.language}
        term = self.coerced.get((predicate, datatype))
        if term is not None:
            return term, obj.value
        key = self.plain.get(predicate) or self.compact_iri(predicate)
        if datatype == _XSD_STRING:
            return key, obj.value
        return key, {"@value": obj.value, "@type": self.compact_iri(datatype)}


def _is_literal(term: Any) -> bool:
    return hasattr(term, "datatype")


def _id(term: Any, compactor: Compactor) -> str:
    if hasattr(term, "datatype"):  # pragma: no cover - subjects and @id values are never literals
        raise ValueError(f"a literal cannot be a node: {term}")
    if type(term).__name__ == "BlankNode":
        return f"_:{term.value}"
    return compactor.compact_iri(term.value)


def _grouped(triples: Iterable[Any]) -> Iterator[tuple[Any, list[tuple[Any, Any]]]]:
    """Consecutive triples of one subject, together."""
    subject: Any = None
    pairs: list[tuple[Any, Any]] = []
    seen: set[Any] = set()
    for triple in triples:
        if triple.subject != subject:
            if pairs:
                yield subject, pairs
            subject, pairs = triple.subject, []
            if subject in seen:  # each node must be written once, whole
                raise ValueError(f"the triples of {subject} are not consecutive")
            seen.add(subject)
        pairs.append((triple.predicate, triple.object))
    if pairs:
        yield subject, pairs


def write_flat(triples: Iterable[Any], context: dict[str, Any], out: IO[str]) -> int:
    """Write ``{"@context": ..., "@graph": [...]}`` for ``triples`` (each subject's triples
    consecutive); returns how many nodes were written."""
    compactor = Compactor(context)
    out.write('{\n  "@context": ')
    out.write(json.dumps(context, indent=2).replace("\n", "\n  "))
    out.write(',\n  "@graph": [')
    count = 0
    for subject, pairs in _grouped(triples):
        out.write(",\n    " if count else "\n    ")
        out.write(json.dumps(compactor.node(subject, pairs), ensure_ascii=False))
        count += 1
    out.write("\n  ]\n}\n" if count else "]\n}\n")
    return count
