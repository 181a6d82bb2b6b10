"""The provenance record under faults: kills, a full disk, planted results, killed index
rebuilds, and moved caches (issue 11). Every process death here is real (SIGKILL)."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from crash_tasks import Doomed, Slow
from prov_tasks import Study, make_inputs
from provgraph import ProvenanceStore, Submitter, cache
from provgraph.exceptions import CacheError
from provgraph.provenance.store import all_files

TESTS = str(Path(__file__).parent)

CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import provgraph.cache
from provgraph import Submitter
from crash_tasks import Doomed, DoomedSum
if {die_at_commit!r}:  # a real death between the record written aside and the result saved
    provgraph.cache.commit_result = lambda d, data: os.killpg(os.getpgid(0), signal.SIGKILL)
if {die_at_publish!r}:  # a real death between the result saved and its record published
    import provgraph.provenance.record as R
    R._Pending.__call__ = lambda self: os.killpg(os.getpgid(0), signal.SIGKILL)
    import provgraph.provenance.deferred as D
    D.DeferredRecords.publish = lambda *a: os.killpg(os.getpgid(0), signal.SIGKILL)
import provgraph.provenance.deferred as D
if {deferred!r} is True:  # every succeeded job's record data saved with its result
    D.START_AFTER = 0
elif {deferred!r} is False:  # every record written aside by the job's process, then published
    D.available = lambda: False
task = (
    DoomedSum(xs=list(range({n})), marks={marks!r}) if {workflow!r}
    else Doomed(marks={marks!r}).split(x=list(range({n})))
)
options = {{"n_procs": 2}} if {worker!r} == "cf" else {{}}
with Submitter(cache_dir={cache!r}, worker={worker!r}, progress=False, **options) as sub:
    sub(task)
"""


def _submit_and_die(
    cache_dir: Path,
    marks: Path,
    *,
    n: int,
    kills: list[int],
    worker: str = "serial",
    workflow: bool = False,
    die_at_commit: bool = False,
    die_at_publish: bool = False,
    deferred: bool | None = None,
) -> int:
    """Run a submission in its own process group; its return code (-9 when it was killed)."""
    (marks / "kills.txt").write_text(" ".join(map(str, kills)))
    code = CHILD.format(
        tests=TESTS,
        cache=str(cache_dir),
        marks=str(marks),
        n=n,
        worker=worker,
        workflow=workflow,
        die_at_commit=die_at_commit,
        die_at_publish=die_at_publish,
        deferred=deferred,
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, start_new_session=True
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    return proc.returncode


def _records(cache_dir: Path) -> list[Path]:
    return list(cache_dir.glob("*/_prov-*.trig"))


def _job_runs(store: ProvenanceStore) -> Counter[tuple[str, str]]:
    """(job hash, status) -> how many job runs the store has."""
    rows = store.query(
        "SELECT ?run ?hash ?status WHERE { ?run a pg:JobRun ; pg:jobHash ?hash ; "
        "pg:status ?status }"
    )
    return Counter((str(h), str(s)) for _, h, s in rows)


def _dangling(store: ProvenanceStore, prop: str) -> list[tuple[str, str]]:
    rows = store.query(
        f"SELECT ?a ?b WHERE {{ ?a {prop} ?b FILTER NOT EXISTS {{ ?b a prov:Activity }} }}"
    )
    return [(str(a), str(b)) for a, b in rows]


def _check_invariants(cache_dir: Path) -> Counter[tuple[str, str]]:
    """What must hold after any fault: the store answers every record on disk, no job has
    two successes, no link points to a run that was never recorded."""
    store = ProvenanceStore(cache_dir)
    runs = _job_runs(store)
    assert sum(runs.values()) == len(_records(cache_dir))
    assert all(count == 1 for (_, status), count in runs.items() if status == "succeeded")
    assert _dangling(store, "pg:partOf") == []
    assert _dangling(store, "pg:reused") == []
    return runs


def test_killed_submission_is_visible_without_an_index_step(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Item 1: after SIGKILL, every record on disk is answered, and later reuses point to them."""
    marks = tmp_path / "marks"
    marks.mkdir()
    assert _submit_and_die(cache_dir, marks, n=20, kills=[12]) == -signal.SIGKILL
    before = _records(cache_dir)
    assert len(before) == 12  # jobs 0..11 ran and were recorded; job 12 died
    store = ProvenanceStore(cache_dir)  # no refresh(scan=True), no provgraph index
    assert sum(_job_runs(store).values()) == 12
    assert _submit_and_die(cache_dir, marks, n=20, kills=[12]) == 0
    runs = _check_invariants(cache_dir)
    assert Counter(s for _, s in runs.elements()) == Counter(succeeded=20, interrupted=1)
    reused = store.query("SELECT ?r WHERE { ?s a pg:Submission ; pg:reused ?r }")
    assert len(list(reused)) == 12


@pytest.mark.parametrize("deferred", [False, True], ids=["aside", "with-result"])
def test_death_between_record_and_result_is_interrupted(
    tmp_path: Path, cache_dir: Path, deferred: bool
) -> None:
    """Item 2: a process that dies after writing its record (aside, or its data to go with
    the result) but before saving its result leaves no "succeeded" run; the rerun records one
    success and the dead run as interrupted."""
    marks = tmp_path / "marks"
    marks.mkdir()
    died = _submit_and_die(cache_dir, marks, n=3, kills=[], die_at_commit=True, deferred=deferred)
    assert died == -signal.SIGKILL
    (job,) = [d for d in cache_dir.iterdir() if d.name.startswith("Doomed-")]
    assert cache.read_result(job) is None
    store = ProvenanceStore(cache_dir)
    hash0 = cache.job_hash_of(job)
    # nothing claims success. A record left aside is finished at once by the index's
    # catch-up; record data dies with the unsaved result, and the job's lock, which names the
    # run, has it recorded as interrupted by the job's next run
    expected = Counter() if deferred else Counter({(hash0, "interrupted"): 1})
    assert _job_runs(store) == expected
    assert _submit_and_die(cache_dir, marks, n=3, kills=[], deferred=deferred) == 0
    runs = _check_invariants(cache_dir)
    assert runs[(hash0, "succeeded")] == 1 and runs[(hash0, "interrupted")] == 1
    ((message,),) = store.query(
        "SELECT ?m WHERE { ?r pg:status 'interrupted' ; pg:error/pg:errorMessage ?m }"
    )
    assert "died before its result was saved" in str(message)


@pytest.mark.parametrize("deferred", [False, True], ids=["aside", "with-result"])
def test_death_between_result_and_record_is_answered_at_once(
    tmp_path: Path, cache_dir: Path, deferred: bool
) -> None:
    """A process killed after saving a result but before its record was written or published:
    the next question answers that run as succeeded, with no job run or reused again first
    (from the record left aside, or from the record data saved with the result)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    died = _submit_and_die(cache_dir, marks, n=3, kills=[], die_at_publish=True, deferred=deferred)
    assert died == -signal.SIGKILL
    (job,) = [d for d in cache_dir.iterdir() if d.name.startswith("Doomed-")]
    saved = cache.read_result(job)
    assert saved is not None and _records(cache_dir) == []  # no record yet
    store = ProvenanceStore(cache_dir)
    assert _job_runs(store) == Counter({(cache.job_hash_of(job), "succeeded"): 1})
    assert [p.name for p in _records(cache_dir)] == [f"_prov-{saved.run_id}.trig"]
    assert _submit_and_die(cache_dir, marks, n=3, kills=[], deferred=deferred) == 0
    runs = _check_invariants(cache_dir)
    assert Counter(s for _, s in runs.elements()) == Counter(succeeded=3)


def test_full_disk_at_saving_fails_the_run(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2: a result that cannot be saved (ENOSPC) makes a failed run, never a success."""

    def full(directory: Path, data: bytes) -> None:
        raise CacheError(
            f"cannot write {directory}/_result.pkl: [Errno 28] No space left on device"
        )

    monkeypatch.setattr(cache, "commit_result", full)
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Doomed(marks=str(cache_dir)).split(x=[1, 2]))
    assert result.errored and "No space left" in result.errors[0].message
    monkeypatch.undo()
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        assert sub(Doomed(marks=str(cache_dir)).split(x=[1, 2])).outputs.out == [2, 4]
    runs = _check_invariants(cache_dir)
    assert Counter(s for _, s in runs.elements()) == Counter(failed=2, succeeded=2)


def test_another_jobs_result_is_not_reused(
    tmp_path: Path, cache_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Item 3: a result copied from another job's directory is a miss, with a warning."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        one = sub(Slow(x=1, marks=str(marks), pause=0.0))
        five = sub(Slow(x=5, marks=str(marks), pause=0.0))
    shutil.copy(five.output_dir / cache.RESULT_NAME, one.output_dir / cache.RESULT_NAME)
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        again = sub(Slow(x=1, marks=str(marks), pause=0.0))
    assert again.outputs.out == 10 and again.stats["executed"] == 1
    assert f"not of {one.output_dir.name!r}" in capfd.readouterr().err


KILLED_REBUILD = """
import os, shutil, signal, sys
import pyoxigraph
from provgraph.provenance.store import rebuild_index
if sys.argv[2] == "load":
    def die(self, quads):
        for _ in quads:  # a part of the load, then death
            os.kill(os.getpid(), signal.SIGKILL)
    pyoxigraph.Store.bulk_extend = die
else:  # as soon as the rebuild removes a folder
    remove = shutil.rmtree
    def die(*args, **kwargs):
        remove(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    shutil.rmtree = die
rebuild_index(sys.argv[1])
"""


@pytest.mark.parametrize("where", ["load", "remove"])
def test_killed_rebuild_keeps_the_previous_answers(
    tmp_path: Path, cache_dir: Path, where: str
) -> None:
    """Item 4: a rebuild killed half-way (loading, or removing a folder) leaves the index that
    was there, and the next rebuild completes."""
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Study(files=inputs))
    runs = sum(_job_runs(ProvenanceStore(cache_dir)).values())
    assert runs == 7
    killed = [sys.executable, "-c", KILLED_REBUILD, str(cache_dir), where]
    assert subprocess.run(killed, check=False).returncode == -signal.SIGKILL
    assert sum(_job_runs(ProvenanceStore(cache_dir)).values()) == runs
    assert ProvenanceStore(cache_dir).refresh(scan=True) == len(all_files(cache_dir))
    assert sum(_job_runs(ProvenanceStore(cache_dir)).values()) == runs


def test_killed_workflow_leaves_no_dangling_part_of(tmp_path: Path, cache_dir: Path) -> None:
    """Item 5: the workflow runs of a killed submission are recorded: nothing points nowhere."""
    marks = tmp_path / "marks"
    marks.mkdir()
    assert _submit_and_die(cache_dir, marks, n=8, kills=[5], workflow=True) == -signal.SIGKILL
    store = ProvenanceStore(cache_dir)
    assert sum(_job_runs(store).values()) == 5
    assert _dangling(store, "pg:partOf") == []
    rows = store.query("SELECT ?w WHERE { ?w a pg:WorkflowRun ; prov:startedAtTime ?t }")
    assert len(list(rows)) >= 1


@pytest.mark.parametrize("how", ["mv", "cp -a"])
def test_moved_cache_keeps_its_provenance(tmp_path: Path, how: str) -> None:
    """Item 6: a moved or copied cache is reused, and its provenance answers the new place."""
    inputs = make_inputs(tmp_path / "inputs")
    old = tmp_path / "old" / "cache"
    with Submitter(cache_dir=old, progress=False) as sub:
        first = sub(Study(files=inputs))
    new = tmp_path / "elsewhere" / "moved"
    new.parent.mkdir()
    if how == "mv":
        old.rename(new)
    else:
        subprocess.run(["cp", "-a", str(old), str(new)], check=True)
        shutil.rmtree(old)
    with Submitter(cache_dir=new, progress=False) as sub:
        again = sub(Study(files=inputs))
    assert again.outputs.out == first.outputs.out and again.stats["executed"] == 0
    store = ProvenanceStore(new)
    dirs = [str(d) for (d,) in store.query("SELECT DISTINCT ?d WHERE { ?r pg:outputDir ?d }")]
    assert dirs and all(d.startswith(new.as_uri() + "/") for d in dirs)
    places = store.query("SELECT ?p WHERE { ?e prov:wasGeneratedBy ?r ; prov:atLocation ?p }")
    assert all(Path(str(p).removeprefix("file://")).exists() for (p,) in places)
    (copy,) = store.runs_of("Copy")[:1]
    result = store.rerun(copy["run"], into=tmp_path / "scratch")
    assert result.all_reproduced
    shown = subprocess.run(
        [sys.executable, "-m", "provgraph.cli", "show", str(new), copy["job"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(new) in shown and str(old) not in shown
    assert "Copy" in store.why(copy["job"]).text()
    first_copy, second_copy = store.runs_of("Copy")[:2]
    assert store.diff(first_copy["run"], second_copy["run"])
    exported = store.export(tmp_path / "moved.ttl", "turtle").read_text()
    assert new.as_uri() in exported and old.as_uri() not in exported


def test_rerun_is_recorded_in_the_cache(cache_dir: Path) -> None:
    """Item 7: a rerun's record lives in the cache (its scratch folder is removed)."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        done = sub(Doomed(x=3, marks=str(cache_dir)))
    store = ProvenanceStore(cache_dir)
    result = store.rerun(done.output_dir.name)
    assert result.all_reproduced and not result.output_dir.exists()
    store.refresh(scan=True)  # a rebuild from the files on disk still has it
    ((original,),) = store.query(
        "SELECT ?o WHERE { ?r pg:rerunOf ?o }", r=__import__("rdflib").URIRef(result.run)
    )
    assert str(original) == result.rerun_of
    assert len(list(done.output_dir.glob("_prov-*.trig"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("worker", "deferred"),
    [("serial", False), ("serial", True), ("cf", None)],
    ids=["serial-aside", "serial-with-result", "cf"],
)
def test_ten_random_kills_of_a_300_job_split(
    tmp_path: Path, cache_dir: Path, worker: str, deferred: bool | None
) -> None:
    """Kill a 300-job split ten times at random points; after each, the store answers every
    record, no job has two successes and no link dangles; in the end each job has one."""
    marks = tmp_path / "marks"
    marks.mkdir()
    rng = random.Random(f"faults-{worker}")
    kills = sorted(rng.sample(range(300), 10))
    deaths = 0
    for k in kills:
        code = _submit_and_die(cache_dir, marks, n=300, kills=[k], worker=worker, deferred=deferred)
        deaths += code == -signal.SIGKILL
        _check_invariants(cache_dir)
    assert deaths >= (10 if worker == "serial" else 1)
    done = _submit_and_die(cache_dir, marks, n=300, kills=[], worker=worker, deferred=deferred)
    assert done == 0
    runs = _check_invariants(cache_dir)
    assert len({h for h, s in runs if s == "succeeded"}) == 300


def test_interrupted_records_conform_to_the_shapes(tmp_path: Path, cache_dir: Path) -> None:
    """The interrupted runs (from a pending record, and from a dead lock holder) validate."""
    import pyshacl
    import rdflib

    from provgraph.provenance import vocab
    from provgraph.provenance.store import load_trig

    marks = tmp_path / "marks"
    marks.mkdir()
    assert _submit_and_die(cache_dir, marks, n=3, kills=[], die_at_commit=True) == -9
    assert _submit_and_die(cache_dir, marks, n=6, kills=[4]) == -9
    assert _submit_and_die(cache_dir, marks, n=6, kills=[]) == 0
    runs = _check_invariants(cache_dir)
    assert Counter(s for _, s in runs.elements())["interrupted"] == 2
    dataset = rdflib.Dataset()
    for record in all_files(cache_dir):
        load_trig(dataset, record)
    union = rdflib.Graph()
    for s, p, o, _ in dataset.quads():
        union.add((s, p, o))
    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    conforms, _, text = pyshacl.validate(union, shacl_graph=shapes)
    assert conforms, text


def test_files_are_written_whole_and_a_full_disk_is_an_error(tmp_path: Path) -> None:
    """Results and records are written with plain system calls: every byte of a large
    buffer lands, and a device that is full (``/dev/full``) raises, never a short file."""
    data = random.randbytes(8 * 1024 * 1024 + 3)
    cache.write_file(tmp_path / "big", data)
    assert (tmp_path / "big").read_bytes() == cache.read_file(tmp_path / "big") == data
    cache.write_file(tmp_path / "big", b"small")  # an existing file is replaced whole
    assert (tmp_path / "big").read_bytes() == b"small"
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with pytest.raises(OSError) as caught:
        cache.write_file("/dev/full", data)
    assert caught.value.errno == 28  # ENOSPC
