"""provgraph RO-Crate export benchmark: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/rocrate.py [--quick]

One submission of 1,000 split jobs (``--quick``: 200), each writing a small file, run serially;
then its Workflow Run RO-Crate (``store.export(path, "ro-crate", run=...)``):

* with ``data="none"``: seconds and size, beside the TriG export of the same selection (what
  any crate export must at least read and write);
* with ``data="copy"``: seconds and size, beside that TriG export plus a plain ``shutil.copy2``
  of the same files; exported twice (these files are small, so their sha256 is computed each
  time; a file of 1 MiB or more has it remembered by the cache's file-hash cache).

Prints one table in the style of ``benchmarks/run.py`` (whose helpers it shares). The exit code
is 0 whatever the figures are; only an error (a wrong crate, a crash) makes it non-zero.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from functools import partial
from pathlib import Path

from run import Row, check, fmt_ratio, fmt_s, run_suite, scratch_dir, timed, verdict

from provgraph import File, ProvenanceStore, Submitter, python

FULL_JOBS = 1000
QUICK_JOBS = 200
TARGET_SECONDS = 5.0  # a 1,000-job crate without data, on this kind of machine


@python.define
def Note(x: int) -> File:
    path = Path(f"note-{x}.txt")
    path.write_text(f"note {x}\n" * 64)
    return File(path)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fmt_mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def record(cache: Path, jobs: int) -> tuple[ProvenanceStore, str, list[Path]]:
    """Run the submission; its store, its IRI and the files its jobs wrote."""
    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(Note().split(x=list(range(jobs))))
    check(not result.errored, "the benchmark's jobs failed")
    store = ProvenanceStore(cache)
    ((submission,),) = list(store.query("SELECT ?s WHERE { ?s a pg:Submission }"))
    files = sorted(cache.glob("Note-*/note-*.txt"))
    check(len(files) == jobs, f"expected {jobs} files, found {len(files)}")
    return store, str(submission), files


def baseline(store: ProvenanceStore, run: str, out: Path, files: list[Path] | None) -> None:
    """The selection's TriG, and (given ``files``) a plain copy of them."""
    out.mkdir()
    store.export(out / "records.trig", "trig", run=run)
    for i, path in enumerate(files or []):
        shutil.copy2(path, out / f"{i}-{path.name}")


def check_crate(crate: Path, jobs: int, copied: bool) -> None:
    document = json.loads((crate / "ro-crate-metadata.json").read_text())
    actions = [e for e in document["@graph"] if e.get("@type") == "CreateAction"]
    check(len(actions) == jobs + 1, f"crate: {len(actions)} actions for {jobs} jobs")
    data = list((crate / "data").rglob("*.txt")) if copied else []
    check(len(data) == (jobs if copied else 0), f"crate: {len(data)} files copied")


def bench(root: Path, jobs: int) -> list[Row]:
    with scratch_dir(root, "cache") as cache, scratch_dir(root, "out") as out:
        store, run, files = record(cache, jobs)
        rows: list[Row] = []
        base_s, _ = timed(partial(baseline, store, run, out / "base-none", None))
        base_size = folder_size(out / "base-none")
        seconds, crate = timed(
            partial(store.export, out / "crate-none", "ro-crate", run=run, data="none")
        )
        check_crate(crate, jobs, copied=False)
        size = folder_size(crate)
        rows.append(
            Row(
                "1",
                f"crate of {jobs} jobs, data='none'",
                fmt_s(seconds),
                f"{fmt_s(base_s)} TriG export of the selection",
                fmt_ratio(seconds, base_s),
                f"<= {TARGET_SECONDS:.0f} s at 1,000 jobs",
                verdict(seconds <= TARGET_SECONDS * jobs / FULL_JOBS),
            )
        )
        rows.append(
            Row(
                "1a",
                "  its size",
                fmt_mb(size),
                f"{fmt_mb(base_size)} TriG",
                fmt_ratio(size, base_size),
                "info",
                "info",
            )
        )
        copy_s, _ = timed(partial(baseline, store, run, out / "base-copy", files))
        for key, label in (("2", "first export"), ("2a", "exported again")):
            target = out / f"crate-copy-{key}"
            seconds, crate = timed(partial(store.export, target, "ro-crate", run=run, data="copy"))
            check_crate(crate, jobs, copied=True)
            rows.append(
                Row(
                    key,
                    f"crate of {jobs} jobs, data='copy', {label}",
                    fmt_s(seconds),
                    f"{fmt_s(copy_s)} TriG export + copy2 of the files",
                    fmt_ratio(seconds, copy_s),
                    "info",
                    "info",
                )
            )
        size = folder_size(out / "crate-copy-2")
        copied = folder_size(out / "base-copy")
        rows.append(
            Row(
                "2b",
                "  its size",
                fmt_mb(size),
                f"{fmt_mb(copied)} TriG + files",
                fmt_ratio(size, copied),
                "info",
                "info",
            )
        )
        return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_JOBS} jobs")
    args = parser.parse_args(argv)
    jobs = QUICK_JOBS if args.quick else FULL_JOBS
    about = f"one run of each export, {jobs} jobs each writing a 512-byte file"
    footer = "ratio = figure / baseline; the target scales with the number of jobs"
    return run_suite(
        "RO-Crate benchmark",
        args.quick,
        about,
        "provgraph-crate-",
        partial(bench, jobs=jobs),
        footer,
    )


if __name__ == "__main__":
    sys.exit(main())
