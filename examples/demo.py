"""The provgraph demo: split a shell task over files, then summarise them with a Python task.

Run it twice: the second run reuses every job from the cache and executes nothing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from provgraph import File, Submitter, python, shell

# A shell task from a template: count the words of one file into an output file.
CountWords = shell.define("wc -w <in_file:File>", name="CountWords")


@python.define(outputs=["total", "per_file"])
def Summarise(counts: list[str]) -> tuple[int, list[int]]:
    """Add up the word counts printed by wc."""
    numbers = [int(text.split()[0]) for text in counts]
    return sum(numbers), numbers


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
        counted = sub(CountWords().split(in_file=files))
        counted.raise_for_errors()
        summary = sub(Summarise(counts=counted.outputs.stdout))
        summary.raise_for_errors()

    print(f"word counts per file: {summary.outputs.per_file}")
    print(f"total words:          {summary.outputs.total}")
    print(f"split task directory: {counted.output_dir}")
    print(
        f"jobs executed: {counted.stats['executed'] + summary.stats['executed']}, "
        f"reused from cache: {counted.stats['reused'] + summary.stats['reused']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
