"""provgraph benchmarks: each figure beside a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py [--quick]

Prints one table: the figure, its baseline, their ratio, the target and PASS/MISS. The exit code
is 0 whatever the figures are; only an error (a wrong result, a crash) makes it non-zero.
See ``benchmarks/README.md`` for what each row measures.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import xxhash

import provgraph
from provgraph import Submitter, hashing, python

N_JOBS = 1000
N_PROCS = 2
MIB = 1024 * 1024
BLOCK = 64 * MIB
# The buffer provgraph's file hashing reads with; the raw-read baseline uses the same size.
BUFFER_SIZE: int = getattr(hashing, "_CHUNK", 4 * MIB)

T = TypeVar("T")


@python.define
def Inc(x: int) -> int:
    """The trivial task every job-running row uses."""
    return x + 1


def inc(x: int) -> int:
    """The same trivial function, for the bare baselines."""
    return x + 1


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    key: str
    measure: str
    figure: str
    baseline: str
    ratio: str
    target: str
    verdict: str  # "PASS" | "MISS" | "info"


@contextmanager
def scratch_dir(root: Path, name: str) -> Iterator[Path]:
    """A fresh directory under ``root``, removed afterwards (outside any timing)."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed(func: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``func()`` takes, by ``time.perf_counter``, and what it returned."""
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


def fmt_ratio(figure: float, baseline: float) -> str:
    return f"{figure / baseline:.2f}x" if baseline > 0 else "inf"


def check(condition: bool, message: str) -> None:
    """Fail the run (non-zero exit) when a benchmark produced a wrong result."""
    if not condition:
        raise RuntimeError(message)


# -- 1 and 2: serial worker, cold and warm ------------------------------------------------------


def run_provgraph(cache_dir: Path, xs: list[int], worker: str, **options: Any) -> dict[str, int]:
    """Submit ``Inc`` split over ``xs``; return the stats after checking the outputs."""
    with Submitter(cache_dir=cache_dir, worker=worker, **options) as sub:
        result = sub(Inc().split(x=xs))
    check(result.outputs.out == [x + 1 for x in xs], f"{worker}: wrong outputs")
    return dict(result.stats)


def bare_dir(root: Path, x: int) -> Path:
    return root / f"Inc-{xxhash.xxh3_128_hexdigest(repr(x).encode())}"


def bare_store(root: Path, x: int) -> int:
    """One input: a hash-named directory, made, with one pickle of the result in it."""
    directory = bare_dir(root, x)
    directory.mkdir()
    out = inc(x)
    with open(directory / "_result.pkl", "wb") as fh:
        pickle.dump({"out": out}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def bare_cold(root: Path, xs: list[int]) -> None:
    """The bare loop: ``bare_store`` for each input."""
    for x in xs:
        bare_store(root, x)


def bare_warm(root: Path, xs: list[int]) -> list[int]:
    """Per input: the hash-named directory's pickle, read back."""
    outs = []
    for x in xs:
        with open(bare_dir(root, x) / "_result.pkl", "rb") as fh:
            outs.append(pickle.load(fh)["out"])
    return outs


def bench_serial(root: Path, repeats: int) -> list[Row]:
    xs = list(range(N_JOBS))
    cold: list[float] = []
    warm: list[float] = []
    base_cold: list[float] = []
    base_warm: list[float] = []
    for _ in range(repeats):
        with scratch_dir(root, "serial") as cache_dir:
            run = partial(run_provgraph, cache_dir, xs, "serial")
            seconds, stats = timed(run)
            check(stats["executed"] == N_JOBS, f"serial cold: expected all executed, got {stats}")
            cold.append(seconds)
            seconds, stats = timed(run)
            check(stats["reused"] == N_JOBS, f"serial warm: expected all reused, got {stats}")
            warm.append(seconds)
        with scratch_dir(root, "bare") as bare_root:
            base_cold.append(timed(partial(bare_cold, bare_root, xs))[0])
            seconds, outs = timed(partial(bare_warm, bare_root, xs))
            check(outs == [x + 1 for x in xs], "bare warm loop: wrong outputs")
            base_warm.append(seconds)
    c, w, bc, bw = min(cold), min(warm), min(base_cold), min(base_warm)
    return [
        Row(
            "1",
            f"serial cold, {N_JOBS} split jobs",
            fmt_s(c),
            f"{fmt_s(bc)} bare loop: xxh3 name+mkdir+pickle.dump",
            fmt_ratio(c, bc),
            "<= 1.0 s",
            verdict(c <= 1.0),
        ),
        Row(
            "2",
            f"serial warm, {N_JOBS} jobs all reused",
            fmt_s(w),
            f"{fmt_s(bw)} bare loop: xxh3 name+open+pickle.load",
            fmt_ratio(w, bw),
            "<= 0.1 s",
            verdict(w <= 0.1),
        ),
    ]


# -- 3: cf worker against a bare ProcessPoolExecutor ---------------------------------------------


def bare_pool(xs: list[int], chunksize: int, root: Path | None = None) -> None:
    """A bare pool of ``N_PROCS`` processes mapping ``inc`` (or, given ``root``, the bare
    loop's body that also stores each result); startup and shutdown included."""
    func: Callable[[int], int] = inc if root is None else partial(bare_store, root)
    with ProcessPoolExecutor(N_PROCS) as pool:
        outs = list(pool.map(func, xs, chunksize=chunksize))
    check(outs == [x + 1 for x in xs], "bare pool: wrong outputs")


def bench_cf(root: Path, repeats: int) -> list[Row]:
    xs = list(range(N_JOBS))
    # The chunk size multiprocessing.Pool.map picks by default: about 4 chunks per process.
    chunk = math.ceil(N_JOBS / (4 * N_PROCS))
    cf: list[float] = []
    pool_chunked: list[float] = []
    pool_single: list[float] = []
    pool_storing: list[float] = []
    for _ in range(repeats):
        with scratch_dir(root, "cf") as cache_dir:
            seconds, stats = timed(partial(run_provgraph, cache_dir, xs, "cf", n_procs=N_PROCS))
            check(stats["executed"] == N_JOBS, f"cf cold: expected all executed, got {stats}")
            cf.append(seconds)
        pool_chunked.append(timed(partial(bare_pool, xs, chunk))[0])
        pool_single.append(timed(partial(bare_pool, xs, 1))[0])
        with scratch_dir(root, "bare-pool") as bare_root:
            pool_storing.append(timed(partial(bare_pool, xs, chunk, bare_root))[0])
    f, pc, p1, ps = min(cf), min(pool_chunked), min(pool_single), min(pool_storing)
    best, best_name = (pc, f"chunksize={chunk}") if pc <= p1 else (p1, "chunksize=1")
    return [
        Row(
            "3",
            f"cf(n_procs={N_PROCS}) cold, {N_JOBS} jobs",
            fmt_s(f),
            f"{fmt_s(best)} bare pool.map {best_name} (better bare)",
            fmt_ratio(f, best),
            "<= 3x bare pool",
            verdict(f <= 3 * best),
        ),
        Row(
            "3a",
            "  bare pool.map, chunked",
            fmt_s(pc),
            f"chunksize={chunk}",
            fmt_ratio(f, pc),
            "(cf vs this)",
            "info",
        ),
        Row(
            "3b",
            "  bare pool.map, one by one",
            fmt_s(p1),
            "chunksize=1",
            fmt_ratio(f, p1),
            "(cf vs this)",
            "info",
        ),
        Row(
            "3c",
            "  bare pool.map, storing results",
            fmt_s(ps),
            f"chunksize={chunk}, mkdir+pickle.dump per item",
            fmt_ratio(f, ps),
            "(cf vs this)",
            "info",
        ),
    ]


def bench_cf_scaling(root: Path, big: int, repeats: int) -> list[Row]:
    """The cf worker's cost per job at ``big`` jobs against at 1,000, provenance off: a loop
    that looks at every waiting job per round would grow with the square of the jobs."""
    times: dict[int, float] = {}
    for n in (N_JOBS, big):
        xs = list(range(n))
        best = math.inf
        for _ in range(repeats):
            with scratch_dir(root, f"cf-{n}") as cache_dir:
                seconds, stats = timed(
                    partial(run_provgraph, cache_dir, xs, "cf", n_procs=N_PROCS, provenance=False)
                )
            check(stats["executed"] == n, f"cf {n}: expected all executed, got {stats}")
            best = min(best, seconds)
        times[n] = best
    per_small, per_big = times[N_JOBS] / N_JOBS, times[big] / big
    return [
        Row(
            "3d",
            f"cf cost per job, {big:,} jobs (provenance off)",
            fmt_us(per_big),
            f"{fmt_us(per_small)} per job at {N_JOBS:,} jobs, same run",
            fmt_ratio(per_big, per_small),
            "<= 1.17x (30k/1k <= 35x)",
            verdict(per_big <= 1.17 * per_small),
        )
    ]


# -- 4 and 5: file hashing -----------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    """``size`` bytes of random-looking data: one random block, repeated."""
    block = os.urandom(min(BLOCK, size))
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            written += fh.write(block[: size - written])


def raw_read(path: Path) -> int:
    """Read the whole file with ``readinto`` and the hashing's buffer size; no hashing."""
    buf = bytearray(BUFFER_SIZE)
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            total += n
    return total


def full_hash(path: Path) -> bytes:
    """``file_content_digest`` through a fresh folder-less cache, so the file is really read."""
    with hashing.use_file_hash_cache(hashing.FileHashCache()):
        return hashing.file_content_digest(path)


def per_call(func: Callable[[], object], calls: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds per call over ``calls`` calls."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def bench_files(root: Path, size: int, repeats: int, calls: int) -> list[Row]:
    label = f"{size // MIB} MiB" if size < 1024 * MIB else f"{size / (1024 * MIB):g} GiB"
    with scratch_dir(root, "files") as folder:
        path = folder / "data.bin"
        make_file(path, size)
        check(raw_read(path) == size, "raw read: short read")  # warm the page cache
        hashing_times: list[float] = []
        raw_times: list[float] = []
        digests: set[bytes] = set()
        for _ in range(repeats):
            raw_times.append(timed(partial(raw_read, path))[0])
            seconds, digest = timed(partial(full_hash, path))
            hashing_times.append(seconds)
            digests.add(digest)
        check(len(digests) == 1, "file hash: the digest changed between calls")
        hash_gbs = size / min(hashing_times) / 1e9
        raw_gbs = size / min(raw_times) / 1e9
        share = hash_gbs / raw_gbs

        # 5: a cached hash. The cache keeps no hash of a file modified < 0.5 s ago: age it.
        old = time.time() - 60
        os.utime(path, (old, old))
        key = str(path.absolute())
        cache = hashing.FileHashCache(folder / "file-hashes")
        with hashing.use_file_hash_cache(cache):
            check(hashing.file_content_digest(key) in digests, "cached hash: wrong digest")
            memo = per_call(lambda: hashing.file_content_digest(key), calls, 5)
        check(any((folder / "file-hashes").rglob("*")), "cached hash: no entry was persisted")
        fresh = [hashing.FileHashCache(folder / "file-hashes") for _ in range(calls * 5)]
        pool = iter(fresh)
        persisted = per_call(lambda: next(pool).digest(key), calls, 5)
        stat = per_call(lambda: os.stat(key), calls, 5)
    return [
        Row(
            "4",
            f"file_content_digest, {label} (page cache)",
            f"{hash_gbs:.2f} GB/s",
            f"{raw_gbs:.2f} GB/s raw readinto, {BUFFER_SIZE // MIB} MiB buffer",
            f"{share:.0%} of raw",
            ">= 60% of raw",
            verdict(share >= 0.6),
        ),
        Row(
            "5",
            "cached file hash, 2nd call (memo)",
            fmt_us(memo),
            f"{fmt_us(stat)} one os.stat",
            fmt_ratio(memo, stat),
            "none set",
            "info",
        ),
        Row(
            "5a",
            "  new FileHashCache, same folder",
            fmt_us(persisted),
            f"{fmt_us(stat)} one os.stat",
            fmt_ratio(persisted, stat),
            "none set",
            "info",
        ),
    ]


# -- 6: the MAC that seals every stored pickle -----------------------------------------------------


def bench_mac(calls: int) -> list[Row]:
    """Sealing and checking a small result (what every job's ``_result.pkl`` pays), beside
    the unkeyed xxh3-128 checksum results carried before they were sealed."""
    from provgraph import _signing

    payload = pickle.dumps({"outputs": {"out": 2}, "task_name": "Inc", "job_hash": "0" * 32})
    sealed = _signing.seal(payload)
    check(_signing.unseal(sealed) == payload, "MAC: a sealed result did not verify")
    forged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    check(_signing.unseal(forged) is None, "MAC: a changed result verified")
    seal = per_call(lambda: _signing.seal(payload), calls, 5)
    unseal = per_call(lambda: _signing.unseal(sealed), calls, 5)
    checksum = per_call(lambda: xxhash.xxh3_128_digest(payload), calls, 5)
    size = f"{len(payload)} B result"
    return [
        Row(
            "6",
            f"seal a {size} (keyed BLAKE2b MAC)",
            fmt_us(seal),
            f"{fmt_us(checksum)} xxh3-128 checksum",
            fmt_ratio(seal, checksum),
            "<= 5 us",
            verdict(seal <= 5e-6),
        ),
        Row(
            "6a",
            f"  verify a {size}",
            fmt_us(unseal),
            f"{fmt_us(checksum)} xxh3-128 checksum",
            fmt_ratio(unseal, checksum),
            "<= 5 us",
            verdict(unseal <= 5e-6),
        ),
    ]


# -- the table ----------------------------------------------------------------------------------

HEADER = Row("#", "measure", "figure", "baseline", "ratio", "target", "result")


def print_table(rows: list[Row]) -> None:
    table = [HEADER, *rows]
    columns = list(zip(*(list(vars(r).values()) for r in table), strict=True))
    widths = [max(len(cell) for cell in column) for column in columns]
    for i, row in enumerate(table):
        cells = list(vars(row).values())
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def filesystem_of(path: Path) -> str:
    """``<type> on <mount point>`` for ``path`` (Linux ``/proc/mounts``), or ``unknown``."""
    best: tuple[str, str] = ("", "unknown")
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best[1]
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount, fstype = fields[1], fields[2]
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, f"{fstype} on {mount}")
    return best[1]


def run_suite(
    title: str,
    quick: bool,
    about: str,
    prefix: str,
    measure: Callable[[Path], list[Row]],
    footer: str,
) -> int:
    """The frame every benchmark script shares: a header naming the machine and the scratch
    filesystem, the measurements in a scratch folder removed afterwards, the table, a footer."""
    print(
        f"provgraph {provgraph.__version__} {title} ({'quick' if quick else 'full'}): "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(about)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"scratch: {root} ({filesystem_of(root)}); set TMPDIR to measure another filesystem")
    print()
    try:
        rows = measure(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    print()
    print(footer)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 128 MiB file, fewer repetitions"
    )
    args = parser.parse_args(argv)
    job_repeats, file_repeats, calls = (1, 2, 2000) if args.quick else (3, 5, 20000)
    size = 128 * MIB if args.quick else 1024 * MIB

    about = (
        f"best of {job_repeats} for job runs (cold ones each in a fresh directory), "
        f"best of {file_repeats} for file reads, best of 5 x {calls} calls for per-call costs"
    )

    def measure(root: Path) -> list[Row]:
        rows = bench_serial(root, job_repeats)
        rows += bench_cf(root, job_repeats)
        rows += bench_cf_scaling(root, 10_000 if args.quick else 30_000, job_repeats)
        return rows + bench_files(root, size, file_repeats, calls) + bench_mac(calls)

    footer = "ratio = figure / baseline (row 4: hashing throughput / raw throughput)"
    return run_suite("benchmarks", args.quick, about, "provgraph-bench-", measure, footer)


if __name__ == "__main__":
    sys.exit(main())
