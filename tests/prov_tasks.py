"""A three-step workflow with a split and a shell task with files, for the provenance tests."""

from __future__ import annotations

from pathlib import Path

from provgraph import File, python, shell, workflow

Copy = shell.define("cp <in_file:File> <out|out_file:File>", name="Copy")


@python.define
def CountWords(in_file: File) -> int:
    return len(Path(in_file).read_text().split())


@python.define
def Total(counts: list[int]) -> int:
    return sum(counts)


@python.define
def Explode(x: int) -> int:
    raise RuntimeError(f"exploded on {x}")


@workflow.define
def Study(files: list[File]) -> int:
    copy = workflow.add(Copy().split(in_file=files), name="copy")
    count = workflow.add(CountWords(in_file=copy.out_file).combine("copy.in_file"), name="count")
    return workflow.add(Total(counts=count.out), name="total").out


@workflow.define
def Counting(files: list[File]) -> int:
    """Words of each file, and their total: a workflow to nest (its list input from upstream)."""
    count = workflow.add(CountWords().split(in_file=files).combine("in_file"), name="count")
    return workflow.add(Total(counts=count.out), name="total").out


def make_inputs(folder: Path) -> list[Path]:
    """Three small text files."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = ["one two three", "four five", "six"]
    paths = []
    for i, text in enumerate(texts):
        path = folder / f"text{i}.txt"
        path.write_text(text + "\n")
        paths.append(path)
    return paths
