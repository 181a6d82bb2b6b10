"""The index: an Oxigraph store loaded from the record files, kept up with the journal.

Under ``<cache_dir>/.provenance/``:

``index.json``   the state, replaced atomically (write aside, rename): which store generation is
                 current, the cache's absolute path it was built at, the journal offset it has
                 read to, the journaled records it is still waiting for (jobs running, or killed
                 before they wrote anything), and the environments folder's mtime it has seen
``oxigraph-<n>`` the store generation the state names
``index.lock``   ``flock``-ed by whoever writes the index

Catching up (:func:`catch_up`, before every question) reads the journal from the offset, loads the
records that now exist, and writes the new state; a record that a killed process wrote aside and
never published is finished first (published, or recorded as interrupted). Records load with their
file's own location as base IRI, so the relative locations inside them resolve to wherever the cache
is now. A rebuild (:func:`rebuild`: no state yet, a state for another place because the cache was
moved or copied, or asked for) loads every record found on disk into a *new* generation and only
then switches the state to it: a killed rebuild leaves the previous answers. Loading the same file
twice adds nothing (quads are a set and blank-node labels are kept), so a writer killed after
loading but before saving its state costs only a repeated load.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..cache import RESULT_NAME
from . import journal
from .record import PENDING, finish_abandoned

__all__ = ["Index", "all_files", "catch_up", "file_base", "present", "rebuild"]

STATE = "index.json"
_LOCK = "index.lock"
_UNREADABLE = "unreadable.txt"
_CHUNK = 200  # record files per bulk load (about 17,000 quads): memory stays flat
NOTICE_AT = 2000  # record files: a load this large takes seconds, and says so on stderr
_RECORD_FOLDERS = ("cleanups", "environments", "imported", "runs", "submissions")


def file_base(path: str | os.PathLike[str]) -> str:
    """The base IRI a record file's relative IRIs resolve against: its own location."""
    return Path(os.path.abspath(path)).as_uri()


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made if missing) inside the ``with`` block."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _locked(folder: Path) -> contextlib.AbstractContextManager[None]:
    return locked_file(folder / _LOCK)


def all_files(cache_dir: Path) -> list[Path]:
    """Every record of a cache found on disk: runs in job directories, and the environments,
    workflow runs and submissions under ``.provenance``."""
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
    for sub in _RECORD_FOLDERS:
        folder = cache_dir / ".provenance" / sub
        if folder.is_dir():
            found += sorted(folder.glob("*.trig"))
    return found


def _environments_stamp(cache_dir: Path) -> int:
    try:
        return os.stat(cache_dir / ".provenance" / "environments").st_mtime_ns
    except FileNotFoundError:
        return 0


def _environment_files(cache_dir: Path) -> list[str]:
    folder = cache_dir / ".provenance" / "environments"
    return sorted(map(str, folder.glob("*.trig"))) if folder.is_dir() else []


def read_state(folder: Path) -> dict[str, Any] | None:
    """The index's state, or None when there is none (or it cannot be read)."""
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == 1 else None


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f".{STATE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE)


def _load(
    store_path: Path, paths: list[str], announce: bool = False
) -> tuple[list[str], list[str]] | None:
    """Load record files into the store at ``store_path``; returns the unreadable ones (not
    valid TriG: reported and set aside, never blocking the rest) and those that could not be
    read now (an I/O error: tried again next time). None when another process holds the
    store. ``announce``: a load of :data:`NOTICE_AT` files or more says so on stderr (a
    question, or the ``index`` command, that waits for it)."""
    import pyoxigraph as ox

    try:
        store = ox.Store(str(store_path))
    except OSError:
        return None
    default = ox.DefaultGraph()
    quad = ox.Quad
    unreadable: list[str] = []
    retry: list[str] = []

    def quads(chunk: list[str]) -> Iterator[Any]:
        # Each triple goes into its run's named graph and into the default graph, which is
        # therefore the union of all runs as a set: shared nodes (roles, plans, agents) that
        # every run's graph repeats are matched once.
        for path in chunk:
            try:
                parsed = list(
                    ox.parse(path=path, format=ox.RdfFormat.TRIG, base_iri=file_base(path))
                )
            except (SyntaxError, ValueError) as err:
                unreadable.append(path)
                print(f"provgraph: cannot index {path}: {err}", file=sys.stderr)
                continue
            except OSError:  # gone or unreadable for now (NFS, permissions): next time
                retry.append(path)
                continue
            for q in parsed:
                yield q
                yield quad(q.subject, q.predicate, q.object, default)

    told = announce and len(paths) >= NOTICE_AT  # (a question that waits this long says why)
    if told:
        print(
            f"provgraph: indexing {len(paths):,} record files (once: later questions read the "
            "index)...",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    try:
        # a bulk load per chunk of files: the loader holds one chunk in memory, never the store
        for start in range(0, len(paths), _CHUNK):
            store.bulk_extend(quads(paths[start : start + _CHUNK]))
        store.flush()
    finally:
        del store
    if told:
        took = time.monotonic() - started
        print(f"provgraph: indexed {len(paths):,} record files in {took:.1f} s", file=sys.stderr)
    return unreadable, retry


def present(cache_dir: Path, named: list[str]) -> tuple[list[str], list[str]]:
    """The journaled records that exist, and those still awaited; a record that a killed
    process left written aside, or whose data it saved with the job's result, is finished
    first (:func:`.record.finish_abandoned`)."""
    found: list[str] = []
    awaited: list[str] = []
    for path in named:
        if os.path.exists(path):
            found.append(path)
            continue
        if os.path.exists(path + PENDING) or os.path.exists(
            os.path.join(os.path.dirname(path), RESULT_NAME)
        ):
            finish_abandoned(path, cache_dir)
        (found if os.path.exists(path) else awaited).append(path)
    return found, awaited


def _set_aside(folder: Path, unreadable: Iterable[str]) -> None:
    lines = "".join(f"{p}\n" for p in unreadable)
    if lines:
        with open(folder / _UNREADABLE, "a") as fh:
            fh.write(lines)


def _unreadable(folder: Path) -> set[str]:
    try:
        return set((folder / _UNREADABLE).read_text().splitlines())
    except FileNotFoundError:
        return set()


def catch_up(cache_dir: Path, *, announce: bool = False) -> int:
    """Index what the journal names since the last catch-up (rebuilding when there is no index
    for this place); returns how many files were loaded now. ``announce``: a large load says
    so on stderr (see :func:`_load`)."""
    cache_dir = Path(os.path.abspath(cache_dir))
    folder = cache_dir / ".provenance"
    folder.mkdir(exist_ok=True)
    with _locked(folder):
        state = read_state(folder)
        if (
            state is None
            or state["root"] != str(cache_dir)
            or not (folder / state["store"]).is_dir()
        ):
            return _rebuild(cache_dir, folder, state, announce)
        entries, offset = journal.read_from(cache_dir, state["offset"])
        candidates = dict.fromkeys(journal.replay(state["waiting"], entries))
        envs = _environments_stamp(cache_dir)
        if envs != state["environments"]:
            candidates.update(dict.fromkeys(_environment_files(cache_dir)))
        bad = _unreadable(folder)
        todo, waiting = present(cache_dir, [p for p in candidates if p not in bad])
        if todo:
            loaded = _load(folder / state["store"], todo, announce)
            if loaded is None:  # another process holds the store: next time
                return 0
            unreadable, retry = loaded
            _set_aside(folder, unreadable)
            waiting += retry
        _write_state(folder, {**state, "offset": offset, "waiting": waiting, "environments": envs})
        return len(todo)


def rebuild(cache_dir: Path, *, announce: bool = False) -> int:
    """Load every record on disk into a new store generation, then switch to it; returns how
    many files were loaded. ``announce``: as for :func:`catch_up`."""
    cache_dir = Path(os.path.abspath(cache_dir))
    folder = cache_dir / ".provenance"
    folder.mkdir(exist_ok=True)
    with _locked(folder):
        return _rebuild(cache_dir, folder, read_state(folder), announce)


def _rebuild(
    cache_dir: Path, folder: Path, old: dict[str, Any] | None, announce: bool = False
) -> int:
    number = int(old["store"].rsplit("-", 1)[-1]) + 1 if old else 1
    store = f"oxigraph-{number}"
    shutil.rmtree(folder / store, ignore_errors=True)  # a killed earlier attempt's
    # what the journal named and is not on disk yet (jobs still running) stays awaited
    entries, offset = journal.read_from(cache_dir, 0)
    present(cache_dir, journal.replay([], entries))  # (records killed writers left: finished)
    envs = _environments_stamp(cache_dir)
    files = [str(p) for p in all_files(cache_dir)]
    on_disk = set(files)
    waiting = [p for p in journal.replay([], entries) if p not in on_disk]
    (folder / _UNREADABLE).unlink(missing_ok=True)
    loaded = _load(folder / store, files, announce)
    if loaded is None:  # pragma: no cover - a fresh generation is never held by another
        return 0
    unreadable, retry = loaded
    _set_aside(folder, unreadable)
    waiting += retry
    _write_state(
        folder,
        {
            "version": 1,
            "store": store,
            "root": str(cache_dir),
            "offset": offset,
            "waiting": waiting,
            "environments": envs,
        },
    )
    for entry in folder.iterdir():  # earlier generations, and a pre-journal index
        if entry.name != store and (entry.name == "oxigraph" or entry.name.startswith("oxigraph-")):
            shutil.rmtree(entry, ignore_errors=True)
    for name in ("pending.txt", "indexed.txt"):
        (folder / name).unlink(missing_ok=True)
    return len(files)


class Index:
    """What a reader needs of the index: whether it must catch up, and the store to read."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(os.path.abspath(cache_dir))
        self.folder = self.cache_dir / ".provenance"
        self._state: dict[str, Any] | None = None
        self._stamp: tuple[int, int] | None = None

    def state(self) -> dict[str, Any] | None:
        """The current state (read again only when its file was replaced)."""
        try:
            stat = os.stat(self.folder / STATE)
            stamp = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            return None
        if stamp != self._stamp:
            self._state, self._stamp = read_state(self.folder), stamp
        return self._state

    def behind(self) -> bool:
        """True when records exist, or may exist, that the index has not loaded: cheap (a few
        ``stat`` calls, one per record still awaited)."""
        state = self.state()
        if state is None or state["root"] != str(self.cache_dir):
            return True
        if journal.size(self.cache_dir) > state["offset"]:
            return True
        if _environments_stamp(self.cache_dir) != state["environments"]:
            return True
        # (a record written aside by a process since killed is finished by the catch-up)
        return any(os.path.exists(p) or os.path.exists(p + PENDING) for p in state["waiting"])

    def store_path(self) -> Path | None:
        """The current store generation's folder, if there is an index."""
        state = self.state()
        return None if state is None else self.folder / state["store"]
