"""The provenance store: every run's TriG file, indexed for SPARQL.

The TriG files in the job directories (and ``.provenance/runs``, ``.provenance/submissions``,
``.provenance/environments``) are the truth; the index under ``<cache_dir>/.provenance/`` is
derived from them and can always be rebuilt (:mod:`provgraph.provenance.index`).

Default backend: the Oxigraph store (``pyoxigraph``, on disk), read through rdflib with
``oxrdflib``. Recording only names each record in the journal
(:mod:`provgraph.provenance.journal`) before it is written; a store catches the index up with the
journal before every question, so it answers from every record on disk, those of killed or
failed submissions included, at the cost of a few ``stat`` calls when nothing is new. Oxigraph
allows one read-write opening at a time, in any process: the indexer opens it, loads the files
in bulk and closes it; when it is busy, the files stay awaited for the next question. Readers
keep a read-only opening while the index is unchanged and reopen it when it has grown. Fallback
backend ``"memory"``: plain rdflib, reading every file at each :meth:`ProvenanceStore.refresh`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ProvenanceError
from . import index as _index
from . import journal
from .index import all_files, file_base

if TYPE_CHECKING:
    import rdflib

__all__ = [
    "ProvenanceStore",
    "all_files",
    "index_files",
    "load_trig",
    "queue_files",
    "rebuild_index",
]


def load_trig(dataset: rdflib.Dataset, path: Path) -> None:
    """Add one TriG file to an rdflib dataset (its relative IRIs resolved against its place)."""
    with warnings.catch_warnings():
        # rdflib 7 warns about its own use of Dataset.default_context while parsing
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset.parse(data=Path(path).read_bytes(), format="trig", publicID=file_base(path))


def queue_files(cache_dir: Path, files: Iterable[Path]) -> None:
    """Name ``files`` in the journal, for the next catch-up of the index."""
    journal.append(cache_dir, files)


def index_files(
    cache_dir: Path, files: Iterable[Path], *, scan: bool = False, announce: bool = False
) -> int:
    """Name ``files`` in the journal and catch the index up; returns the files loaded now.

    ``scan=True`` rebuilds the index from every record found on disk (the repair for records
    written by hand or by foreign tools, which no journal names). ``announce=True``: a load of
    thousands of files says so on stderr while it runs.
    """
    queue_files(cache_dir, files)
    if scan:
        return _index.rebuild(Path(cache_dir), announce=announce)
    return _index.catch_up(Path(cache_dir), announce=announce)


def rebuild_index(cache_dir: Path, *, announce: bool = False) -> int:
    """Load every record on disk into a new index and switch to it atomically; returns how many
    files were loaded (``announce``: as for :func:`index_files`)."""
    return _index.rebuild(Path(cache_dir), announce=announce)


class ProvenanceStore:
    """The provenance recorded in a cache directory, queried with SPARQL.

    ``ProvenanceStore(cache_dir)`` uses the Oxigraph index (``backend="oxigraph"``) and falls
    back to plain rdflib in memory (``backend="memory"``) when pyoxigraph is missing. Queries
    see every run indexed when they are asked; :meth:`refresh` first indexes files that earlier
    runs could not (the store was busy), and reloads the memory backend.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        backend: str | None = None,
        allow_service: bool = False,
        remote: str | None = None,
    ) -> None:
        from .remote import Remote, remote_url

        self.allow_service = allow_service
        if (
            remote is None
            and isinstance(cache_dir, str)
            and cache_dir.startswith(("http:", "https:"))
        ):
            remote, cache_dir = cache_dir, None
        self.remote = Remote(remote_url(remote) or "") if remote is not None else None
        self._cache_dir: Path | None = None
        self._memory: Any = None
        self._reader: Any = None  # the read-only Oxigraph store, while the index is unchanged
        self._reader_state: dict[str, Any] | None = None
        if cache_dir is not None:
            self._cache_dir = Path(os.path.abspath(cache_dir))
            if not self._cache_dir.is_dir():
                raise ProvenanceError(f"cache directory {str(self._cache_dir)!r} does not exist")
        elif self.remote is None:
            raise ProvenanceError("ProvenanceStore needs a cache directory or a server URL")
        if self.remote is not None:
            if backend not in (None, "remote"):
                raise ProvenanceError(f"backend={backend!r} with a server: it is 'remote'")
            self.backend = "remote"
            return
        if backend is None:
            try:
                import oxrdflib  # noqa: F401
                import pyoxigraph  # noqa: F401

                backend = "oxigraph"
            except ImportError:
                backend = "memory"
        if backend not in ("oxigraph", "memory"):
            raise ProvenanceError(f"backend={backend!r}; expected 'oxigraph' or 'memory'")
        self.backend = backend
        self._index = _index.Index(self.cache_dir)
        self.refresh()

    @property
    def cache_dir(self) -> Path:
        """The cache directory whose records this store reads."""
        if self._cache_dir is None:
            raise ProvenanceError(
                f"this store is the server {self.remote.base if self.remote else ''}, not a "
                "cache: what needs the records' files (exports, reruns) needs "
                "ProvenanceStore(CACHE)"
            )
        return self._cache_dir

    def refresh(self, *, scan: bool = False) -> int:
        """Index what is pending (or, in memory, read every file again); returns files loaded.

        ``scan=True`` rebuilds the index from every record on disk, journaled or not (records
        written by hand or by other tools).
        """
        if self.backend == "remote":
            return 0
        if self.backend == "memory":
            import rdflib

            dataset = rdflib.Dataset(default_union=True)
            files = all_files(self.cache_dir)
            for path in files:
                load_trig(dataset, path)
            self._memory = dataset
            return len(files)
        if not _writable(self.cache_dir):
            if scan or self._index.behind():
                # a cache you cannot write: its index cannot be brought up to date, so every
                # record is read (in memory) instead, and no lock is needed
                self.backend = "memory"
                return self.refresh()
            return 0
        if scan:
            return _index.rebuild(self.cache_dir, announce=True)
        return _index.catch_up(self.cache_dir, announce=True)  # (a question waits for it)

    def _catch_up(self) -> None:
        """Index what was recorded since the last question (a few ``stat`` calls when nothing
        was)."""
        if self.backend == "oxigraph" and self._index.behind():
            self.refresh()

    def oxigraph(self) -> Any:
        """The read-only pyoxigraph store behind the default backend (None for ``memory``),
        up to date with everything queued; for fast bulk reads such as exports."""
        if self.backend != "oxigraph":
            if self.backend == "remote":
                self.cache_dir  # noqa: B018 - a server alone: says exports need the cache
            return None
        self._catch_up()
        self.graph  # noqa: B018 - opens (or renews) the read-only store
        return self._reader

    @property
    def graph(self) -> rdflib.Dataset:
        """An rdflib dataset over everything indexed (its default graph is the union)."""
        if self._memory is not None:
            return self._memory
        if self.remote is not None:
            raise ProvenanceError(
                f"the store is the server {self.remote.base}: ask it with query() and the helpers"
            )
        import pyoxigraph as ox
        import rdflib
        from oxrdflib import OxigraphStore

        state = self._index.state()
        if state is None:
            return rdflib.Dataset(default_union=True)
        if self._reader is None or state is not self._reader_state:
            # a read-only opening sees the index as it is then: reopen when it has changed
            path = self._index.folder / state["store"]
            try:
                self._reader = ox.Store.read_only(str(path))
            except OSError as err:
                raise ProvenanceError(f"cannot open the provenance index {path}: {err}") from err
            self._reader_state = state
        # the default graph already holds the union of all runs (see index._load)
        return rdflib.Dataset(store=OxigraphStore(store=self._reader))

    def query(self, sparql: str, **bindings: Any) -> Any:
        """Run a SPARQL 1.1 query (SELECT, ASK, CONSTRUCT); rdflib results.

        The prefixes ``prov:``, ``pg:``, ``rdfs:`` and ``xsd:`` are predeclared; keyword
        arguments bind variables (``store.query(q, run=URIRef(...))``).
        """
        from . import vocab as V

        namespaces = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
        if not self.allow_service and _uses_service(sparql):
            raise ProvenanceError(
                "SPARQL query refused: it uses SERVICE, which would send requests to other "
                "servers; open the store with ProvenanceStore(cache, allow_service=True) to allow "
                "federated queries"
            )
        if bindings:
            sparql = _with_values(sparql, bindings)
        if self.remote is not None:
            declared = "".join(f"PREFIX {p}: <{ns}>\n" for p, ns in namespaces.items())
            return self.remote.query(declared + sparql)
        if self.backend == "oxigraph":
            self._catch_up()
        try:
            with warnings.catch_warnings():
                # rdflib 7 warns about its own use of deprecated Dataset members
                warnings.simplefilter("ignore", DeprecationWarning)
                result = self.graph.query(sparql, initNs=namespaces)
                if result.type == "SELECT":
                    result.bindings  # noqa: B018 - evaluate now, inside the filter
                return result
        except Exception as err:
            if isinstance(err, ProvenanceError):
                raise
            raise ProvenanceError(f"SPARQL query failed: {err}") from err

    # -- the common questions (see provgraph.provenance.query) ------------------------------
    def produced(self, target: Any) -> list[dict[str, str]]:
        """The runs that generated a file (path or content hash) or entity."""
        from .query import produced

        return produced(self, target)

    def lineage(self, target: Any) -> list[dict[str, str]]:
        """Every run upstream of a file, content hash or entity."""
        from .query import lineage

        return lineage(self, target)

    def impact(self, target: Any) -> list[dict[str, str]]:
        """Every run downstream of an input file, content hash or entity."""
        from .query import impact

        return impact(self, target)

    def runs_of(self, task_name: str) -> list[dict[str, str]]:
        """Every run of a task, by name."""
        from .query import runs_of

        return runs_of(self, task_name)

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded submissions, newest first (at most ``limit``): ``run`` (IRI), ``task``,
        ``status``, ``started``, ``ended``, ``seconds`` and the counts of jobs ``executed``,
        ``reused``, ``failed`` and ``skipped``; what ``provgraph runs`` prints."""
        from .query import submissions

        return submissions(self, limit)

    def gc(
        self,
        *,
        keep_last: int | None = None,
        older_than: Any = None,
        failed: bool = False,
        max_size: Any = None,
        dry_run: bool = False,
    ) -> Any:
        """Remove the job directories that no kept submission needs, following lineage; see
        :mod:`provgraph.provenance.cleanup`. ``keep_last=N`` keeps the N newest submissions,
        ``older_than="30d"`` those newer than that (with both, either keeps), ``failed=True``
        removes failed attempts, ``max_size="10G"`` lets the oldest kept submissions go until
        the cache fits. Records stay; the cleanup is recorded. Returns a ``Cleanup``."""
        from .cleanup import collect

        return collect(
            self,
            keep_last=keep_last,
            older_than=older_than,
            failed=failed,
            max_size=max_size,
            dry_run=dry_run,
        )

    def why(self, job: str) -> Any:
        """Why ``job`` (run IRI, job hash or directory) ran: what differs from the nearest
        earlier run of its task (see :class:`provgraph.provenance.why.Explanation`)."""
        from .why import why

        return why(self, job)

    def export(
        self,
        path: str | os.PathLike[str],
        format: str = "jsonld",
        *,
        run: str | None = None,
        output: Any = None,
        **options: Any,
    ) -> Path:
        """Write provenance to ``path``: everything, one submission (``run``) or one result's
        lineage (``output``: a file, content hash or entity), as ``jsonld`` (default),
        ``turtle``, ``trig``, ``nt``, ``provn``, ``provjson``, ``provxml``, ``html`` or
        ``ro-crate`` (a Workflow Run RO-Crate folder, or zip if ``path`` ends in ``.zip``; its
        ``options``: ``data="copy"|"link"|"none"``, ``agent_name``, ``agent_orcid``,
        ``license``, ``name``; see docs/exports.md)."""
        from .export import export

        return export(self, path, format, run=run, output=output, **options)

    def push(self, url: str | None = None) -> Any:
        """Send this cache's records that the server at ``url`` (default: this store's
        ``remote``, else ``PROVGRAPH_PROVENANCE_STORE``) has not got yet; returns a
        :class:`provgraph.provenance.remote.PushReport` (its ``error`` says why it stopped)."""
        from ..config import Config
        from .remote import ENV_URL, push

        configured = Config.from_env().provenance_store
        target = url or (self.remote.url if self.remote is not None else configured)
        if not target:
            raise ProvenanceError(f"push: no server given (a URL, or {ENV_URL})")
        return push(self.cache_dir, target)

    def serve(self, host: str = "127.0.0.1", port: int = 7878, *, announce: Any = print) -> None:
        """Serve this store as a read-only SPARQL 1.1 endpoint at ``http://host:port/sparql``
        until SIGINT or SIGTERM (``port=0``: a free port, told to ``announce``). Needs
        ``pip install 'provgraph[server]'``; see docs/sharing.md."""
        from .server import serve

        serve(self, host, port, announce=announce)

    def rerun(
        self, job: str, *, verify: bool = True, into: str | os.PathLike[str] | None = None
    ) -> Any:
        """Rerun a recorded job (run IRI, job hash or directory) from its record, outside the
        cache (in ``into``, or a scratch folder), and record the new run. With ``verify``, each
        output's content hash is compared with the original's: the returned
        :class:`provgraph.provenance.rerun.RerunResult` says which reproduced. Given a workflow
        run or submission IRI, or a workflow's or split's directory, every job of it is rerun in
        the order they first ran."""
        from .query import directory_run
        from .rerun import rerun, rerun_workflow

        target = Path(into) if into is not None else None
        if job.startswith("urn:") and self._is_workflow_run(job):
            return rerun_workflow(self, job, into=target, verify=verify)
        whole = None if job.startswith("urn:") else directory_run(self, job)
        if whole is not None:  # a workflow's or split's directory: all its jobs
            return rerun_workflow(self, whole, into=target, verify=verify)
        return rerun(self, job, into=target, verify=verify)

    def _is_workflow_run(self, iri: str) -> bool:
        import rdflib

        result = self.query(
            "ASK { { ?run a pg:WorkflowRun } UNION { ?run a pg:Submission } }",
            run=rdflib.URIRef(iri),
        )
        return bool(result.askAnswer)

    def diff(self, first: str, second: str) -> dict[str, Any]:
        """How two job runs differ: code, inputs, environment (packages) and outputs."""
        from .diff import diff_runs

        return diff_runs(self, first, second)

    def failed_runs(self) -> list[dict[str, str]]:
        """Every failed run, with its error."""
        from .query import failed_runs

        return failed_runs(self)


# SPARQL reads \uXXXX and \UXXXXXXXX escapes anywhere in a query before parsing it
_CODEPOINT = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")
# what cannot hold the SERVICE keyword: strings, IRIs, escaped characters of prefixed names
# (``ex:a\#b``) and comments, blanked before looking
_NOT_KEYWORDS = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
    r"|<[^<>\"{}|^`\\\s]*>|\\.|#[^\n]*"
)
# the keyword, not a variable (?service) nor part of a prefixed name (ex:service, service:x)
_SERVICE = re.compile(r"(?<![?$:\w])SERVICE(?![\w:])", re.IGNORECASE)


def _uses_service(sparql: str) -> bool:
    """True when the query has a ``SERVICE`` clause (federation), or might have one: a textual
    check, then the query parsed (rdflib's SPARQL grammar) and its tree searched; a query that
    does not parse, or that uses ``\\u`` escapes, counts as federated if the word appears
    anywhere in it."""
    text = _CODEPOINT.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), sparql)
    if not re.search("service", text, re.IGNORECASE):
        return False  # (the common case: no parse needed)
    if _SERVICE.search(_NOT_KEYWORDS.sub(" ", text)) is not None:
        return True
    if text != sparql:
        return True  # escapes and the word: parsers differ on escapes, so no chance is taken
    from rdflib.plugins.sparql.parser import parseQuery

    try:
        tree = parseQuery(sparql)
    except Exception:
        return re.search("service", text, re.IGNORECASE) is not None
    return _has_service(tree)


def _has_service(node: Any) -> bool:
    """Whether a parsed query holds a ``ServiceGraphPattern`` anywhere."""
    if getattr(node, "name", None) == "ServiceGraphPattern":
        return True
    if isinstance(node, dict):
        return any(_has_service(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_service(v) for v in node)
    return False


def _writable(cache_dir: Path) -> bool:
    """True when this user can write the cache's provenance folder (or make it)."""
    folder = cache_dir / ".provenance"
    return os.access(folder if folder.exists() else cache_dir, os.W_OK | os.X_OK)


def _with_values(sparql: str, bindings: dict[str, Any]) -> str:
    """Bind variables with a VALUES block opening the query's WHERE group.

    Placed there (not after the query), the bindings are seen by the group's FILTERs too; and
    it behaves the same on every backend.
    """

    import rdflib

    names = " ".join(f"?{name}" for name in bindings)
    terms = []
    for value in bindings.values():
        term = value if isinstance(value, rdflib.term.Identifier) else rdflib.Literal(value)
        terms.append(term.n3())
    where = re.search(r"\bWHERE\b", sparql, re.IGNORECASE)
    brace = sparql.find("{", where.end() if where else 0)
    if brace < 0:
        raise ProvenanceError("cannot bind variables: the query has no group pattern")
    block = f" VALUES ({names}) {{ ({' '.join(terms)}) }} "
    return sparql[: brace + 1] + block + sparql[brace + 1 :]
