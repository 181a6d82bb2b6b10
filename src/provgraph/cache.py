"""The cache: one directory per job, named by the job's hash.

Layout of ``<cache_dir>/<TaskName>-<hash>/``:

``_result.pkl``   the outputs, written to a temporary name and renamed, sealed with a keyed MAC
                  (``provgraph._signing``); a file that is missing, truncated, garbled, forged
                  or sealed with another key is a cache miss, never unpickled
``_error.json``   type, message and traceback of the last failed attempt
``_lock``         held (``flock``) while a process runs the job; it holds the holder's pid, host
                  and start time, and is emptied on release, so a lock that is free but not
                  empty was left by a killed process (the kernel released it): stale
``stdout.txt``/``stderr.txt`` and output files of shell jobs

Output paths inside the job's directory (or, for a workflow's result, in other job directories of
the same cache) are stored relative to it, so a cache directory can be moved as a whole. A result
names the job it belongs to: one whose job hash is not its directory's is a miss (and a warning),
never another job's outputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import operator
import os
import pickle
import shutil
import sys
import time
import typing
from pathlib import Path
from typing import Any

import attrs

from . import _signing
from ._fileformats import is_fileset, is_mock
from ._filetypes import Directory, File
from .exceptions import CacheError

__all__ = [
    "JobLock",
    "Listing",
    "StoredResult",
    "clear_for_run",
    "decode_result",
    "dumps",
    "job_dir",
    "job_hash_of",
    "lock_was_abandoned",
    "read_error",
    "read_file",
    "read_result",
    "read_result_and_record",
    "unlocked_job",
    "write_error",
    "write_file",
    "write_result",
]

RESULT_NAME = "_result.pkl"
ERROR_NAME = "_error.json"
LOCK_NAME = "_lock"
_KEEP_ON_CLEAR = (LOCK_NAME,)
_KEEP_PREFIXES = ("_prov",)


def job_dir(cache_dir: Path, task_name: str, job_hash: str) -> Path:
    """``<cache_dir>/<TaskName>-<hash>``."""
    return _child(cache_dir, f"{task_name}-{job_hash}")


def _child_maker() -> Any:
    """How a job directory's path is made from the cache's and one plain name: pathlib's own
    (private) way of making a child without parsing the name again, which ``iterdir`` uses
    (a quarter of the time of ``/``, on every job's path), when this Python has it and it
    gives what ``/`` gives; else ``/``."""
    made = getattr(Path, "_make_child_relpath", None)
    with contextlib.suppress(Exception):
        child = made(Path("/cache"), "Task-0a1b")  # type: ignore[misc]
        if isinstance(child, Path) and child == Path("/cache") / "Task-0a1b":
            return made
    return operator.truediv


_child = _child_maker()


class Listing:
    """The job directories a cache held when it was listed, for telling that a job has no
    result there without looking (a lookup that finds nothing costs a system call and an
    exception: several microseconds, on every job of a cold run).

    The cache is listed only when that pays: once a submission has looked up :data:`LIST_AFTER`
    jobs in vain (and again at each doubling), if the cache holds at most
    :data:`LIST_RATIO` times as many directories as those misses (its link count says how
    many, on file systems that keep it so; elsewhere it is never listed). A listing is trusted
    for :data:`MAX_AGE` seconds, then dropped (the next is taken after :data:`LIST_AFTER`
    more misses, if it still pays: what the listing answered counts as misses). A
    directory that appears after the listing is either one this submission sends a job to
    (:meth:`made`: looked up as before) or another process's; a job then sent to it finds
    that process's result under the job's lock and reuses it
    (:func:`provgraph.engine.job.run_job`), as when the other process finishes between a
    lookup and the run. Only for jobs sent to a worker, and not forced to run again: the
    submitter looks up workflow jobs and reruns itself.
    """

    LIST_AFTER = 64
    LIST_RATIO = 4
    MAX_AGE = 5.0

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self._root = os.fspath(cache_dir)
        self._names: set[str] | None = None
        self._taken = 0.0
        self._made: set[str] = set()
        self._misses = 0
        self._next = self.LIST_AFTER

    def lacks(self, directory: Path) -> bool:
        """True when ``directory`` (a job directory right under the cache) surely holds no
        result: it was not there when the cache was listed, and no job was sent to it since."""
        names = self._names
        if names is None:
            return False
        if time.monotonic() - self._taken > self.MAX_AGE:  # (another process may have made it)
            self._names = None  # (what it answered were misses: the next, after a few more)
            self._next = self._misses + self.LIST_AFTER
            return False
        name = directory.name
        if name in names or name in self._made:
            return False
        self._misses += 1
        return True

    def missed(self) -> None:
        """A lookup found no result; after enough of them the cache is listed, if that pays."""
        self._misses += 1
        if self._misses >= self._next:
            self._next = 2 * self._misses  # (those a listing answered count: one per doubling)
            self._list()

    def made(self, directory: Path) -> None:
        """A job is sent to ``directory``: it may exist from now on."""
        self._made.add(directory.name)

    def _list(self) -> None:
        try:
            held = os.stat(self._root).st_nlink - 2  # (its subdirectories, where kept so)
            if held < 0 or held > self.LIST_RATIO * self._misses:
                return
            taken = time.monotonic()
            with os.scandir(self._root) as entries:
                self._names = {entry.name for entry in entries}
            self._taken = taken
        except OSError:  # (unreadable: every job is looked up, as before)
            return


@attrs.define(kw_only=True)
class StoredResult:
    """What a finished job left in its directory; read-only by convention (not frozen: one
    is built for every job taken from the cache, and a frozen class's ``__init__`` costs
    about 1 us more there)."""

    outputs: dict[str, Any]
    task_name: str
    job_hash: str
    started: float
    ended: float
    host: str
    pid: int
    run_id: str = ""  # the UUID of the run that computed it
    # for a workflow job: for each output, the (run UUID, field) of the jobs that produced it
    sources: dict[str, list[tuple[str, str]]] | None = None


_STORED_FIELDS = tuple(field.name for field in attrs.fields(StoredResult))


@attrs.frozen
class _Rel:
    """A path inside the job's directory, stored relative to it."""

    kind: str
    rel: str


@attrs.frozen
class _RelSet:
    """A fileformats file set stored by its class and its files' paths relative to the job's
    directory (a moved cache still finds them)."""

    kind: Any
    rels: tuple[str, ...]


_SCALARS = frozenset((int, float, str, bool, bytes, type(None)))  # stored as they are


def _to_stored(value: Any, root: Path) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, (File, Directory)):
        rel = _relative_in_cache(os.path.abspath(value), os.path.abspath(root))
        return value if rel is None else _Rel(type(value).__name__, rel)
    if is_fileset(value):
        job = os.path.abspath(root)
        rels = [_relative_in_cache(os.path.abspath(p), job) for p in value.fspaths]
        if all(r is not None for r in rels):
            return _RelSet(type(value), tuple(sorted(typing.cast(list[str], rels))))
        return value
    if isinstance(value, list):
        return [_to_stored(v, root) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_stored(v, root) for v in value)
    if isinstance(value, dict):
        return {k: _to_stored(v, root) for k, v in value.items()}
    return value


def _relative_in_cache(path: str, job: str) -> str | None:
    """``path`` relative to the job directory ``job`` when it lies in the same cache (the job's
    own directory or another job's), else None: files outside the cache keep their path."""
    cache_root = os.path.dirname(job)
    if path == cache_root or not path.startswith(cache_root + os.sep):
        return None
    return os.path.relpath(path, job)


def _from_stored(value: Any, root: Path) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:  # (the outputs themselves: plain containers first, on every reuse)
        for item in value.values():
            if type(item) not in _SCALARS:
                return {k: _from_stored(v, root) for k, v in value.items()}
        return value  # (plain values, mostly: the unpickled dict kept as it is)
    if isinstance(value, _Rel):
        path = Path(os.path.normpath(root / value.rel))
        if not path.exists():
            raise FileNotFoundError(path)
        return (File if value.kind == "File" else Directory)(path)
    if isinstance(value, _RelSet):
        paths = [Path(os.path.normpath(root / rel)) for rel in value.rels]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(path)
        return value.kind(paths)
    if is_fileset(value) and not is_mock(value):  # (a mock's paths need not exist)
        for path in value.fspaths:
            if not os.path.exists(path):
                raise FileNotFoundError(path)
    if isinstance(value, (File, Directory)) and not os.path.exists(value):
        raise FileNotFoundError(value)  # a file of another job (inside a workflow), now gone
    if isinstance(value, list):
        return [_from_stored(v, root) for v in value]
    if isinstance(value, tuple):
        return tuple(_from_stored(v, root) for v in value)
    if isinstance(value, dict):
        return {k: _from_stored(v, root) for k, v in value.items()}
    return value


_REFUSED = (pickle.PicklingError, TypeError, AttributeError)  # how pickle says "not this"


def dumps(obj: Any) -> bytes:
    """``obj`` pickled by plain ``pickle``, or, what it refuses (a closure, a class made at run
    time), by ``cloudpickle``; either's ``loads`` reads it back. Results are stored so, and
    pool processes send outcomes back so (plain pickle names a class by its module only when
    that name gives this very class)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except _REFUSED:
        import cloudpickle  # (4 ms to import: only for what plain pickle refuses)

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps(obj: Any) -> bytes:
    try:
        return dumps(obj)
    except _REFUSED as err:  # (refused by cloudpickle too)
        raise CacheError(f"the outputs cannot be stored: {err}") from err


def write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Create (or truncate) ``path`` holding ``data``: plain system calls, no buffered file
    object (a few microseconds less per file, on every job's path)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, read with plain system calls (half the time of a file object on
    a small file: every reused job reads its result)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name and a rename."""
    folder, name = os.path.split(os.fspath(path))  # (strings: once per job on the hot path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise CacheError(f"cannot write {os.fspath(path)!r}: {err}") from err


_WITH_RECORD = b"PGR1"  # a result file that starts with its run's record data


def encode_result(directory: Path, result: StoredResult, record_data: bytes | None = None) -> bytes:
    """The bytes of a result file (raises ``CacheError`` when the outputs cannot be stored);
    ``record_data``, stored with it, is what the provenance recorder will write the run's record
    from (read back, still sealed, by :func:`read_result_and_record`). The two are sealed
    apart, so that reading the result alone (every reused job) costs no more for it:
    ``PGR1``, the sealed data's length (4 bytes), the sealed data, then the sealed result."""
    record = {name: getattr(result, name) for name in _STORED_FIELDS}  # (attrs.asdict: 2x)
    record["outputs"] = _to_stored(result.outputs, directory)
    sealed = _signing.seal(_dumps(record))
    if record_data is None:
        return sealed
    extra = _signing.seal(record_data)
    return b"".join((_WITH_RECORD, len(extra).to_bytes(4, "little"), extra, sealed))


def commit_result(directory: Path, data: bytes) -> None:
    """Make an encoded result visible, atomically."""
    atomic_write(os.path.join(directory, RESULT_NAME), data)


def write_result(directory: Path, result: StoredResult) -> None:
    """Store a finished job's result atomically, with a checksum header."""
    commit_result(directory, encode_result(directory, result))


def job_hash_of(directory: Path) -> str:
    """The job hash a job directory is named by (``<TaskName>-<hash>``)."""
    return directory.name.rsplit("-", 1)[-1]


def read_result(directory: Path) -> StoredResult | None:
    """The stored result, or None when absent, incomplete, corrupt, missing its files, or of
    another job (its job hash is not the directory's: a warning says so)."""
    found = read_result_and_record(directory)
    return None if found is None else found[0]


def read_result_and_record(
    directory: Path, *, outputs: bool = True, warn: bool = True
) -> tuple[StoredResult, bytes | None] | None:
    """The stored result (as :func:`read_result`) and the record data stored with it, if any,
    still sealed (what the provenance recorder needs to write the record of the run that saved
    it: see ``provenance/deferred.py``)."""
    try:  # (a string path: this runs for every job, hit or miss)
        data = read_file(f"{os.fspath(directory)}/{RESULT_NAME}")
    except OSError:
        return None
    return decode_result(directory, data, outputs=outputs, warn=warn)


def decode_result(
    directory: Path, data: bytes, *, outputs: bool = True, warn: bool = True
) -> tuple[StoredResult, bytes | None] | None:
    """A result file's bytes (as :func:`encode_result` made them) read back, as
    :func:`read_result_and_record` reads them from ``directory`` (the record data still
    sealed: :func:`._signing.unseal` it before use). ``outputs=False`` leaves the outputs
    out (empty), and with them the checks that their files are still there. ``warn=False``:
    a result that is not used says nothing (a reader asking only whose it is)."""
    extra = None
    if data[:4] == _WITH_RECORD:
        end = 8 + int.from_bytes(data[4:8], "little")
        extra, data = data[8:end], data[end:]
    payload = _signing.unseal(data)
    if payload is None:  # never unpickled: it may run anything
        if warn:
            _warn(
                directory,
                "is not sealed with this user's key (forged, damaged, written before "
                "results were sealed, or by a user with another key): ignored, the job runs "
                "again",
            )
        return None
    try:
        record = pickle.loads(payload)
        if record["job_hash"] != job_hash_of(directory):
            if warn:
                _warn(
                    directory,
                    f"holds the result of job {record['job_hash']!r}, not of "
                    f"{directory.name!r}: ignored, the job runs again",
                )
            return None
        record["outputs"] = _from_stored(record["outputs"], directory) if outputs else {}
        return StoredResult(**record), extra
    except Exception:
        return None


def _warn(directory: Path, what: str) -> None:
    print(f"provgraph: warning: {directory / RESULT_NAME} {what}", file=sys.stderr)


def write_error(directory: Path, info: dict[str, Any]) -> None:
    """Store the error of a failed attempt as readable JSON."""
    import json  # (imported when a job fails: not by every import of provgraph)

    atomic_write(directory / ERROR_NAME, json.dumps(info, indent=2, default=str).encode())


def read_error(directory: Path) -> dict[str, Any] | None:
    """The error of the last failed attempt, if any."""
    import json

    try:
        return dict(json.loads((directory / ERROR_NAME).read_text()))
    except (OSError, ValueError):
        return None


def clear_for_run(directory: Path) -> None:
    """Remove what an earlier, unfinished attempt left (keeping the lock and provenance)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in _KEEP_ON_CLEAR or entry.name.startswith(_KEEP_PREFIXES):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


_HOST = os.uname().nodename  # (what socket.gethostname() gives, without importing socket)


class JobLock:
    """An exclusive lock on one job directory (``flock``; released by the kernel on death)."""

    def __init__(self, directory: Path, tag: str = "") -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        self.tag = tag  # said in the lock after pid, host and time (the run it is for)
        self._fd: int | None = None
        self.broken_stale: str | None = None
        self.waited = False  # another process held the lock first
        self.found = False  # the lock file was there: another process may have run the job

    def acquire(self) -> JobLock:
        """Wait for the lock; note in ``broken_stale`` the holder a killed process left."""
        try:
            try:  # (made here, the usual case for a new job: no other run can have been)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self.found = True
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise CacheError(f"cannot create lock {str(self.path)!r}: {err}") from err
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            self.broken_stale = previous or None
            if previous:  # (an empty lock, the usual case, needs no truncating: a call saved)
                os.ftruncate(fd, 0)
            line = f"{os.getpid()} {_HOST} {time.time():.6f} {self.tag}".rstrip()
            os.pwrite(fd, f"{line}\n".encode(), 0)
        except OSError as err:  # (a full disk): let the lock go, and say which
            os.close(fd)
            raise CacheError(f"cannot write lock {str(self.path)!r}: {err}") from err
        self._fd = fd
        return self

    def release(self, *, keep: bool = False) -> None:
        """Empty and release the lock; ``keep=True`` leaves what it says (a run that ended
        abnormally: the next run sees it was abandoned, and by which run)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if not keep:
                os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> JobLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.release(keep=kind is not None)  # an interrupt or crash leaves its trace


@contextlib.contextmanager
def unlocked_job(directory: Path) -> Any:
    """Hold the job's lock, if no process holds it, without changing what it says (so a dead
    holder's trace stays for the next run); yields whether it was free. For tidying a job's
    directory from outside a run (finishing records a killed process left)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:  # no lock (nor, maybe, directory) yet: nobody holds it
        yield True
        return
    except OSError:
        yield False
        return
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int, kind: int) -> bool:
    """Take a ``flock`` of ``kind`` on ``fd`` without waiting; whether it was free."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


ACTIVE_NAME = ".active"  # shared-locked by every submission on the cache, while it runs


@contextlib.contextmanager
def submitting(cache_dir: Path) -> Any:
    """Hold a shared lock on the cache while a submission runs (waits while a cleanup holds
    it exclusively), so that ``gc`` never removes what a running submission may read."""
    try:
        fd = os.open(Path(cache_dir) / ACTIVE_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a cache this user cannot write to: nothing to protect it from
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


@contextlib.contextmanager
def alone(cache_dir: Path) -> Any:
    """Hold the cache exclusively if no submission runs on it; yields whether it could."""
    fd = os.open(Path(cache_dir) / ACTIVE_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield _try_flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def anyone_submitting(cache_dir: Path) -> bool:
    """True while some submission runs on the cache (holds its shared lock), or when that
    cannot be told (a lock this user cannot take: another user's cache, NFS, where an
    exclusive lock needs the file open for writing)."""
    path = Path(cache_dir) / ACTIVE_NAME
    if not path.exists():  # never submitted to
        return False
    for mode in (os.O_RDONLY, os.O_RDWR):  # (a local disk locks a file opened for reading)
        try:
            fd = os.open(path, mode)
        except OSError:
            continue
        try:
            return not _try_flock(fd, fcntl.LOCK_EX)
        except OSError:  # (NFS: an exclusive lock needs the file open for writing)
            continue
        finally:
            os.close(fd)  # (closing releases it at once)
    return True


def lock_was_abandoned(directory: Path) -> bool:
    """True when the job's lock is free but not empty: its holder died while running it."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        if not _try_flock(fd, fcntl.LOCK_SH):
            return False
        try:
            return bool(os.pread(fd, 64, 0).strip())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
