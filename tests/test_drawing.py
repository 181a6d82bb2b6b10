"""``provgraph.plot_workflow``: Pydra's three kinds of workflow drawing (issue 18), checked on
the DOT text and, where Graphviz is installed, rendered by it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from provgraph import SpecError, plot_workflow, python, workflow


@python.define
def Mul(x: int, y: int) -> int:
    return x * y


@python.define
def Add2(x: int) -> int:
    return x + 2


@python.define
def Total(x: list[int]) -> int:
    return sum(x)


@workflow.define
def Inner(x: int) -> int:
    a = workflow.add(Add2(x=x), name="add2_a")
    b = workflow.add(Add2(x=a.out), name="add2_b")
    return b.out


@workflow.define
def Outer(x: list[int], y: int) -> int:
    m = workflow.add(Mul(y=y).split("x", x=x), name="mult")
    w = workflow.add(Inner(x=m.out).combine("mult.x"), name="wfnd")
    t = workflow.add(Total(x=w.out), name="total")
    return t.out


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_simple_drawing_marks_state_and_nested_workflows(tmp_path: Path) -> None:
    lines = _lines(plot_workflow(Outer(x=[1, 2], y=3), tmp_path))
    assert "mult [color=blue]" in lines  # split
    assert "wfnd [shape=box, color=blue]" in lines  # fed by the split, combines it
    assert "total" in lines  # after the combine: no state
    assert "mult -> wfnd [color=blue]" in lines
    assert "wfnd -> total" in lines


def test_nested_drawing_opens_inner_workflows(tmp_path: Path) -> None:
    lines = _lines(plot_workflow(Outer, tmp_path, plot_type="nested", name="n"))
    start = lines.index("subgraph cluster_wfnd {")
    assert lines[start + 1] == "color=blue"
    assert "add2_a -> add2_b" in lines
    assert "mult -> add2_a [color=blue, lhead=cluster_wfnd]" in lines
    assert "add2_b -> total [ltail=cluster_wfnd]" in lines


def test_detailed_drawing_connects_ports(tmp_path: Path) -> None:
    lines = _lines(plot_workflow(Outer, tmp_path, plot_type="detailed"))
    assert 'struct_Outer [color=red, label="{WORKFLOW INPUT: | {<x> x | <y> y}}"];' in lines
    assert "struct_Outer:y -> struct_mult:y;" in lines
    assert "struct_mult:out -> struct_wfnd:x;" in lines
    assert "struct_total:out -> struct_Outer_out:out;" in lines


def test_bad_requests_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"plot_type='fancy'.*expected one of"):
        plot_workflow(Outer, tmp_path, plot_type="fancy")
    with pytest.raises(SpecError, match="expected a workflow"):
        plot_workflow(Mul, tmp_path)

    @workflow.define(dynamic=True)
    def Later(x: int) -> int:
        return workflow.add(Add2(x=x)).out

    with pytest.raises(SpecError, match="dynamic"):
        plot_workflow(Later, tmp_path)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_export_renders_each_format_with_graphviz(tmp_path: Path) -> None:
    dot_file, made = plot_workflow(Outer, tmp_path, export=["svg", "png"], name="pic")
    assert dot_file == tmp_path / "pic.dot"
    assert made == [tmp_path / "pic.svg", tmp_path / "pic.png"]
    assert made[0].read_text().lstrip().startswith("<?xml")
    assert made[1].read_bytes()[:4] == b"\x89PNG"


@workflow.define
def Deeper(x: int) -> int:
    return workflow.add(Inner(x=x), name="inner").out


@workflow.define
def Clashing(x: int) -> int:
    a = workflow.add(Add2(x=x), name="add2_a")
    f = workflow.add(Inner(x=a.out), name="first")
    s = workflow.add(Deeper(x=f.out), name="second")
    return workflow.add(Add2(x=s.out), name="add-1").out


def test_nested_names_that_repeat_are_told_apart_by_their_path(tmp_path: Path) -> None:
    lines = _lines(plot_workflow(Clashing, tmp_path, plot_type="nested"))
    assert '"first.add2_a" -> "first.add2_b"' in lines  # add2_a is also a node of Clashing
    assert (
        '"first.add2_b" -> "second.inner.add2_a" [ltail=cluster_first, lhead=cluster_second]'
        in lines
    )
    assert '"second.inner.add2_b" -> "add-1" [ltail=cluster_second]' in lines
    assert "subgraph cluster_inner {" in lines
    detailed = _lines(plot_workflow(Clashing, tmp_path, plot_type="detailed"))
    assert 'struct_second:out -> "struct_add-1":x;' in detailed


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_every_node_as_drawn(tmp_path: Path) -> None:
    import subprocess

    for kind in ("simple", "nested", "detailed"):
        dot_file = plot_workflow(Clashing, tmp_path, plot_type=kind)
        done = subprocess.run(["dot", "-Tplain", str(dot_file)], capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == ""
        nodes = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("node")]
        assert len(nodes) == len(set(nodes)) and not any(n.startswith("-") for n in nodes)
