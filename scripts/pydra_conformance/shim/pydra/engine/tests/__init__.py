"""``pydra.engine.tests``: the checkout's test helpers, loaded with the shim active."""
