"""``pydra.utils.typing``: the public type names, as provgraph spells them.

``MultiInputObj`` is provgraph's own. ``MultiOutputFile`` is ``list[File]`` (provgraph's
documented equivalent). ``StateArray`` (the list a split node's output becomes) is ``list``.
``MultiOutputObj`` has no provgraph equivalent and is left out.
"""

from fileformats.generic import File

from provgraph import MultiInputObj

StateArray = list
MultiOutputFile = list[File]

__all__ = ["MultiInputObj", "MultiOutputFile", "StateArray"]
