"""The split/combine algebra: splitter -> ordered elements, combiner -> output nesting.

A splitter is a field name, a tuple (zip: the operands advance together and must have the
same length) or a list (outer product: the last operand varies fastest), nested freely. Inside a
workflow a splitter may also name ``"_node"``: the state an upstream node passes on.

Expanding a splitter gives *axes*: an outer product concatenates its operands' axes, a zip
merges them axis by axis, so each axis is a set of field names that advance together (fields of
upstream nodes are qualified, ``"node.field"``). Elements come in row-major order (the last
axis fastest). An operand may depend on the ones before it in an outer product (a list that an
upstream element produced), so lengths may differ from one element to the next.

Outputs without a combiner are a flat list in element order. A combiner names fields; every
axis holding one of them is combined. With nothing left uncombined the output is a flat list;
otherwise it is a list over the remaining axes (in row-major order of their indices) of lists
over the combined ones, which is Pydra's nesting. An empty split gives an empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from .exceptions import SplitterError

__all__ = [
    "Expansion",
    "Space",
    "combine_outputs",
    "expand",
    "normalise_combiner",
    "normalise_splitter",
    "remaining_space",
    "splitter_fields",
]

Splitter = str | tuple[Any, ...] | list[Any]
Assign = dict[str, Any]


def normalise_splitter(splitter: Any, fields: Sequence[str]) -> Splitter:
    """Validate ``splitter`` against the input ``fields``; return it with lists and tuples.

    Names starting with ``_`` that are not fields refer to upstream nodes; they are checked when
    the workflow graph is known.
    """
    seen: list[str] = []

    def walk(node: Any) -> Splitter:
        if isinstance(node, str):
            if node in seen:
                raise SplitterError(f"splitter names {node!r} more than once")
            if node.startswith("_") and node[1:] and node not in fields:
                seen.append(node)
                return node
            if node not in fields:
                raise SplitterError(
                    f"splitter names {node!r}, which is not an input; inputs are {sorted(fields)}"
                )
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
    """The names a splitter mentions (fields and ``_node`` terms), in order."""
    if splitter is None:
        return []
    if isinstance(splitter, str):
        return [splitter]
    return [name for node in splitter for name in splitter_fields(node)]


def normalise_combiner(combiner: Any, splitter: Splitter | None) -> list[str]:
    """Validate ``combiner`` (a name or list of names) against the splitter's fields.

    ``"node.field"`` names an upstream node's field; it is checked when the graph is known.
    """
    if not isinstance(combiner, (str, list, tuple)):
        raise SplitterError(
            f"combiner {combiner!r} ({type(combiner).__name__}); expected a field name or a list "
            "of them"
        )
    names = [combiner] if isinstance(combiner, str) else list(combiner)
    split = splitter_fields(splitter)
    for name in names:
        if not isinstance(name, str):
            raise SplitterError(f"combiner {combiner!r}: {name!r} is not a field name")
        if "." in name:
            continue
        if name not in split:
            raise SplitterError(
                f"combiner names {name!r}, which is not split over; split fields are {split}"
            )
    return names


@attrs.frozen
class Space:
    """The elements a node passes downstream: its remaining axes and their indices."""

    axes: tuple[frozenset[str], ...]
    keys: list[tuple[int, ...]]
    groups: dict[tuple[int, ...], list[int]]  # key -> element positions, in element order


@attrs.frozen
class Expansion:
    """The elements of a split, in order: their multi-index and what each assigns.

    ``assign[i]`` maps each split field to its value for element ``i`` and each ``"_node"``
    term to the key of that upstream node's element.
    """

    axes: tuple[frozenset[str], ...]
    index: list[tuple[int, ...]]
    assign: list[Assign]

    def __len__(self) -> int:
        return len(self.index)

    def elements(self) -> list[Assign]:
        """The split fields' values of each element (upstream keys left out)."""
        return [{k: v for k, v in a.items() if not k.startswith("_")} for a in self.assign]


@attrs.frozen
class _Block:
    axes: tuple[frozenset[str], ...]
    names: tuple[str, ...]
    iterate: Callable[[Assign], Iterator[tuple[tuple[int, ...], Assign]]]


Resolver = Callable[[str, Assign], Any]


def _leaf(name: str, depth: int, resolve: Resolver) -> _Block:
    def iterate(ctx: Assign) -> Iterator[tuple[tuple[int, ...], Assign]]:
        value = resolve(name, ctx)
        yield from _walk_nested(name, value, depth, ())

    return _Block(tuple(frozenset([name]) for _ in range(depth)), (name,), iterate)


def _walk_nested(
    name: str, value: Any, depth: int, prefix: tuple[int, ...]
) -> Iterator[tuple[tuple[int, ...], Assign]]:
    if not _is_list(value):
        raise SplitterError(
            f"field {name!r} is split {depth + len(prefix)}-dimensionally (zipped with a "
            f"{depth + len(prefix)}-dimensional split), so its value must be a rectangular "
            f"list nested that deep; got {type(value).__name__} at index {list(prefix)}"
        )
    for i, item in enumerate(value):
        if depth == 1:
            yield (*prefix, i), {name: item}
        else:
            yield from _walk_nested(name, item, depth - 1, (*prefix, i))


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray"


def _upstream(term: str, space: Space) -> _Block:
    def iterate(ctx: Assign) -> Iterator[tuple[tuple[int, ...], Assign]]:
        for key in space.keys:
            yield key, {term: key}

    names = tuple(sorted(set().union(*space.axes))) if space.axes else (term,)
    return _Block(space.axes, names, iterate)


def _outer(blocks: list[_Block]) -> _Block:
    def iterate(ctx: Assign) -> Iterator[tuple[tuple[int, ...], Assign]]:
        def rec(
            i: int, idx: tuple[int, ...], acc: Assign
        ) -> Iterator[tuple[tuple[int, ...], Assign]]:
            if i == len(blocks):
                yield idx, acc
                return
            for sub_idx, sub in blocks[i].iterate({**ctx, **acc}):
                yield from rec(i + 1, idx + sub_idx, {**acc, **sub})

        yield from rec(0, (), {})

    axes = tuple(ax for b in blocks for ax in b.axes)
    return _Block(axes, tuple(n for b in blocks for n in b.names), iterate)


def _zip(node: tuple[Any, ...], blocks: list[_Block]) -> _Block:
    dims = {len(b.axes) for b in blocks}
    if len(dims) > 1:
        raise SplitterError(f"zip splitter {node!r} joins splits of different dimensions")
    (ndim,) = dims

    def iterate(ctx: Assign) -> Iterator[tuple[tuple[int, ...], Assign]]:
        parts = [list(b.iterate(ctx)) for b in blocks]
        if len({tuple(i for i, _ in p) for p in parts}) > 1:
            sizes = ", ".join(
                f"{'/'.join(b.names)} has {len(p)}" + ("" if ndim == 1 else " elements")
                for b, p in zip(blocks, parts, strict=True)
            )
            raise SplitterError(f"zip splitter {node!r} needs values of equal length, but {sizes}")
        for items in zip(*parts, strict=True):
            merged: Assign = {}
            for _, sub in items:
                merged.update(sub)
            yield items[0][0], merged

    axes = tuple(frozenset().union(*(b.axes[d] for b in blocks)) for d in range(ndim))
    return _Block(axes, tuple(n for b in blocks for n in b.names), iterate)


def _build(node: Splitter, resolve: Resolver, upstream: dict[str, Space], depth: int = 1) -> _Block:
    if isinstance(node, str):
        if node in upstream:
            return _upstream(node, upstream[node])
        return _leaf(node, depth, resolve)
    if isinstance(node, tuple):
        inner = {
            i: _build(n, resolve, upstream)
            for i, n in enumerate(node)
            if not _is_field(n, upstream)
        }
        ndim = max((len(b.axes) for b in inner.values()), default=1)
        blocks = [inner[i] if i in inner else _leaf(n, ndim, resolve) for i, n in enumerate(node)]
        return _zip(node, blocks)
    return _outer([_build(n, resolve, upstream) for n in node])


def _is_field(node: Any, upstream: dict[str, Space]) -> bool:
    return isinstance(node, str) and node not in upstream


def expand(
    splitter: Splitter,
    values: dict[str, Any],
    upstream: dict[str, Space] | None = None,
) -> Expansion:
    """Expand ``splitter``: ``values`` are lists, or callables ``f(assign) -> list`` for lists
    that depend on earlier operands; ``upstream`` gives the spaces of ``"_node"`` terms."""

    def resolve(name: str, ctx: Assign) -> Any:
        value = values[name]
        return value(ctx) if callable(value) else value

    block = _build(splitter, resolve, upstream or {})
    index: list[tuple[int, ...]] = []
    assign: list[Assign] = []
    for idx, sub in block.iterate({}):
        index.append(idx)
        assign.append(sub)
    return Expansion(block.axes, index, assign)


def _combined_dims(expansion: Expansion, combiner: Sequence[str]) -> list[int]:
    wanted = set(combiner)
    return [d for d, ax in enumerate(expansion.axes) if ax & wanted]


def remaining_space(expansion: Expansion, combiner: Sequence[str]) -> Space:
    """The axes left after ``combiner`` and the element positions behind each key."""
    combined = set(_combined_dims(expansion, combiner))
    kept = [d for d in range(len(expansion.axes)) if d not in combined]
    groups: dict[tuple[int, ...], list[int]] = {} if kept else {(): []}
    for pos, idx in enumerate(expansion.index):
        # (uncombined, each element's index is its key: no tuple built per element)
        key = tuple(idx[d] for d in kept) if combined else idx
        found = groups.get(key)
        if found is None:
            groups[key] = [pos]
        else:
            found.append(pos)
    keys = sorted(groups)
    return Space(tuple(expansion.axes[d] for d in kept), keys, {k: groups[k] for k in keys})


def combine_outputs(
    expansion: Expansion, combiner: Sequence[str], items: Sequence[Any]
) -> list[Any]:
    """Arrange per-element ``items`` (in element order) by Pydra's combine rules."""
    if not combiner or len(_combined_dims(expansion, combiner)) == len(expansion.axes):
        return list(items)
    space = remaining_space(expansion, combiner)
    return [[items[p] for p in space.groups[k]] for k in space.keys]
