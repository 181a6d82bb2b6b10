"""The seed's walkthrough on provgraph, with the real MRtrix3 ``mrgrid`` and Pydra's own
``MrGrid`` definition (``pip install provgraph[pydra] pydra-tasks-mrtrix3
fileformats-medimage``; ``apt-get install mrtrix3``).

Ten NIfTI images are regridded to ten voxel sizes. Run again: nothing executes. Change one
voxel size: one job runs. Rename an input file: nothing runs, the file is the same content.

    python examples/seed_mrgrid.py WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from fileformats.medimage import Nifti1
from pydra.tasks.mrtrix3.v3_1 import MrGrid

from provgraph import ProvenanceStore, Submitter

VOXELS = [0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 1.25]


def regrid(files: list, voxels: list[float], cache: Path):
    """One MrGrid job per (file, voxel size): the Pydra task object, submitted unchanged."""
    task = MrGrid(operation="regrid").split(
        ("in_file", "voxel"), in_file=files, voxel=[[v] for v in voxels]
    )
    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(task)
    result.raise_for_errors()
    return result


def main(work: Path) -> dict:
    inputs = work / "nifti"
    inputs.mkdir(parents=True, exist_ok=True)
    files = [Nifti1.sample(inputs, seed=i) for i in range(len(VOXELS))]
    cache = work / "cache"
    first = regrid(files, VOXELS, cache)
    again = regrid(files, VOXELS, cache)  # 1. the same directories, nothing executed
    changed = regrid(files, [*VOXELS[:-1], 1.5], cache)  # 2. one job executed
    renamed = Path(files[0]).rename(inputs / "renamed.nii")  # 3. same content, new name
    files = [Nifti1(renamed), *files[1:]]
    after_rename = regrid(files, VOXELS, cache)
    runs = ProvenanceStore(cache).query(
        "SELECT DISTINCT ?run WHERE { ?run a pg:JobRun ; pg:taskName 'MrGrid' }"
    )
    return {
        "first": first,
        "again": again,
        "changed": changed,
        "after_rename": after_rename,
        "job_runs": len(runs),
    }


if __name__ == "__main__":
    found = main(Path(sys.argv[1] if len(sys.argv) > 1 else "seed-mrgrid"))
    for key in ("first", "again", "changed", "after_rename"):
        print(key, found[key].node_stats["MrGrid"])
    print("job runs recorded:", found["job_runs"])
