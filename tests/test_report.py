"""The single-page HTML report, rendered by a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from prov_tasks import Study, make_inputs
from provgraph import ProvenanceStore, Submitter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_report_is_self_contained(tmp_path: Path) -> None:
    """The page fetches nothing: no scripts, no links, no remote sources."""
    inputs = make_inputs(tmp_path / "inputs")
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        sub(Study(files=inputs))
    page = ProvenanceStore(tmp_path / "cache").export(tmp_path / "report.html", "html")
    text = page.read_text()
    assert "<svg" in text and "<script" not in text and "http://" not in text.split("<svg")[0]
    assert "src=" not in text and "<link" not in text


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    """Chromium renders the report; its DOM shows every job and the final output's hash."""
    inputs = make_inputs(tmp_path / "inputs")
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        result = sub(Study(files=inputs))
    store = ProvenanceStore(cache)
    ((final_hash,),) = list(
        store.query(
            "SELECT ?h WHERE { ?r pg:taskName 'Total' . ?e prov:wasGeneratedBy ?r ; "
            "pg:contentHash ?h }"
        )
    )
    page = store.export(tmp_path / "report.html", "html")
    dom = _render(page, tmp_path / "profile")
    assert dom.count("<h2") == 7
    for node in ("Study/copy [0]", "Study/copy [2]", "Study/count [1]", "Study/total [0]"):
        assert node in dom
    assert str(final_hash) in dom
    assert dom.count('class="run"') == 7  # each run drawn in the lineage picture
    assert result.outputs.out == 6
