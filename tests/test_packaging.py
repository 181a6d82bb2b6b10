"""The wheel ships the ontology files, and the installed package finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_the_ontology(tmp_path: Path) -> None:
    """provgraph.ttl, shapes.ttl and context.jsonld are inside the wheel, under provgraph/."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("provgraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("provgraph.ttl", "shapes.ttl", "context.jsonld"):
        assert f"provgraph/ontology/{name}" in names


def test_ontology_files_are_found() -> None:
    """vocab.ontology_path finds each file (packaged, or in the source tree)."""
    from provgraph.provenance import vocab

    for name in ("provgraph.ttl", "shapes.ttl", "context.jsonld"):
        assert vocab.ontology_path(name).read_text().strip()
