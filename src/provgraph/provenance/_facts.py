"""A selection of recorded provenance as plain Python facts, for writers that map it elsewhere.

RDF exports hand quads to a serializer; the RO-Crate export instead walks the graph node by node
(a run, its plan, its usages...). :class:`Facts` indexes the selected quads once, subject ->
predicate -> objects, with IRIs and blank nodes as :class:`Ref` and literals as Python values,
so that walk costs dictionary look-ups rather than one SPARQL query per node.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from . import vocab as V

__all__ = ["Facts", "Ref"]

_NUMBERS = {
    V.XSD + "integer": int,
    V.XSD + "int": int,
    V.XSD + "long": int,
    V.XSD + "double": float,
    V.XSD + "float": float,
    V.XSD + "decimal": float,
}


class Ref(str):
    """A node (IRI, or ``_:id`` for a blank node), as opposed to a literal string."""

    __slots__ = ()


def _python(term: Any) -> Any:
    import pyoxigraph as ox

    if isinstance(term, ox.NamedNode):
        return Ref(term.value)
    if isinstance(term, ox.BlankNode):
        return Ref(f"_:{term.value}")
    datatype = term.datatype.value
    if datatype in _NUMBERS:
        try:
            return _NUMBERS[datatype](term.value)
        except ValueError:
            return term.value
    if datatype == V.XSD + "boolean":
        return term.value in ("true", "1")
    return term.value  # strings, and dateTime kept as its ISO 8601 text


def _order(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


class Facts:
    """Selected quads, indexed by subject (graph names dropped: a node's facts are merged),
    every list in a stable order (sorted), whatever order the store gave the quads in."""

    def __init__(self, quads: list[Any]) -> None:
        self._by_subject: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        self._by_type: dict[str, list[Ref]] = defaultdict(list)
        self._inverse: dict[str, dict[Any, list[Ref]]] = {}
        seen: set[tuple[str, str, Any]] = set()
        for quad in quads:
            subject = _python(quad.subject)
            predicate = quad.predicate.value
            value = _python(quad.object)
            key = (subject, predicate, (type(value), value))
            if key in seen:  # a node described in several run graphs
                continue
            seen.add(key)
            self._by_subject[subject][predicate].append(value)
            if predicate == V.RDF + "type":
                self._by_type[value].append(subject)
        # one order whatever the backend handed the quads in: crates must not differ by store
        for node in self._by_subject.values():
            for values in node.values():
                values.sort(key=_order)
        for subjects in self._by_type.values():
            subjects.sort()

    def all(self, subject: str, predicate: str) -> list[Any]:
        """Every object of ``subject predicate``, in a stable order."""
        node = self._by_subject.get(subject)
        return list(node.get(predicate, ())) if node is not None else []

    def one(self, subject: str, predicate: str, default: Any = None) -> Any:
        """One object of ``subject predicate`` (the first in that order), or ``default``."""
        values = self.all(subject, predicate)
        return values[0] if values else default

    def has(self, subject: str) -> bool:
        """Whether anything is said about ``subject``."""
        return subject in self._by_subject

    def is_a(self, subject: str, cls: str) -> bool:
        """Whether ``subject`` is recorded as an instance of ``cls``."""
        return cls in self.all(subject, V.RDF + "type")

    def of_type(self, cls: str) -> list[Ref]:
        """Every subject recorded as an instance of ``cls``, sorted."""
        return list(self._by_type.get(cls, ()))

    def subjects(self, predicate: str, value: Any) -> list[Ref]:
        """Every subject with ``predicate value`` (an index per predicate, built on first use)."""
        index = self._inverse.get(predicate)
        if index is None:
            index = defaultdict(list)
            for subject in sorted(self._by_subject):
                for obj in self._by_subject[subject].get(predicate, ()):
                    index[obj].append(Ref(subject))
            self._inverse[predicate] = index
        return list(index.get(value, ()))

    def plan(self, run: str) -> Ref | None:
        """The plan (task definition) a run followed, through its qualified association."""
        for association in self.all(run, V.PROV + "qualifiedAssociation"):
            plan = self.one(association, V.PROV + "hadPlan")
            if plan is not None:
                return Ref(plan)
        return None

    def label(self, subject: str, default: str = "") -> str:
        """The ``rdfs:label`` of ``subject``."""
        return str(self.one(subject, V.RDFS + "label", default))
