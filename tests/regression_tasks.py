"""Tasks for the regression tests (importable by pool processes)."""

from __future__ import annotations

import sys
from pathlib import Path

from provgraph import File, python, workflow


def make_scale(k: int) -> type:
    """Two classes with one name and source, closing over different values."""

    @python.define
    def Scale(x: int) -> int:
        return x * k

    return Scale


@python.define(outputs=["xs", "ys"])
def Gen(n: int) -> tuple[list[int], list[int]]:
    return list(range(n)), [10 * i for i in range(n)]


@python.define
def Add(a: int, b: int = 0) -> int:
    return a + b


@python.define
def Range(n: int) -> list[int]:
    return list(range(n))


@python.define
def Square(x: int) -> int:
    return x * x


@workflow.define
def SquarePlusOne(x: int) -> int:
    squared = workflow.add(Square(x=x))
    return workflow.add(Add(a=squared.out, b=1)).out


@python.define
def Tally(rng: list[int], squares: list[int]) -> int:
    return len(rng) + sum(squares)


@python.define
def SumAll(values: list[int]) -> int:
    return sum(values)


@python.define
def Quitter(x: int) -> int:
    if x == 3:
        sys.exit("three is too many")
    return x


@python.define
def Write(text: str) -> File:
    path = Path("out.txt")
    path.write_text(text)
    return File(path)


@python.define
def ReadBack(f: File) -> str:
    return Path(f).read_text()


@workflow.define
def TwoFieldsOneUpstream(ns: list[int]) -> list[int]:
    g = workflow.add(Gen().split(n=ns), name="g")
    return workflow.add(Add(a=g.xs, b=g.ys).split(["a", "b"]), name="s").out


@workflow.define(outputs=["squares", "tally"])
def RaggedCombine(ns: list[int]) -> tuple[list[list[int]], list[int]]:
    r = workflow.add(Range().split(n=ns), name="r")
    s = workflow.add(Square().split(x=r.out).combine("x"), name="s")
    t = workflow.add(Tally(rng=r.out, squares=s.out), name="t")
    return s.out, t.out


@workflow.define
def SumOfEmpty(xs: list[int]) -> int:
    add = workflow.add(Add(b=2).split(a=xs).combine("a"), name="add")
    return workflow.add(SumAll(values=add.out), name="total").out


@workflow.define
def WriteThenRead(text: str) -> str:
    w = workflow.add(Write(text=text), name="write")
    return workflow.add(ReadBack(f=w.out), name="read").out


@workflow.define
def WriteWf(text: str) -> File:
    return workflow.add(Write(text=text), name="write").out


class Opaque:
    """A value with no content hash (but picklable)."""

    def __init__(self, x: int) -> None:
        self.x = x


@python.define
def MakeOpaque(x: int) -> object:
    return Opaque(x)


@python.define
def Split2(text: str) -> list[File]:
    paths = []
    for i, part in enumerate(text.split()):
        path = Path(f"part{i}.txt")
        path.write_text(part)
        paths.append(File(path))
    return paths


@python.define
def Join(files: list[File]) -> str:
    return " ".join(Path(f).read_text() for f in files)


@python.define
def Inc(x: int) -> int:
    return x + 1


@python.define
def Noisy(x: int) -> float:
    """Not deterministic: a rerun gives another value."""
    import random

    return x + random.random()
