"""The provenance store: every run's TriG file, indexed for SPARQL.

The TriG files in the job directories (and ``.provenance/submissions``,
``.provenance/environments``) are the truth; the index under ``<cache_dir>/.provenance/`` is
derived from them and can always be rebuilt.

Default backend: the Oxigraph store (``pyoxigraph``, on disk), read through rdflib with
``oxrdflib``. A submission only queues its new files in ``pending.txt`` (cheap: recording costs
the job's own file); a store indexes what is queued when it is next asked a question, or on
:meth:`ProvenanceStore.refresh`. Oxigraph allows one read-write opening at a time, in any
process: the indexer opens it, loads the files in bulk and closes it; when it is busy, the files
stay queued for the next indexing. Readers keep a read-only opening while the index is unchanged
and reopen it when it has grown, so a store object always answers from everything indexed when
the question is asked. Fallback backend ``"memory"``: plain rdflib, reading every file at each
:meth:`ProvenanceStore.refresh`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ProvenanceError

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

_INDEX = "oxigraph"
_PENDING = "pending.txt"
_INDEXED = "indexed.txt"
_LOCK = "index.lock"
_UNREADABLE = "unreadable.txt"


def _folder(cache_dir: Path) -> Path:
    folder = Path(cache_dir) / ".provenance"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / _LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def all_files(cache_dir: Path) -> list[Path]:
    """Every provenance file of a cache: runs in job directories, environments, submissions."""
    cache_dir = Path(cache_dir)
    found: list[Path] = []
    with os.scandir(cache_dir) as entries:
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                with os.scandir(entry.path) as inner:
                    found += [
                        Path(e.path)
                        for e in inner
                        if e.name.startswith("_prov-") and e.name.endswith(".trig")
                    ]
    for sub in ("environments", "submissions"):
        folder = cache_dir / ".provenance" / sub
        if folder.is_dir():
            found += sorted(folder.glob("*.trig"))
    return found


def load_trig(dataset: rdflib.Dataset, path: Path) -> None:
    """Add one TriG file to an rdflib dataset."""
    with warnings.catch_warnings():
        # rdflib 7 warns about its own use of Dataset.default_context while parsing
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset.parse(data=Path(path).read_bytes(), format="trig")


def _environment_files(cache_dir: Path) -> list[Path]:
    folder = Path(cache_dir) / ".provenance" / "environments"
    return sorted(folder.glob("*.trig")) if folder.is_dir() else []


def _open_writer(folder: Path) -> Any:
    import pyoxigraph as ox

    try:
        return ox.Store(str(folder / _INDEX))
    except OSError:
        return None  # another process holds it: leave the files pending


def queue_files(cache_dir: Path, files: Iterable[Path]) -> None:
    """Queue ``files`` for the next indexing (what a submission does when it ends)."""
    folder = _folder(Path(cache_dir).absolute())
    lines = [f"{Path(f).absolute()}\n" for f in files]
    with _locked(folder), open(folder / _PENDING, "a") as fh:
        fh.writelines(lines)


def index_files(cache_dir: Path, files: Iterable[Path], *, scan: bool = False) -> int:
    """Queue ``files`` for indexing and index everything queued, if the store is free.

    ``scan=True`` also looks through the whole cache for records never queued (those of a
    submission that was killed before it could queue them). Returns the number of files indexed
    now (0 when another process holds the store).
    """
    cache_dir = Path(cache_dir).absolute()
    folder = _folder(cache_dir)
    files = [Path(f).absolute() for f in files]
    if scan:
        files = [*files, *all_files(cache_dir)]
    with _locked(folder):
        with open(folder / _PENDING, "a") as fh:
            fh.writelines(f"{f}\n" for f in files)
        return _drain(Path(cache_dir), folder)


def _drain(cache_dir: Path, folder: Path) -> int:
    import pyoxigraph as ox

    pending = (folder / _PENDING).read_text().splitlines() if (folder / _PENDING).exists() else []
    indexed_path = folder / _INDEXED
    indexed = set(indexed_path.read_text().splitlines()) if indexed_path.exists() else set()
    bad_path = folder / _UNREADABLE
    indexed |= set(bad_path.read_text().splitlines()) if bad_path.exists() else set()
    candidates = [*pending, *map(str, _environment_files(cache_dir))]
    todo = [p for p in dict.fromkeys(candidates) if p not in indexed and Path(p).exists()]
    if not todo:
        (folder / _PENDING).write_text("")
        return 0
    store = _open_writer(folder)
    if store is None:
        return 0

    default = ox.DefaultGraph()

    unreadable: list[str] = []

    def quads() -> Iterator[Any]:
        # Each triple goes into its run's named graph and into the default graph, which is
        # therefore the union of all runs as a set: shared nodes (roles, plans, agents) that
        # every run's graph repeats are matched once.
        for path in todo:
            try:
                parsed = list(ox.parse(path=path, format=ox.RdfFormat.TRIG))
            except (SyntaxError, ValueError, OSError) as err:
                unreadable.append(path)  # set aside (and reported), never blocking the rest
                print(f"provgraph: cannot index {path}: {err}", file=sys.stderr)
                continue
            for quad in parsed:
                yield quad
                yield ox.Quad(quad.subject, quad.predicate, quad.object, default)

    try:
        store.bulk_extend(quads())  # one bulk write for all the files
        store.flush()
    finally:
        del store
    if unreadable:
        with open(folder / _UNREADABLE, "a") as fh:
            fh.writelines(f"{p}\n" for p in unreadable)
    with open(indexed_path, "a") as fh:
        fh.writelines(f"{p}\n" for p in todo if p not in unreadable)
    (folder / _PENDING).write_text("")
    return len(todo)


def rebuild_index(cache_dir: Path) -> int:
    """Drop the index and load every provenance file again; returns how many were loaded."""
    cache_dir = Path(cache_dir).absolute()
    folder = _folder(cache_dir)
    with _locked(folder):
        shutil.rmtree(folder / _INDEX, ignore_errors=True)
        (folder / _INDEXED).unlink(missing_ok=True)
        (folder / _UNREADABLE).unlink(missing_ok=True)
        (folder / _PENDING).write_text("".join(f"{p}\n" for p in all_files(Path(cache_dir))))
        return _drain(Path(cache_dir), folder)


class ProvenanceStore:
    """The provenance recorded in a cache directory, queried with SPARQL.

    ``ProvenanceStore(cache_dir)`` uses the Oxigraph index (``backend="oxigraph"``) and falls
    back to plain rdflib in memory (``backend="memory"``) when pyoxigraph is missing. Queries
    see every run indexed when they are asked; :meth:`refresh` first indexes files that earlier
    runs could not (the store was busy), and reloads the memory backend.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], *, backend: str | None = None) -> None:
        self.cache_dir = Path(cache_dir).absolute()
        if not self.cache_dir.is_dir():
            raise ProvenanceError(f"cache directory {str(self.cache_dir)!r} does not exist")
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
        self._memory: Any = None
        self._reader: Any = None  # the read-only Oxigraph store, while the index is unchanged
        self._reader_stamp: tuple[int, int] | None = None
        self.refresh()

    def refresh(self, *, scan: bool = False) -> int:
        """Index what is pending (or, in memory, read every file again); returns files loaded.

        ``scan=True`` also finds records that were never queued (a killed submission's).
        """
        if self.backend == "memory":
            import rdflib

            dataset = rdflib.Dataset(default_union=True)
            files = all_files(self.cache_dir)
            for path in files:
                load_trig(dataset, path)
            self._memory = dataset
            return len(files)
        if scan:
            return index_files(self.cache_dir, [], scan=True)
        folder = _folder(self.cache_dir)
        with _locked(folder):
            return _drain(self.cache_dir, folder)

    def _catch_up(self) -> None:
        """Index what submissions queued since the last question (cheap when nothing did)."""
        pending = _folder(self.cache_dir) / _PENDING
        try:
            if pending.stat().st_size == 0:
                return
        except FileNotFoundError:
            return
        self.refresh()

    def oxigraph(self) -> Any:
        """The read-only pyoxigraph store behind the default backend (None for ``memory``),
        up to date with everything queued; for fast bulk reads such as exports."""
        if self.backend != "oxigraph":
            return None
        self._catch_up()
        self.graph  # noqa: B018 - opens (or renews) the read-only store
        return self._reader

    @property
    def graph(self) -> rdflib.Dataset:
        """An rdflib dataset over everything indexed (its default graph is the union)."""
        if self._memory is not None:
            return self._memory
        import pyoxigraph as ox
        import rdflib
        from oxrdflib import OxigraphStore

        folder = _folder(self.cache_dir)
        path = folder / _INDEX
        if not path.exists():
            return rdflib.Dataset(default_union=True)
        try:
            stat = (folder / _INDEXED).stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        if self._reader is None or stamp != self._reader_stamp:
            # a read-only opening sees the index as it is then: reopen when it has grown
            try:
                self._reader = ox.Store.read_only(str(path))
            except OSError as err:
                raise ProvenanceError(f"cannot open the provenance index {path}: {err}") from err
            self._reader_stamp = stamp
        # the default graph already holds the union of all runs (see _drain)
        return rdflib.Dataset(store=OxigraphStore(store=self._reader))

    def query(self, sparql: str, **bindings: Any) -> Any:
        """Run a SPARQL 1.1 query (SELECT, ASK, CONSTRUCT); rdflib results.

        The prefixes ``prov:``, ``pg:``, ``rdfs:`` and ``xsd:`` are predeclared; keyword
        arguments bind variables (``store.query(q, run=URIRef(...))``).
        """
        from . import vocab as V

        namespaces = {"prov": V.PROV, "pg": V.PG, "rdfs": V.RDFS, "xsd": V.XSD}
        if bindings:
            sparql = _with_values(sparql, bindings)
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
    ) -> Path:
        """Write provenance to ``path``: everything, one submission (``run``) or one result's
        lineage (``output``: a file, content hash or entity), as ``jsonld`` (default),
        ``turtle``, ``trig``, ``nt``, ``provn``, ``provjson`` or ``provxml``."""
        from .export import export

        return export(self, path, format, run=run, output=output)

    def rerun(
        self, job: str, *, verify: bool = True, into: str | os.PathLike[str] | None = None
    ) -> Any:
        """Rerun a recorded job (run IRI, job hash or directory) from its record, outside the
        cache (in ``into``, or a scratch folder), and record the new run. With ``verify``, each
        output's content hash is compared with the original's: the returned
        :class:`provgraph.provenance.rerun.RerunResult` says which reproduced. Given a workflow
        run or submission IRI, every job of it is rerun in the order they first ran."""
        from .rerun import rerun, rerun_workflow

        target = Path(into) if into is not None else None
        if job.startswith("urn:") and self._is_workflow_run(job):
            return rerun_workflow(self, job, into=target, verify=verify)
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


def _with_values(sparql: str, bindings: dict[str, Any]) -> str:
    """Bind variables with a VALUES block opening the query's WHERE group.

    Placed there (not after the query), the bindings are seen by the group's FILTERs too; and
    it behaves the same on every backend.
    """
    import re

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
