"""All hashing in provgraph: type-tagged Merkle hashes with xxh3-128.

Rules (stated in full in ``docs/design/hashing.md``):

* every value hashes to 16 bytes, ``H(tag, payload)`` = xxh3-128 of ``tag + b":" + payload``;
  containers hash the concatenated digests of their items (dicts and sets in sorted digest order);
* files and directories hash by content, never by path or name;
* a type with no registered rule raises :class:`HashingError`; there is no fallback to ``id()``,
  ``repr()`` or pickling.

New types are added with ``@hash_value.register(MyType)``; the function returns a 16-byte digest,
usually built with :func:`hash_parts`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import functools
import hashlib
import os
import pathlib
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import xxhash

from ._filetypes import Directory, File
from .exceptions import HashingError

__all__ = [
    "FileHashCache",
    "digest_hex",
    "digest_of",
    "file_content_digest",
    "hash_parts",
    "hash_value",
    "use_file_hash_cache",
]

_xxh = xxhash.xxh3_128_digest
_CHUNK = 4 * 1024 * 1024
# A file modified less than this many seconds ago may change again within the filesystem's
# timestamp granularity without a visible change of (size, mtime_ns, inode): never cache it.
_RACY_SECONDS = 0.5


def H(tag: bytes, payload: bytes = b"") -> bytes:
    """The hash of one tagged node: xxh3-128 of ``tag:payload``."""
    return _xxh(tag + b":" + payload)


def digest_hex(digest: bytes) -> str:
    """The form digests take in names and records: ``xxh3-128:<32 hex digits>``."""
    return "xxh3-128:" + digest.hex()


def hash_parts(tag: str, *values: Any) -> bytes:
    """Hash ``values`` in order under ``tag``; the helper for registered rules."""
    return H(tag.encode(), b"".join(map(digest_of, values)))


@functools.singledispatch
def hash_value(obj: Any) -> bytes:
    """Return the 16-byte content hash of ``obj``; raise ``HashingError`` if it has none."""
    cls = type(obj)
    if attrs.has(cls):
        names = [a.name for a in attrs.fields(cls)]
        return _hash_fields(b"attrs", cls, names, obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
        return _hash_fields(b"dataclass", cls, names, obj)
    numpy_hash = _numpy_hash(obj)
    if numpy_hash is not None:
        return numpy_hash
    table_hash = _table_hash(obj)
    if table_hash is not None:
        return table_hash
    if "fileformats.core" in sys.modules:  # (a format, also a user's own or a mock's class)
        from ._fileformats import fileset_digest, is_fileset

        if is_fileset(obj):
            return fileset_digest(obj)
    raise HashingError(
        f"cannot hash a value of type {cls.__module__}.{cls.__qualname__} ({_short(obj)}) "
        "deterministically; expected a scalar, string, bytes, container, file, attrs or "
        "dataclass instance, or a type registered with provgraph.hash_value.register"
    )


def _short(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:  # pragma: no cover - a broken __repr__
        text = object.__repr__(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def _qualname(cls: type) -> bytes:
    return f"{cls.__module__}.{cls.__qualname__}".encode()


def _hash_fields(tag: bytes, cls: type, names: list[str], obj: Any) -> bytes:
    parts = [_qualname(cls)]
    for name in names:
        parts.append(H(b"str", name.encode()) + digest_of(getattr(obj, name)))
    return H(tag, _xxh(parts[0]) + b"".join(parts[1:]))


@hash_value.register(type(None))
def _(obj: None) -> bytes:
    return _NONE


_NONE = H(b"None")


@hash_value.register(bool)
def _(obj: bool) -> bytes:
    return _TRUE if obj else _FALSE


_TRUE, _FALSE = H(b"bool", b"1"), H(b"bool", b"0")


@hash_value.register(int)
def _(obj: int) -> bytes:
    try:
        return H(b"int", str(int(obj)).encode())
    except ValueError:  # beyond Python's digit limit for str(): hashed by its hex digits
        return H(b"int-hex", format(int(obj), "x").encode())


@hash_value.register(float)
def _(obj: float) -> bytes:
    return H(b"float", float(obj).hex().encode())


@hash_value.register(complex)
def _(obj: complex) -> bytes:
    return H(b"complex", f"{obj.real.hex()},{obj.imag.hex()}".encode())


@hash_value.register(str)
def _(obj: str) -> bytes:
    return H(b"str", obj.encode("utf-8", "surrogatepass"))


# the scalars' rules as registered here, and the same digests made the quickest way: digest_of
# calls these without singledispatch's look-up (a third of hash_value's time on an int), for as
# long as the registered rule is the one here
def _int_quick(obj: int) -> bytes:
    try:
        return _xxh(b"int:%d" % obj)
    except ValueError:  # beyond Python's digit limit: the rule's own way
        return _INT_RULE(obj)


def _str_quick(obj: str) -> bytes:
    return _xxh(b"str:" + obj.encode("utf-8", "surrogatepass"))


_registry = hash_value.registry
_INT_RULE: Callable[[Any], bytes] = _registry[int]
_QUICK: dict[type, tuple[object, Callable[[Any], bytes]]] = {
    kind: (_registry[kind], quick)
    for kind, quick in (
        (int, _int_quick),
        (str, _str_quick),
        (float, _registry[float]),
        (bool, _registry[bool]),
        (type(None), _registry[type(None)]),
    )
}
_registered: Callable[[type], object] = _registry.get


def digest_of(obj: Any) -> bytes:
    """``hash_value(obj)``: the same digest, found faster for None, bool, int, float and str
    (the items of most containers, and most inputs of a job)."""
    kind = type(obj)
    found = _QUICK.get(kind)
    if found is None or found[0] is not _registered(kind):
        return hash_value(obj)
    return found[1](obj)


@hash_value.register(bytes)
@hash_value.register(bytearray)
@hash_value.register(memoryview)
def _(obj: bytes | bytearray | memoryview) -> bytes:
    return H(b"bytes", bytes(obj))


@hash_value.register(list)
def _(obj: list[Any]) -> bytes:
    return H(b"list", b"".join(map(digest_of, obj)))


@hash_value.register(tuple)
def _(obj: tuple[Any, ...]) -> bytes:
    return H(b"tuple", b"".join(map(digest_of, obj)))


@hash_value.register(dict)
def _(obj: dict[Any, Any]) -> bytes:
    items = sorted(digest_of(k) + digest_of(v) for k, v in obj.items())
    return H(b"dict", b"".join(items))


@hash_value.register(set)
@hash_value.register(frozenset)
def _(obj: set[Any] | frozenset[Any]) -> bytes:
    return H(b"set", b"".join(sorted(map(digest_of, obj))))


@hash_value.register(enum.Enum)
def _(obj: enum.Enum) -> bytes:
    return H(b"enum", _xxh(_qualname(type(obj))) + hash_value(obj.value))


@hash_value.register(pathlib.PurePath)
def _(obj: pathlib.PurePath) -> bytes:
    if isinstance(obj, Directory) or (not isinstance(obj, File) and os.path.isdir(obj)):
        return H(b"Directory", directory_content_digest(obj))
    try:
        return H(b"File", file_content_digest(obj))
    except HashingError:
        if isinstance(obj, File) or os.path.lexists(obj):
            raise
        # a plain path to something that does not exist yet (an input typed Path that a task
        # creates): its name is all there is
        return H(b"PathName", os.path.abspath(obj).encode())


# the data-frame libraries with rules of their own, each used only when already imported
TABLE_MODULES = ("pandas", "polars", "pyarrow", "xarray")


def _table_hash(obj: Any) -> bytes | None:
    """Hash pandas, polars, pyarrow and xarray objects by content (values, labels, types);
    ``None`` for anything else."""
    import sys

    top = type(obj).__module__.split(".", 1)[0]
    if top not in TABLE_MODULES or top not in sys.modules:
        return None
    try:
        return _TABLE_RULES[top](obj, sys.modules[top])
    except HashingError:
        raise
    except Exception as err:  # e.g. a column of unhashable Python objects
        raise HashingError(
            f"cannot hash a {type(obj).__module__}.{type(obj).__qualname__} deterministically: "
            f"{type(err).__name__}: {err}"
        ) from err


def _pandas(obj: Any, pd: Any) -> bytes | None:
    if isinstance(obj, pd.DataFrame):
        labels = [repr(c) for c in obj.columns] + [str(t) for t in obj.dtypes]
        rows = pd.util.hash_pandas_object(obj, index=True).to_numpy()
        return hash_parts("pandas.DataFrame", labels, list(obj.index.names), rows)
    if isinstance(obj, pd.Series):
        rows = pd.util.hash_pandas_object(obj, index=True).to_numpy()
        return hash_parts("pandas.Series", repr(obj.name), str(obj.dtype), rows)
    if isinstance(obj, pd.Index):
        rows = pd.util.hash_pandas_object(obj).to_numpy()
        return hash_parts("pandas.Index", repr(obj.name), str(obj.dtype), rows)
    return None


def _arrow_bytes(table: Any, pa: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _pyarrow(obj: Any, pa: Any) -> bytes | None:
    if isinstance(obj, pa.RecordBatch):
        obj = pa.Table.from_batches([obj])
    if isinstance(obj, (pa.Array, pa.ChunkedArray)):
        obj = pa.table({"values": obj})
    if isinstance(obj, pa.Table):
        return H(b"pyarrow.Table", _xxh(_arrow_bytes(obj.combine_chunks(), pa)))
    return None


def _polars(obj: Any, pl: Any) -> bytes | None:
    import io

    tag = b"polars.Series" if isinstance(obj, pl.Series) else b"polars.DataFrame"
    if isinstance(obj, pl.Series):
        obj = obj.to_frame()
    if not isinstance(obj, pl.DataFrame):
        return None
    buffer = io.BytesIO()
    obj.rechunk().write_ipc(buffer, compression="uncompressed")
    return H(tag, _xxh(buffer.getvalue()))


def _xarray(obj: Any, xr: Any) -> bytes | None:
    if isinstance(obj, (xr.Dataset, xr.DataArray)):
        return hash_parts(f"xarray.{type(obj).__name__}", obj.to_dict(data="array"))
    return None


_TABLE_RULES: dict[str, Any] = {
    "pandas": _pandas,
    "polars": _polars,
    "pyarrow": _pyarrow,
    "xarray": _xarray,
}


def has_rule(tp: Any) -> bool | None:
    """Whether values annotated ``tp`` can be hashed: True, False, or None when the annotation
    cannot say (a typing construct, an abstract class: what is passed decides)."""
    import inspect
    import sys

    if not isinstance(tp, type) or inspect.isabstract(tp) or tp is object:
        return None
    if hash_value.dispatch(tp) is not hash_value.registry[object]:
        return True
    if attrs.has(tp) or dataclasses.is_dataclass(tp):
        return True
    top = tp.__module__.split(".", 1)[0]
    if "fileformats.core" in sys.modules:  # a format, also one of the user's own
        from ._fileformats import is_fileset_type

        if is_fileset_type(tp):
            return True
    if top == "numpy" or top in TABLE_MODULES:
        return top in sys.modules or None
    if top == "fileformats":
        from ._fileformats import is_fileset_type

        return is_fileset_type(tp) or None
    if getattr(tp, "__abstractmethods__", None) or tp.__module__ in ("typing", "collections.abc"):
        return None
    return False


def unhashable_in(tp: Any) -> type | None:
    """The first class an annotation names (``tp``, or inside ``list[...]``, ``X | None``...)
    whose values provgraph cannot hash, or None."""
    import typing

    if has_rule(tp) is False:
        return typing.cast(type, tp)
    for arg in typing.get_args(tp):
        found = unhashable_in(arg)
        if found is not None:
            return found
    return None


def _numpy_hash(obj: Any) -> bytes | None:
    """Hash numpy arrays and scalars, when numpy is loaded; ``None`` for anything else."""
    import sys

    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(obj, np.generic):
        return hash_value(obj.item())
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return H(b"ndarray-object", repr(obj.shape).encode() + hash_value(obj.tolist()))
        header = f"{obj.dtype.str}|{obj.shape}".encode()
        return H(b"ndarray", _xxh(header) + _xxh(np.ascontiguousarray(obj).tobytes()))
    return None


# ---------------------------------------------------------------------------------------------
# file content hashing, with a persistent cache keyed by (path, size, mtime_ns, inode)


def _stream_digest(path: str | os.PathLike[str], algorithm: str = "xxh3-128") -> bytes:
    hasher: Any = xxhash.xxh3_128() if algorithm == "xxh3-128" else hashlib.new(algorithm)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.digest()


class FileHashCache:
    """Content digests of files, remembered in memory and, given a folder, on disk.

    An entry is valid while the file's (size, mtime_ns, inode) are unchanged, so the second
    hash of an unchanged file costs one ``stat``. Entries are small files written atomically,
    so any number of processes may share one folder.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = pathlib.Path(folder) if folder is not None else None
        self._memo: dict[str, tuple[tuple[int, int, int], bytes]] = {}

    def digest(self, path: str | os.PathLike[str], algorithm: str = "xxh3-128") -> bytes:
        """The digest of the bytes of ``path``: xxh3-128 (what provgraph hashes with), or
        ``"sha256"`` (what exports such as RO-Crate publish), each remembered separately."""
        if algorithm not in ("xxh3-128", "sha256"):
            raise HashingError(
                f"file digest algorithm {algorithm!r}; expected 'xxh3-128' or 'sha256'"
            )
        file_path = os.path.abspath(path)
        key_path = file_path if algorithm == "xxh3-128" else f"{algorithm}:{file_path}"
        st = os.stat(file_path)
        if not stat.S_ISREG(st.st_mode):
            raise HashingError(f"cannot hash {file_path!r} as a file: it is not a regular file")
        sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        hit = self._memo.get(key_path)
        if hit is not None and hit[0] == sig:
            return hit[1]
        entry = self._entry_path(key_path)
        digest = self._read_entry(entry, sig) if entry is not None else None
        if digest is None:
            digest = (
                _stream_digest(file_path)
                if algorithm == "xxh3-128"
                else _stream_digest(file_path, algorithm)
            )
            if time.time() - st.st_mtime_ns / 1e9 < _RACY_SECONDS:
                return digest
            if entry is not None:
                self._write_entry(entry, sig, digest, key_path)
        self._memo[key_path] = (sig, digest)
        return digest

    def _entry_path(self, key_path: str) -> pathlib.Path | None:
        if self.folder is None:
            return None
        name = xxhash.xxh3_64_hexdigest(key_path.encode("utf-8", "surrogatepass"))
        return self.folder / name[:2] / name

    @staticmethod
    def _read_entry(entry: pathlib.Path, sig: tuple[int, int, int]) -> bytes | None:
        try:
            text = entry.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        fields = text.split(" ", 4)
        if len(fields) < 4 or tuple(fields[:3]) != tuple(map(str, sig)):
            return None
        try:
            return bytes.fromhex(fields[3])
        except ValueError:
            return None

    @staticmethod
    def _write_entry(
        entry: pathlib.Path, sig: tuple[int, int, int], digest: bytes, key_path: str
    ) -> None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{sig[0]} {sig[1]} {sig[2]} {digest.hex()} {key_path}\n")
            os.replace(tmp, entry)
        except OSError:
            pass  # a read-only cache only costs a re-hash next time


_DEFAULT_CACHE = FileHashCache()
_ACTIVE: contextvars.ContextVar[FileHashCache | None] = contextvars.ContextVar(
    "provgraph_file_hash_cache", default=None
)


@contextlib.contextmanager
def use_file_hash_cache(cache: FileHashCache) -> Iterator[FileHashCache]:
    """Make ``cache`` the one file hashing uses inside the ``with`` block."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def file_content_digest(path: str | os.PathLike[str]) -> bytes:
    """The xxh3-128 digest of a file's bytes, through the active :class:`FileHashCache`."""
    try:
        return (_ACTIVE.get() or _DEFAULT_CACHE).digest(path)
    except FileNotFoundError as err:
        raise HashingError(f"cannot hash file {str(path)!r}: it does not exist") from err


def directory_content_digest(path: str | os.PathLike[str]) -> bytes:
    """Merkle digest of a directory: sorted relative names with their kind and content."""
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise HashingError(f"cannot hash directory {str(path)!r}: it does not exist")
    entries: list[bytes] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            entries.append(H(b"dir-entry", rel.encode("utf-8", "surrogatepass")))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            name_bytes = os.path.normpath(os.path.join(rel_dir, name)).encode(
                "utf-8", "surrogatepass"
            )
            if os.path.islink(full) and not os.path.exists(full):
                target = os.readlink(full).encode()
                entries.append(H(b"broken-link", name_bytes + b"\0" + target))
                continue
            entries.append(H(b"file-entry", _xxh(name_bytes) + file_content_digest(full)))
    return _xxh(b"".join(sorted(entries)))
