"""The split/combine algebra: splitter -> ordered job elements, combiner -> output nesting.

A splitter is a field name, a tuple (zip: the operands advance together and must have the
same shape) or a list (outer product: the last operand varies fastest), nested freely.

Expanding a splitter gives *axes*: an outer product concatenates its operands' axes, a zip
merges them axis by axis, so each axis is a set of field names that advance together. Elements
are numbered in row-major order over the axes (the last axis fastest).

Outputs without a combiner are a flat list in element order. A combiner names fields; every
axis holding one of them is combined. With nothing left uncombined the output is a flat list;
otherwise it is a list over the remaining axes (row-major) of lists over the combined ones,
which is Pydra's nesting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .exceptions import SplitterError

__all__ = ["Expansion", "combine_outputs", "expand", "normalise_combiner", "normalise_splitter"]

Splitter = str | tuple[Any, ...] | list[Any]


def normalise_splitter(splitter: Any, fields: Sequence[str]) -> Splitter:
    """Validate ``splitter`` against the input ``fields``; return it with lists and tuples."""
    seen: list[str] = []

    def walk(node: Any) -> Splitter:
        if isinstance(node, str):
            if node not in fields:
                raise SplitterError(
                    f"splitter names {node!r}, which is not an input; inputs are {sorted(fields)}"
                )
            if node in seen:
                raise SplitterError(f"splitter names field {node!r} more than once")
            seen.append(node)
            return node
        if isinstance(node, (tuple, list)):
            if not node:
                raise SplitterError(f"splitter {node!r} is empty; expected field names")
            items = [walk(n) for n in node]
            if len(items) == 1:
                return items[0]
            return tuple(items) if isinstance(node, tuple) else items
        raise SplitterError(
            f"splitter {node!r} ({type(node).__name__}) is not a field name, tuple or list"
        )

    return walk(splitter)


def splitter_fields(splitter: Splitter | None) -> list[str]:
    """The field names a splitter mentions, in order."""
    if splitter is None:
        return []
    if isinstance(splitter, str):
        return [splitter]
    return [name for node in splitter for name in splitter_fields(node)]


def normalise_combiner(combiner: Any, splitter: Splitter | None) -> list[str]:
    """Validate ``combiner`` (a name or list of names) against the splitter's fields."""
    names = [combiner] if isinstance(combiner, str) else list(combiner)
    split = splitter_fields(splitter)
    for name in names:
        if not isinstance(name, str):
            raise SplitterError(f"combiner {combiner!r}: {name!r} is not a field name")
        if name not in split:
            raise SplitterError(
                f"combiner names {name!r}, which is not split over; split fields are {split}"
            )
    return names


@attrs.frozen
class Expansion:
    """The elements of a split: ``axes[i]`` advances along dimension ``i`` of ``shape``."""

    axes: tuple[frozenset[str], ...]
    shape: tuple[int, ...]
    getter: Callable[[tuple[int, ...]], dict[str, Any]]

    def __len__(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n

    def indices(self) -> Any:
        """Multi-indices of the elements in row-major order."""
        return itertools.product(*(range(n) for n in self.shape))

    def elements(self) -> list[dict[str, Any]]:
        """The split fields' values of each element, in order."""
        return [self.getter(idx) for idx in self.indices()]


def _nested_shape(name: str, value: Any, depth: int) -> tuple[int, ...]:
    shape: list[int] = []
    level = [value]
    for d in range(depth):
        lengths = {len(v) if _is_list(v) else -1 for v in level}
        if -1 in lengths or len(lengths) > 1:
            raise SplitterError(
                f"field {name!r} is zipped with a {depth}-dimensional split, so its value must "
                f"be a rectangular list nested {depth} deep; level {d + 1} is not"
            )
        (n,) = lengths
        shape.append(n)
        level = [item for v in level for item in v]
    return tuple(shape)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray"


def _leaf(name: str, value: Any, depth: int) -> Expansion:
    shape = _nested_shape(name, value, depth)

    def get(idx: tuple[int, ...]) -> dict[str, Any]:
        v = value
        for i in idx:
            v = v[i]
        return {name: v}

    return Expansion(tuple(frozenset([name]) for _ in shape), shape, get)


def _outer(parts: list[Expansion]) -> Expansion:
    cuts = list(itertools.accumulate(len(p.shape) for p in parts))
    starts = [0, *cuts[:-1]]

    def get(idx: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part, a, b in zip(parts, starts, cuts, strict=True):
            out.update(part.getter(idx[a:b]))
        return out

    axes = tuple(ax for p in parts for ax in p.axes)
    shape = tuple(n for p in parts for n in p.shape)
    return Expansion(axes, shape, get)


def _zip(node: tuple[Any, ...], values: dict[str, Any]) -> Expansion:
    blocks = {i: _eval(n, values) for i, n in enumerate(node) if not isinstance(n, str)}
    depth = max((len(b.shape) for b in blocks.values()), default=1)
    parts = [blocks[i] if i in blocks else _leaf(n, values[n], depth) for i, n in enumerate(node)]
    shapes = {p.shape for p in parts}
    if len(shapes) > 1:
        sizes = ", ".join(
            f"{'/'.join(sorted(set().union(*p.axes)))} has {_fmt_shape(p.shape)}" for p in parts
        )
        raise SplitterError(
            f"zip splitter {node!r} needs values of equal length, but {sizes}",
        )
    (shape,) = shapes if shapes else {()}
    axes = tuple(frozenset().union(*(p.axes[d] for p in parts)) for d in range(len(shape)))

    def get(idx: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part in parts:
            out.update(part.getter(idx))
        return out

    return Expansion(axes, shape, get)


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return str(shape[0]) if len(shape) == 1 else "x".join(map(str, shape))


def _eval(node: Splitter, values: dict[str, Any]) -> Expansion:
    if isinstance(node, str):
        return _leaf(node, values[node], 1)
    if isinstance(node, tuple):
        return _zip(node, values)
    return _outer([_eval(n, values) for n in node])


def expand(splitter: Splitter, values: dict[str, Any]) -> Expansion:
    """Expand ``splitter`` over the split fields' ``values`` (lists, nested for zips)."""
    return _eval(splitter, values)


def combine_outputs(
    expansion: Expansion, combiner: Sequence[str], items: Sequence[Any]
) -> list[Any]:
    """Arrange per-element ``items`` (in element order) by Pydra's combine rules."""
    if not combiner:
        return list(items)
    combined = [i for i, ax in enumerate(expansion.axes) if ax & set(combiner)]
    kept = [i for i in range(len(expansion.axes)) if i not in combined]
    if not kept:
        return list(items)
    strides = _strides(expansion.shape)
    groups: list[list[Any]] = []
    for kept_idx in itertools.product(*(range(expansion.shape[i]) for i in kept)):
        base = sum(strides[k] * j for k, j in zip(kept, kept_idx, strict=True))
        group = []
        for comb_idx in itertools.product(*(range(expansion.shape[i]) for i in combined)):
            flat = base + sum(strides[c] * j for c, j in zip(combined, comb_idx, strict=True))
            group.append(items[flat])
        groups.append(group)
    return groups


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides
