"""Progress: a live table on a terminal, only a summary elsewhere, nothing when turned off."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import wf_tasks as T
from provgraph import SpecError, Submitter


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=120), buffer


def test_terminal_shows_live_table_and_summary(cache_dir: Path) -> None:
    """On a terminal the table names each node; the summary counts what ran."""
    console, buffer = _console(terminal=True)
    with Submitter(cache_dir=cache_dir, progress=console) as sub:
        sub(T.Pipelined(x=[0, 1], pauses=[0.3, 0.3]))  # slow enough for a refresh
    text = buffer.getvalue()
    assert "Pipelined/a" in text and "Pipelined/b" in text
    assert "pending" in text and "cached" in text
    assert "provgraph: Pipelined finished in" in text and "4 executed, 0 reused" in text


def test_not_a_terminal_prints_only_the_summary(cache_dir: Path) -> None:
    """Without a terminal, the one-line summary is all that is printed."""
    console, buffer = _console(terminal=False)
    with Submitter(cache_dir=cache_dir, progress=console) as sub:
        sub(T.OneSplit(x=[1, 2, 3]))
        sub(T.OneSplit(x=[1, 2, 3]))
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("provgraph: OneSplit finished in")
    assert lines[0].endswith("3 executed, 0 reused")
    assert lines[1].endswith("0 executed, 1 reused")


def test_failures_are_in_the_summary(tmp_path: Path) -> None:
    """Failed and skipped jobs are counted in the summary."""
    console, buffer = _console(terminal=False)
    flag = tmp_path / "flag"
    flag.touch()
    with Submitter(cache_dir=tmp_path / "cache", progress=console) as sub:
        sub(T.Fragile(x=[1, 2, 3], bad=2, flag=str(flag)))
    assert "1 failed, 3 skipped" in buffer.getvalue()


def test_progress_off(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``progress=False`` prints nothing at all; a bad value is refused."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(T.OneSplit(x=[1]))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    with pytest.raises(SpecError, match="progress"):
        Submitter(cache_dir=cache_dir, progress="loud")
