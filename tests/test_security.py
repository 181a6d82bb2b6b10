"""Trust: nothing a writer of the cache planted is ever unpickled (issue 12)."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from crash_tasks import Slow
from prov_tasks import Study, make_inputs
from provgraph import ProvenanceStore, Submitter, cache
from provgraph.exceptions import ProvenanceError


class _Payload:
    """Unpickling this runs a command: what an attacker plants."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _forgeries(marker: Path) -> list[bytes]:
    """The best forgeries without the key: the evil pickle behind the sealed layout with an
    unkeyed MAC, and behind the earlier public layout (a header and an xxh3-128 checksum)."""
    data = pickle.dumps(_Payload(marker))
    return [
        b"PGS1" + hashlib.blake2b(data, digest_size=32).digest() + data,
        b"PGR1\n" + xxhash.xxh3_128_digest(data) + data,
    ]


def _forge(marker: Path) -> bytes:
    return _forgeries(marker)[0]


def test_a_forged_result_is_never_unpickled(tmp_path: Path, cache_dir: Path) -> None:
    """A planted _result.pkl runs no code: the job is recomputed, with a warning."""
    marks = tmp_path / "marks"
    marks.mkdir()
    marker = tmp_path / "pwned"
    for forged in _forgeries(marker):
        with Submitter(cache_dir=cache_dir, progress=False) as sub:
            first = sub(Slow(x=7, marks=str(marks), pause=0.0))
        (first.output_dir / cache.RESULT_NAME).write_bytes(forged)
        with Submitter(cache_dir=cache_dir, progress=False) as sub:
            again = sub(Slow(x=7, marks=str(marks), pause=0.0))
        assert not marker.exists()
        assert again.outputs.out == 70 and again.stats["executed"] == 1


def test_a_forged_definition_runs_nothing(tmp_path: Path, cache_dir: Path) -> None:
    """A planted stored definition or inputs file: show and export run nothing; rerun refuses,
    naming the file."""
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Study(files=inputs))
    marker = tmp_path / "pwned"
    store = ProvenanceStore(cache_dir)
    (copy,) = store.runs_of("Copy")[:1]
    for planted in cache_dir.glob("Copy-*/_prov-*.inputs.pkl"):
        planted.write_bytes(pickle.dumps(_Payload(marker)))  # as the unsealed files were
    with pytest.raises(ProvenanceError, match="stored inputs"):
        store.rerun(copy["run"], into=tmp_path / "scratch")
    for planted in (cache_dir / ".provenance" / "definitions").glob("*.pkl"):
        planted.write_bytes(pickle.dumps(_Payload(marker)))
    cli = [sys.executable, "-m", "provgraph.cli"]
    subprocess.run([*cli, "show", str(cache_dir), copy["job"]], check=True, capture_output=True)
    out = tmp_path / "all.jsonld"
    subprocess.run(
        [*cli, "export", str(cache_dir), "-o", str(out)], check=True, capture_output=True
    )
    with pytest.raises(ProvenanceError, match="not sealed with your key") as info:
        store.rerun(copy["run"], into=tmp_path / "scratch")
    assert "definitions" in str(info.value)
    assert not marker.exists()


def test_a_cache_written_with_another_key_is_recomputed(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results sealed with another user's key are not trusted: recomputed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    task = Slow(marks=str(marks), pause=0.0).split(x=[1, 2, 3])
    monkeypatch.setenv("PROVGRAPH_KEY", "alice's secret")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        assert sub(task).stats["executed"] == 3
        assert sub(task).stats["reused"] == 3
    monkeypatch.setenv("PROVGRAPH_KEY", "bob's secret")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        again = sub(task)
    assert again.stats["executed"] == 3 and again.outputs.out == [10, 20, 30]


def test_reading_another_users_records_says_nothing_of_their_results(
    tmp_path: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Naming a job of another user's cache (``why``, ``show``) reads whose its result is,
    and says nothing of a result it may not use: nothing is run or reused there."""
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("PROVGRAPH_KEY", "alice's secret")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        done = sub(Slow(x=1, marks=str(marks), pause=0.0))
    store = ProvenanceStore(cache_dir)
    store.refresh()
    monkeypatch.setenv("PROVGRAPH_KEY", "bob's secret")
    capsys.readouterr()
    explanation = ProvenanceStore(cache_dir).why(str(done.output_dir))
    assert explanation.run.startswith("urn:uuid:")
    assert "not sealed" not in capsys.readouterr().err


def test_the_key_file_is_made_private_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PROVGRAPH_KEY, a key file is created with mode 0600 and then reused."""
    from provgraph import _signing

    key_file = tmp_path / "config" / "provgraph" / "key"
    monkeypatch.delenv("PROVGRAPH_KEY", raising=False)
    monkeypatch.setenv("PROVGRAPH_KEY_FILE", str(key_file))
    first = _signing.key()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(first) == 32 and _signing.key() == first
    monkeypatch.setenv("PROVGRAPH_KEY_FILE", str(tmp_path / "other"))
    assert _signing.key() != first
    (tmp_path / "broken").write_text("not hex\n")
    monkeypatch.setenv("PROVGRAPH_KEY_FILE", str(tmp_path / "broken"))
    with pytest.raises(cache.CacheError, match="does not hold a key"):
        _signing.key()


def test_a_swapped_sealed_definition_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    """A definition file sealed with the right key but holding another task (swapped by a
    writer of the cache) is not run: its definition hash is not the recorded one."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Study(files=make_inputs(tmp_path / "inputs")))
    first, second = sorted((cache_dir / ".provenance" / "definitions").glob("*.pkl"))[:2]
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    store = ProvenanceStore(cache_dir)
    runs = [r for t in ("Copy", "CountWords", "Total") for r in store.runs_of(t)]
    refused = 0
    for run in runs:
        try:
            store.rerun(run["run"], into=tmp_path / "scratch")
        except ProvenanceError as err:
            assert "is not the one" in str(err)
            refused += 1
    assert refused >= 2  # every run whose definition file was swapped
