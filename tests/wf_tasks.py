"""Tasks and workflows of the workflow conformance suite (importable by pool processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from provgraph import python, workflow


@python.define
def Add2(x: int) -> int:
    return x + 2


@python.define
def Multiply(x: int, y: int) -> int:
    return x * y


@python.define
def FunAddVar(a: int, b: int) -> int:
    return a + b


@python.define
def FunAddVar3(a: int, b: int, c: int) -> int:
    return a + b + c


@python.define
def Power(a: int, b: int) -> int:
    return int(a**b)


@python.define
def Identity(x: Any) -> Any:
    return x


@python.define
def ListOutput(x: int) -> list[int]:
    return [x, 2 * x, 3 * x]


@python.define
def SumList(x: list[int]) -> int:
    return sum(x)


@python.define
def Napper(x: int, pause: float = 0.0) -> int:
    """Sleeps ``pause`` seconds, then returns x."""
    time.sleep(pause)
    return x


@python.define
def FailOn(x: int, bad: int, flag: str) -> int:
    """Fails for x == bad while the file ``flag`` exists; logs each real execution."""
    with open(Path(flag).with_suffix(".log"), "a") as fh:
        fh.write(f"{x}\n")
    if x == bad and os.path.exists(flag):
        raise ValueError(f"bad value {x}")
    return x * 10


# -- workflows ----------------------------------------------------------------------------


@workflow.define
def OneSplit(x: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="add2")
    return a.out


@workflow.define
def ZipThenAdd(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(("x", "y"), x=x, y=y), name="mult")
    a = workflow.add(Add2(x=m.out), name="add2")
    return a.out


@workflow.define
def ZipThenAddCombined(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(("x", "y"), x=x, y=y), name="mult")
    a = workflow.add(Add2(x=m.out).combine("mult.x"), name="add2")
    return a.out


@workflow.define
def OuterThenAdd(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(["x", "y"], x=x, y=y), name="mult")
    a = workflow.add(Add2(x=m.out), name="add2")
    return a.out


@workflow.define
def OuterThenAddCombineX(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(["x", "y"], x=x, y=y), name="mult")
    a = workflow.add(Add2(x=m.out).combine("mult.x"), name="add2")
    return a.out


@workflow.define
def CombinedThenIdentity(x: list[int]) -> list[int]:
    m = workflow.add(Multiply(y=11).split("x", x=x).combine("x"), name="mult")
    i = workflow.add(Identity(x=m.out), name="identity")
    return i.out


@workflow.define
def PartlyCombinedThenIdentity(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(["x", "y"], x=x, y=y).combine("x"), name="mult")
    i = workflow.add(Identity(x=m.out), name="identity")
    return i.out


@workflow.define
def FullyCombinedThenIdentity(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(["x", "y"], x=x, y=y).combine(["x", "y"]), name="mult")
    i = workflow.add(Identity(x=m.out), name="identity")
    return i.out


def _two_upstreams(x: Any, y: Any) -> tuple[Any, Any]:
    ax = workflow.add(Add2().split("x", x=x), name="add2x")
    ay = workflow.add(Add2().split("x", x=y), name="add2y")
    return ax, ay


@workflow.define
def TwoUpstreams(x: list[int], y: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    return workflow.add(Multiply(x=ax.out, y=ay.out), name="mult").out


@workflow.define
def TwoUpstreamsCombineX(x: list[int], y: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    return workflow.add(Multiply(x=ax.out, y=ay.out).combine("add2x.x"), name="mult").out


@workflow.define
def TwoUpstreamsCombineY(x: list[int], y: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    return workflow.add(Multiply(x=ax.out, y=ay.out).combine("add2y.x"), name="mult").out


@workflow.define
def TwoUpstreamsCombineBoth(x: list[int], y: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    node = Multiply(x=ax.out, y=ay.out).combine(["add2x.x", "add2y.x"])
    return workflow.add(node, name="mult").out


@workflow.define
def TwoUpstreamsOwnSplit(x: list[int], y: list[int], c: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    node = FunAddVar3(a=ax.out, b=ay.out).split("c", c=c).combine("add2x.x")
    return workflow.add(node, name="addvar").out


@workflow.define
def TwoUpstreamsZipped(x: list[int], y: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, y)
    node = Multiply(x=ax.out, y=ay.out).split(("_add2x", "_add2y")).combine("add2y.x")
    return workflow.add(node, name="mult").out


@workflow.define
def SameInputZipped(x: list[int]) -> list[int]:
    ax, ay = _two_upstreams(x, x)
    return workflow.add(Multiply(x=ax.out, y=ay.out).split(("_add2x", "_add2y")), name="mult").out


@workflow.define
def ExtendState(x: list[int], y: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="add2")
    return workflow.add(Multiply(x=a.out).split("y", y=y), name="mult").out


@workflow.define
def ExtendStateExplicit(x: list[int], y: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="add2")
    return workflow.add(Multiply(x=a.out).split(["_add2", "y"], y=y), name="mult").out


@workflow.define
def ExtendStateTwoFields(x: list[int], b: list[int], c: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="add2")
    return workflow.add(FunAddVar3(a=a.out).split(["b", "c"], b=b, c=c), name="addvar").out


@workflow.define
def ThreeInSeries(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(["x", "y"], x=x, y=y), name="mult")
    a1 = workflow.add(Add2(x=m.out), name="add2_1st")
    return workflow.add(Add2(x=a1.out), name="add2_2nd").out


@workflow.define
def SplitOverUpstreamList(x: int) -> list[int]:
    lst = workflow.add(ListOutput(x=x), name="list")
    return workflow.add(Add2().split("x", x=lst.out), name="add2").out


@workflow.define
def SplitOverUpstreamListOuter(x: int, y: list[int]) -> list[int]:
    lst = workflow.add(ListOutput(x=x), name="list")
    return workflow.add(Multiply().split(["x", "y"], x=lst.out, y=y), name="mult").out


@workflow.define
def ScopedSplit(x: list[int], y: list[int]) -> list[int]:
    lst = workflow.add(ListOutput().split("x", x=x), name="list")
    return workflow.add(Multiply().split(["y", "x"], x=lst.out, y=y), name="mult").out


@workflow.define(outputs=["first", "second"])
def SuccessiveCombines(a: list[int], b: list[int]) -> tuple[list[Any], list[Any]]:
    p = workflow.add(Power().split(["a", "b"], a=a, b=b), name="power")
    i1 = workflow.add(Identity(x=p.out).combine("power.a"), name="identity1")
    i2 = workflow.add(Identity(x=i1.out).combine("power.b"), name="identity2")
    return i1.out, i2.out


@workflow.define
def AddMult(x: int, y: int) -> int:
    m = workflow.add(Multiply(x=x, y=y), name="mult")
    return workflow.add(Add2(x=m.out), name="add2").out


@workflow.define
def OneLineage(x: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="a")
    b = workflow.add(Identity(x=a.out), name="b")
    return workflow.add(FunAddVar(a=a.out, b=b.out), name="c").out


@workflow.define
def EmptyAcrossNodes(x: list[int]) -> list[int]:
    a = workflow.add(Add2().split("x", x=x), name="a")
    return workflow.add(Add2(x=a.out), name="b").out


@workflow.define
def Inner(x: int) -> int:
    return workflow.add(Add2(x=x), name="add2").out


@workflow.define
def NestedSplitNode(x: list[int]) -> list[int]:
    return workflow.add(Inner().split(x=x), name="inner").out


@workflow.define
def NestedInherits(x: list[int], y: list[int]) -> list[int]:
    m = workflow.add(Multiply().split(("x", "y"), x=x, y=y), name="mult")
    return workflow.add(Inner(x=m.out), name="inner").out


@workflow.define
def CombineThenZipUpstream(a: list[int]) -> int:
    s1 = workflow.add(Identity().split(x=a).combine("x"), name="step1")
    s2 = workflow.add(FunAddVar().split(("a", "b"), a=a, b=s1.out).combine("a"), name="step2")
    return workflow.add(SumList(x=s2.out), name="step3").out


@workflow.define
def Pipelined(x: list[int], pauses: list[float]) -> list[int]:
    a = workflow.add(Napper().split(("x", "pause"), x=x, pause=pauses), name="a")
    return workflow.add(Add2(x=a.out), name="b").out


@workflow.define(outputs=["combined", "independent"])
def Fragile(x: list[int], bad: int, flag: str) -> tuple[int, list[int]]:
    a = workflow.add(FailOn(bad=bad, flag=flag).split("x", x=x), name="a")
    b = workflow.add(Add2(x=a.out), name="b")
    c = workflow.add(Identity(x=b.out).combine("a.x"), name="c")
    total = workflow.add(SumList(x=c.out), name="total")
    d = workflow.add(Add2().split(x=x), name="d")
    return total.out, d.out


@workflow.define
def NapInner(x: int, pause: float) -> int:
    return workflow.add(Napper(x=x, pause=pause), name="nap").out


@workflow.define(outputs=["left", "right"])
def Siblings(pause: float) -> tuple[int, int]:
    left = workflow.add(NapInner(x=1, pause=pause), name="left")
    right = workflow.add(NapInner(x=2, pause=pause), name="right")
    return left.out, right.out


@python.define
def Held(x: int, marks: str) -> int:
    """Marks its start, then waits until ``marks/release`` exists."""
    import time

    (Path(marks) / f"started-{x}").touch()
    while not (Path(marks) / "release").exists():
        time.sleep(0.02)
    return x
