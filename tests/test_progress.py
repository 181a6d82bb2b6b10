"""Progress: a live table on a terminal, only a summary elsewhere, nothing when turned off."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def test_progress_off_does_not_load_rich(tmp_path: Path) -> None:
    """A submitter without progress never imports rich (30 ms of every fresh process: a batch
    script's, a cluster job's); one with progress does, and says its summary."""
    code = f"""
import sys
from provgraph import Submitter, python

@python.define
def Inc(x: int) -> int:
    return x + 1

with Submitter(cache_dir={str(tmp_path)!r}, progress=False) as sub:
    quiet = sub(Inc().split(x=[1, 2]))
print(quiet.outputs.out, "rich" in sys.modules)
with Submitter(cache_dir={str(tmp_path)!r}, progress=True) as sub:
    sub(Inc(x=5))
print("rich" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[2, 3] False", "True"]
    assert "provgraph: Inc finished in" in run.stderr


def _wait_for(path: Path) -> None:
    import time

    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _when(read: Any, key: str, value: int) -> dict[str, int]:
    """The first of ``read()``'s rows whose ``key`` is ``value`` (polled; a guard of 120 s)."""
    import time

    deadline = time.monotonic() + 120
    while (row := read())[key] != value:
        assert time.monotonic() < deadline, f"{key} stayed {row[key]}, never {value}"
        time.sleep(0.02)
    return dict(row)


@pytest.mark.parametrize(("worker", "options", "capacity"), [("cf", {"n_procs": 2}, 2)])
def test_running_counts_what_the_worker_runs_the_rest_is_queued(
    tmp_path: Path, worker: str, options: dict[str, int], capacity: int
) -> None:
    """Eight jobs handed to a pool of two processes: two running, six queued (not "running
    8"), on a real pool while its jobs are held."""
    import threading

    marks = tmp_path / "marks"
    marks.mkdir()
    console, _buffer = _console(terminal=False)
    sub = Submitter(cache_dir=tmp_path / "cache", progress=console, worker=worker, **options)
    thread = threading.Thread(target=sub, args=(T.Held(marks=str(marks)).split(x=list(range(8))),))
    thread.start()
    try:
        _wait_for(marks / "started-0")
        assert sub.progress is not None
        # the pool starts with the first job, while the rest are still being handed over: wait
        # until all eight are (none can finish while they are held)
        row = _when(lambda: next(iter(sub.progress.counts().values())), "pending", 0)
        assert (row["running"], row["queued"]) == (capacity, 8 - capacity)
        assert row["pending"] == 0 and row["done"] == 0
    finally:
        (marks / "release").touch()
        thread.join()
        sub.close()
    (row,) = sub.progress.counts().values()
    assert (row["running"], row["queued"], row["done"]) == (0, 0, 8)


def test_a_notebook_without_ipywidgets_gets_the_summary_quietly(cache_dir: Path) -> None:
    """In Jupyter the table is drawn through ipywidgets; without it, no live table and no
    warning at every refresh."""
    import importlib.util
    import warnings

    buffer = io.StringIO()
    console = Console(file=buffer, force_jupyter=True, width=120)
    seen: list[object] = []

    def watch(event: object) -> None:  # while the run is on: is the table live?
        if sub.progress is not None and type(event).__name__ == "JobFinished":
            seen.append(sub.progress._live)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rich's "install ipywidgets" would fail the test
        with Submitter(cache_dir=cache_dir, progress=console, hooks=[watch]) as sub:
            sub(T.OneSplit(x=[1, 2]))
    assert len(seen) == 2  # (rich shows the summary through IPython's display, not the file)
    if importlib.util.find_spec("ipywidgets") is None:
        assert seen == [None, None]
    else:
        assert all(live is not None for live in seen)
