"""The benchmark scripts run to the end and print their tables (timing targets are not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires, requires_slurm

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "run.py"
WORKFLOWS_SCRIPT = BENCHMARKS / "workflows.py"
PROVENANCE_SCRIPT = BENCHMARKS / "provenance.py"
EXPORTS_SCRIPT = BENCHMARKS / "exports.py"
DASK_SCRIPT = BENCHMARKS / "dask_worker.py"
CRATE_SCRIPT = BENCHMARKS / "rocrate.py"
SHARING_SCRIPT = BENCHMARKS / "sharing.py"
SLURM_SCRIPT = BENCHMARKS / "slurm_worker.py"

needs_slurm = requires_slurm("start a one-node cluster with scripts/start-slurm.sh")

ROWS = {
    "1": "serial cold",
    "2": "serial warm",
    "3": "cf(n_procs=2) cold",
    "3a": "bare pool.map, chunked",
    "3b": "bare pool.map, one by one",
    "3c": "bare pool.map, storing results",
    "3d": "cf cost per job",
    "4": "file_content_digest, 128 MiB",
    "5": "cached file hash",
    "5a": "new FileHashCache, same folder",
    "6": "seal a",
    "6a": "verify a",
}

WORKFLOW_ROWS = {
    "1a": "chain of 100, serial cold",
    "1b": "chain of 100, serial warm, every node looked up",
    "1c": "chain of 100, serial warm, whole-workflow hit",
    "1d": "chain of 100, cf(n_procs=2) cold",
    "1e": "chain of 100, cf(n_procs=2) warm, every node looked up",
    "1f": "chain of 100, cf(n_procs=2) warm, whole-workflow hit",
    "2a": "2000 jobs, 2 nodes, serial cold",
    "2b": "2000 jobs, 2 nodes, serial warm, every node looked up",
    "2c": "2000 jobs, 2 nodes, serial warm, whole-workflow hit",
    "2d": "2000 jobs, 2 nodes, cf(n_procs=2) cold",
    "2e": "2000 jobs, 2 nodes, cf(n_procs=2) warm, every node looked up",
    "2f": "2000 jobs, 2 nodes, cf(n_procs=2) warm, whole-workflow hit",
    "3a": "10,000 split jobs, serial, wall time",
    "3b": "10,000 split jobs, serial, peak RSS",
}

PROVENANCE_ROWS = {
    "1": "recording: 1,000 split jobs, serial cold, added per job",
    "1a": "of which: indexing at the end of the submission",
    "1b": "recorded per job",
    "2": "store:",
    "3": "index: rebuild_index",
    "4a": "load: ProvenanceStore(backend='oxigraph')",
    "4b": "load: ProvenanceStore(backend='memory')",
    "5a": "what-produced, by content hash, oxigraph",
    "5b": "what-produced, by content hash, memory",
    "6a": "lineage, 10 hops: wasDerivedFrom+, oxigraph",
    "6b": "lineage, 10 hops: wasDerivedFrom+, memory",
    "7a": "lineage, 10 runs: wasGeneratedBy/(used/wasGeneratedBy)*, oxigraph",
    "7b": "lineage, 10 runs: wasGeneratedBy/(used/wasGeneratedBy)*, memory",
    "8a": "RSS growth, oxigraph",
    "8b": "RSS growth, memory",
    "8c": "RSS growth, rebuild_index",
}

EXPORT_ROWS = {
    "1": "store:",
    "2a": "whole store to JSON-LD: store.export",
    "2b": "whole store to Turtle: store.export",
    "2c": "whole store to N-Triples: pyoxigraph Store.dump",
    "2d": "whole store to JSON-LD: pyoxigraph Store.dump",
    "2e": "whole store: output sizes",
    "3a": "whole store to JSON-LD: peak RSS growth",
    "3b": "whole store to Turtle: peak RSS growth",
    "4a": "one result's report: export(jsonld, output=), first in process",
    "4b": "one result's report: best of the next",
    "4c": "one result's report: size",
}

CRATE_ROWS = {  # --quick: 200 jobs
    "1": "crate of 200 jobs, data='none'",
    "1a": "its size",
    "2": "crate of 200 jobs, data='copy', first export",
    "2a": "crate of 200 jobs, data='copy', exported again",
    "2b": "its size",
}

SHARING_ROWS = {
    "0": "store:",
    "1": "lookup: what produced a content hash, over HTTP",
    "2": "lineage, 10 runs upstream, over HTTP",
    "3": "push",
}

DASK_ROWS = {
    "1": "dask(n_workers=2) cold, 1,000 jobs",
    "1a": "dask(n_workers=2) cold, 1,000 jobs, provenance=False",
    "1b": "cluster start-up and first job",
}

SLURM_ROWS = {  # --quick: 40 jobs
    "1": "slurm, 40 jobs, one job array",
    "2": "slurm, 40 jobs, one sbatch per job (array=False)",
    "3": "slurm, 40 jobs, job array vs one sbatch per job",
}


def check_quick_table(script: Path, rows: dict[str, str]) -> None:
    """Run ``script --quick``: it exits 0 and prints the table header and every row."""
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=script.parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        re.match(r"#\s+measure\s+figure\s+baseline\s+ratio\s+target\s+result", line)
        for line in lines
    ), proc.stdout
    for key, label in rows.items():
        pattern = re.compile(rf"{re.escape(key)}\s+.*{re.escape(label)}.*\s(PASS|MISS|info)$")
        assert any(pattern.match(line) for line in lines), f"row {key} missing:\n{proc.stdout}"


@pytest.mark.slow
def test_quick_benchmark_prints_the_table() -> None:
    check_quick_table(SCRIPT, ROWS)


@pytest.mark.slow
def test_quick_workflow_benchmark_prints_the_table() -> None:
    check_quick_table(WORKFLOWS_SCRIPT, WORKFLOW_ROWS)


@pytest.mark.slow
def test_quick_provenance_benchmark_prints_the_table() -> None:
    check_quick_table(PROVENANCE_SCRIPT, PROVENANCE_ROWS)


@pytest.mark.slow
def test_quick_export_benchmark_prints_the_table() -> None:
    check_quick_table(EXPORTS_SCRIPT, EXPORT_ROWS)


@pytest.mark.slow
def test_quick_crate_benchmark_prints_the_table() -> None:
    check_quick_table(CRATE_SCRIPT, CRATE_ROWS)


@pytest.mark.slow
def test_quick_sharing_benchmark_prints_the_table() -> None:
    check_quick_table(SHARING_SCRIPT, SHARING_ROWS)


@pytest.mark.slow
def test_quick_dask_worker_benchmark_prints_the_table() -> None:
    check_quick_table(DASK_SCRIPT, DASK_ROWS)


@pytest.mark.slow
@needs_slurm
def test_quick_slurm_worker_benchmark_prints_the_table() -> None:
    check_quick_table(SLURM_SCRIPT, SLURM_ROWS)


def test_slurm_worker_benchmark_without_sbatch(tmp_path: Path) -> None:
    """With no ``sbatch`` on PATH the SLURM script measures nothing, says why, and exits 0."""
    proc = subprocess.run(
        [sys.executable, str(SLURM_SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SLURM_SCRIPT.parent.parent,
        env={**os.environ, "PATH": str(tmp_path)},  # an empty folder: no sbatch in it
    )
    assert proc.returncode == 0, proc.stderr
    assert "SLURM rows skipped: no sbatch on PATH" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_quick_targets_benchmark_prints_every_row(tmp_path: Path) -> None:
    """benchmarks/targets.py (issue 17's targets) runs to the end and prints each row."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "targets.py"), "--quick", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for start in ("1 serial", "2 serial", "3 cf per job", "3 cf ", "5 import provgraph"):
        assert any(line.startswith(start) for line in done.stdout.splitlines()), done.stdout
    assert re.search(r"on vs off\s+\d+\.\d+ / \d+\.\d+ s", done.stdout), done.stdout


@requires("mrgrid", "apt-get install mrtrix3 (.ci/run does)")
def test_mrgrid_benchmark_runs_both_engines(tmp_path: Path) -> None:
    """benchmarks/mrgrid.py (issue 19) runs the walkthrough on provgraph and on Pydra, checks
    that both made the same images, and prints cold and warm figures with their ratios."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mrgrid.py"), "--repeat", "1", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    for phase in ("cold", "warm"):
        assert re.search(rf"{phase}\s+provgraph [\d.]+ / [\d.]+\s+pydra [\d.]+", done.stdout)
    assert "the same images from both engines" in done.stdout
