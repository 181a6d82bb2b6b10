"""Shared fixtures: a fresh cache directory, and a parametrisation over the local workers."""

from __future__ import annotations

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


def skip_unless_ci(reason: str) -> None:
    """``pytest.skip(reason)``, except under CI (``PROVGRAPH_CI=1``), where what the test needs
    was set up by ``.ci/run``, so its absence is a failure."""
    import os

    if os.environ.get("PROVGRAPH_CI") == "1":
        pytest.fail(f"under CI, but: {reason}")
    pytest.skip(reason)
