"""``pydra.utils``: the public helpers the tests use."""

from .general import default_run_cache_root, get_fields, plot_workflow, task_help  # noqa: F401
