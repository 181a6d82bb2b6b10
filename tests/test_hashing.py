"""Hashing: type-tagged Merkle hashes, file content hashing and its persistent cache."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from provgraph import Directory, File, HashingError, Submitter, hash_value, python, workflow
from provgraph import hashing as H

GOLDEN = {
    "none": (None, "6ca089cb06ece7823c67016e7cf5a484"),
    "true": (True, "c72a162c66dc16abb8990563fbe9f1a7"),
    "int": (1, "7cfd4f9d07c80821276283c7260b50c2"),
    "float": (1.5, "5f31c53ffc81d9369dd25f6bf9cec5a5"),
    "str": ("abc", "c03ec89cc52fd304472b76bf8eee4b85"),
    "bytes": (b"xyz", "3ab2eed8ef14704474a4df7246aab374"),
    "list": ([1, "a"], "9b7086df118088ac78e8057fbfd937cb"),
    "tuple": ((1, "a"), "71bb79c810b5d483f3acac0dff80a2d8"),
    "dict": ({"b": 2, "a": 1}, "2264556622aee336419f05833de58d0b"),
    "set": ({3, 1, 2}, "4b5d5be2a95008b384cd8dc6903dbdd2"),
}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_golden_digests(key: str) -> None:
    """Digests of basic values are pinned: they never change between releases or runs."""
    value, digest = GOLDEN[key]
    assert hash_value(value).hex() == digest


def test_rule_for_scalars_and_containers() -> None:
    """The written rule: H(tag, payload) = xxh3-128(tag ':' payload); containers join digests."""
    x = xxhash.xxh3_128_digest
    assert hash_value(7) == x(b"int:7")
    assert hash_value("é") == x("str:é".encode())
    assert hash_value(0.1) == x(b"float:" + (0.1).hex().encode())
    assert hash_value([1, "a"]) == x(b"list:" + hash_value(1) + hash_value("a"))


class _Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -5,
        2**80,
        pytest.param(10**5000, id="int beyond str()'s digit limit"),
        1.5,
        float("nan"),
        "",
        "é\ud800",
        _Level.LOW,
        [1, _Level.LOW],
    ],
)
def test_digest_of_is_hash_value(value: Any) -> None:
    """The quick path for scalars gives hash_value's digest (an int subclass, an enum, takes
    its own rule)."""
    assert H.digest_of(value) == hash_value(value)


def test_a_scalar_rule_registered_again_is_used() -> None:
    """The quick path for scalars follows the registry: a rule registered again for int is the
    one every container, and a job's input, then use."""
    from provgraph.engine.plan import digest

    original = hash_value.registry[int]
    before = hash_value([1, 2])
    try:
        hash_value.register(int, lambda obj: H.H(b"my-int", str(obj).encode()))
        assert H.digest_of(1) == H.H(b"my-int", b"1") == digest("x", 1)
        assert hash_value([1, 2]) == H.H(b"list", H.H(b"my-int", b"1") + H.H(b"my-int", b"2"))
    finally:
        hash_value.register(int, original)
    assert hash_value([1, 2]) == before


def test_type_tags_distinguish_equal_looking_values() -> None:
    """1, 1.0, True, '1', [1] and (1,) all hash differently."""
    values = [1, 1.0, True, "1", b"1", [1], (1,), {1}]
    assert len({hash_value(v) for v in values}) == len(values)


def test_unordered_containers_ignore_order() -> None:
    """Dicts and sets hash the same whatever their insertion order."""
    assert hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    assert hash_value({1, 2, 3}) == hash_value({3, 2, 1})
    assert hash_value(frozenset({1, 2})) == hash_value({2, 1})


def test_numpy_values() -> None:
    """Arrays hash by dtype, shape and bytes; numpy scalars hash like Python numbers."""
    a = np.arange(6, dtype=np.int64)
    assert hash_value(a) == hash_value(np.arange(6, dtype=np.int64))
    assert hash_value(a) != hash_value(a.reshape(2, 3))
    assert hash_value(a) != hash_value(a.astype(np.int32))
    assert hash_value(a.reshape(2, 3).T) == hash_value(np.ascontiguousarray(a.reshape(2, 3).T))
    assert hash_value(np.int64(3)) == hash_value(3)
    assert hash_value(np.float64(0.5)) == hash_value(0.5)


@attrs.define
class Point:
    x: int
    y: int


@dataclasses.dataclass
class DPoint:
    x: int
    y: int


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


def test_attrs_dataclass_and_enum_values() -> None:
    """Structured values hash by class and field values."""
    assert hash_value(Point(1, 2)) == hash_value(Point(1, 2))
    assert hash_value(Point(1, 2)) != hash_value(Point(2, 1))
    assert hash_value(DPoint(1, 2)) == hash_value(DPoint(1, 2))
    assert hash_value(DPoint(1, 2)) != hash_value(Point(1, 2))
    assert hash_value(Colour.RED) != hash_value(Colour.BLUE)


def test_unhashable_values_raise_naming_the_type() -> None:
    """No silent fallback: objects without a rule raise HashingError."""

    class Opaque:
        pass

    with pytest.raises(HashingError, match="Opaque"):
        hash_value(Opaque())
    with pytest.raises(HashingError, match="function"):
        hash_value(lambda: 1)
    with pytest.raises(HashingError):
        hash_value([1, {"k": object()}])


def test_registering_a_new_type() -> None:
    """``hash_value.register`` adds a rule for a new type."""

    class Interval:
        def __init__(self, lo: int, hi: int) -> None:
            self.lo, self.hi = lo, hi

    @hash_value.register(Interval)
    def _(obj: Interval) -> bytes:
        return H.hash_parts("Interval", obj.lo, obj.hi)

    assert hash_value(Interval(1, 2)) == hash_value(Interval(1, 2))
    assert hash_value(Interval(1, 2)) != hash_value(Interval(1, 3))


def test_files_hash_by_content_not_path(tmp_path: Path) -> None:
    """Two files with the same bytes hash alike; a change of content changes the hash."""
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.dat"
    b.parent.mkdir()
    a.write_text("same")
    b.write_text("same")
    assert hash_value(File(a)) == hash_value(File(b)) == hash_value(a)
    assert H.file_content_digest(a) == xxhash.xxh3_128_digest(b"same")
    b.write_text("different")
    assert hash_value(File(a)) != hash_value(File(b))


def test_missing_file_raises(tmp_path: Path) -> None:
    """Hashing a file that is not there is an error naming the path."""
    with pytest.raises(HashingError, match=r"nope\.txt"):
        hash_value(File(tmp_path / "nope.txt"))


def test_directories_hash_by_names_and_content(tmp_path: Path) -> None:
    """A directory's hash follows its relative names and contents, not its own location."""
    d1 = tmp_path / "d1"
    (d1 / "sub").mkdir(parents=True)
    (d1 / "x.txt").write_text("x")
    (d1 / "sub" / "y.txt").write_text("y")
    before = hash_value(Directory(d1))
    moved = tmp_path / "elsewhere"
    d1.rename(moved)
    assert hash_value(Directory(moved)) == before
    (moved / "sub" / "y.txt").write_text("y2")
    assert hash_value(Directory(moved)) != before
    (moved / "sub" / "y.txt").write_text("y")
    (moved / "sub" / "y.txt").rename(moved / "sub" / "z.txt")
    assert hash_value(Directory(moved)) != before


def _age(path: Path, seconds: float = 10.0) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_file_hash_cache_persists_across_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second hash of an unchanged file, even from a new process's cache, reads nothing."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 10_000)
    _age(data)
    reads: list[str] = []
    real = H._stream_digest
    monkeypatch.setattr(H, "_stream_digest", lambda p: reads.append(str(p)) or real(p))
    folder = tmp_path / "hashes"
    first = H.FileHashCache(folder).digest(data)
    assert len(reads) == 1
    assert H.FileHashCache(folder).digest(data) == first  # a fresh instance: same folder
    assert len(reads) == 1
    data.write_bytes(b"y" * 10_000)  # same size, new mtime
    _age(data, 5.0)
    assert H.FileHashCache(folder).digest(data) != first
    assert len(reads) == 2


def test_file_hash_cache_detects_replaced_file(tmp_path: Path) -> None:
    """A file replaced by another with the same size and mtime is caught by its inode."""
    folder = tmp_path / "hashes"
    data = tmp_path / "data.txt"
    data.write_text("aaaa")
    _age(data)
    st = data.stat()
    first = H.FileHashCache(folder).digest(data)
    other = tmp_path / "other.txt"
    other.write_text("bbbb")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    keep = tmp_path / "keep"  # hold the old inode so it cannot be reused at once
    os.link(data, keep)
    os.replace(other, data)
    assert H.FileHashCache(folder).digest(data) != first


def test_recently_modified_files_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed within the timestamp granularity window is always re-hashed."""
    data = tmp_path / "fresh.txt"
    data.write_text("new")
    reads: list[str] = []
    real = H._stream_digest
    monkeypatch.setattr(H, "_stream_digest", lambda p: reads.append(str(p)) or real(p))
    cache = H.FileHashCache(tmp_path / "hashes")
    cache.digest(data)
    cache.digest(data)
    assert len(reads) == 2
    assert not (tmp_path / "hashes").exists()


_CHILD = r"""
import json, pickle, sys
from provgraph import hash_value
values = pickle.loads(bytes.fromhex(sys.stdin.read()))
print(json.dumps([hash_value(v).hex() for v in values]))
"""


def _hash_in_subprocess(values: list[object]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps(values).hex(),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    return list(json.loads(out.stdout))


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=1, deadline=None)
@given(st.lists(_values, min_size=40, max_size=40))
def test_hashes_identical_in_another_process(values: list[object]) -> None:
    """Hashes do not depend on the process (nor on PYTHONHASHSEED)."""
    assert _hash_in_subprocess(values) == [hash_value(v).hex() for v in values]


def test_golden_definition_and_job_hash(tmp_path: Path) -> None:
    """A shell task's definition hash and a job's directory name are pinned literals."""
    from provgraph import Submitter, shell

    Cp = shell.define("cp <in_file:File> <out|out_file:File>")
    assert Cp._definition_hash.hex() == "cd08ab6c864861d18b6848ebe9d688cf"
    src = tmp_path / "x.txt"
    src.write_text("hello\n")
    with Submitter(cache_dir=tmp_path / "cache") as sub:
        result = sub(Cp(in_file=src))
    assert not result.errored
    assert result.output_dir.name == "cp-40a31a0cc5a0aefceedf2f55d3249669"


# -- data frames and labelled arrays (issue 16, part) --------------------------------------------


def _tables() -> list[tuple[str, Any, Any, Any]]:
    """(library, a value, an equal value built anew, a value that differs by one cell)."""
    import numpy as np
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    import xarray as xr

    frame = {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    changed = {"a": [1, 2, 4], "b": ["x", "y", "z"]}
    return [
        ("pandas", pd.DataFrame(frame), pd.DataFrame(dict(frame)), pd.DataFrame(changed)),
        (
            "pandas",
            pd.Series([1.0, 2.0], name="s"),
            pd.Series([1.0, 2.0], name="s"),
            pd.Series([1.0, 2.5], name="s"),
        ),
        ("polars", pl.DataFrame(frame), pl.DataFrame(dict(frame)), pl.DataFrame(changed)),
        ("pyarrow", pa.table(frame), pa.table(dict(frame)), pa.table(changed)),
        (
            "xarray",
            xr.DataArray(np.arange(3), dims="t", coords={"t": [0, 1, 2]}),
            xr.DataArray(np.arange(3), dims="t", coords={"t": [0, 1, 2]}),
            xr.DataArray(np.arange(3), dims="t", coords={"t": [0, 1, 5]}),
        ),
    ]


def test_data_frames_hash_by_content() -> None:
    """Equal tables hash equal, a changed cell or label changes the hash, in every library."""
    for library, value, same, other in _tables():
        assert hash_value(value) == hash_value(same), library
        assert hash_value(value) != hash_value(other), library


def test_data_frame_hashes_do_not_depend_on_the_process() -> None:
    """The same frames hashed in two fresh processes with different hash seeds agree."""
    code = (
        "import pandas as pd, polars as pl\n"
        "from provgraph import hash_value\n"
        "print(hash_value(pd.DataFrame({'a': [1, 2], 'b': ['x', None]}).set_index('b')).hex(),"
        " hash_value(pl.DataFrame({'a': [1, 2], 's': ['u', 'v']})).hex())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_a_frame_a_rule_cannot_hash_says_why() -> None:
    import pandas as pd

    with pytest.raises(
        HashingError, match=r"cannot hash a pandas.DataFrame deterministically: TypeError"
    ):
        hash_value(pd.DataFrame({"a": [[1], [2]]}))  # a column of lists


class _NoRule:
    pass


@python.define
def _Downstream(value: _NoRule) -> int:
    return 1


@python.define
def _Make(x: int) -> _NoRule:
    return _NoRule()


@workflow.define
def _Pipe(x: int) -> int:
    made = workflow.add(_Make(x=x), name="make")
    return workflow.add(_Downstream(value=made.out), name="down").out


def test_an_unhashable_annotation_fails_before_any_job_runs(tmp_path: Path) -> None:
    """The node downstream takes a type with no rule: the submission fails at once, and the
    job upstream never ran."""
    with (
        Submitter(cache_dir=tmp_path, progress=False) as sub,
        pytest.raises(HashingError, match=r"down: input 'value' is annotated"),
    ):
        sub(_Pipe(x=1))
    assert not list(tmp_path.glob("_Make-*"))
