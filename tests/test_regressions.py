"""Bugs found in review, each kept fixed by a test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import regression_tasks as R
from provgraph import SpecError, Submitter, TaskFailedError, workflow


def test_closures_over_different_values_are_different_tasks(tmp_path: Path, worker: str) -> None:
    """Same name and source, different closed-over value: different results, on any worker."""
    double, triple = R.make_scale(2), R.make_scale(3)
    assert double._definition_hash != triple._definition_hash
    with Submitter(cache_dir=tmp_path / "c", worker=worker, progress=False) as sub:
        assert sub(double().split(x=[1, 2])).outputs.out == [2, 4]
        assert sub(triple().split(x=[10, 20])).outputs.out == [30, 60]
        assert sub(triple(x=1)).outputs.out == 3


def test_two_outputs_of_one_split_upstream(cache_dir: Path) -> None:
    """Splitting over two outputs of one split node keeps each element's outputs together."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(R.TwoFieldsOneUpstream(ns=[1, 2]))
    assert result.outputs.out == [0, 0, 10, 1, 11]
    assert result.node_stats["TwoFieldsOneUpstream/s"]["executed"] == 4  # 0+0 twice: one job


def test_empty_groups_stay_in_line(cache_dir: Path) -> None:
    """An upstream element with an empty list gives an empty group, not a missing one."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(R.RaggedCombine(ns=[0, 2]))
        empty = sub(R.SumOfEmpty(xs=[]))
    assert not result.errored, result.errors
    assert result.outputs.squares == [[], [0, 1]]
    assert result.outputs.tally == [0, 3]
    assert not empty.errored and empty.outputs.out == 0


def test_sys_exit_in_a_task_fails_only_that_job(cache_dir: Path, worker: str) -> None:
    """sys.exit() in a task is that job's failure; the others complete."""
    with Submitter(cache_dir=cache_dir, worker=worker, progress=False) as sub:
        result = sub(R.Quitter().split(x=[1, 2, 3, 4]))
    assert result.outputs.out == [1, 2, None, 4]
    (failure,) = result.errors
    assert failure.error_type == "SystemExit" and "three is too many" in failure.message


def test_workflow_output_from_an_input_is_refused() -> None:
    """A workflow output must come from a node."""
    with pytest.raises(SpecError, match="output 'x_used' is its input 'x'"):

        @workflow.define(outputs=["result", "x_used"])
        def PassThrough(x: int) -> tuple[int, int]:
            return workflow.add(R.Add(a=x), name="add").out, x


def test_raise_for_errors_shows_the_failure_not_the_skip(cache_dir: Path) -> None:
    """The traceback shown is the failed job's, and skipped jobs are counted apart."""

    @workflow.define
    def Chain(x: int) -> int:
        q = workflow.add(R.Quitter(x=x), name="q")
        return workflow.add(R.Add(a=q.out), name="after").out

    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Chain(x=3))
    with pytest.raises(TaskFailedError) as info:
        result.raise_for_errors()
    assert "1 job(s) failed, 1 skipped" in str(info.value)
    assert "SystemExit: three is too many" in str(info.value)


def test_a_returned_file_must_exist(cache_dir: Path) -> None:
    """A Python task returning a path it did not create fails, naming the output."""
    from provgraph import File, python

    @python.define
    def Liar(x: int) -> File:
        return File("never_written.txt")

    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Liar(x=1))
    assert result.errored
    assert "output 'out' of Liar" in result.errors[0].message
    assert "does not exist" in result.errors[0].message


def test_cached_workflow_with_a_deleted_inner_file_runs_again(cache_dir: Path) -> None:
    """A workflow result pointing at a file that is gone is a cache miss."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        first = sub(R.WriteWf(text="hi"))
        assert Path(first.outputs.out).read_text() == "hi"
        for job in cache_dir.glob("Write-*"):
            shutil.rmtree(job)
        again = sub(R.WriteWf(text="hi"))
    assert again.stats["executed"] == 1
    assert Path(again.outputs.out).read_text() == "hi"
