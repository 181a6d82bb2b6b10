"""The submitter: Pydra's caching walkthrough, worker equivalence, bad input and failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from provgraph import (
    File,
    HashingError,
    InputFileError,
    SpecError,
    SplitterError,
    Submitter,
    TaskFailedError,
    python,
    shell,
)

RESAMPLE_SCRIPT = """#!/bin/sh
# usage: resample IN OUT --voxel V ; logs each execution to $RESAMPLE_LOG
echo "$(basename "$1") $4" >> "{log}"
{{ cat "$1"; echo "voxel=$4"; }} > "$2"
"""


@pytest.fixture
def resample(tmp_path: Path) -> tuple[type, Path]:
    """A shell task standing in for MrGrid, and the log of its real executions."""
    log = tmp_path / "executions.log"
    log.touch()
    script = tmp_path / "resample.sh"
    script.write_text(RESAMPLE_SCRIPT.format(log=log))
    task = shell.define(
        f"sh {script} <in_file:File> <out|out_file:File> --voxel <voxel:float>", name="Resample"
    )
    return task, log


def _executions(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _inputs(tmp_path: Path, n: int = 10) -> list[Path]:
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)
    files = []
    for i in range(n):
        path = folder / f"sub-{i:02d}.nii"
        path.write_text(f"image {i}\n")
        files.append(path)
    return files


def test_caching_walkthrough(tmp_path: Path, cache_dir: Path, resample: tuple[type, Path]) -> None:
    """Pydra's caching walkthrough with a shell task of ours in place of MrGrid."""
    Resample, log = resample
    files = _inputs(tmp_path)
    voxels = [0.5 + 0.25 * i for i in range(10)]

    def run() -> tuple[Path, int]:
        task = Resample().split(("in_file", "voxel"), in_file=files, voxel=voxels)
        with Submitter(cache_dir=cache_dir) as sub:
            result = sub(task)
        assert not result.errored, result.errors
        assert len(result.outputs.out_file) == 10
        return result.output_dir, result.stats["executed"]

    first_dir, executed = run()
    assert executed == 10 and len(_executions(log)) == 10
    content = Path(first_dir.parent.glob("Resample-*/out_file.nii").__next__()).read_text()
    assert content.startswith("image ")

    # rerun: same directory, nothing executed
    assert run() == (first_dir, 0)
    assert len(_executions(log)) == 10

    # one voxel size changed: a new directory, exactly one job runs
    voxels[3] = 9.0
    changed_dir, executed = run()
    assert changed_dir != first_dir and executed == 1
    assert _executions(log)[-1] == "sub-03.nii 9.0"

    # an input file renamed: same directory as before, nothing runs
    files[5] = files[5].rename(files[5].with_name("renamed.nii"))
    assert run() == (changed_dir, 0)
    assert len(_executions(log)) == 11


def test_changing_one_element_reruns_only_it(cache_dir: Path) -> None:
    """Element jobs have their own directories: editing one value runs one job."""

    @python.define
    def Square(x: int) -> int:
        return x * x

    with Submitter(cache_dir=cache_dir) as sub:
        first = sub(Square().split(x=[1, 2, 3, 4]))
        second = sub(Square().split(x=[1, 2, 30, 4]))
    assert first.outputs.out == [1, 4, 9, 16] and second.outputs.out == [1, 4, 900, 16]
    assert second.stats == {"executed": 1, "reused": 3, "failed": 0, "skipped": 0}
    assert first.job_dirs[0] == second.job_dirs[0] and first.job_dirs[2] != second.job_dirs[2]


def test_inputs_reachable_and_mutable(
    cache_dir: Path, tmp_path: Path, resample: tuple[type, Path]
) -> None:
    """``task.inputs.voxel[2] = 0.25`` changes what runs, as in the design's example."""
    Resample, _ = resample
    files = _inputs(tmp_path, 3)
    task = Resample().split(("in_file", "voxel"), in_file=files, voxel=[0.5, 1.0, 2.0])
    task.inputs.voxel[2] = 0.25
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(task)
    assert Path(result.outputs.out_file[2]).read_text().endswith("voxel=0.25\n")


@python.define(outputs=["value", "doubled"])
def Pair(x: int, offset: int = 0) -> tuple[int, int]:
    return x + offset, 2 * (x + offset)


def test_serial_and_cf_agree(tmp_path: Path, resample: tuple[type, Path]) -> None:
    """Serial and cf give identical outputs and identical cache directories."""
    Resample, _ = resample
    files = _inputs(tmp_path, 4)
    found = {}
    for worker in ("serial", "cf"):
        cache = tmp_path / f"cache-{worker}"
        with Submitter(cache_dir=cache, worker=worker) as sub:
            py = sub(Pair(offset=1).split(x=[1, 2, 3]).combine("x"))
            sh = sub(Resample().split(["in_file", "voxel"], in_file=files, voxel=[1.0, 2.0]))
        assert not py.errored and not sh.errored
        contents = [Path(p).read_text() for p in sh.outputs.out_file]
        found[worker] = (
            py.outputs.asdict(),
            py.output_dir.name,
            [d.name for d in py.job_dirs],
            sh.output_dir.name,
            [d.name for d in sh.job_dirs],
            contents,
            # job directories only: whether .file-hashes/ exists depends on the files' age
            sorted(p.name for p in _job_dirs(cache)),
        )
    assert found["serial"] == found["cf"]


def _job_dirs(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if not p.name.startswith(".")]


def test_bad_input_raises_before_any_job(
    tmp_path: Path, cache_dir: Path, resample: tuple[type, Path]
) -> None:
    """Wrong types, unequal zips, missing files, unhashable values: raised, nothing run."""
    Resample, log = resample
    files = _inputs(tmp_path, 3)

    @python.define
    def Anything(x: object) -> object:
        return x

    with Submitter(cache_dir=cache_dir) as sub:
        with pytest.raises(SpecError, match="'voxel'"):
            Resample(voxel="big")
        with pytest.raises(SplitterError, match=r"in_file has 3, voxel has 2"):
            sub(Resample().split(("in_file", "voxel"), in_file=files, voxel=[1.0, 2.0]))
        missing = tmp_path / "inputs" / "gone.nii"
        with pytest.raises(InputFileError) as info:
            sub(Resample(voxel=1.0).split(in_file=[*files, missing]))
        assert info.value.field == "in_file" and "gone.nii" in str(info.value)
        with pytest.raises(HashingError, match=r"input 'x'.*object"):
            sub(Anything().split(x=[1, object()]))
        with pytest.raises(SpecError, match=r"Mandatory field .voxel. is not set"):
            sub(Resample(in_file=files[0]))
        with pytest.raises(SpecError, match="expected a task instance"):
            sub(Resample)  # the class, not an instance
    assert _executions(log) == []
    assert _job_dirs(cache_dir) == []


def test_failing_element_does_not_stop_others(tmp_path: Path, cache_dir: Path, worker: str) -> None:
    """One failing element is reported with its directory and traceback; the rest complete."""
    flag = tmp_path / "broken"
    flag.touch()

    @python.define
    def Fragile(x: int, flag: str) -> int:
        import os

        if x == 2 and os.path.exists(flag):
            raise ValueError(f"cannot handle {x}")
        return x * 100

    task = Fragile(flag=str(flag)).split(x=[1, 2, 3])
    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        result = sub(task)
    assert result.errored
    assert result.outputs.out == [100, None, 300]
    (failure,) = result.errors
    assert failure.index == 1 and failure.inputs == {"x": 2}
    assert failure.error_type == "ValueError" and "cannot handle 2" in failure.message
    assert "Traceback" in failure.traceback and "raise ValueError" in failure.traceback
    assert failure.output_dir == result.job_dirs[1]
    assert (failure.output_dir / "_error.json").exists()
    with pytest.raises(TaskFailedError, match="cannot handle 2") as info:
        result.raise_for_errors()
    assert info.value.errors == result.errors

    flag.unlink()  # fix the cause: only the failed job runs again
    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        again = sub(task)
    assert again.outputs.out == [100, 200, 300]
    assert again.stats == {"executed": 1, "reused": 2, "failed": 0, "skipped": 0}
    assert not (again.job_dirs[1] / "_error.json").exists()


def test_split_directory_records_its_jobs(cache_dir: Path) -> None:
    """The split task's own directory lists its element jobs and holds the combined result."""
    import json

    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Pair().split(x=[1, 2]))
    listing = json.loads((result.output_dir / "_jobs.json").read_text())
    assert listing["jobs"] == [d.name for d in result.job_dirs]
    assert (result.output_dir / "_result.pkl").exists()


def test_calling_a_task_directly(cache_dir: Path) -> None:
    """``task(cache_dir=...)`` runs it and returns its outputs."""
    outputs = Pair(x=2, offset=3)(cache_dir=cache_dir)
    assert (outputs.value, outputs.doubled) == (5, 10)


def test_file_outputs_survive_moving_the_cache(tmp_path: Path, resample: tuple[type, Path]) -> None:
    """Output paths are stored relative to their job, so a moved cache still resolves them."""
    Resample, _ = resample
    files = _inputs(tmp_path, 1)
    cache = tmp_path / "cache-a"
    with Submitter(cache_dir=cache) as sub:
        sub(Resample(in_file=files[0], voxel=1.0))
    moved = tmp_path / "cache-b"
    cache.rename(moved)
    with Submitter(cache_dir=moved) as sub:
        result = sub(Resample(in_file=files[0], voxel=1.0))
    assert result.stats["reused"] == 1
    assert isinstance(result.outputs.out_file, File)
    assert Path(result.outputs.out_file).parent.parent == moved


def test_job_run_ids_are_random_version_4_uuids() -> None:
    """A job run's id reads back as a version 4, RFC 4122 UUID, is written as uuid does, and
    is not repeated (nor are its variant digits stuck)."""
    import uuid

    from provgraph.engine.runtime import new_run_id

    made = [new_run_id() for _ in range(4000)]
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    assert len(set(made)) == len(made)
    assert {text[19] for text in made} == set("89ab")


@pytest.mark.parametrize("folder", ["/abs/cache", "rel/cache", ".", "/"])
def test_a_job_directory_is_the_cache_joined_with_its_name(folder: str) -> None:
    """However the job directory's path is made (pathlib's own child maker where there is
    one), it is the path ``/`` gives, and a real ``Path``."""
    from provgraph import cache

    made = cache.job_dir(Path(folder), "Task", "0123abcd")
    assert made == Path(folder) / "Task-0123abcd" and isinstance(made, Path)
    assert str(made) == str(Path(folder) / "Task-0123abcd")
    assert made.parent == Path(folder) and made.name == "Task-0123abcd"


def _skip_unless_listed(folder: Path) -> None:
    """Skip unless ``folder``'s file system counts subdirectories in its link count (ext4, xfs,
    tmpfs; not btrfs): the cache is listed only where it does."""
    before = os.stat(folder).st_nlink
    probe = folder / ".probe-links"
    probe.mkdir()
    counted = os.stat(folder).st_nlink == before + 1
    probe.rmdir()
    if not counted:
        pytest.skip("this file system's link counts do not count subdirectories: never listed")


def _count_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every directory listed (``os.scandir``) from now on."""
    listed: list[str] = []
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return listed


def _count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every job directory whose result is looked up from now on."""
    from provgraph import cache

    looked: list[Path] = []
    real = cache.read_result_and_record

    def counted(directory: Path, **options: Any) -> Any:
        looked.append(directory)
        return real(directory, **options)

    monkeypatch.setattr(cache, "read_result_and_record", counted)
    return looked


@pytest.mark.parametrize("provenance", [False, True])
def test_a_cold_run_lists_the_cache_instead_of_looking_up_every_job(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, provenance: bool
) -> None:
    """Lookups that find nothing cost a system call and an exception each: once a submission
    has had enough of them, the cache is listed once and the rest are known to be absent. A
    warm run still reads every result."""
    from provgraph import cache
    from regression_tasks import Square

    _skip_unless_listed(cache_dir)
    monkeypatch.setattr(cache.Listing, "MAX_AGE", 1e9)  # (however loaded the machine)
    looked = _count_lookups(monkeypatch)
    xs = list(range(400))
    with Submitter(cache_dir=cache_dir, progress=False, provenance=provenance) as sub:
        cold = sub(Square().split(x=xs))
    assert cold.outputs.out == [x * x for x in xs] and cold.stats["executed"] == 400
    assert 0 < len(looked) < 100  # (64 misses, then the listing; and the split's directory)
    looked.clear()
    with Submitter(cache_dir=cache_dir, progress=False, provenance=provenance) as sub:
        warm = sub(Square().split(x=xs))
    assert warm.outputs.out == cold.outputs.out and warm.stats["reused"] == 400
    assert len(looked) >= 400


def test_a_large_cache_is_not_listed_for_a_few_jobs(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing pays only when the cache holds few directories beside the misses."""
    from regression_tasks import Square

    for i in range(600):
        (cache_dir / f"Other-{i}").mkdir()
    listed = _count_listings(monkeypatch)
    with Submitter(cache_dir=cache_dir, progress=False, provenance=False) as sub:
        result = sub(Square().split(x=list(range(100))))
    assert result.stats["executed"] == 100
    assert str(cache_dir) not in listed


@pytest.mark.parametrize("worker", ["serial", "cf"])
def test_jobs_repeated_after_the_listing_are_reused_not_run_again(
    cache_dir: Path, worker: str
) -> None:
    """A job sent after the cache was listed may be met again in the same submission: it is
    looked up, and reused (one execution per distinct job, whatever the worker's timing)."""
    from regression_tasks import Square

    xs = list(range(150)) + list(range(150))
    with Submitter(cache_dir=cache_dir, worker=worker, progress=False) as sub:
        result = sub(Square().split(x=xs))
    assert result.outputs.out == [x * x for x in xs]
    assert result.stats["executed"] == 150 and result.stats["reused"] == 150


_OTHER_PROCESS = """
import sys
import regression_tasks
from provgraph import Submitter
with Submitter(cache_dir=sys.argv[1], progress=False) as sub:
    sub(getattr(regression_tasks, sys.argv[2])(x=int(sys.argv[3])))
"""


def _another_process_runs(
    cache_dir: Path, task: str, x: int, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A hook: when the job of index 100 is sent (the cache was listed after 64 misses),
    another process runs ``task(x=x)`` on the same cache. The listing is kept however long
    that takes (else the job would be found by a plain lookup, not through the listing)."""
    import subprocess
    import sys

    from provgraph import cache
    from provgraph.engine import events

    monkeypatch.setattr(cache.Listing, "MAX_AGE", 1e9)

    tests = Path(__file__).parent
    done: list[bool] = []

    def hook(event: Any) -> None:
        if isinstance(event, events.JobSubmitted) and event.job.index == 100 and not done:
            done.append(True)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(tests), *sys.path))}
            command = [sys.executable, "-c", _OTHER_PROCESS, str(cache_dir), task, str(x)]
            subprocess.run(command, check=True, env=env)

    return hook


def test_a_result_another_process_saves_after_the_listing_is_reused(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process runs one of the jobs after this submission listed the cache: the job is
    sent, finds that result under its lock and reuses it; its record is that process's only."""
    from provgraph import ProvenanceStore
    from regression_tasks import Square

    later = 299
    hook = _another_process_runs(cache_dir, "Square", later, monkeypatch)
    xs = list(range(300))
    with Submitter(cache_dir=cache_dir, progress=False, hooks=[hook]) as sub:
        result = sub(Square().split(x=xs))
    assert result.outputs.out == [x * x for x in xs]
    assert result.stats["executed"] == 299 and result.stats["reused"] == 1
    query = (
        "SELECT ?run WHERE { ?run a pg:JobRun ; pg:status 'succeeded' ; prov:used ?in . "
        "?in prov:value ?x } "
    )
    rows = ProvenanceStore(cache_dir).query(query.replace("?x }", f"{later} }}"))
    assert len(list(rows)) == 1
    total = ProvenanceStore(cache_dir).query("SELECT ?run WHERE { ?run a pg:JobRun }")
    assert len(list(total)) == 300


@pytest.mark.parametrize("worker", ["serial", "cf"])
def test_a_forced_rerun_reruns_a_result_another_process_saved_after_the_listing(
    cache_dir: Path, worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rerun=True`` runs every job again, those another process saved meanwhile too: a rerun
    looks each job up (the listing never stands in for what it must replace)."""
    from regression_tasks import Square

    hook = _another_process_runs(cache_dir, "Square", 299, monkeypatch)
    xs = list(range(300))
    with Submitter(cache_dir=cache_dir, worker=worker, progress=False, hooks=[hook]) as sub:
        result = sub(Square().split(x=xs), rerun=True)
    assert result.outputs.out == [x * x for x in xs]
    assert result.stats["executed"] == 300 and result.stats["reused"] == 0


def test_a_workflow_another_process_saved_after_the_listing_is_reused_whole(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow job is never sent to a worker (it opens here): it is looked up, so the result
    another process saved meanwhile is reused whole, not opened and saved again."""
    from provgraph import ProvenanceStore, cache
    from regression_tasks import SquarePlusOne

    hook = _another_process_runs(cache_dir, "SquarePlusOne", 199, monkeypatch)
    xs = list(range(200))
    with Submitter(cache_dir=cache_dir, progress=False, hooks=[hook]) as sub:
        result = sub(SquarePlusOne().split(x=xs))
    assert result.outputs.out == [x * x + 1 for x in xs]
    assert result.node_stats["SquarePlusOne"]["reused"] == 1
    saved = [
        d
        for d in cache_dir.glob("SquarePlusOne-*")
        if (stored := cache.read_result(d)) is not None and stored.outputs.get("out") == 199**2 + 1
    ]
    assert len(saved) == 1
    runs = ProvenanceStore(cache_dir).query(
        "SELECT ?run WHERE { ?run a pg:WorkflowRun ; pg:outputDir ?d . "
        f"FILTER(CONTAINS(STR(?d), '{saved[0].name}')) }}"
    )
    assert len(list(runs)) == 1


def test_a_listing_is_trusted_only_for_a_while(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its age (``Listing.MAX_AGE``) a listing is dropped and jobs are looked up again
    (until the misses call for a new one): what other processes made since is found."""
    from provgraph import cache
    from regression_tasks import Square

    monkeypatch.setattr(cache.Listing, "MAX_AGE", -1.0)  # (always past: never trusted)
    looked = _count_lookups(monkeypatch)
    with Submitter(cache_dir=cache_dir, progress=False, provenance=False) as sub:
        result = sub(Square().split(x=list(range(400))))
    assert result.stats["executed"] == 400
    assert set(result.job_dirs) <= set(looked)  # every job looked up, none known absent


def test_a_listing_is_taken_after_misses_dropped_when_old_and_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's life: taken after LIST_AFTER misses; it tells absent directories (not
    those made since by this submission); once too old it is dropped, and taken again after
    LIST_AFTER more misses, seeing what was made meanwhile."""
    from provgraph import cache

    _skip_unless_listed(tmp_path)
    monkeypatch.setattr(cache.Listing, "MAX_AGE", 1e9)  # (young, however loaded the machine)
    listing = cache.Listing(tmp_path)
    (tmp_path / "Job-old").mkdir()
    for _ in range(cache.Listing.LIST_AFTER - 1):
        listing.missed()
    assert not listing.lacks(tmp_path / "Job-new")  # (not listed yet)
    listing.missed()
    assert listing.lacks(tmp_path / "Job-new")
    assert not listing.lacks(tmp_path / "Job-old")
    listing.made(tmp_path / "Job-sent")
    assert not listing.lacks(tmp_path / "Job-sent")
    (tmp_path / "Job-new").mkdir()  # another process makes it: not seen by this listing
    assert listing.lacks(tmp_path / "Job-new")
    monkeypatch.setattr(cache.Listing, "MAX_AGE", -1.0)
    assert not listing.lacks(tmp_path / "Job-new")  # too old: dropped
    monkeypatch.setattr(cache.Listing, "MAX_AGE", 1e9)
    assert not listing.lacks(tmp_path / "Job-other")
    for _ in range(cache.Listing.LIST_AFTER):
        listing.missed()
    assert not listing.lacks(tmp_path / "Job-new")  # listed again: there now
    assert listing.lacks(tmp_path / "Job-other")


def test_a_listing_is_retaken_once_per_doubling_of_the_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a listing answered counts as misses: the real misses after many such answers
    (directories an earlier failed run left) list the cache again once, not once each."""
    from provgraph import cache

    _skip_unless_listed(tmp_path)
    monkeypatch.setattr(cache.Listing, "MAX_AGE", 1e9)
    listed = _count_listings(monkeypatch)
    listing = cache.Listing(tmp_path)
    for _ in range(cache.Listing.LIST_AFTER):
        listing.missed()
    assert len(listed) == 1
    assert all(listing.lacks(tmp_path / f"Job-{i}") for i in range(1000))
    for _ in range(10):
        listing.missed()
    assert len(listed) == 2


def test_a_finished_job_keeps_its_outputs_not_what_it_ran_with(tmp_path: Path) -> None:
    """What a run keeps of each finished job until its end (a split of 100,000 keeps 100,000):
    its outputs and directory, not its outcome (hooks had it) nor its inputs' digests (the job
    hash had them); a hook still sees the outcome on the job while the job finishes."""
    from provgraph.engine import events

    finished: list[Any] = []
    seen_outcome: list[bool] = []

    def hook(event: Any) -> None:
        if isinstance(event, events.JobFinished):
            finished.append(event.job)
            seen_outcome.append(event.job.outcome is event.outcome)

    @python.define
    def Twice(x: int) -> int:
        return 2 * x

    with Submitter(cache_dir=tmp_path, hooks=[hook], progress=False) as sub:
        result = sub(Twice().split(x=[1, 2, 3]))
    assert result.outputs.out == [2, 4, 6] and len(finished) == 3 and all(seen_outcome)
    assert [job.outputs for job in finished] == [{"out": 2}, {"out": 4}, {"out": 6}]
    assert all(job.outcome is None and job.digests is None for job in finished)
    assert all(job.output_dir.is_dir() and job.job_hash for job in finished)
