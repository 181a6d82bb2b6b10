"""The provgraph demo: a workflow that counts words in files, and what it recorded.

A shell task is split over text files, its outputs are combined and summed by a Python task.
Run it twice: the second run reuses the cached result and executes nothing. Every run is
recorded as W3C PROV, so the last lines ask which files the total was computed from.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from provgraph import File, ProvenanceStore, Submitter, python, shell, workflow

# A shell task from a template: wc prints "<count> <file>" for one file.
CountWords = shell.define("wc -w <in_file:File>", name="CountWords")


@python.define(outputs=["total", "per_file"])
def Summarise(counts: list[str]) -> tuple[int, list[int]]:
    """Add up the word counts printed by wc."""
    numbers = [int(text.split()[0]) for text in counts]
    return sum(numbers), numbers


@workflow.define(outputs=["total", "per_file"])
def WordCount(files: list[File]) -> tuple[int, list[int]]:
    """Count the words of each file (one job per file), then sum them."""
    count = workflow.add(CountWords().split(in_file=files).combine("in_file"), name="count")
    summary = workflow.add(Summarise(counts=count.stdout), name="summarise")
    return summary.total, summary.per_file


def main(cache_dir: str = "provgraph-cache") -> int:
    data = Path(tempfile.gettempdir()) / "provgraph-demo-data"
    data.mkdir(exist_ok=True)
    texts = ["the quick brown fox", "jumps over", "the lazy dog", "again and again and again"]
    files = []
    for i, text in enumerate(texts):
        path = data / f"text{i}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        files.append(File(path))

    with Submitter(cache_dir=cache_dir, worker="serial") as sub:
        result = sub(WordCount(files=files))
    result.raise_for_errors()

    print(f"word counts per file: {result.outputs.per_file}")
    print(f"total words:          {result.outputs.total}")
    print(f"workflow directory:   {result.output_dir}")
    print(f"jobs executed: {result.stats['executed']}, reused from cache: {result.stats['reused']}")

    store = ProvenanceStore(cache_dir)
    rows = store.query(
        """SELECT DISTINCT ?where WHERE {
             ?run pg:taskName "Summarise" . ?total prov:wasGeneratedBy ?run .
             ?total prov:wasDerivedFrom+ ?source . ?source a pg:File ; prov:atLocation ?where .
             FILTER NOT EXISTS { ?source prov:wasGeneratedBy ?any }
           } ORDER BY ?where"""
    )
    print("provenance: the total was computed from")
    for (where,) in rows:
        print(f"  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
