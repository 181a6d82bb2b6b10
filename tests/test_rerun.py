"""Rerun a recorded job from its provenance, and check whether it reproduced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import regression_tasks as R
from prov_tasks import Copy, make_inputs
from provgraph import File, ProvenanceError, ProvenanceStore, Submitter, python, workflow


def test_deterministic_job_reproduces(tmp_path: Path, cache_dir: Path) -> None:
    """A shell job with a file input reruns from its record and reproduces every output."""
    src = make_inputs(tmp_path / "in")[0]
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Copy(in_file=src))
    before = (original.output_dir / "_result.pkl").read_bytes()
    store = ProvenanceStore(cache_dir)
    result = store.rerun(original.output_dir.name, into=tmp_path / "scratch")
    assert result.reproduced and result.all_reproduced
    assert set(result.reproduced) == {"out_file", "stdout", "stderr", "return_code"}
    assert result.output_dir.parent == tmp_path / "scratch"
    assert (original.output_dir / "_result.pkl").read_bytes() == before  # never overwritten
    rows = list(
        store.query(
            "SELECT ?new ?ok WHERE { ?new pg:rerunOf ?old . "
            "?e prov:wasGeneratedBy ?new ; pg:reproduced ?ok }"
        )
    )
    assert len(rows) == 4 and all(ok.toPython() is True for _, ok in rows)


def test_non_deterministic_job_is_reported(tmp_path: Path, cache_dir: Path) -> None:
    """A job with a random output reruns with reproduced false, naming the output."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(R.Noisy(x=1))
    result = ProvenanceStore(cache_dir).rerun(original.output_dir.name, into=tmp_path / "s")
    assert result.reproduced == {"out": False} and not result.all_reproduced
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "rerun",
            str(cache_dir),
            original.output_dir.name,
            "--verify",
            "--into",
            str(tmp_path / "s2"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "out: NOT reproduced" in out.stdout


def test_changed_input_file_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    """A rerun whose input file was modified fails, naming the file and both hashes."""
    src = make_inputs(tmp_path / "in")[0]
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Copy(in_file=src))
    src.write_text("something else\n")
    with pytest.raises(ProvenanceError) as info:
        ProvenanceStore(cache_dir).rerun(original.output_dir.name, into=tmp_path / "s")
    message = str(info.value)
    assert str(src) in message and "recorded content hash xxh3-128:" in message
    assert "current xxh3-128:" in message
    src.unlink()
    with pytest.raises(ProvenanceError, match="is missing"):
        ProvenanceStore(cache_dir).rerun(original.output_dir.name, into=tmp_path / "s")


def test_whole_workflow_run_reruns_its_jobs_in_order(tmp_path: Path, cache_dir: Path) -> None:
    """Rerunning a submission reruns each of its jobs, in the order they ran."""
    from prov_tasks import Study

    inputs = make_inputs(tmp_path / "in")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Study(files=inputs))
    store = ProvenanceStore(cache_dir)
    ((submission,),) = list(store.query("SELECT ?s WHERE { ?s a pg:Submission }"))
    result = store.rerun(str(submission), into=tmp_path / "scratch")
    assert len(result.jobs) == 7 and result.all_reproduced
    order = [j.output_dir.name.split("-rerun-")[0] for j in result.jobs]
    assert order.index("Total") == 6 and order.count("Copy") == 3


@python.define
def Literals(n: int, x: float, flag: bool, text: str, missing: str | None = None) -> str:
    return repr((type(n), n, type(x), x, type(flag), flag, text, missing))


def _inputs_files(cache_dir: Path) -> list[Path]:
    return list(cache_dir.glob("Literals-*/_prov-*.inputs.pkl"))


def test_literal_inputs_rerun_from_the_record_alone(tmp_path: Path, cache_dir: Path) -> None:
    """Inputs that are all booleans, numbers and short strings are the record's own literals:
    no inputs pickle is written, and the rerun gets back the same values of the same types."""
    text = 'a "quoted" line\nand é'
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Literals(n=3, x=2.0, flag=True, text=text))
    assert _inputs_files(cache_dir) == []
    store = ProvenanceStore(cache_dir)
    (flag,) = [row[0] for row in store.query("SELECT ?f WHERE { ?run pg:inputsInRecord ?f }")]
    assert flag.toPython() is True
    result = store.rerun(original.output_dir.name, into=tmp_path / "scratch")
    assert result.outputs["out"] == original.outputs.out  # int stays int, 2.0 stays a float
    assert result.all_reproduced


@pytest.mark.parametrize(
    "inputs",
    [
        {"text": "x" * 257},  # too long to be a literal of the record
        {"text": "t", "missing": "x" * 300},  # nor an optional one
    ],
)
def test_other_inputs_are_pickled_beside_the_record(
    tmp_path: Path, cache_dir: Path, inputs: dict[str, object]
) -> None:
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Literals(n=1, x=0.5, flag=False, **inputs))
    assert len(_inputs_files(cache_dir)) == 1
    store = ProvenanceStore(cache_dir)
    assert not list(store.query("SELECT ?f WHERE { ?run pg:inputsInRecord ?f }"))
    assert store.rerun(original.output_dir.name, into=tmp_path / "s").all_reproduced


def test_an_edited_literal_input_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    """A record whose input literal no longer gives back its recorded content hash (edited by
    hand, or read with another type) is not rerun."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Literals(n=3, x=2.0, flag=True, text="t"))
    (record,) = original.output_dir.glob("_prov-*.trig")
    data = record.read_text()
    assert '"3"^^xsd:integer' in data
    record.write_text(data.replace('"3"^^xsd:integer', '"4"^^xsd:integer'))
    store = ProvenanceStore(cache_dir)
    with pytest.raises(ProvenanceError, match="input 'n' is recorded as"):
        store.rerun(original.output_dir.name, into=tmp_path / "s")


@python.define
def Nothing(x: int) -> int | None:
    return None


@python.define
def OrZero(v: int | None) -> int:
    return v or 0


@workflow.define
def NoneAcross(x: int) -> int:
    first = workflow.add(Nothing(x=x))
    return workflow.add(OrZero(v=first.out)).out


def test_inputs_from_upstream_are_pickled(tmp_path: Path, cache_dir: Path) -> None:
    """An input that came from another job is that job's entity, not this record's literal:
    even a None from upstream is pickled for reruns."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        assert sub(NoneAcross(x=1)).outputs.out == 0
    (job_dir,) = cache_dir.glob("OrZero-*")
    assert len(list(job_dir.glob("_prov-*.inputs.pkl"))) == 1
    assert ProvenanceStore(cache_dir).rerun(job_dir.name, into=tmp_path / "s").all_reproduced


@python.define
def Scaled(x: int) -> int:
    import os

    return x * int(os.environ.get("PROVGRAPH_TEST_SCALE", "1"))


def test_a_job_named_by_its_hash_is_the_run_whose_result_the_cache_holds(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun adds a run of the job; naming the job again still means the run whose result
    the cache holds: a second verify compares with the cached result too (not with the first
    rerun), and ``why`` explains that run."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        original = sub(Scaled(x=3))
    store = ProvenanceStore(cache_dir)
    ((first,),) = list(store.query("SELECT ?r WHERE { ?r a pg:JobRun }"))
    monkeypatch.setenv("PROVGRAPH_TEST_SCALE", "2")
    job = original.output_dir.name
    assert store.rerun(job, into=tmp_path / "a").reproduced == {"out": False}
    again = store.rerun(job, into=tmp_path / "b")
    assert again.reproduced == {"out": False}  # 6 against the cached 3, not against 6
    assert again.rerun_of == str(first)
    assert store.why(job).run == str(first)
    assert store.why(job[-32:-20]).run == str(first)


def test_ambiguous_empty_and_workflow_job_names_are_refused_or_followed(
    tmp_path: Path, cache_dir: Path
) -> None:
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        split = sub(Scaled().split(x=list(range(40))))
    store = ProvenanceStore(cache_dir)
    hashes = [Path(d).name.rsplit("-", 1)[-1] for d in split.job_dirs]
    first = max({h[0] for h in hashes}, key=lambda c: sum(h[0] == c for h in hashes))
    shared = sum(h[0] == first for h in hashes)
    assert shared > 1
    with pytest.raises(ProvenanceError, match=f"ambiguous: the hashes of {shared} recorded jobs"):
        store.why(first)
    with pytest.raises(ProvenanceError, match=f"ambiguous: the hashes of {shared} recorded"):
        store.rerun(first, into=tmp_path / "s")
    with pytest.raises(ProvenanceError, match="expected a run IRI, a job hash"):
        store.rerun(" ", into=tmp_path / "s")
    # the split's own directory: why names its run; rerun reruns all its jobs
    with pytest.raises(ProvenanceError, match=r"directory of a workflow run or split.*urn:uuid:"):
        store.why(str(split.output_dir))
    whole = store.rerun(str(split.output_dir), into=tmp_path / "w")
    assert len(whole.jobs) == 40 and whole.all_reproduced


@python.define
def Listed(n: int) -> list[File]:
    made = []
    for i in range(n):
        Path(f"part{i}.txt").write_text(f"part {i}\n")
        made.append(File(f"part{i}.txt"))
    return made


@python.define
def Joined(parts: list[File]) -> str:
    return "".join(Path(p).read_text() for p in parts)


def test_a_list_of_files_reruns_checked_whole(tmp_path: Path, cache_dir: Path) -> None:
    """A list-of-files output reproduces when every file does (compared as the list it is,
    not as one of its members); every file of a list input is checked before the rerun."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        made = sub(Listed(n=3))
        joined = sub(Joined(parts=made.outputs.out))
    store = ProvenanceStore(cache_dir)
    again = store.rerun(made.output_dir.name, into=tmp_path / "a")
    assert again.reproduced == {"out": True}
    assert store.rerun(joined.output_dir.name, into=tmp_path / "b").all_reproduced
    second = Path(made.outputs.out[1])
    second.write_text("changed\n")
    with pytest.raises(ProvenanceError, match=rf"input 'parts' file '{second}' has changed"):
        store.rerun(joined.output_dir.name, into=tmp_path / "c")


def test_a_rerun_is_part_of_a_workflow_run_and_submission_of_its_own(
    tmp_path: Path, cache_dir: Path
) -> None:
    """As every job run (DESIGN §4): part of a workflow run, part of a submission, both
    complete activities; all the jobs of a whole workflow's rerun share one."""
    from prov_tasks import Study

    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        one = sub(Scaled(x=2))
        sub(Study(files=make_inputs(tmp_path / "in")))
    store = ProvenanceStore(cache_dir)
    ((submission,),) = list(
        store.query("SELECT ?s WHERE { ?s a pg:Submission ; pg:taskName 'Study' }")
    )
    single = store.rerun(one.output_dir.name)
    whole = store.rerun(str(submission))
    parts = {
        str(run): (str(workflow), str(top), str(status))
        for run, workflow, top, status in store.query(
            "SELECT ?run ?wf ?sub ?status WHERE { ?run pg:rerunOf ?old ; pg:partOf ?wf . "
            "?wf a pg:WorkflowRun ; pg:partOf ?sub ; prov:endedAtTime ?e . "
            "?sub a pg:Submission ; pg:status ?status ; prov:endedAtTime ?e2 }"
        )
    }
    reran = [single.run, *(job.run for job in whole.jobs)]
    assert sorted(parts) == sorted(reran)  # every rerun, none part of itself
    assert all(parts[run][0] != run and parts[run][2] == "succeeded" for run in reran)
    assert len({parts[job.run][0] for job in whole.jobs}) == 1
    assert parts[single.run][0] != parts[whole.jobs[0].run][0]
    statuses = [r["status"] for r in store.runs()]
    assert "running" not in statuses and "died" not in statuses
    counts = {
        r["task"]: (r["executed"], r["reused"], r["failed"], r["skipped"]) for r in store.runs()
    }
    assert counts["rerun of Scaled"] == (1, 0, 0, 0) and counts["rerun"] == (7, 0, 0, 0)
    names = {
        str(name)
        for (name,) in store.query(
            "SELECT ?name WHERE { ?run pg:rerunOf ?old ; pg:partOf/pg:taskName ?name }"
        )
    }
    assert names == {"rerun of Scaled", "rerun"}  # each workflow run named as its submission


def test_a_rerun_reads_its_inputs_where_its_own_run_read_them(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Files of equal content are one content entity, with the places every run saw it at: a
    rerun checks and reads the files its run read, not another run's copies (before, a copy
    removed since made it fail as missing)."""
    mine, theirs = tmp_path / "mine.txt", tmp_path / "theirs.txt"
    for path in (mine, theirs):
        path.write_text("same words\n")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        ran = sub(Joined(parts=[File(mine)]))
        sub(Joined(parts=[File(theirs), File(mine)]))
    theirs.unlink()
    store = ProvenanceStore(cache_dir)
    result = store.rerun(ran.output_dir.name, into=tmp_path / "s")
    assert result.all_reproduced
    from provgraph.provenance.query import show_job  # (what `provgraph show` prints)

    (shown,) = [run for run in show_job(store, str(ran.output_dir)) if run["run"] != result.run]
    assert {row["where"] for row in shown["inputs"] if "where" in row} == {mine.as_uri()}


def test_after_a_forced_rerun_a_job_is_the_run_that_replaced_its_result(
    tmp_path: Path, cache_dir: Path
) -> None:
    """``sub(task, rerun=True)`` replaces the job's result; the job's name then means that
    run (a rerun itself), even after a later scratch rerun of it."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Scaled(x=4))
        again = sub(Scaled(x=4), rerun=True)
    store = ProvenanceStore(cache_dir)
    ((forced,),) = list(store.query("SELECT ?r WHERE { ?r pg:rerunOf ?old }"))
    store.rerun(again.output_dir.name, into=tmp_path / "s")  # a third run, in scratch
    assert store.why(again.output_dir.name).run == str(forced)
