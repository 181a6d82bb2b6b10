"""The seed's MrGrid walkthrough (issue 19) on provgraph beside Pydra 1.0, in the same run.

Ten ``Nifti1.sample`` images regridded by the real ``mrgrid`` to ten voxel sizes, Pydra's own
``MrGrid`` task object given to each engine unchanged: cold (empty cache) and warm (all
reused), min and median of ``--repeat`` runs (3 by default), each engine on the ``serial``
worker (Pydra's ``debug``), with a fresh cache per cold run.

Needs ``mrgrid`` (``apt-get install mrtrix3``), ``pydra-tasks-mrtrix3`` and
``fileformats-medimage``. Run from the repository root:

    .venv/bin/python benchmarks/mrgrid.py [--repeat N] [--root DIR]

Exit code 0 whatever the figures; non-zero only when an engine fails or the two engines'
outputs differ.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

VOXELS = [0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 1.25]


def _task(files: list):
    from pydra.tasks.mrtrix3.v3_1 import MrGrid

    return MrGrid(operation="regrid").split(
        ("in_file", "voxel"), in_file=files, voxel=[[v] for v in VOXELS]
    )


def run_provgraph(files: list, cache: Path) -> list[bytes]:
    from provgraph import Submitter

    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(_task(files))
    result.raise_for_errors()
    return [_image(p) for p in result.outputs.out_file]


def _image(path: object) -> bytes:
    """A .mif image: its header lines but the command history (which names the engine's
    output paths), and its data from the offset the header gives."""
    data = Path(str(path)).read_bytes()
    header = data.partition(b"\nEND\n")[0].split(b"\n")
    offset = int(next(line for line in header if line.startswith(b"file:")).split()[-1])
    kept = [line for line in header if not line.startswith((b"command_history", b"file:"))]
    return b"\n".join(kept) + b"\nEND\n" + data[offset:]


def run_pydra(files: list, cache: Path) -> list[bytes]:
    from pydra.engine.submitter import Submitter

    with Submitter(cache_root=cache, worker="debug") as sub:
        result = sub(_task(files))
    if result.errored:
        raise RuntimeError(f"pydra failed: {result.errors}")
    return [_image(p) for p in result.outputs.out_file]


def timed(func, *args):
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="scratch directory")
    args = parser.parse_args(argv)
    if shutil.which("mrgrid") is None:
        print("mrgrid is not installed (apt-get install mrtrix3)")
        return 1
    warnings.simplefilter("ignore", DeprecationWarning)
    from fileformats.medimage import Nifti1

    root = Path(tempfile.mkdtemp(dir=args.root))
    inputs = root / "nifti"
    inputs.mkdir()
    files = [Nifti1.sample(inputs, seed=i) for i in range(len(VOXELS))]
    figures: dict[str, list[float]] = {}
    outputs = {}
    for k in range(args.repeat):
        for name, runner in (("provgraph", run_provgraph), ("pydra", run_pydra)):
            cache = root / f"{name}-{k}"
            cold, first = timed(runner, files, cache)
            warm, _ = timed(runner, files, cache)
            figures.setdefault(f"{name} cold", []).append(cold)
            figures.setdefault(f"{name} warm", []).append(warm)
            outputs[name] = first
    if outputs["provgraph"] != outputs["pydra"]:
        print("the two engines' regridded images differ")
        return 2
    print(f"MrGrid walkthrough, 10 jobs, {args.repeat} runs each (min / median, seconds)")
    for phase in ("cold", "warm"):
        own, ref = figures[f"provgraph {phase}"], figures[f"pydra {phase}"]
        ratio = min(own) / min(ref)
        print(
            f"  {phase:5s} provgraph {min(own):.3f} / {statistics.median(own):.3f}   "
            f"pydra {min(ref):.3f} / {statistics.median(ref):.3f}   ratio {ratio:.2f}x"
        )
    print("  outputs: the same images from both engines (headers but the command history)")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
