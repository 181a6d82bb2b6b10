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
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox

from .. import cache
from ..exceptions import ProvenanceError
from . import journal
from . import vocab as V
from .record import A, G, P, _agents, _n, _time, _trig

__all__ = ["Cleanup", "collect", "parse_age", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FOLDER = "cleanups"


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
        if self.run:
            lines.append(f"recorded as {self.run}")
        return "\n".join(lines)


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_size(value: Any) -> int:
    """Bytes from ``10G``, ``500M``, ``1.5T``, ``10GiB`` (powers of 1024) or an integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", str(value), re.I)
    if isinstance(value, bool) or match is None:
        raise ProvenanceError(
            f"gc: max_size={value!r}; expected a size such as 500M, 10G or 1.5T (powers of "
            "1024), or a number of bytes"
        )
    return int(float(match[1]) * _UNITS[match[2].lower()])


def parse_age(value: Any) -> float:
    """Seconds from ``30d``, ``12h``, ``2w``, ``90m``, ``45s``, a timedelta or a number."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
        if match is None:
            raise ProvenanceError(
                f"gc: older_than={value!r}; expected an age such as 30d, 12h, 2w, 90m or 45s, "
                "a datetime.timedelta or a number of seconds"
            )
        seconds = float(match[1]) * _AGES[match[2]]
    if seconds < 0:
        raise ProvenanceError(f"gc: older_than={value!r}; expected an age of zero or more")
    return seconds


def _size(path: str) -> int:
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
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
    failed: bool  # no result, but an error or records: a failed or interrupted attempt
    bare: bool  # nothing but its lock and records: removed already
    result_run: str = ""  # a directory without records (a workflow's): whose result it holds


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
            if "_jobs.json" in names:
                import json

                try:
                    listing = json.loads(Path(entry.path, "_jobs.json").read_text())
                    members = [str(m) for m in listing.get("jobs", [])]
                except (OSError, ValueError, AttributeError):
                    members = []
            item = _Dir(
                name=entry.name,
                runs=runs,
                members=members,
                has_result=has_result,
                failed=not has_result and (cache.ERROR_NAME in names or bool(runs)),
                bare=all(_keeps(n) for n in names),
            )
            if has_result and not runs and not members:
                stored = cache.read_result(Path(entry.path))
                if stored is not None and stored.run_id:
                    item.result_run = V.run_iri(stored.run_id)
            found[entry.name] = item
    return found


class _Lineage:
    """The records' links between runs, read in a few queries over the whole store."""

    def __init__(self, store: Any) -> None:
        self.links: dict[str, set[str]] = {}  # run -> what holding it holds too
        self.hashes: dict[str, str] = {}  # job run -> job hash
        self.places: dict[str, set[str]] = {}  # run -> cache directories of what it used
        root = store.cache_dir.as_uri() + "/"
        for child, parent in store.query("SELECT ?x ?p WHERE { ?x pg:partOf ?p }"):
            self._link(str(parent), str(child))
        for holder, earlier in store.query("SELECT ?x ?e WHERE { ?x pg:reused ?e }"):
            self._link(str(holder), str(earlier))
        for run, upstream in store.query(
            "SELECT DISTINCT ?x ?u WHERE { ?x prov:used ?e . ?e prov:wasGeneratedBy ?u }"
        ):
            self._link(str(run), str(upstream))
        for run, job_hash in store.query("SELECT ?x ?h WHERE { ?x a pg:JobRun ; pg:jobHash ?h }"):
            self.hashes[str(run)] = str(job_hash)
        for run, location in store.query(
            "SELECT DISTINCT ?x ?l WHERE { ?x prov:used ?e . ?e prov:atLocation ?l }"
        ):
            where = str(location)
            if where.startswith(root):
                top = where[len(root) :].split("/", 1)[0]
                self.places.setdefault(str(run), set()).add(top)

    def _link(self, holder: str, held: str) -> None:
        self.links.setdefault(holder, set()).add(held)

    def held(self, start: str) -> set[str]:
        """Every run ``start`` holds, itself included."""
        seen = {start}
        todo = [start]
        while todo:
            for nxt in self.links.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen


def _held_dirs(runs: set[str], lineage: _Lineage, dirs: dict[str, _Dir]) -> set[str]:
    by_hash: dict[str, str] = {}
    by_run: dict[str, str] = {}
    for d in dirs.values():
        by_hash.setdefault(d.name.rsplit("-", 1)[-1], d.name)
        for run in d.runs:
            by_run[run] = d.name
        if d.result_run:
            by_run[d.result_run] = d.name
    held: set[str] = set()
    for run in runs:
        if run in by_run:
            held.add(by_run[run])
        job_hash = lineage.hashes.get(run)
        if job_hash is not None and job_hash in by_hash:
            held.add(by_hash[job_hash])
        held |= {p for p in lineage.places.get(run, ()) if p in dirs}
    # a split task's directory goes with the last of its elements
    for d in dirs.values():
        if d.members and any(m in held for m in d.members):
            held.add(d.name)
    return held


def _submissions(store: Any) -> list[dict[str, Any]]:
    from .query import submissions

    return submissions(store)


def _started(row: dict[str, Any]) -> float | None:
    if not row["started"]:
        return None
    return datetime.datetime.fromisoformat(row["started"]).timestamp()


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
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0
    ):
        raise ProvenanceError(f"gc: keep_last={keep_last!r}; expected an integer of 0 or more")
    age = parse_age(older_than) if older_than is not None else None
    limit = parse_size(max_size) if max_size is not None else None
    if keep_last is None and age is None and not failed and limit is None:
        raise ProvenanceError(
            "gc: say what to remove: keep_last=N (submissions), older_than='30d', failed=True "
            "or max_size='10G' (nothing is removed without one)"
        )
    if store.remote is not None:
        raise ProvenanceError("gc works on a cache directory, not on a provenance server")
    cache_dir = store.cache_dir
    started = time.time()
    dirs = _scan(cache_dir)
    lineage = _Lineage(store)
    subs = _submissions(store)  # newest first
    holds = {s["run"]: _held_dirs(lineage.held(s["run"]), lineage, dirs) for s in subs}
    recorded = set().union(*holds.values()) if holds else set()
    kept: list[dict[str, Any]] = []
    for i, row in enumerate(subs):
        when = _started(row)
        keep = keep_last is None and age is None  # only failed= / max_size= given
        if keep_last is not None and i < keep_last:
            keep = True
        if age is not None and (when is None or when >= started - age):
            keep = True
        if row["status"] == "running" and age is None:  # unfinished: kept unless it is old
            keep = True
        if keep:
            kept.append(row)
    failed_dirs = {d.name for d in dirs.values() if d.failed} if failed else set()

    def plan(keeping: list[dict[str, Any]]) -> set[str]:
        needed = set().union(*(holds[s["run"]] for s in keeping)) if keeping else set()
        return {n for n in (recorded - needed) | failed_dirs if n in dirs and not dirs[n].bare}

    remove = plan(kept)
    if limit is not None:
        sizes = {name: _size(str(cache_dir / name)) for name in dirs}
        total = sum(sizes.values())  # the job directories: records and index are not counted
        while total - sum(sizes[n] for n in remove) > limit:
            droppable = [s for s in kept if s["status"] != "running"]
            if not droppable:
                break
            kept.remove(droppable[-1])  # the oldest goes first
            remove = plan(kept)
    bare = sum(1 for d in dirs.values() if d.bare)
    kept_runs = {s["run"] for s in kept}
    released = tuple(s["run"] for s in subs if s["run"] not in kept_runs)
    unrecorded = tuple(
        sorted(n for n, d in dirs.items() if n not in recorded and not d.failed and not d.bare)
    )
    if dry_run:
        in_use = tuple(sorted(n for n in remove if not _free(cache_dir / n)))
        todo = sorted(set(remove) - set(in_use))
        freed = sum(_size(str(cache_dir / n)) - _kept_size(cache_dir / n) for n in todo)
        return Cleanup(
            removed=tuple(todo),
            freed=freed,
            kept=len(dirs) - len(remove) - bare,
            released=released,
            in_use=in_use,
            unrecorded=unrecorded,
            dry_run=True,
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
    run = ""
    if removed:
        run = _record(store, dirs, removed, freed, started, released)
    return Cleanup(
        removed=tuple(removed),
        freed=freed,
        kept=len(dirs) - len(remove) - bare,
        released=released,
        in_use=tuple(busy),
        unrecorded=unrecorded,
        run=run,
    )


def _free(directory: Path) -> bool:
    with cache.unlocked_job(directory) as free:
        return bool(free)


def _keeps(name: str) -> bool:
    return name == cache.LOCK_NAME or name.startswith("_prov")


def _kept_size(directory: Path) -> int:
    total = 0
    for name in os.listdir(directory):
        if _keeps(name):
            total += os.lstat(directory / name).st_size
    return total


def _remove(directory: Path) -> int | None:
    """Empty a job directory but for its lock and records (removed whole when it has no
    records); the bytes freed, or None when a running job holds it."""
    with cache.unlocked_job(directory) as free:
        if not free:
            return None
        before = _size(str(directory))
        names = os.listdir(directory)
        records = any(n.startswith("_prov") for n in names)
        if not records:
            shutil.rmtree(directory, ignore_errors=True)
            return before
        for name in names:
            if _keeps(name):
                continue
            path = directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return before - _size(str(directory))


def _outputs(store: Any, runs: Iterable[str]) -> list[str]:
    """The entities the given runs generated."""
    wanted = set(runs)
    if not wanted:
        return []
    found = store.query("SELECT DISTINCT ?e ?x WHERE { ?e prov:wasGeneratedBy ?x }")
    return sorted({str(e) for e, x in found if str(x) in wanted})


def _record(
    store: Any,
    dirs: dict[str, _Dir],
    removed: list[str],
    freed: int,
    started: float,
    released: tuple[str, ...],
) -> str:
    """The cleanup's own graph: the activity, what it removed and invalidated."""
    cache_dir = store.cache_dir
    iri = V.run_iri(str(uuid.uuid4()))
    gc = _n(iri)
    ended = time.time()
    runs = [r for name in removed for r in dirs[name].runs]
    runs += [dirs[name].result_run for name in removed if dirs[name].result_run]
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
    for entity in _outputs(store, runs):
        node = _n(entity)
        quads.append(ox.Quad(node, P("wasInvalidatedBy"), gc, gc))
        quads.append(ox.Quad(node, P("invalidatedAtTime"), _time(ended), gc))
    path = cache_dir / ".provenance" / FOLDER / f"{iri.rsplit(':', 1)[-1]}.trig"
    journal.append(cache_dir, [path])
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.atomic_write(path, _trig(quads, depth=2))
    return iri
