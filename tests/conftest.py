"""Shared fixtures: a fresh cache directory, and a parametrisation over the local workers."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

LOCAL_WORKERS = ["serial", "cf"]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty cache directory for one test."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture(params=LOCAL_WORKERS)
def worker(request: pytest.FixtureRequest) -> str:
    """Each local worker in turn."""
    return str(request.param)


@pytest.fixture
def python_exe() -> str:
    """The interpreter running the tests, for shell tasks that need Python."""
    return sys.executable


def requires(executable: str, how: str) -> pytest.MarkDecorator:
    """Skip when ``executable`` is not on PATH; under CI (``PROVGRAPH_CI=1``, set by ``.ci/run``,
    which installs and starts every service the tests need) never skip: the test runs, and
    fails if the service is missing."""
    import os
    import shutil

    missing = shutil.which(executable) is None and os.environ.get("PROVGRAPH_CI") != "1"
    return pytest.mark.skipif(missing, reason=f"no {executable} on PATH; {how}")


_USABLE_NODE_STATES = ("idle", "mix", "alloc", "comp")  # (sinfo's short states; "mixed"...)


@functools.lru_cache(maxsize=1)
def _slurm_missing() -> str | None:
    """Why no SLURM cluster can take jobs here (None: one answers): ``sbatch`` absent, its
    controller not answering ``sinfo`` (installed, but not started), or no node up."""
    import shutil
    import subprocess

    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo did not answer ({err})"
    if answer.returncode != 0:
        return f"sbatch is installed but the cluster does not answer: {answer.stderr.strip()}"
    states = answer.stdout.split()
    if not any(state.startswith(_USABLE_NODE_STATES) for state in states):
        return f"the cluster has no node that can take jobs (node states: {states})"
    return None


def requires_slurm(how: str) -> pytest.MarkDecorator:
    """Mark a test that needs a SLURM cluster: it skips when none answers here (``sbatch``
    missing, or installed but not started), asked only when such a test runs; under CI
    (``PROVGRAPH_CI=1``) it never skips: it runs, and fails without one."""
    return pytest.mark.needs_slurm(how)


@pytest.fixture(autouse=True)
def _skip_without_slurm(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("needs_slurm")
    if marker is None:
        return
    import os

    if os.environ.get("PROVGRAPH_CI") == "1":
        return
    missing = _slurm_missing()
    if missing is not None:
        pytest.skip(f"{missing}; {marker.args[0]}")


def skip_unless_ci(reason: str) -> None:
    """``pytest.skip(reason)``, except under CI (``PROVGRAPH_CI=1``), where what the test needs
    was set up by ``.ci/run``, so its absence is a failure."""
    import os

    if os.environ.get("PROVGRAPH_CI") == "1":
        pytest.fail(f"under CI, but: {reason}")
    pytest.skip(reason)
