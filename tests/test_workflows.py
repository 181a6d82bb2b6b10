"""Workflows: the split/combine conformance suite, pipelining, failures and nesting.

Each case gives the task, the exact expected output and the number of jobs of each node (jobs
run or found in the cache: identical jobs within one run are run once). Every case runs on
serial and on cf, and both must leave identical cache directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import wf_tasks as T
from provgraph import SpecError, Submitter, python, workflow
from provgraph.engine import events

CASES: dict[str, tuple[Any, Any, dict[str, int]]] = {
    # single tasks
    "task-split": (T.Add2().split("x", x=[1, 2]), [3, 4], {"Add2": 2}),
    "task-zip": (T.FunAddVar().split(("a", "b"), a=[3, 5], b=[10, 20]), [13, 25], {"FunAddVar": 2}),
    "task-outer": (
        T.FunAddVar().split(["a", "b"], a=[3, 5], b=[10, 20]),
        [13, 23, 15, 25],
        {"FunAddVar": 4},
    ),
    "task-outer-combine-a": (
        T.FunAddVar().split(["a", "b"], a=[3, 5], b=[10, 20]).combine("a"),
        [[13, 15], [23, 25]],
        {"FunAddVar": 4},
    ),
    "task-outer-combine-b": (
        T.FunAddVar().split(["a", "b"], a=[3, 5], b=[10, 20]).combine("b"),
        [[13, 23], [15, 25]],
        {"FunAddVar": 4},
    ),
    "task-outer-combine-all": (
        T.FunAddVar().split(["a", "b"], a=[3, 5], b=[10, 20]).combine(["b", "a"]),
        [13, 23, 15, 25],
        {"FunAddVar": 4},
    ),
    "task-nested": (
        T.FunAddVar3().split(["a", ("b", "c")], a=[1, 2], b=[10, 20], c=[100, 200]),
        [111, 221, 112, 222],
        {"FunAddVar3": 4},
    ),
    "task-nested-combine-zip": (
        T.FunAddVar3().split(["a", ("b", "c")], a=[1, 2], b=[10, 20], c=[100, 200]).combine("c"),
        [[111, 221], [112, 222]],
        {"FunAddVar3": 4},
    ),
    # a node fed by a split node inherits its state
    "wf-one-split": (T.OneSplit(x=[1, 2]), [3, 4], {"OneSplit/add2": 2}),
    "wf-zip-inherited": (
        T.ZipThenAdd(x=[1, 2], y=[11, 12]),
        [13, 26],
        {"ZipThenAdd/mult": 2, "ZipThenAdd/add2": 2},
    ),
    "wf-zip-combined-downstream": (
        T.ZipThenAddCombined(x=[1, 2], y=[11, 12]),
        [13, 26],
        {"ZipThenAddCombined/mult": 2, "ZipThenAddCombined/add2": 2},
    ),
    "wf-outer-inherited": (
        T.OuterThenAdd(x=[1, 2], y=[11, 12]),
        [13, 14, 24, 26],
        {"OuterThenAdd/mult": 4, "OuterThenAdd/add2": 4},
    ),
    "wf-partial-combine-upstream-axis": (
        T.OuterThenAddCombineX(x=[1, 2, 3], y=[11, 12]),
        [[13, 24, 35], [14, 26, 38]],
        {"OuterThenAddCombineX/mult": 6, "OuterThenAddCombineX/add2": 6},
    ),
    "wf-after-full-combine-no-state": (
        T.CombinedThenIdentity(x=[1, 2, 3]),
        [11, 22, 33],
        {"CombinedThenIdentity/mult": 3, "CombinedThenIdentity/identity": 1},
    ),
    "wf-after-partial-combine": (
        T.PartlyCombinedThenIdentity(x=[1, 2, 3], y=[11, 12]),
        [[11, 22, 33], [12, 24, 36]],
        {"PartlyCombinedThenIdentity/mult": 6, "PartlyCombinedThenIdentity/identity": 2},
    ),
    "wf-after-combine-all": (
        T.FullyCombinedThenIdentity(x=[1, 2, 3], y=[11, 12]),
        [11, 12, 22, 24, 33, 36],
        {"FullyCombinedThenIdentity/mult": 6, "FullyCombinedThenIdentity/identity": 1},
    ),
    # two split upstream nodes
    "wf-two-upstreams-outer": (
        T.TwoUpstreams(x=[1, 2, 3], y=[11, 12]),
        [39, 42, 52, 56, 65, 70],
        {"TwoUpstreams/add2x": 3, "TwoUpstreams/add2y": 2, "TwoUpstreams/mult": 6},
    ),
    "wf-two-upstreams-combine-first": (
        T.TwoUpstreamsCombineX(x=[1, 2, 3], y=[11, 12]),
        [[39, 52, 65], [42, 56, 70]],
        {"TwoUpstreamsCombineX/mult": 6},
    ),
    "wf-two-upstreams-combine-second": (
        T.TwoUpstreamsCombineY(x=[1, 2, 3], y=[11, 12]),
        [[39, 42], [52, 56], [65, 70]],
        {"TwoUpstreamsCombineY/mult": 6},
    ),
    "wf-two-upstreams-combine-both": (
        T.TwoUpstreamsCombineBoth(x=[1, 2, 3], y=[11, 12]),
        [39, 42, 52, 56, 65, 70],
        {"TwoUpstreamsCombineBoth/mult": 6},
    ),
    "wf-two-upstreams-and-own-split": (
        T.TwoUpstreamsOwnSplit(x=[2, 3], y=[11, 12], c=[10, 100]),
        [[27, 28], [117, 118], [28, 29], [118, 119]],
        {"TwoUpstreamsOwnSplit/addvar": 8},
    ),
    "wf-zipped-upstreams-combined": (
        T.TwoUpstreamsZipped(x=[1, 2], y=[11, 12]),
        [39, 56],
        {"TwoUpstreamsZipped/mult": 2},
    ),
    "wf-zipped-upstreams-same-input": (
        T.SameInputZipped(x=[1, 2]),
        [9, 16],
        {"SameInputZipped/mult": 2},
    ),
    # extending an inherited state
    "wf-extend-state": (
        T.ExtendState(x=[1, 2], y=[11, 12]),
        [33, 36, 44, 48],
        {"ExtendState/add2": 2, "ExtendState/mult": 4},
    ),
    "wf-extend-state-explicit": (
        T.ExtendStateExplicit(x=[1, 2], y=[11, 12]),
        [33, 36, 44, 48],
        {"ExtendStateExplicit/mult": 4},
    ),
    "wf-extend-state-two-fields": (
        T.ExtendStateTwoFields(x=[1, 2, 3], b=[10, 20], c=[100, 200]),
        [113, 213, 123, 223, 114, 214, 124, 224, 115, 215, 125, 225],
        {"ExtendStateTwoFields/addvar": 12},
    ),
    "wf-three-in-series": (
        T.ThreeInSeries(x=[1, 2], y=[11, 12]),
        [15, 16, 26, 28],
        {"ThreeInSeries/mult": 4, "ThreeInSeries/add2_1st": 4, "ThreeInSeries/add2_2nd": 4},
    ),
    "wf-one-lineage-not-crossed": (
        T.OneLineage(x=[1, 2]),
        [6, 8],
        {"OneLineage/a": 2, "OneLineage/b": 2, "OneLineage/c": 2},
    ),
    # splitting over a list produced upstream
    "wf-split-over-upstream-list": (
        T.SplitOverUpstreamList(x=1),
        [3, 4, 5],
        {"SplitOverUpstreamList/list": 1, "SplitOverUpstreamList/add2": 3},
    ),
    "wf-split-over-upstream-list-outer": (
        T.SplitOverUpstreamListOuter(x=1, y=[10, 100]),
        [10, 100, 20, 200, 30, 300],
        {"SplitOverUpstreamListOuter/mult": 6},
    ),
    "wf-scoped-split": (
        T.ScopedSplit(x=[1, 2], y=[10, 100]),
        [10, 20, 30, 20, 40, 60, 100, 200, 300, 200, 400, 600],
        {"ScopedSplit/list": 2, "ScopedSplit/mult": 12},
    ),
    "wf-successive-combines": (
        T.SuccessiveCombines(a=[1, 2], b=[2, 3]),
        {"first": [[1, 4], [1, 8]], "second": [[1, 4], [1, 8]]},
        {
            "SuccessiveCombines/power": 4,
            "SuccessiveCombines/identity1": 4,
            "SuccessiveCombines/identity2": 2,
        },
    ),
    "wf-combine-then-zip-upstream": (
        T.CombineThenZipUpstream(a=[1, 2, 3]),
        12,
        {"CombineThenZipUpstream/step2": 3, "CombineThenZipUpstream/step3": 1},
    ),
    # whole workflows split and combined
    "wf-level-split": (
        T.AddMult(y=11).split("x", x=[1, 2, 3]),
        [13, 24, 35],
        {"AddMult[0]/mult": 1, "AddMult[2]/add2": 1},
    ),
    "wf-level-split-combine": (
        T.AddMult().split(["x", "y"], x=[1, 2, 3], y=[11, 12]).combine("x"),
        [[13, 24, 35], [14, 26, 38]],
        {"AddMult[5]/add2": 1},
    ),
    "wf-level-split-of-split-workflow": (
        T.OneSplit().split(x=[[1, 2], [3]]),
        [[3, 4], [5]],
        {"OneSplit[0]/add2": 2, "OneSplit[1]/add2": 1},
    ),
    # nested workflows
    "wf-nested-split-node": (
        T.NestedSplitNode(x=[2, 4]),
        [4, 6],
        {"NestedSplitNode/inner[0]/add2": 1, "NestedSplitNode/inner[1]/add2": 1},
    ),
    "wf-nested-inherits-state": (
        T.NestedInherits(x=[2, 4], y=[1, 10]),
        [4, 42],
        {"NestedInherits/mult": 2, "NestedInherits/inner[1]/add2": 1},
    ),
    # empty splits
    "wf-empty-across-nodes": (T.EmptyAcrossNodes(x=[]), [], {}),
    "task-empty": (T.Add2().split(x=[]), [], {}),
}


def _value(result: Any) -> Any:
    values = result.outputs.asdict()
    if set(values) == {"out"}:
        return values["out"]
    return values


def _jobs(result: Any) -> dict[str, int]:
    return {node: s["executed"] + s["reused"] for node, s in result.node_stats.items()}


def _tree(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("case", sorted(CASES))
def test_conformance(case: str, tmp_path: Path) -> None:
    """Exact outputs, nesting and jobs per node, identical on serial and cf."""
    task, expected, jobs = CASES[case]
    trees = []
    for worker in ("serial", "cf"):
        cache = tmp_path / worker
        with Submitter(cache_dir=cache, worker=worker) as sub:
            result = sub(task)
        assert not result.errored, result.errors
        assert _value(result) == expected, worker
        counts = _jobs(result)
        for node, n in jobs.items():
            assert counts.get(node, 0) == n, (worker, node, counts)
        if not jobs:
            assert result.stats["executed"] == 0
        trees.append(_tree(cache))
    assert trees[0] == trees[1]


def test_conformance_suite_is_large_enough() -> None:
    """The issue asks for at least 25 cases."""
    assert len(CASES) >= 25


def test_rerun_reuses_the_whole_workflow(cache_dir: Path) -> None:
    """A rerun finds the workflow's own result and expands nothing."""
    with Submitter(cache_dir=cache_dir) as sub:
        first = sub(T.TwoUpstreams(x=[1, 2, 3], y=[11, 12]))
        again = sub(T.TwoUpstreams(x=[1, 2, 3], y=[11, 12]))
    assert first.stats["executed"] == 11
    assert again.stats == {"executed": 0, "reused": 1, "failed": 0, "skipped": 0}
    assert again.output_dir == first.output_dir
    assert again.outputs.out == first.outputs.out


def test_editing_a_node_changes_the_workflow_hash() -> None:
    """A workflow's identity includes its graph: a changed node gives a new directory."""
    from provgraph.engine.runtime import definition_digest

    @workflow.define
    def W1(x: int) -> int:
        return workflow.add(T.Add2(x=x), name="n").out

    @workflow.define
    def W2(x: int) -> int:
        return workflow.add(T.Identity(x=x), name="n").out

    assert definition_digest(W1, {}) != definition_digest(W2, {})


# -- construction errors -------------------------------------------------------------------


def test_incompatible_connection_names_both_ends() -> None:
    """Connecting an output to an input of another type fails when the workflow is defined."""

    @python.define
    def Text(x: int) -> str:
        return str(x)

    with pytest.raises(SpecError, match=r"text\.out \(str\).*'x' of Add2.*int"):

        @workflow.define
        def Bad(x: int) -> int:
            t = workflow.add(Text(x=x), name="text")
            return workflow.add(T.Add2(x=t.out)).out


def test_missing_output_lists_available() -> None:
    """A lazy field naming a missing output lists the outputs the node has."""
    with pytest.raises(SpecError, match=r"no output 'nope'.*\['out'\]"):

        @workflow.define
        def Bad(x: int) -> int:
            return workflow.add(T.Add2(x=x)).nope


def test_cycle_is_reported_with_node_names() -> None:
    """A cycle names the nodes on it."""
    with pytest.raises(SpecError, match=r"cycle: (a -> b -> a|b -> a -> b)"):

        @workflow.define
        def Loop(x: int) -> int:
            first = T.Add2()
            a = workflow.add(first, name="a")
            b = workflow.add(T.Add2(x=a.out), name="b")
            first.x = b.out
            return b.out


def test_duplicate_node_names_and_add_outside() -> None:
    """Node names are unique; ``workflow.add`` works only inside a constructor."""
    with pytest.raises(SpecError, match="already"):

        @workflow.define
        def Twice(x: int) -> int:
            workflow.add(T.Add2(x=x))
            return workflow.add(T.Add2(x=x)).out

    with pytest.raises(SpecError, match="only valid inside"):
        workflow.add(T.Add2(x=1))


# -- pipelining, failures, nesting ---------------------------------------------------------------


def _recorder(log: list[events.Event]) -> Any:
    return log.append


def test_pipelining_serial_runs_each_element_down_first(cache_dir: Path) -> None:
    """Serial: element 0's downstream job runs before element 1's upstream job."""
    log: list[events.Event] = []
    with Submitter(cache_dir=cache_dir, hooks=[_recorder(log)]) as sub:
        result = sub(T.Pipelined(x=[0, 1, 2], pauses=[0.0, 0.0, 0.0]))
    assert result.outputs.out == [2, 3, 4]
    order = [(e.job.node.name, e.job.index) for e in log if isinstance(e, events.JobFinished)]
    assert order.index(("b", 0)) < order.index(("a", 1))


def test_pipelining_cf_downstream_starts_before_slow_upstream_ends(cache_dir: Path) -> None:
    """cf: b[0] runs while a[2] (slow) is still running."""
    log: list[events.Event] = []
    with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2, hooks=[_recorder(log)]) as sub:
        result = sub(T.Pipelined(x=[0, 1, 2], pauses=[0.0, 0.0, 1.5]))
    assert result.outputs.out == [2, 3, 4]
    finished = {
        (e.job.node.name, e.job.index): e.outcome for e in log if isinstance(e, events.JobFinished)
    }
    assert finished[("b", 0)].ended < finished[("a", 2)].ended
    assert finished[("b", 0)].started > finished[("a", 0)].ended


def test_failure_skips_only_dependents_and_rerun_after_fix(tmp_path: Path, worker: str) -> None:
    """A failed job skips what depends on it; the rest completes; a rerun runs only those."""
    cache = tmp_path / "cache"
    flag = tmp_path / "flag"
    flag.touch()
    task = T.Fragile(x=[1, 2, 3], bad=2, flag=str(flag))
    with Submitter(cache_dir=cache, worker=worker) as sub:
        result = sub(task)
    assert result.errored
    by_status = {(e.node, e.index, e.status) for e in result.errors}
    assert ("Fragile/a", 1, "failed") in by_status
    assert ("Fragile/b", 1, "skipped") in by_status
    assert ("Fragile/c", 1, "skipped") in by_status
    assert ("Fragile/total", 0, "skipped") in by_status
    assert len(result.errors) == 4
    skipped_b = next(e for e in result.errors if e.node == "Fragile/b")
    assert skipped_b.cause == "Fragile/a[1]" and "Fragile/a[1]" in skipped_b.message
    assert result.node_stats["Fragile/d"]["executed"] == 3
    assert result.node_stats["Fragile/b"]["executed"] == 2

    flag.unlink()
    with Submitter(cache_dir=cache, worker=worker) as sub:
        again = sub(task)
    assert not again.errored
    assert again.outputs.combined == 12 + 22 + 32
    assert again.outputs.independent == [3, 4, 5]
    executed = {n: s["executed"] for n, s in again.node_stats.items() if s["executed"]}
    assert executed == {"Fragile/a": 1, "Fragile/b": 1, "Fragile/c": 1, "Fragile/total": 1}
    assert sorted((tmp_path / "flag.log").read_text().split()) == ["1", "2", "2", "3"]


def test_nested_workflows_run_in_parallel(cache_dir: Path) -> None:
    """Two nested workflows' jobs overlap in time on cf: siblings are not serialised."""
    log: list[events.Event] = []
    with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2, hooks=[_recorder(log)]) as sub:
        result = sub(T.Siblings(pause=0.8))
    assert (result.outputs.left, result.outputs.right) == (1, 2)
    naps = [e.outcome for e in log if isinstance(e, events.JobFinished)]
    assert len(naps) == 2
    first, second = naps
    assert first.started < second.ended and second.started < first.ended
    dirs = _tree(cache_dir)
    assert sum(d.startswith("NapInner-") for d in dirs) == 2 and any(
        d.startswith("Siblings-") for d in dirs
    )


def test_unset_input_of_a_node_fails_at_definition() -> None:
    """A node left without a mandatory input is reported when the workflow is defined."""
    with pytest.raises(SpecError, match=r"node 'mult': Mandatory field 'y' is not set"):

        @workflow.define
        def Half(x: int) -> int:
            return workflow.add(T.Multiply(x=x), name="mult").out
