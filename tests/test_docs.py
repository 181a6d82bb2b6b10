"""The documentation's examples run: every ```python block of every docs page, page by page.

The blocks of one page share one namespace and run in order, top to bottom, in a fresh empty
working directory with ``PROVGRAPH_CACHE_DIR`` pointing at a fresh cache. Each block is compiled
with the page as its file name and its own line numbers, so a failure points at the line of the
``.md`` file, and ``inspect.getsource`` (which Python tasks use for their definition hash) finds
the function's source exactly as it would in a script.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a page: (line number of the block's first line, code)."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_block_extraction() -> None:
    """Only ```python fences are collected, with the line their code starts on."""
    text = "intro\n```python\nx = 1\n```\n```text\nnot = code\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = x\n")]


def test_docs_exist() -> None:
    """The docs folder has pages, so the page tests below cannot pass vacuously."""
    assert len(PAGES) >= 8, PAGES


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page(
    page: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every python block of the page runs, in order, in one namespace, without error."""
    blocks = python_blocks(page.read_text())
    if not blocks:
        pytest.skip(f"{page.relative_to(DOCS)} has no ```python blocks to run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROVGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("default-cache")))
    monkeypatch.delenv("PROVGRAPH_WORKER", raising=False)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for first_line, code in blocks:
        source = "\n" * (first_line - 1) + code
        exec(compile(source, str(page), "exec", dont_inherit=True), namespace)
