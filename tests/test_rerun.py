"""Rerun a recorded job from its provenance, and check whether it reproduced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import regression_tasks as R
from prov_tasks import Copy, make_inputs
from provgraph import ProvenanceError, ProvenanceStore, Submitter


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
