"""The README's demo runs, reuses its cache on a second run, and reports its provenance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_runs_twice(tmp_path: Path) -> None:
    """First run executes five jobs; the second reuses the workflow; lineage names the files."""
    cache = str(tmp_path / "cache")
    first = subprocess.run([sys.executable, str(DEMO), cache], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "total words:          14" in first.stdout
    assert "jobs executed: 5, reused from cache: 0" in first.stdout
    assert first.stdout.count("provgraph-demo-data/text") == 4
    second = subprocess.run([sys.executable, str(DEMO), cache], capture_output=True, text=True)
    assert "jobs executed: 0, reused from cache: 1" in second.stdout
    assert second.stdout.count("provgraph-demo-data/text") == 4
