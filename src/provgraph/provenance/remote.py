"""A remote provenance store: a SPARQL 1.1 server that a cache's records are pushed to.

Each record graph (one per run, environment...) is sent with a Graph Store Protocol ``PUT`` of
its named graph, so sending it again replaces it and never duplicates it (blank nodes
included). What to send is read from the cache's journal, from where the last push to that
server stopped (a cursor per server in ``.provenance/push/``); a graph's content is taken from
the cache's index, where the files that make one graph (a workflow run's start and end) are
already merged. A server that is down costs nothing but a warning: the records stay in the
cache, and the next push (the next submission, or ``provgraph push``) sends them.

The server layout is Oxigraph's (``/store`` for graphs, ``/query`` for queries): start it with
``oxigraph serve --location DIR --union-default-graph``. Credentials come from the environment
(``PROVGRAPH_PROVENANCE_STORE_TOKEN``, or ``..._USER`` and ``..._PASSWORD``) or the URL, and
are never written into records, cursors or messages.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import xxhash

from ..cache import atomic_write
from ..exceptions import ProvenanceError
from . import index as _index
from . import journal
from .index import file_base

__all__ = ["PushReport", "Remote", "forget_failures", "push", "remote_url", "send_record"]

ENV_URL = "PROVGRAPH_PROVENANCE_STORE"
_ATTEMPTS = 4
_FIRST_DELAY = 0.25  # seconds; doubled after each failed attempt
# A process whose send to a server failed leaves that server alone this long, so that jobs do
# not each wait for a server that does not answer (what they did not send, the push sends)
_RESTING = 60.0
_IN_FLIGHT = 4  # requests a push keeps in flight
_DOWN_UNTIL: dict[str, float] = {}


def remote_url(value: Any) -> str | None:
    """A remote store's URL (http or https), checked; None for None or ''."""
    if value is None or value == "":
        return None
    text = str(value)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProvenanceError(
            f"provenance_store={_safe(text)!r}; expected the URL of a SPARQL server, "
            "e.g. 'http://127.0.0.1:7878'"
        )
    return text


def _safe(url: str) -> str:
    """The URL without credentials, for messages and cursors."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@attrs.define
class Remote:
    """A SPARQL server. Its Graph Store Protocol endpoint is ``<url>/store`` and its query
    endpoint ``<url>/query``, as the Oxigraph server has them, unless
    ``PROVGRAPH_PROVENANCE_STORE_GRAPHS`` and ``PROVGRAPH_PROVENANCE_STORE_QUERY`` name others
    (Fuseki: ``<dataset>/data`` and ``<dataset>/query``; GraphDB:
    ``repositories/<id>/rdf-graphs/service`` and ``repositories/<id>``)."""

    url: str = attrs.field(repr=_safe)  # shown without credentials
    timeout: float = 5.0

    @property
    def base(self) -> str:
        return _safe(self.url).rstrip("/")

    @property
    def query_endpoint(self) -> str:
        return _safe(_config().provenance_store_query or f"{self.base}/query")

    @property
    def graph_store(self) -> str:
        return _safe(_config().provenance_store_graphs or f"{self.base}/store")

    def headers(self) -> dict[str, str]:
        """The authorisation header, from the environment or the URL."""
        config = _config()
        if config.provenance_store_token:
            return {"Authorization": f"Bearer {config.provenance_store_token}"}
        parts = urllib.parse.urlsplit(self.url)
        user = config.provenance_store_user or parts.username
        password = config.provenance_store_password or parts.password or ""
        if user:
            pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def query(self, sparql: str, timeout: float = 120.0) -> Any:
        """Ask the server (SPARQL 1.1 Protocol, POST); an rdflib query Result."""
        import io

        import rdflib
        from rdflib.query import Result

        headers = {
            "Content-Type": "application/sparql-query",
            "Accept": "application/sparql-results+json, application/n-triples;q=0.9",
            **self.headers(),
        }
        request = urllib.request.Request(
            self.query_endpoint, data=sparql.encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                kind = answer.headers.get("content-type", "").split(";")[0].strip()
                body = answer.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode(errors="replace").strip()
            raise ProvenanceError(
                f"SPARQL query failed: {self.base}: HTTP {err.code} {detail}"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise ProvenanceError(f"SPARQL query failed: {self.base}: {reason}") from None
        if "json" in kind:
            return Result.parse(io.BytesIO(body), format="json")
        result = Result("CONSTRUCT")
        result.graph = rdflib.Graph().parse(data=body.decode("utf-8"), format="nt")
        return result

    def put_graph(self, graph: str, ntriples: bytes, *, attempts: int = _ATTEMPTS) -> None:
        """Replace one named graph (retried with backoff; raises ProvenanceError at the end)."""
        target = f"{self.graph_store}?graph={urllib.parse.quote(graph, safe='')}"
        headers = {"Content-Type": "application/n-triples", **self.headers()}
        delay = _FIRST_DELAY
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(target, data=ntriples, headers=headers, method="PUT")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                return
            except urllib.error.HTTPError as err:
                if err.code < 500 and err.code != 429:  # refused: retrying will not help
                    raise ProvenanceError(
                        f"provenance server {self.base} refused graph {graph}: HTTP {err.code} "
                        f"{err.read()[:200].decode(errors='replace').strip()}"
                    ) from None
                problem = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                problem = str(getattr(err, "reason", err)) or type(err).__name__
            if attempt == attempts:
                raise ProvenanceError(
                    f"provenance server {self.base} unreachable after {attempts} attempt(s) "
                    f"({problem})"
                )
            time.sleep(delay)
            delay *= 2


@attrs.define
class PushReport:
    """What one push did."""

    graphs: int = 0  # graphs sent
    files: int = 0  # record files they came from
    pending: int = 0  # record files named but not written yet (sent next time)
    error: str | None = None  # why the push stopped early, if it did


def _cursor_path(cache_dir: Path, remote: Remote) -> Path:
    name = xxhash.xxh3_64_hexdigest(remote.base.encode())
    return cache_dir / ".provenance" / "push" / f"{name}.json"


def _graphs_of(paths: list[str]) -> list[str]:
    """The named graphs the record files hold, in order."""
    import pyoxigraph as ox

    found: dict[str, None] = {}
    for path in paths:
        try:
            quads = ox.parse(path=path, format=ox.RdfFormat.TRIG, base_iri=file_base(path))
            for quad in quads:
                if isinstance(quad.graph_name, ox.NamedNode):
                    found[quad.graph_name.value] = None
        except (SyntaxError, ValueError, OSError) as err:
            print(f"provgraph: push: cannot read {path}: {err}", flush=True)
    return list(found)


def send_record(path: Path, url: str, cache_dir: str) -> bool:
    """From the node that ran a job: send its just-published record (one graph per file), in
    one attempt; on success note it in the server's sent log, so that the submitter's push
    skips it. Never raises: what is not sent here, the submitter's push sends."""
    import pyoxigraph as ox

    remote = Remote(url, timeout=5.0)
    if time.monotonic() < _DOWN_UNTIL.get(remote.base, 0.0):
        return False  # it failed a moment ago: the submitter's push will send this one
    try:
        quads = list(ox.parse(path=str(path), format=ox.RdfFormat.TRIG, base_iri=file_base(path)))
        graphs: dict[str, list[Any]] = {}
        for quad in quads:
            if isinstance(quad.graph_name, ox.NamedNode):
                graphs.setdefault(quad.graph_name.value, []).append(
                    ox.Triple(quad.subject, quad.predicate, quad.object)
                )
        for graph, triples in graphs.items():
            data = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
            remote.put_graph(graph, data, attempts=1)
        mtime = os.stat(path).st_mtime_ns
    except ProvenanceError:
        _DOWN_UNTIL[remote.base] = time.monotonic() + _RESTING
        return False
    except Exception:  # a record not sent from here is sent by the submitter's push
        return False
    cache = Path(cache_dir)
    line = f"{mtime} {journal.relative(cache, path)}\n".encode()
    sent = _cursor_path(cache, remote).with_suffix(".sent")
    try:
        sent.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(sent, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one O_APPEND write: lines from many nodes do not mix
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _already_sent(cache: Path, remote: Remote) -> dict[str, int]:
    """Files the nodes sent themselves: absolute path -> the mtime they had then."""
    sent = _cursor_path(cache, remote).with_suffix(".sent")
    try:
        text = sent.read_text(errors="replace")
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in text.splitlines():
        stamp, _, relative = line.partition(" ")
        if relative and stamp.isdigit():
            found[str(cache / relative)] = int(stamp)
    return found


def _unchanged(path: str, stamp: int | None) -> bool:
    try:
        return stamp is not None and os.stat(path).st_mtime_ns == stamp
    except OSError:
        return False


def forget_failures(url: str) -> None:
    """Try the server again from now on (a new submission starts)."""
    _DOWN_UNTIL.pop(Remote(url).base, None)


def _config() -> Any:
    from ..config import Config

    return Config.from_env()


def _first_cursor(cache: Path, remote: Remote) -> dict[str, Any]:
    """A server not pushed to yet gets every record on disk, journaled or not (caches older
    than the journal, records indexed by a scan), then the journal from its present end."""
    files = [journal.relative(cache, p) for p in _index.all_files(cache)]
    return {"url": remote.base, "offset": journal.size(cache), "waiting": files}


def push(cache_dir: str | os.PathLike[str], url: str, *, quick: bool = False) -> PushReport:
    """Send the cache's records not yet on the server at ``url``; never raises for a server
    that cannot be reached (the report says why it stopped). ``quick`` (the end of a
    submission): one attempt per request, and nothing at all while this process saw the server
    fail in the last minute, so a dead or hung server costs a run seconds at most.

    Records imported from read-only caches are not sent: they are the other cache's to send,
    and their workflow-run graphs hold only what was imported (a PUT would cut the original)."""
    import pyoxigraph as ox

    cache = Path(os.path.abspath(cache_dir))
    remote = Remote(remote_url(url) or "")
    report = PushReport()
    if quick and time.monotonic() < _DOWN_UNTIL.get(remote.base, 0.0):
        report.error = f"provenance server {remote.base} failed a moment ago"
        return report
    cursor = _cursor_path(cache, remote)
    cursor.parent.mkdir(parents=True, exist_ok=True)
    with _index.locked_file(cursor.with_suffix(".lock")):
        try:
            state = json.loads(cursor.read_text())
        except (OSError, ValueError):
            state = _first_cursor(cache, remote)
        if state["offset"] > journal.size(cache):  # the journal was made anew
            state = _first_cursor(cache, remote)
        entries, offset = journal.read_from(cache, state["offset"])
        named = journal.replay([str(cache / p) for p in state["waiting"]], entries)
        imported = str(cache / ".provenance" / "imported") + os.sep
        named = [p for p in named if not p.startswith(imported)]
        ready, waiting = _index.present(cache, named)
        report.pending = len(waiting)
        if not ready:
            _save(cursor, state, offset, waiting, cache)
            return report
        _index.catch_up(cache)
        indexed = _index.read_state(cache / ".provenance")
        if indexed is None or indexed["offset"] < offset or set(ready) & set(indexed["waiting"]):
            report.error = "the cache's index is busy (another process is indexing); try again"
            return report
        store = ox.Store.read_only(str(cache / ".provenance" / indexed["store"]))
        sent = _already_sent(cache, remote)
        graphs = _graphs_of([p for p in ready if not _unchanged(p, sent.get(p))])

        def content(graph: str) -> bytes:
            quads = store.quads_for_pattern(None, None, None, ox.NamedNode(graph))
            triples = [ox.Triple(q.subject, q.predicate, q.object) for q in quads]
            return ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""

        failed: list[str] = []

        def send(graph: str) -> None:
            if failed:  # one request failed: the others are not tried (the next push will)
                return
            try:
                remote.put_graph(graph, content(graph), attempts=1 if quick else _ATTEMPTS)
            except ProvenanceError as err:
                failed.append(str(err))
                return
            report.graphs += 1

        # a few requests in flight: the server's answer, not the network, is the wait
        with ThreadPoolExecutor(_IN_FLIGHT) as pool:
            list(pool.map(send, graphs))
        if failed:
            _DOWN_UNTIL[remote.base] = time.monotonic() + _RESTING
            report.error = failed[0]
            return report
        report.files = len(ready)
        _save(cursor, state, offset, waiting, cache)
    return report


def _save(
    cursor: Path, state: dict[str, Any], offset: int, waiting: list[str], cache: Path
) -> None:
    state = {
        "url": state["url"],
        "offset": offset,
        "waiting": [journal.relative(cache, p) for p in waiting],
    }
    atomic_write(cursor, json.dumps(state).encode())
