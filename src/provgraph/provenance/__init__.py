"""Provenance: every job run recorded as W3C PROV triples, queried with SPARQL."""

from .store import ProvenanceStore

__all__ = ["ProvenanceStore"]
