"""``pydra.engine``: only the submitter is public."""

from .submitter import Submitter  # noqa: F401
