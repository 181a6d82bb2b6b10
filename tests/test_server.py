"""``provgraph serve``: a real server process on 127.0.0.1 and a free port, asked by real SPARQL
clients (SPARQLWrapper, rdflib's SPARQLStore, plain HTTP)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rdflib
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import CSV, JSON, TURTLE, SPARQLWrapper

from provgraph import ProvenanceError, ProvenanceStore, Submitter, python

PG = "https://w3id.org/provgraph/ns#"


@python.define
def Add(a: int, b: int) -> int:
    return a + b


def _run(cache: Path, values: list[int]) -> None:
    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(Add(b=100).split(a=values))
    assert not result.errored


class Server:
    """``provgraph serve CACHE --port 0`` in its own process."""

    def __init__(self, cache: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "provgraph", "serve", str(cache), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # printed once the socket is bound
        assert "serving" in line, line + self.process.stderr.read()  # type: ignore[union-attr]
        self.url = line.split(" at ", 1)[1].split()[0]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=60)
        return self.process.returncode, out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Server]]:
    cache = tmp_path / "cache"
    _run(cache, [1, 2, 3])
    server = Server(cache)
    try:
        yield cache, server
    finally:
        if server.process.poll() is None:
            server.stop()


def _http(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.headers.get("content-type", ""), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


COUNT = "SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"


def _count(url: str) -> int:
    client = SPARQLWrapper(url)
    client.setQuery(COUNT)
    client.setReturnFormat(JSON)
    answer: Any = client.queryAndConvert()
    return int(answer["results"]["bindings"][0]["n"]["value"])


def test_sparqlwrapper_get_post_and_formats(served: tuple[Path, Server]) -> None:
    """GET and POST, JSON and CSV results, CONSTRUCT as Turtle: what SPARQLWrapper asks for."""
    cache, server = served
    assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    assert _count(server.url) == 3
    client = SPARQLWrapper(server.url)
    client.setMethod("POST")
    client.setQuery("SELECT ?r WHERE { ?r a pg:JobRun ; pg:status 'succeeded' } ORDER BY ?r")
    client.setReturnFormat(CSV)
    rows = bytes(client.queryAndConvert()).decode().splitlines()  # type: ignore[arg-type]
    assert rows[0] == "r" and len(rows) == 4 and all(r.startswith("urn:uuid:") for r in rows[1:])
    client = SPARQLWrapper(server.url)
    client.setQuery("CONSTRUCT { ?r a pg:JobRun } WHERE { ?r a pg:JobRun }")
    client.setReturnFormat(TURTLE)
    graph = rdflib.Graph().parse(data=client.queryAndConvert(), format="turtle")  # type: ignore[arg-type]
    store = ProvenanceStore(cache)
    expected = {r for (r,) in store.query("SELECT ?r WHERE { ?r a pg:JobRun }")}
    assert set(graph.subjects()) == expected


def test_content_negotiation(served: tuple[Path, Server]) -> None:
    """Each results format the protocol names, by the Accept header; 406 when none fits."""
    _, server = served
    query = urllib.parse.urlencode({"query": "ASK { ?r a pg:JobRun }"})
    for accept, marker in [
        ("application/sparql-results+json", b'"boolean":true'),
        ("application/sparql-results+xml", b"<boolean>true</boolean>"),
    ]:
        status, kind, body = _http(f"{server.url}?{query}", headers={"Accept": accept})
        assert (status, kind.split(";")[0]) == (200, accept) and marker in body.replace(b" ", b"")
    select = urllib.parse.urlencode({"query": "SELECT ?r WHERE { ?r a pg:JobRun }"})
    status, kind, body = _http(
        f"{server.url}?{select}", headers={"Accept": "text/tab-separated-values"}
    )
    assert status == 200 and body.decode().splitlines()[0] == "?r" and body.count(b"\n") == 4
    construct = "CONSTRUCT { ?r a pg:JobRun } WHERE { ?r a pg:JobRun }"
    status, kind, body = _http(
        server.url,
        data=construct.encode(),
        headers={"Content-Type": "application/sparql-query", "Accept": "application/ld+json"},
    )
    assert status == 200 and len(json.loads(body)) == 3
    status, _, body = _http(f"{server.url}?{select}", headers={"Accept": "image/png"})
    assert status == 406 and b"text/csv" in body


def test_read_only_and_no_service(served: tuple[Path, Server]) -> None:
    """Updates are refused with a reason, other methods too, SERVICE is refused, bad queries
    are 400s that say what is wrong."""
    _, server = served
    update = urllib.parse.urlencode({"update": "DELETE WHERE { ?s ?p ?o }"}).encode()
    status, _, body = _http(
        server.url, data=update, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403 and b"read-only" in body
    status, _, body = _http(
        server.url,
        data=b"DELETE WHERE { ?s ?p ?o }",
        headers={"Content-Type": "application/sparql-update"},
    )
    assert status == 403 and b"read-only" in body
    status, _, _ = _http(server.url, data=b"x", method="PUT")
    assert status == 405
    service = urllib.parse.urlencode(
        {"query": "SELECT * { SERVICE <http://example.org/> { ?s ?p ?o } }"}
    )
    status, _, body = _http(f"{server.url}?{service}")
    assert status == 400 and b"SERVICE is refused" in body
    status, _, body = _http(f"{server.url}?{urllib.parse.urlencode({'query': 'SELEC *'})}")
    assert status == 400 and b"syntax error" in body
    assert _count(server.url) == 3  # nothing was changed


def test_rdflib_sparqlstore_and_new_runs(served: tuple[Path, Server]) -> None:
    """rdflib's SPARQLStore queries it; runs recorded after the server started are answered
    at once, without a restart."""
    cache, server = served
    graph = rdflib.Graph(store=SPARQLStore(server.url, returnFormat="json"))
    rows = list(graph.query(f"SELECT ?r WHERE {{ ?r a <{PG}JobRun> }}"))
    assert len(rows) == 3
    _run(cache, [10, 20])
    assert len(list(graph.query(f"SELECT ?r WHERE {{ ?r a <{PG}JobRun> }}"))) == 5
    assert _count(server.url) == 5


def test_provenance_store_over_the_endpoint(served: tuple[Path, Server]) -> None:
    """``ProvenanceStore(url)`` asks the endpoint (at ``/query``) with the same helpers."""
    cache, server = served
    remote = ProvenanceStore(server.url.removesuffix("/sparql"))
    local = ProvenanceStore(cache)
    assert remote.runs_of("Add") == local.runs_of("Add") and len(local.runs_of("Add")) == 3


def test_stops_cleanly_on_sigint(served: tuple[Path, Server]) -> None:
    _, server = served
    code, out = server.stop(signal.SIGINT)
    assert code == 0 and "server stopped" in out


def test_stops_cleanly_on_sigterm_and_query_page(served: tuple[Path, Server]) -> None:
    _, server = served
    status, kind, body = _http(server.url.removesuffix("sparql"))
    assert status == 200 and kind.startswith("text/html") and b'fetch("sparql"' in body
    assert b"http://" not in body.replace(b"http://schema", b"")  # nothing fetched elsewhere
    code, out = server.stop(signal.SIGTERM)
    assert code == 0 and "server stopped" in out


def test_bad_serve_requests(tmp_path: Path) -> None:
    """A port out of range, a port in use, the memory backend: clear errors."""
    cache = tmp_path / "cache"
    _run(cache, [1])
    store = ProvenanceStore(cache)
    with pytest.raises(ProvenanceError, match=r"port 70000; expected an integer from 0 to 65535"):
        store.serve(port=70000)
    with pytest.raises(ProvenanceError, match="backend='oxigraph'"):
        ProvenanceStore(cache, backend="memory").serve(port=0)
    server = Server(cache)
    try:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(ProvenanceError, match=f"cannot listen on 127.0.0.1:{port}"):
            store.serve(port=port)
    finally:
        server.stop()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }",
        "SELECT * WHERE { # a comment ended by a carriage return\r"
        "SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }",
        'SELECT * WHERE { BIND("\\u0022" AS ?a) '
        'SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } BIND("\\u0022" AS ?b) }',
        "select * where { service <http://127.0.0.1:9/> { ?s ?p ?o } }",
    ],
    ids=["plain", "carriage-return-comment", "escaped-quotes", "lower-case"],
)
def test_service_is_refused_however_written(query: str, tmp_path: Path) -> None:
    """Federation is refused also when a comment ends at a bare CR or escapes hide it from a
    textual check (each of these reached another server before)."""
    cache = tmp_path / "cache"
    _run(cache, [1])
    with pytest.raises(ProvenanceError, match="uses SERVICE"):
        ProvenanceStore(cache).query(query)
