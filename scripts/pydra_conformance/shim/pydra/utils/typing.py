"""``pydra.utils.typing``: the public type names, as provgraph spells them.

``MultiInputObj`` and ``MultiOutputObj`` are provgraph's own. ``MultiOutputFile`` is
``MultiOutputObj[File]``, as in Pydra. ``StateArray`` (the list a split node's output
becomes) is ``list``.
"""

from fileformats.generic import File

from provgraph import MultiInputObj, MultiOutputObj

StateArray = list
MultiOutputFile = MultiOutputObj[File]

__all__ = ["MultiInputObj", "MultiOutputFile", "MultiOutputObj", "StateArray"]
