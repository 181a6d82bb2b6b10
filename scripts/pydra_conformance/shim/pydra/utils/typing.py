"""``pydra.utils.typing``: the public type names, as provgraph spells them.

``MultiInputObj`` is provgraph's own. ``MultiOutputFile`` is ``list[File]`` (provgraph's
documented equivalent). ``StateArray`` (the list a split node's output becomes) is ``list``.
``MultiOutputObj`` (Pydra: one value or a list, a list of one unwrapped) has no provgraph
equivalent; it is named here as ``typing.Any`` so that modules importing it still load, and
tests relying on its unwrapping fail.
"""

import typing

from fileformats.generic import File

from provgraph import MultiInputObj

StateArray = list
MultiOutputFile = list[File]
MultiOutputObj = typing.Any

__all__ = ["MultiInputObj", "MultiOutputFile", "MultiOutputObj", "StateArray"]
