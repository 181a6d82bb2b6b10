"""The single-page HTML report, rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from prov_tasks import Study, make_inputs
from provgraph import ProvenanceStore, Submitter, python, shell, workflow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_args(profile: Path) -> list[str]:
    assert CHROMIUM is not None
    return [
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
    ]


def _render(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    out = subprocess.run(
        [*_chromium_args(profile), "--dump-dom", page.as_uri()],
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


Shout = shell.define("sh -c <script:str> <x:int>", name="Shout")


@python.define
def Twice(x: int) -> int:
    return 2 * x


@workflow.define
def Fan(xs: list[int]) -> list[int]:
    twice = workflow.add(Twice().split(x=xs), name="twice")
    script = 'test "$0" != 14 || { echo "no fourteens" >&2; exit 3; }'
    shout = workflow.add(Shout(script=script, x=twice.out), name="shout")
    return shout.return_code


def _fan_report(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Twice(x=100))  # an earlier submission, not in the newest one's report
        sub(Twice().split(x=[0, 1]))  # reused by the next one
    with Submitter(cache_dir=cache, progress=False, worker="cf", n_procs=2) as sub:
        sub(Fan(xs=list(range(12))))
    return cache, ProvenanceStore(cache).export(tmp_path / "report.html", "html")


def _png_size(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct bytes the decompressed pixel rows hold."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], len(set(zlib.decompress(idat)))


def test_report_is_one_submission_with_values_order_and_failures(tmp_path: Path) -> None:
    """The newest submission by default: its runs labelled with their input values, in natural
    order, reused runs marked, each failure with its exit code and stderr, a timeline."""
    _cache, page = _fan_report(tmp_path)
    text = page.read_text()
    assert "x=100" not in text  # the earlier submission's own run is not in this report
    assert "Fan/twice [10]" in text and "x=10" in text
    table = text[text.index("<h2>Runs</h2>") :]
    assert table.index("Fan/twice [2]<") < table.index("Fan/twice [10]<")  # natural order
    assert text.count("reused from an earlier submission") >= 2  # elements 0 and 1
    failures = text[text.index("Failures (1)") : text.index("<h2>Details")]
    assert "CommandError" in failures and "exit code 3" in failures
    assert "no fourteens" in failures and "stderr.txt" in failures
    assert text.count('class="bar"') == 22  # each run made here, on the timeline
    lanes = {m for m in re.findall(r"pid \d+", text[text.index("<h2>Timeline") :])}
    assert len(lanes) >= 2  # two pool processes
    assert text.count('id="box_run_') == 24  # a box per run in the graph, linked to its section
    assert "<script" not in text and "src=" not in text


def test_report_without_graphviz_lays_out_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where dot is missing, the layered layout draws the same boxes and links."""
    import provgraph.provenance._report_draw as draw

    _cache, page = _fan_report(tmp_path)
    with_dot = page.read_text()
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    page = ProvenanceStore(tmp_path / "cache").export(tmp_path / "plain.html", "html")
    plain = page.read_text()
    assert plain.count('id="box_run_') == with_dot.count('id="box_run_') == 24
    assert plain.count('<a href="#run_') >= 24 and "Generated by graphviz" not in plain


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    """Chromium renders the report: its DOM shows every job, the final output's hash and the
    failure; a screenshot has the window's size and is not blank."""
    _cache, page = _fan_report(tmp_path)
    dom = _render(page, tmp_path / "profile")
    assert dom.count('class="run') + dom.count("class='run") >= 24
    for node in ("Twice [0]", "Fan/twice [11]", "Fan/shout [7]"):
        assert node in dom
    assert "no fourteens" in dom
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            *_chromium_args(tmp_path / "profile2"),
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    width, height, distinct = _png_size(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert distinct > 40  # a blank page decompresses to a handful of byte values


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_study_report_renders_in_chromium(tmp_path: Path) -> None:
    """The Study workflow's report: every job and the final output's hash."""
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
    assert dom.count("<h3 id=") == 7
    for node in ("Study/copy [0]", "Study/copy [2]", "Study/count [1]", "Study/total [0]"):
        assert node in dom
    assert str(final_hash) in dom
    assert result.outputs.out == 6
