"""``provgraph serve``: a read-only SPARQL 1.1 Protocol endpoint over a cache's provenance.

The endpoint answers at ``/sparql``, and at ``/query`` as the Oxigraph server does, so that
``ProvenanceStore("http://host:port")`` reads either.

The endpoint is a Starlette application run by uvicorn, answering from the cache's own Oxigraph
index (read-only): before each query the store catches up with the journal, so runs recorded
after the server started are seen at once, without a restart. Results are negotiated from the
``Accept`` header: SPARQL JSON (default), XML, CSV, TSV for SELECT and ASK; Turtle (default),
N-Triples, RDF/XML, JSON-LD for CONSTRUCT and DESCRIBE. Updates are refused (403), as are
``SERVICE`` clauses (which would send requests to other servers). See docs/sharing.md and
docs/design/provenance.md for why this is not the Oxigraph server itself.
"""

from __future__ import annotations

import signal
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from ..exceptions import ProvenanceError
from . import vocab as V

__all__ = ["make_app", "serve"]

_PREFIXES = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
_RESULTS = {  # media type -> pyoxigraph QueryResultsFormat name
    "application/sparql-results+json": "JSON",
    "application/json": "JSON",
    "application/sparql-results+xml": "XML",
    "application/xml": "XML",
    "text/csv": "CSV",
    "text/tab-separated-values": "TSV",
}
_GRAPHS = {  # media type -> pyoxigraph RdfFormat name
    "text/turtle": "TURTLE",
    "application/n-triples": "N_TRIPLES",
    "application/rdf+xml": "RDF_XML",
    "application/ld+json": "JSON_LD",
}
_TEXT = "text/plain"
_READ_ONLY = (
    "this endpoint is read-only: provgraph records provenance as runs happen; "
    "SPARQL updates are refused"
)


def _accepted(header: str, offered: dict[str, str], default: str) -> str | None:
    """The offered media type the ``Accept`` header prefers (q-values honoured), ``default``
    for ``*/*`` or no header, None when nothing offered is acceptable."""
    if not header.strip():
        return default
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media, quality = fields[0].lower(), 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media in offered:
            choices.append((quality, -position, media))
        elif media == "*/*":
            choices.append((quality - 0.001, -position, default))
        elif media.endswith("/*"):  # a family: its first offer, the default if it is one
            family = [m for m in offered if m.startswith(media[:-1])]
            if family:
                pick = default if default in family else family[0]
                choices.append((quality - 0.001, -position, pick))
    return max(choices)[2] if choices else None


_NOT_INDEXED = (
    "serve: the endpoint answers from the cache's Oxigraph index, which this user cannot "
    "bring up to date (the cache is not writable by you): run provgraph serve as a user who "
    "can write the cache, or on a copy of it"
)


class _Endpoint:
    """The store behind the endpoint: catching up is one at a time, queries run side by side
    (a read-only Oxigraph store answers many threads)."""

    def __init__(self, store: Any) -> None:
        if store.backend != "oxigraph":
            from .store import _writable

            if store.remote is None and not _writable(store.cache_dir):
                raise ProvenanceError(_NOT_INDEXED)
            raise ProvenanceError(
                "serve: the endpoint answers from a cache's Oxigraph index: open the store "
                f"with backend='oxigraph', not {store.backend!r}"
            )
        self.store = store
        self.lock = threading.Lock()

    def answer(
        self, sparql: str, accept: str, graphs: tuple[list[str], list[str]] = ([], [])
    ) -> tuple[int, bytes, str]:
        """(HTTP status, body, media type) for one query; ``graphs``: the protocol's
        ``default-graph-uri`` and ``named-graph-uri`` values."""
        import pyoxigraph as ox

        from .store import _uses_service

        if _uses_service(sparql):
            return 400, b"SERVICE is refused: this endpoint sends no requests elsewhere\n", _TEXT
        with self.lock:
            native = self.store.oxigraph()
        if native is None:
            return 503, (_NOT_INDEXED.removeprefix("serve: ") + "\n").encode(), _TEXT
        defaults, named = graphs
        options: dict[str, Any] = {}
        if defaults:
            options["default_graph"] = [ox.NamedNode(g) for g in defaults]
        if named:
            options["named_graphs"] = [ox.NamedNode(g) for g in named]
        try:  # outside the lock: queries run side by side
            result = native.query(sparql, prefixes=_PREFIXES, **options)
        except SyntaxError as err:
            return 400, f"SPARQL syntax error: {err}\n".encode(), _TEXT
        except (OSError, ValueError, RuntimeError) as err:
            return 400, f"SPARQL query failed: {err}\n".encode(), _TEXT
        if isinstance(result, ox.QueryTriples):
            media = _accepted(accept, _GRAPHS, "text/turtle")
            if media is None:
                return 406, f"CONSTRUCT results come as {sorted(_GRAPHS)}\n".encode(), _TEXT
            return 200, result.serialize(format=getattr(ox.RdfFormat, _GRAPHS[media])) or b"", media
        media = _accepted(accept, _RESULTS, "application/sparql-results+json")
        if media is None:
            return 406, f"SELECT and ASK results come as {sorted(_RESULTS)}\n".encode(), _TEXT
        body = result.serialize(format=getattr(ox.QueryResultsFormat, _RESULTS[media])) or b""
        return 200, body, media


_PAGE = Path(__file__).with_name("server_page.html")


def make_app(store: Any) -> Any:
    """The Starlette application serving a :class:`ProvenanceStore` at ``/sparql``."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, PlainTextResponse, Response
        from starlette.routing import Route
    except ImportError as err:
        raise ProvenanceError(
            "provgraph serve needs starlette and uvicorn: pip install 'provgraph[server]'"
        ) from err
    endpoint = _Endpoint(store)

    async def sparql(request: Request) -> Response:
        form: dict[str, list[str]] = {}
        if request.method == "GET":
            params = request.query_params
            if "update" in params:
                return PlainTextResponse(_READ_ONLY + "\n", status_code=403)
            query = params.get("query")
        else:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/sparql-update":
                return PlainTextResponse(_READ_ONLY + "\n", status_code=403)
            if kind == "application/sparql-query":
                query = (await request.body()).decode("utf-8", "replace")
            elif kind == "application/x-www-form-urlencoded":
                # (parsed here: Starlette's form parser needs python-multipart even for this)
                form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
                if "update" in form:
                    return PlainTextResponse(_READ_ONLY + "\n", status_code=403)
                query = form.get("query", [None])[0]
            else:
                return PlainTextResponse(
                    f"POST a query as application/sparql-query or as the query= field of a form; "
                    f"got Content-Type {kind or 'none'!r}\n",
                    status_code=415,
                )
        if not query:
            return PlainTextResponse("no query: give it as query=...\n", status_code=400)
        from starlette.concurrency import run_in_threadpool

        graphs = (
            [
                *request.query_params.getlist("default-graph-uri"),
                *form.get("default-graph-uri", []),
            ],
            [*request.query_params.getlist("named-graph-uri"), *form.get("named-graph-uri", [])],
        )
        status, body, media = await run_in_threadpool(
            endpoint.answer, query, request.headers.get("accept", ""), graphs
        )
        return Response(body, status_code=status, media_type=media)

    async def refuse(request: Request) -> Response:
        allowed = "GET, POST" if request.url.path == "/sparql" else ""
        return PlainTextResponse(_READ_ONLY + "\n", status_code=405, headers={"Allow": allowed})

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE.read_text())

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/sparql", sparql, methods=["GET", "POST"]),
        Route("/query", sparql, methods=["GET", "POST"]),  # Oxigraph's name: one client for both
        Route("/sparql", refuse, methods=["PUT", "DELETE", "PATCH"]),
        Route("/update", refuse, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/store", refuse, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    return Starlette(routes=routes)


def serve(
    store: Any,
    host: str = "127.0.0.1",
    port: int = 7878,
    *,
    announce: Any = print,
) -> None:
    """Serve until SIGINT or SIGTERM. ``port=0`` takes a free port; ``announce`` is told the
    endpoint's URL once the socket is bound."""
    try:
        import uvicorn
    except ImportError as err:
        raise ProvenanceError(
            "provgraph serve needs starlette and uvicorn: pip install 'provgraph[server]'"
        ) from err
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ProvenanceError(f"serve: port {port!r}; expected an integer from 0 to 65535")
    app = make_app(store)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # listening before it is announced: clients queue until uvicorn runs
    except OSError as err:
        sock.close()
        raise ProvenanceError(f"serve: cannot listen on {host}:{port}: {err}") from err
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # a stop waits at most this long for queries being answered
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again for
    # the handler it found: for both, that handler ends serve() normally (as it does when the
    # signal comes before uvicorn has taken over)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        announce(
            f"provgraph: serving {store.cache_dir} at http://{shown}:{bound}/sparql (Ctrl-C stops)"
        )
        uvicorn.Server(config).run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        sock.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Stopped(Exception):
    """The server was asked to stop (SIGINT or SIGTERM)."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped(signum)
