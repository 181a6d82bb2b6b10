"""``pydra.workers``: workers are named by string in provgraph; modules here are internals."""
