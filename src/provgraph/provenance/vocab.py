"""Namespaces and the minting of every IRI provgraph writes: the only place that makes IRIs.

Things are named by hashes (content, definitions, environments), events by UUIDs (runs).
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import socket
import urllib.parse
from importlib import resources
from pathlib import Path

from .. import __version__

__all__ = [
    "PG",
    "PROV",
    "RDF",
    "RDFS",
    "XSD",
    "agent_iri",
    "connection_iri",
    "content_iri",
    "definition_iri",
    "delegation_iri",
    "environment_iri",
    "file_iri",
    "gathered_iri",
    "iri_path",
    "location_iri",
    "ontology_path",
    "output_iri",
    "parameter_iri",
    "relative_locations",
    "run_iri",
    "step_iri",
    "user_iri",
]

PG = "https://w3id.org/provgraph/ns#"
PROV = "http://www.w3.org/ns/prov#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
PROVONE = "http://purl.dataone.org/provone/2015/01/15/ontology#"


def run_iri(run_uuid: str) -> str:
    """A job, workflow or submission run: ``urn:uuid:<uuid>``."""
    return run_uuid if run_uuid.startswith("urn:uuid:") else f"urn:uuid:{run_uuid}"


def output_iri(run: str, field: str) -> str:
    """The entity a run generated for one output field: ``<run>#<field>``."""
    return f"{run}#{urllib.parse.quote(field, safe='')}"


def gathered_iri(run: str, field: str) -> str:
    """The list a run used for input ``field``, gathered from upstream runs' outputs (its
    own: two runs may gather lists of equal content from different runs):
    ``<run>#used-<field>``."""
    return f"{run}#used-{urllib.parse.quote(field, safe='')}"


def content_iri(hex_digest: str) -> str:
    """A value or file given by the user, named by its content hash."""
    return f"urn:provgraph:content:xxh3-128:{hex_digest}"


def definition_iri(hex_digest: str) -> str:
    """A task definition, named by its definition hash."""
    return f"urn:provgraph:definition:xxh3-128:{hex_digest}"


def environment_iri(hex_digest: str) -> str:
    """An environment, named by the hash of its description."""
    return f"urn:provgraph:env:xxh3-128:{hex_digest}"


def parameter_iri(definition_hex: str, direction: str, field: str) -> str:
    """A formal parameter of a task definition: one per (definition, input or output, field),
    the role its values play (``prov:hadRole``)."""
    quoted = urllib.parse.quote(field, safe="")
    return f"urn:provgraph:parameter:xxh3-128:{definition_hex}:{direction}:{quoted}"


def step_iri(workflow_hex: str, node: str) -> str:
    """A step of a workflow definition: one of its nodes."""
    return f"urn:provgraph:step:xxh3-128:{workflow_hex}:{urllib.parse.quote(node, safe='')}"


def connection_iri(workflow_hex: str, node: str, field: str) -> str:
    """The connection feeding input ``field`` of ``node`` in a workflow definition."""
    quoted = urllib.parse.quote(f"{node}.{field}", safe="")
    return f"urn:provgraph:connection:xxh3-128:{workflow_hex}:{quoted}"


def delegation_iri(agent: str, person: str) -> str:
    """The delegation of ``agent`` acting for ``person``: one IRI for the pair."""
    import xxhash

    digest = xxhash.xxh3_128_hexdigest(f"{agent} {person}".encode())
    return f"urn:provgraph:delegation:xxh3-128:{digest}"


def agent_iri() -> str:
    """This version of provgraph, as a software agent."""
    return f"urn:provgraph:agent:provgraph-{__version__}"


def user_iri() -> tuple[str, str]:
    """The person running provgraph (login at host) and their login name."""
    try:
        login = getpass.getuser()
    except Exception:  # no login name in some containers
        login = "unknown"
    host = socket.gethostname()
    return f"urn:provgraph:user:{urllib.parse.quote(login)}@{urllib.parse.quote(host)}", login


def file_iri(path: str | os.PathLike[str]) -> str:
    """A file or directory: its absolute ``file:`` IRI."""
    return Path(os.path.abspath(path)).as_uri()


def iri_path(iri: str) -> Path | None:
    """The local path a ``file:`` IRI names; None for another scheme."""
    if not iri.startswith("file:"):
        return None
    import urllib.request

    return Path(urllib.request.url2pathname(urllib.parse.urlparse(iri).path))


# While a record is built, a place inside the cache is named under this stand-in for the cache's
# own folder; when the record is written, the stand-in becomes a path relative to the record's
# file (``../`` from a job directory), so the record moves with the cache: a TriG parser
# resolves it against the file's location (see docs/design/provenance.md, "Relocation").
CACHE_ROOT = "file:///.provgraph-cache-root/"


def location_iri(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> str:
    """A file or directory's IRI in a record: relative to the cache when inside it (through
    :data:`CACHE_ROOT`), its absolute ``file:`` IRI when outside."""
    full = os.fspath(path)
    if not os.path.isabs(full) or "/.." in full or "/./" in full:
        full = os.path.abspath(full)
    root = os.fspath(cache_dir)  # absolute and normalised, as the recorder passes it
    inside = _under(full, root)
    if inside is None:  # inside all the same through a symlink (of the cache, or of the path)?
        inside = _under(_real_path(full), _real(root))
    if inside is None:
        return Path(full).as_uri()
    if _PLAIN_PATH.fullmatch(inside):  # (a job directory's name: nothing to quote)
        return CACHE_ROOT + inside
    return CACHE_ROOT + urllib.parse.quote(inside)


def _under(full: str, root: str) -> str | None:
    """``full`` relative to ``root`` when it lies below it (both absolute), else None."""
    if full.startswith(root) and full[len(root) : len(root) + 1] == os.sep:
        return full[len(root) + 1 :]
    return None


@functools.lru_cache(maxsize=1024)
def _real(folder: str) -> str:
    """A folder with its symlinks resolved (a cache's, or an input file's: once each)."""
    return os.path.realpath(folder)


def _real_path(full: str) -> str:
    """``full`` with its symlinks resolved: its folder's resolved once per process (the many
    files of a folder: one ``lstat`` each, not one per path component). A folder made a
    symlink later in a long-lived process keeps the place it first resolved to: only
    whether a location is written relative to the cache depends on it."""
    if os.path.islink(full):
        return os.path.realpath(full)
    folder, name = os.path.split(full)
    return os.path.join(_real(folder), name)


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")  # what urllib.parse.quote leaves as it is


def relative_locations(data: bytes, depth: int) -> bytes:
    """Serialized TriG with the cache's stand-in made relative to a file ``depth`` folders
    below the cache (1 for a job directory)."""
    return data.replace(f"<{CACHE_ROOT}".encode(), b"<" + b"../" * depth)


def ontology_path(name: str) -> Path:
    """A file of ``ontology/`` (``provgraph.ttl``, ``shapes.ttl``, ``context.jsonld``)."""
    packaged = resources.files("provgraph") / "ontology" / name
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[3] / "ontology" / name  # a source checkout
    if source.is_file():
        return source
    from ..exceptions import ProvenanceError

    raise ProvenanceError(f"ontology file {name!r} is missing from this installation")
