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
