"""Cache cleanup that follows lineage: ``store.gc(...)`` and ``provgraph gc CACHE``.

What a submission *holds* is read from the records: every run inside it (``pg:partOf``), every
earlier run it reused (``pg:reused``), and, run by run, whatever they used that another run
generated or that lies in the cache. The criteria choose which submissions are let go; a job
directory is removed when no kept submission holds it. Removing a directory removes its result,
outputs and logs but keeps its records (``_prov-*``) and its lock: the store still says how every
removed file was made, and a cleanup record (``.provenance/cleanups/<uuid>.trig``, one activity
of type ``pg:Cleanup``) says which directories went and invalidates (``prov:wasInvalidatedBy``)
each output that went with them. The next submission that needs a removed job runs it again.

A directory whose lock is held (a job running now) is never touched; a directory no record names
(written with provenance off) is left alone and counted.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox

from .. import cache
from ..exceptions import ProvenanceError
from . import vocab as V
from .query import result_run
from .record import A, G, P, _agents, _n, _time, write_under_provenance

__all__ = ["Cleanup", "collect", "parse_age", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FOLDER = "cleanups"
_SPLIT = "_jobs.json"


@attrs.frozen
class Cleanup:
    """What a cleanup removed (or, with ``dry_run``, would remove)."""

    removed: tuple[str, ...]  # job directory names, under the cache
    freed: int  # bytes
    kept: int  # job directories a kept submission holds
    released: tuple[str, ...]  # submissions let go (their IRIs)
    in_use: tuple[str, ...] = ()  # chosen, but a running job holds them: left
    unrecorded: tuple[str, ...] = ()  # no record names them: left
    dry_run: bool = False
    run: str = ""  # the cleanup's IRI in the store ("" when nothing was recorded)
    over: int = 0  # bytes still over max_size (what gc may not remove)

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{verb} {len(self.removed)} job director{'y' if len(self.removed) == 1 else 'ies'}"
            f" ({_human(self.freed)}); kept {self.kept}; "
            f"{len(self.released)} submission(s) let go"
        ]
        lines += [f"  {name}" for name in self.removed[:20]]
        if len(self.removed) > 20:
            lines.append(f"  ... and {len(self.removed) - 20} more")
        if self.in_use:
            lines.append(f"left {len(self.in_use)} in use by a running job: {self.in_use[0]} ...")
        if self.unrecorded:
            lines.append(f"left {len(self.unrecorded)} that no record names (provenance was off?)")
        if self.over:
            lines.append(
                f"still {_human(self.over)} over max_size: what is left is held by running "
                "jobs, or kept"
            )
        if self.run:
            lines.append(f"recorded as {self.run}")
        return "\n".join(lines)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _named(field: str, value: Any) -> str:
    return f"{field}={value!r} (--{field.replace('_', '-')})"


def parse_size(value: Any) -> int:
    """Bytes from ``10G``, ``500M``, ``1.5T``, ``10GiB`` (powers of 1024) or an integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", str(value), re.I)
    if isinstance(value, bool) or match is None:
        raise ProvenanceError(
            f"gc: {_named('max_size', value)}; expected a size such as 500M, 10G or 1.5T "
            "(powers of 1024), or a number of bytes"
        )
    return int(float(match[1]) * _UNITS[match[2].lower()])


def parse_age(value: Any) -> float:
    """Seconds from ``30d``, ``12h``, ``2w``, ``90m``, ``45s``, a timedelta or a number."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value), re.I)
        if isinstance(value, bool) or match is None:
            raise ProvenanceError(
                f"gc: {_named('older_than', value)}; expected an age such as 30d, 12h, 2w, "
                "90m or 45s, a datetime.timedelta or a number of seconds"
            )
        seconds = float(match[1]) * _AGES[match[2].lower() or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ProvenanceError(
            f"gc: {_named('older_than', value)}; expected a finite age of zero or more"
        )
    return seconds


def _size(path: str, skip: Callable[[str], bool] = lambda name: False) -> int:
    """Bytes under ``path``, leaving out its entries whose name ``skip`` says."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if skip(entry.name):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += _size(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        pass
    return total


@attrs.define
class _Dir:
    """A job directory as found on disk."""

    name: str
    runs: list[str]  # run IRIs of the records in it
    members: list[str]  # a split task's directory: its element directories
    has_result: bool
    attempt: bool  # no result, but an error, records or an abandoned lock: a failed attempt
    bare: bool  # nothing but its lock and records: emptied already
    result_run: str = ""  # a directory no record names by hash: whose result it holds


def _scan(cache_dir: Path) -> dict[str, _Dir]:
    found: dict[str, _Dir] = {}
    with os.scandir(cache_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            names = os.listdir(entry.path)
            runs = [
                V.run_iri(n[len("_prov-") : -len(".trig")])
                for n in names
                if n.startswith("_prov-") and n.endswith(".trig")
            ]
            has_result = cache.RESULT_NAME in names
            members: list[str] = []
            if _SPLIT in names:
                try:
                    listing = json.loads(Path(entry.path, _SPLIT).read_text())
                    members = [str(m) for m in listing.get("jobs", [])]
                except (OSError, ValueError, AttributeError):
                    members = []
            bare = all(_keeps(n) for n in names)
            attempt = not has_result and not bare and not members
            attempt = attempt and (
                cache.ERROR_NAME in names
                or bool(runs)
                or cache.lock_was_abandoned(Path(entry.path))
            )
            found[entry.name] = _Dir(entry.name, runs, members, has_result, attempt, bare)
    return found


def _top_through_links(location: str, real_root: str) -> str:
    """The cache directory a ``file:`` location outside the cache's own spelling lies in once
    symlinks are resolved ("" when none). Resolved afresh, not through the memo records are
    written with (``vocab.location_iri``): what a cleanup removes follows the links as they are
    now."""
    path = V.iri_path(location)
    if path is None:
        return ""
    real = os.path.realpath(path)
    if not real.startswith(real_root + os.sep):
        return ""
    return real[len(real_root) + 1 :].split(os.sep, 1)[0]


class _Lineage:
    """The records' links between runs, read in a few queries over the whole store."""

    def __init__(self, store: Any, dirs: dict[str, _Dir]) -> None:
        self.links: dict[str, set[str]] = {}  # run -> what holding it holds too
        self.parts: dict[str, set[str]] = {}  # run -> the runs inside it
        self.places: dict[str, set[str]] = {}  # run -> cache directories of what it used
        self.dir_of: dict[str, str] = {}  # run -> the directory its result is kept in
        root = store.cache_dir.as_uri() + "/"
        for child, parent in store.query("SELECT ?x ?p WHERE { ?x pg:partOf ?p }"):
            self._link(str(parent), str(child))
            self.parts.setdefault(str(parent), set()).add(str(child))
        for holder, earlier in store.query("SELECT ?x ?e WHERE { ?x pg:reused ?e }"):
            self._link(str(holder), str(earlier))
        for run, upstream in store.query(
            "SELECT DISTINCT ?x ?u WHERE { ?x prov:used ?e . ?e prov:wasGeneratedBy ?u }"
        ):
            self._link(str(run), str(upstream))
        by_hash = {d.name.rsplit("-", 1)[-1]: d.name for d in dirs.values()}
        for run, job_hash in store.query("SELECT ?x ?h WHERE { ?x a pg:JobRun ; pg:jobHash ?h }"):
            if str(job_hash) in by_hash:
                self.dir_of[str(run)] = by_hash[str(job_hash)]
        for run, directory in store.query(  # a workflow run's: where its result is kept
            "SELECT ?x ?d WHERE { ?x a pg:WorkflowRun ; pg:outputDir ?d }"
        ):
            top = str(directory)[len(root) :].split("/", 1)[0]
            if str(directory).startswith(root) and top in dirs:
                self.dir_of[str(run)] = top
        for d in dirs.values():
            for run in d.runs:
                self.dir_of[run] = d.name
        real_root = os.path.realpath(store.cache_dir)
        for run, location in store.query(
            "SELECT DISTINCT ?x ?l WHERE { ?x prov:used ?e . ?e prov:atLocation ?l }"
        ):
            where = str(location)
            if where.startswith(root):
                top = where[len(root) :].split("/", 1)[0]
            else:  # (a path into the cache through a symlink, as older records wrote it)
                top = _top_through_links(where, real_root)
            if top in dirs:
                self.places.setdefault(str(run), set()).add(top)
        named = set(self.dir_of.values())
        for d in dirs.values():  # (records written before workflow runs named their hash)
            if d.has_result and d.name not in named and not d.members:
                d.result_run = result_run(store.cache_dir / d.name)
                if d.result_run:
                    self.dir_of.setdefault(d.result_run, d.name)

    def _link(self, holder: str, held: str) -> None:
        self.links.setdefault(holder, set()).add(held)

    def closure(self, start: str, links: dict[str, set[str]]) -> set[str]:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in links.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def held_dirs(self, start: str, dirs: dict[str, _Dir]) -> set[str]:
        """The directories a run holds: of every run it holds, and what they used."""
        held: set[str] = set()
        for run in self.closure(start, self.links):
            if run in self.dir_of:
                held.add(self.dir_of[run])
            held |= self.places.get(run, set())
        return held

    def composites(self, dirs: dict[str, _Dir]) -> dict[str, set[str]]:
        """Directories whose result is made of others' (a workflow's, a split task's): each
        with the directories it is made of."""
        made: dict[str, set[str]] = {}
        for run, name in self.dir_of.items():
            inner = self.closure(run, self.parts) - {run}
            parts = {self.dir_of[r] for r in inner if r in self.dir_of} - {name}
            if parts:
                made.setdefault(name, set()).update(parts)
        for d in dirs.values():
            if d.members:
                made.setdefault(d.name, set()).update(m for m in d.members if m in dirs)
        return made


def _submissions(store: Any) -> list[dict[str, Any]]:
    from .query import submissions

    return submissions(store)


def _started(row: dict[str, Any]) -> float | None:
    if not row["started"]:
        return None
    return datetime.datetime.fromisoformat(row["started"]).timestamp()


def _check(keep_last: Any, older_than: Any, failed: Any, max_size: Any) -> tuple[Any, Any]:
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
    ):
        raise ProvenanceError(
            f"gc: {_named('keep_last', keep_last)}; expected an integer of 0 or more"
        )
    if not isinstance(failed, bool):
        raise ProvenanceError(f"gc: failed={failed!r}; expected True or False")
    age = parse_age(older_than) if older_than is not None else None
    limit = parse_size(max_size) if max_size is not None else None
    if keep_last is None and age is None and not failed and limit is None:
        raise ProvenanceError(
            "gc: say what to remove: keep_last (--keep-last N), older_than (--older-than 30d), "
            "failed (--failed) or max_size (--max-size 10G); nothing is removed without one"
        )
    return age, limit


def collect(
    store: Any,
    *,
    keep_last: int | None = None,
    older_than: Any = None,
    failed: bool = False,
    max_size: Any = None,
    dry_run: bool = False,
) -> Cleanup:
    """Remove the job directories no kept submission holds; see the module's docstring."""
    age, limit = _check(keep_last, older_than, failed, max_size)
    if store.remote is not None:
        raise ProvenanceError("gc works on a cache directory, not on a provenance server")
    cache_dir = store.cache_dir
    if not any((cache_dir / ".provenance" / f).is_dir() for f in ("runs", "submissions")):
        raise ProvenanceError(
            f"gc: {str(cache_dir)!r} holds no recorded submission: is it a provgraph cache "
            "directory (with provenance on)?"
        )
    with cache.alone(cache_dir) as sole:
        if not sole and not dry_run:
            raise ProvenanceError(
                f"gc: a submission is running on {str(cache_dir)!r}; gc removes nothing while "
                "one runs (try again when it has ended, or ask with dry_run / --dry-run)"
            )
        return _collect(store, keep_last, age, failed, limit, dry_run, running=not sole)


def _collect(
    store: Any,
    keep_last: int | None,
    age: float | None,
    failed: bool,
    limit: int | None,
    dry_run: bool,
    running: bool,
) -> Cleanup:
    cache_dir = store.cache_dir
    started = time.time()
    dirs = _scan(cache_dir)
    lineage = _Lineage(store, dirs)
    subs = _submissions(store)  # newest first
    holds = {s["run"]: lineage.held_dirs(s["run"], dirs) for s in subs}
    recorded = set().union(*holds.values()) if holds else set()
    composites = lineage.composites(dirs)
    kept: list[dict[str, Any]] = []
    for i, row in enumerate(subs):
        when = _started(row)
        keep = keep_last is None and age is None  # only failed / max_size given
        if keep_last is not None and i < keep_last:
            keep = True
        if age is not None and (when is None or when >= started - age):
            keep = True
        if running and row["status"] == "running" and age is None:  # (a dry run, meanwhile)
            keep = True
        if keep:
            kept.append(row)
    attempts = {d.name for d in dirs.values() if d.attempt} if failed else set()

    def plan(keeping: list[dict[str, Any]]) -> set[str]:
        needed = set().union(*(holds[s["run"]] for s in keeping)) if keeping else set()
        chosen = {n for n in (recorded - needed) | attempts if not dirs[n].bare}
        grew = True
        while grew:  # a result made of removed results goes with them
            grew = False
            for name, parts in composites.items():
                if name not in chosen and not dirs[name].bare and parts & chosen:
                    chosen.add(name)
                    grew = True
        return chosen

    remove = plan(kept)
    unrecorded = tuple(
        sorted(
            n
            for n, d in dirs.items()
            if n not in recorded and n not in remove and not d.bare and not d.attempt
        )
    )
    over = 0
    if limit is not None:
        freeable = {n: _freeable(cache_dir / n) for n in recorded | set(remove)}

        def size_left(chosen: set[str]) -> int:
            return sum(v for n, v in freeable.items() if n not in chosen)

        while size_left(remove) > limit:
            droppable = [s for s in kept if not (running and s["status"] == "running")]
            if not droppable:
                break
            kept.remove(droppable[-1])  # the oldest goes first
            remove = plan(kept)
        over = max(0, size_left(remove) - limit)
    kept_runs = {s["run"] for s in kept}
    if dry_run:
        in_use = tuple(sorted(n for n in remove if not _free(cache_dir / n)))
        todo = sorted(set(remove) - set(in_use))
        return Cleanup(
            removed=tuple(todo),
            freed=sum(_freeable(cache_dir / n) for n in todo),
            kept=len(recorded - remove),
            released=_released(subs, kept_runs, holds, set(todo)),
            in_use=in_use,
            unrecorded=unrecorded,
            dry_run=True,
            over=over,
        )
    removed: list[str] = []
    busy: list[str] = []
    freed = 0
    for name in sorted(remove):
        gone = _remove(cache_dir / name)
        if gone is None:
            busy.append(name)
        else:
            removed.append(name)
            freed += gone
    released = _released(subs, kept_runs, holds, set(removed))
    run = _record(store, removed, freed, started, released) if removed else ""
    return Cleanup(
        removed=tuple(removed),
        freed=freed,
        kept=len(recorded - remove),
        released=released,
        in_use=tuple(busy),
        unrecorded=unrecorded,
        run=run,
        over=over,
    )


def _released(
    subs: list[dict[str, Any]], kept: set[str], holds: dict[str, set[str]], removed: set[str]
) -> tuple[str, ...]:
    """The submissions let go that lost something now."""
    return tuple(s["run"] for s in subs if s["run"] not in kept and holds[s["run"]] & removed)


def _free(directory: Path) -> bool:
    with cache.unlocked_job(directory) as free:
        return bool(free)


def _keeps(name: str) -> bool:
    return name == cache.LOCK_NAME or name.startswith("_prov")


def _freeable(directory: Path) -> int:
    """The bytes a removal would free: everything but the lock and the records."""
    return _size(str(directory), skip=_keeps)


def _remove(directory: Path) -> int | None:
    """Empty a job directory but for its lock and records; the bytes freed, or None when a
    running job holds it. (The lock file stays: a process waiting on it must not end up
    holding a lock on a file that is gone.)"""
    with cache.unlocked_job(directory) as free:
        if not free:
            return None
        freed = _freeable(directory)
        for name in os.listdir(directory):
            if _keeps(name):
                continue
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return freed


def _invalidated(store: Any, removed: list[str]) -> list[str]:
    """The generated entities that lay in the removed directories, not invalidated before."""
    roots = tuple((store.cache_dir / name).as_uri() + "/" for name in removed)
    found = store.query(
        "SELECT DISTINCT ?e ?l WHERE { ?e prov:wasGeneratedBy ?x ; prov:atLocation ?l . "
        "FILTER NOT EXISTS { ?e prov:wasInvalidatedBy ?earlier } }"
    )
    return sorted({str(e) for e, where in found if str(where).startswith(roots)})


def _record(
    store: Any, removed: list[str], freed: int, started: float, released: tuple[str, ...]
) -> str:
    """The cleanup's own graph: the activity, what it removed and invalidated."""
    cache_dir = store.cache_dir
    iri = V.run_iri(str(uuid.uuid4()))
    gc = _n(iri)
    ended = time.time()
    user, login = V.user_iri()
    quads = [
        ox.Quad(gc, A, P("Activity"), gc),
        ox.Quad(gc, A, G("Cleanup"), gc),
        ox.Quad(gc, P("startedAtTime"), _time(started), gc),
        ox.Quad(gc, P("endedAtTime"), _time(ended), gc),
        ox.Quad(gc, P("wasAssociatedWith"), _n(V.agent_iri()), gc),
        ox.Quad(gc, G("freedBytes"), ox.Literal(str(freed), datatype=_n(V.XSD + "integer")), gc),
        *_agents(gc, {"user": user, "login": login}),
    ]
    for name in removed:
        where = _n(V.location_iri(cache_dir / name, cache_dir))
        quads.append(ox.Quad(gc, G("removedDirectory"), where, gc))
    for sub in released:
        quads.append(ox.Quad(gc, G("released"), _n(sub), gc))
    for entity in _invalidated(store, removed):
        node = _n(entity)
        quads.append(ox.Quad(node, P("wasInvalidatedBy"), gc, gc))
        quads.append(ox.Quad(node, P("invalidatedAtTime"), _time(ended), gc))
    path = cache_dir / ".provenance" / FOLDER / f"{iri.rsplit(':', 1)[-1]}.trig"
    write_under_provenance(cache_dir, path, quads)
    return iri
