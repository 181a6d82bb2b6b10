"""The split/combine algebra, checked on plain values and through real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provgraph import SpecError, SplitterError, Submitter, python
from provgraph.state import combine_outputs, expand, normalise_splitter


def _elements(splitter: Any, **values: Any) -> list[dict[str, Any]]:
    return expand(normalise_splitter(splitter, list(values)), values).elements()


def test_single_field() -> None:
    """Splitting one field gives one element per value, in order."""
    assert _elements("a", a=[3, 5]) == [{"a": 3}, {"a": 5}]


def test_zip_and_unequal_lengths() -> None:
    """A tuple zips; unequal lengths name the fields and their lengths."""
    assert _elements(("a", "b"), a=[1, 2], b=[10, 20]) == [{"a": 1, "b": 10}, {"a": 2, "b": 20}]
    with pytest.raises(SplitterError, match=r"a has 3, b has 2"):
        _elements(("a", "b"), a=[1, 2, 3], b=[10, 20])


def test_outer_product_last_fastest() -> None:
    """A list is an outer product with the last field varying fastest."""
    assert _elements(["a", "b"], a=[1, 2], b=[10, 20]) == [
        {"a": 1, "b": 10},
        {"a": 1, "b": 20},
        {"a": 2, "b": 10},
        {"a": 2, "b": 20},
    ]


def test_nested_outer_of_zip() -> None:
    """Splitters nest: an outer product of a field and a zip."""
    got = _elements(["a", ("b", "c")], a=[1, 2], b=[3, 4], c=[5, 6])
    assert got == [
        {"a": 1, "b": 3, "c": 5},
        {"a": 1, "b": 4, "c": 6},
        {"a": 2, "b": 3, "c": 5},
        {"a": 2, "b": 4, "c": 6},
    ]


def test_zip_with_outer_block_takes_nested_values() -> None:
    """A field zipped with a 2-D outer product needs a matching nested list."""
    got = _elements(
        ("b", ["c", "d"]), b=[["b1", "b2"], ["b3", "b4"]], c=["c1", "c2"], d=["d1", "d2"]
    )
    assert [e["b"] for e in got] == ["b1", "b2", "b3", "b4"]
    assert got[3] == {"b": "b4", "c": "c2", "d": "d2"}
    with pytest.raises(SplitterError, match="rectangular"):
        _elements(("b", ["c", "d"]), b=["b1", "b2"], c=["c1", "c2"], d=["d1", "d2"])


def test_bad_splitters() -> None:
    """Unknown fields, repeated fields and odd objects are refused with the reason."""
    with pytest.raises(SplitterError, match="not an input"):
        normalise_splitter("z", ["a"])
    with pytest.raises(SplitterError, match="more than once"):
        normalise_splitter(["a", "a"], ["a"])
    with pytest.raises(SplitterError, match="not a field name"):
        normalise_splitter(3, ["a"])


COMBINE_CASES = [
    # splitter, combiner, expected nesting of element numbers (a=[0,1], b=[0,1,2])
    (["a", "b"], [], [0, 1, 2, 3, 4, 5]),
    (["a", "b"], ["a"], [[0, 3], [1, 4], [2, 5]]),
    (["a", "b"], ["b"], [[0, 1, 2], [3, 4, 5]]),
    (["a", "b"], ["a", "b"], [0, 1, 2, 3, 4, 5]),
    (["a", "b"], ["b", "a"], [0, 1, 2, 3, 4, 5]),
]


@pytest.mark.parametrize(("splitter", "combiner", "expected"), COMBINE_CASES)
def test_combine_nesting(splitter: Any, combiner: list[str], expected: list[Any]) -> None:
    """Partial combines give a list over the kept axes of lists over the combined ones."""
    ex = expand(splitter, {"a": [0, 1], "b": [0, 1, 2]})
    assert combine_outputs(ex, combiner, list(range(len(ex)))) == expected


def test_combining_one_zipped_field_combines_the_zip() -> None:
    """Zipped fields share an axis, so combining one of them combines both."""
    ex = expand(["c", ("a", "b")], {"a": [0, 1], "b": [0, 1], "c": [0, 1, 2]})
    assert combine_outputs(ex, ["a"], list(range(6))) == [[0, 1], [2, 3], [4, 5]]


@given(st.lists(st.integers(), max_size=20))
def test_split_then_combine_restores_input(values: list[int]) -> None:
    """Splitting one field and combining it gives the values back in order."""
    ex = expand("a", {"a": values})
    items = [e["a"] for e in ex.elements()]
    assert combine_outputs(ex, ["a"], items) == values


@python.define
def Add(a: int, b: int = 0) -> int:
    return a + b


def test_pydra_combine_order_through_a_run(cache_dir: Path, worker: str) -> None:
    """Pydra's documented orders: combine a -> grouped by b; combine b -> grouped by a."""
    base = Add().split(["a", "b"], a=[10, 20], b=[3, 5])
    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        assert sub(base).outputs.out == [13, 15, 23, 25]
        assert sub(base.combine("a")).outputs.out == [[13, 23], [15, 25]]
        assert sub(base.combine("b")).outputs.out == [[13, 15], [23, 25]]
        assert sub(base.combine(["b", "a"])).outputs.out == [13, 15, 23, 25]
        zipped = Add().split(("a", "b"), a=[3, 5], b=[10, 20]).combine("b")
        assert sub(zipped).outputs.out == [13, 25]


def test_split_values_set_before_split(cache_dir: Path) -> None:
    """Values may be set first and split later; a list left unsplit is an error before running."""
    task = Add(a=[1, 2], b=1)
    with Submitter(cache_dir=cache_dir) as sub:
        with pytest.raises(SpecError, match="'a'"):
            sub(task)
        assert sub(task.split("a")).outputs.out == [2, 3]


def test_split_rules_on_tasks() -> None:
    """Re-splitting needs overwrite; combining needs split fields; split values must be lists."""
    task = Add().split(a=[1, 2])
    with pytest.raises(SplitterError, match="overwrite"):
        task.split(b=[1])
    assert task.split("b", b=[1], overwrite=True, a=1).splitter == "b"
    with pytest.raises(SplitterError, match="not split"):
        task.combine("b")
    with pytest.raises(SpecError, match="not a list"):
        Add().split(a=3)
    with pytest.raises(SpecError, match="'a'"):
        Add().split(a=[1, "x"])


def test_empty_split_runs_nothing(cache_dir: Path, worker: str) -> None:
    """An empty split gives empty lists and runs no job."""
    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        result = sub(Add(b=1).split(a=[]))
        combined = sub(Add().split(["a", "b"], a=[], b=[1, 2]).combine("a"))
    assert result.outputs.out == [] and result.stats["executed"] == 0
    assert combined.outputs.out == []
