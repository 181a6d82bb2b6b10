"""Cache cleanup (issue 16): ``store.gc`` and ``provgraph gc`` remove what no kept submission
needs, following lineage, never what a running job holds, and record what they removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provgraph import File, ProvenanceError, ProvenanceStore, Submitter, python
from provgraph.cache import JobLock
from provgraph.cli import main as cli


@python.define
def Blob(n: int, size: int = 1000) -> File:
    Path("blob.bin").write_bytes(bytes([n % 256]) * size)
    return File("blob.bin")


@python.define
def Measure(blob: File) -> int:
    return Path(blob).stat().st_size


@python.define
def Fragile(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x


def _submit(cache: Path, task: object) -> object:
    with Submitter(cache_dir=cache, progress=False) as sub:
        return sub(task)


def _snapshot(cache: Path) -> dict[str, int]:
    found = {}
    for root, _dirs, files in os.walk(cache):
        if ".provenance" in root:
            continue
        for name in files:
            path = os.path.join(root, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


def test_keep_last_removes_older_jobs_and_keeps_their_records(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = _submit(cache, Blob().split(n=[1, 2]))
    new = _submit(cache, Blob().split(n=[3]))
    old_dirs = [Path(d) for d in old.job_dirs]
    store = ProvenanceStore(cache)
    records_before = len(store.query("SELECT ?r WHERE { ?r a pg:JobRun }"))

    done = store.gc(keep_last=1)

    assert sorted(done.removed) == sorted([d.name for d in old_dirs] + [old.output_dir.name])
    assert done.freed >= 2000 and done.run.startswith("urn:uuid:")
    assert all(not (d / "blob.bin").exists() and not (d / "_result.pkl").exists() for d in old_dirs)
    assert all(list(d.glob("_prov-*.trig")) for d in old_dirs)  # the records stay
    assert (Path(new.job_dirs[0]) / "blob.bin").exists()
    store = ProvenanceStore(cache)
    assert len(store.query("SELECT ?r WHERE { ?r a pg:JobRun }")) == records_before
    invalidated = {
        str(row[0])
        for row in store.query(
            "SELECT ?e WHERE { ?e prov:wasInvalidatedBy ?gc ; prov:wasGeneratedBy ?run . "
            "?gc a pg:Cleanup . ?run pg:jobHash ?h }"
        )
    }
    assert len(invalidated) == 2  # each removed blob, as the entity its run generated
    removed = {str(row[0]) for row in store.query("SELECT ?d WHERE { ?gc pg:removedDirectory ?d }")}
    assert {Path(r.removeprefix("file://")).name for r in removed} >= {d.name for d in old_dirs}
    # a rebuilt index still holds every run, and the cleanup
    assert cli(["index", str(cache), "--rebuild"]) == 0
    store = ProvenanceStore(cache)
    assert len(store.query("SELECT ?r WHERE { ?r a pg:JobRun }")) == records_before
    assert len(store.query("SELECT ?g WHERE { ?g a pg:Cleanup }")) == 1
    # what was removed runs again when asked for
    again = _submit(cache, Blob().split(n=[1, 2]))
    assert again.stats["executed"] == 2
    assert Path(again.outputs.out[0]).read_bytes() == bytes([1]) * 1000


def test_a_kept_run_keeps_what_it_used_from_an_older_one(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    made = _submit(cache, Blob(n=7))  # older submission: makes a file
    _submit(cache, Blob(n=8))  # let go
    used = _submit(cache, Measure(blob=made.outputs.out))  # newest: uses the older file
    assert used.outputs.out == 1000
    done = ProvenanceStore(cache).gc(keep_last=1)
    assert Path(made.output_dir).name not in done.removed
    assert Path(made.outputs.out).exists()
    assert len(done.removed) == 1 and done.removed[0].startswith("Blob-")


@pytest.mark.parametrize("records", ["now", "before"])
@pytest.mark.parametrize("through", ["cache", "file"])
def test_a_kept_run_keeps_what_it_used_when_a_path_goes_through_a_symlink(
    tmp_path: Path, through: str, records: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache, or the file passed on, named through a symlink (a cluster's ``/scratch``
    linked to ``/data``): the file is still known to be the cache's, and kept with its run;
    also from records that named it by its absolute path ("before": as records were written
    before they looked through symlinks)."""
    if records == "before":
        monkeypatch.setattr(os.path, "realpath", lambda path, **_: os.path.abspath(path))
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    cache = tmp_path / ("link" if through == "cache" else "real") / "cache"
    made = _submit(cache, Blob(n=7))
    _submit(cache, Blob(n=8))  # let go
    made_file = Path(made.outputs.out)
    spelled = made_file.relative_to(tmp_path).parts[0]  # the file named the other way
    other = (
        tmp_path
        / ("link" if spelled == "real" else "real")
        / made_file.relative_to(tmp_path / spelled)
    )
    assert other.samefile(made_file)
    used = _submit(cache, Measure(blob=File(other)))
    assert used.outputs.out == 1000
    monkeypatch.undo()
    done = ProvenanceStore(cache).gc(keep_last=1)
    assert Path(made.output_dir).name not in done.removed
    assert made_file.exists()
    assert len(done.removed) == 1 and done.removed[0].startswith("Blob-")


def test_reused_results_stay_with_the_submission_that_reused_them(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _submit(cache, Blob().split(n=[1, 2]))
    _submit(cache, Blob().split(n=[1, 2]))  # reuses every job of the first
    done = ProvenanceStore(cache).gc(keep_last=1)
    assert done.removed == () and done.released == ()  # the older one lost nothing
    assert all((Path(d) / "blob.bin").exists() for d in first.job_dirs)


def test_older_than_and_keep_last_each_keep(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _submit(cache, Blob(n=1))
    newest = _submit(cache, Blob(n=2))
    store = ProvenanceStore(cache)
    # every submission is older than 0 s; keep_last=1 still keeps the newest
    done = store.gc(older_than=0, keep_last=1)
    assert len(done.removed) == 1 and (Path(newest.output_dir) / "blob.bin").exists()
    done = store.gc(older_than="0s")
    assert done.removed == (Path(newest.output_dir).name,)
    assert store.gc(older_than="30d").removed == ()  # nothing newer than that goes


def test_failed_removes_failed_attempts_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = _submit(cache, Fragile().split(x=[1, -1]))
    assert result.errored
    failed_dir = Path(result.errors[0].output_dir)
    ok_dir = next(Path(d) for d in result.job_dirs if Path(d) != failed_dir)
    assert (failed_dir / "_error.json").exists()
    done = ProvenanceStore(cache).gc(failed=True)
    # the failed element, and the split task's listing that names it
    assert sorted(done.removed) == sorted([failed_dir.name, Path(result.output_dir).name])
    assert not (failed_dir / "_error.json").exists() and (ok_dir / "_result.pkl").exists()


def test_max_size_lets_the_oldest_go_until_the_cache_fits(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs = [_submit(cache, Blob(n=i, size=200_000)) for i in range(3)]
    done = ProvenanceStore(cache).gc(max_size="450K")
    assert done.removed == (Path(runs[0].output_dir).name,)
    assert len(done.released) == 1
    assert all((Path(r.output_dir) / "blob.bin").exists() for r in runs[1:])
    assert ProvenanceStore(cache).gc(max_size=10**9).removed == ()


def test_a_job_whose_lock_is_held_is_left(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = _submit(cache, Blob(n=1))
    _submit(cache, Blob(n=2))
    lock = JobLock(Path(old.output_dir)).acquire()  # as a running job holds it
    try:
        done = ProvenanceStore(cache).gc(keep_last=1)
    finally:
        lock.release()
    assert done.removed == () and done.in_use == (Path(old.output_dir).name,)
    assert (Path(old.output_dir) / "blob.bin").exists()
    assert ProvenanceStore(cache).gc(keep_last=1).removed == (Path(old.output_dir).name,)


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = _submit(cache, Blob(n=1))
    _submit(cache, Blob(n=2))
    before = _snapshot(cache)
    planned = ProvenanceStore(cache).gc(keep_last=1, dry_run=True)
    assert planned.dry_run and planned.removed == (Path(old.output_dir).name,)
    assert planned.freed >= 1000 and planned.run == ""
    assert _snapshot(cache) == before
    assert not (cache / ".provenance" / "cleanups").exists()


def test_directories_no_record_names_are_left(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False, provenance=False) as sub:
        quiet = sub(Blob(n=1))
    _submit(cache, Blob(n=2))
    _submit(cache, Blob(n=3))
    done = ProvenanceStore(cache).gc(keep_last=1)
    assert done.unrecorded == (Path(quiet.output_dir).name,)
    assert len(done.removed) == 1 and (Path(quiet.output_dir) / "blob.bin").exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "say what to remove"),
        ({"keep_last": -1}, "keep_last=-1"),
        ({"older_than": "3 days"}, "older_than='3 days'"),
        ({"max_size": "lots"}, "max_size='lots'"),
    ],
)
def test_bad_options_are_refused_before_anything_goes(
    tmp_path: Path, options: dict[str, object], words: str
) -> None:
    cache = tmp_path / "cache"
    _submit(cache, Blob(n=1))
    before = _snapshot(cache)
    with pytest.raises(ProvenanceError, match=words.replace("(", r"\(")):
        ProvenanceStore(cache).gc(**options)  # type: ignore[arg-type]
    assert _snapshot(cache) == before


def test_cli_gc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    old = _submit(cache, Blob(n=1))
    _submit(cache, Blob(n=2))
    assert cli(["gc", str(cache), "--keep-last", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 job directory" in out and Path(old.output_dir).name in out
    assert (Path(old.output_dir) / "blob.bin").exists()
    assert cli(["gc", str(cache), "--older-than", "soon"]) == 2
    assert "older_than='soon'" in capsys.readouterr().err
    assert cli(["gc", str(cache), "--keep-last", "1"]) == 0
    assert "removed 1 job directory" in capsys.readouterr().out
    assert not (Path(old.output_dir) / "blob.bin").exists()


_SCRIPT = """
import sys
from dataclasses import dataclass

from provgraph import Submitter, python, workflow


@dataclass
class Point:  # defined only in this script: another process cannot unpickle it
    x: int


@python.define
def Make(x: int) -> Point:
    return Point(x)


@python.define
def Norm(p: Point) -> int:
    return abs(p.x)


@workflow.define
def Shape(x: int) -> int:
    made = workflow.add(Make(x=x), name="make")
    return workflow.add(Norm(p=made.out), name="norm").out


with Submitter(cache_dir=sys.argv[1], progress=False) as sub:
    print(sub(Shape(x=int(sys.argv[2]))).output_dir)
"""


def test_a_workflows_result_goes_with_its_jobs(tmp_path: Path) -> None:
    """A workflow's own directory is named in its run's record, and removed with the jobs it
    was made of, even when this process cannot read the result (a class of the user's
    script): a later submission never takes a workflow's result whose jobs are gone."""
    import subprocess
    import sys

    script = tmp_path / "shape.py"
    script.write_text(_SCRIPT)
    cache = tmp_path / "cache"

    def submit(x: int) -> Path:
        done = subprocess.run(
            [sys.executable, str(script), str(cache), str(x)],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(done.stdout.strip())

    old, new = submit(1), submit(2)
    done = ProvenanceStore(cache).gc(keep_last=1)
    assert old.name in done.removed and done.unrecorded == ()
    assert not (old / "_result.pkl").exists() and (new / "_result.pkl").exists()
    assert sum(1 for n in done.removed if n.startswith(("Make-", "Norm-"))) == 2


@python.define
def Hold(x: int, marks: str) -> int:
    """Says it started, then waits until told to finish."""
    import time

    (Path(marks) / "started").touch()
    while not (Path(marks) / "release").exists():
        time.sleep(0.02)
    return x


def _wait_for(path: Path) -> None:
    import time

    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_gc_waits_for_no_submission(tmp_path: Path) -> None:
    """While a submission runs, gc refuses (a dry run answers); afterwards it proceeds."""
    import threading

    cache, marks = tmp_path / "cache", tmp_path / "marks"
    marks.mkdir()
    old = _submit(cache, Blob(n=1))
    _submit(cache, Blob(n=2))
    thread = threading.Thread(target=_submit, args=(cache, Hold(x=1, marks=str(marks))))
    thread.start()
    try:
        _wait_for(marks / "started")
        with pytest.raises(ProvenanceError, match="a submission is running"):
            ProvenanceStore(cache).gc(keep_last=2)
        assert (Path(old.output_dir) / "blob.bin").exists()
        planned = ProvenanceStore(cache).gc(keep_last=2, dry_run=True)
        assert Path(old.output_dir).name in planned.removed
    finally:
        (marks / "release").touch()
        thread.join()
    assert Path(old.output_dir).name in ProvenanceStore(cache).gc(keep_last=2).removed


def test_failed_removes_a_killed_attempt(tmp_path: Path) -> None:
    """A job whose process was killed leaves an abandoned lock and no record: --failed
    removes what it left; the lock file stays."""
    import subprocess
    import sys

    cache, marks = tmp_path / "cache", tmp_path / "marks"
    marks.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from crash_tasks import Suicidal\n"
        "from provgraph import Submitter\n"
        "with Submitter(cache_dir=sys.argv[1], progress=False) as sub:\n"
        "    sub(Suicidal(x=2, marks=sys.argv[2], always=True))\n"
    )
    here = str(Path(__file__).parent)
    died = subprocess.run([sys.executable, "-c", code, str(cache), str(marks), here], check=False)
    assert died.returncode != 0
    (killed,) = [d for d in cache.glob("Suicidal-*")]
    assert list(killed.glob("_prov-*")) == []
    (killed / "partial.bin").write_bytes(b"x" * 5000)  # what it had written
    _submit(cache, Blob(n=1))
    done = ProvenanceStore(cache).gc(failed=True)
    assert done.removed == (killed.name,) and done.freed >= 5000
    assert (killed / "_lock").exists() and not (killed / "partial.bin").exists()
