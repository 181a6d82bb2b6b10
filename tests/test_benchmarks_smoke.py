"""The benchmark script runs to the end and prints its table (timing targets are not checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

ROWS = {
    "1": "serial cold",
    "2": "serial warm",
    "3": "cf(n_procs=2) cold",
    "3a": "bare pool.map, chunked",
    "3b": "bare pool.map, one by one",
    "3c": "bare pool.map, storing results",
    "4": "file_content_digest, 128 MiB",
    "5": "cached file hash",
    "5a": "new FileHashCache, same folder",
}


@pytest.mark.slow
def test_quick_benchmark_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=SCRIPT.parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        re.match(r"#\s+measure\s+figure\s+baseline\s+ratio\s+target\s+result", line)
        for line in lines
    ), proc.stdout
    for key, label in ROWS.items():
        pattern = re.compile(rf"{re.escape(key)}\s+.*{re.escape(label)}.*\s(PASS|MISS|info)$")
        assert any(pattern.match(line) for line in lines), f"row {key} missing:\n{proc.stdout}"
