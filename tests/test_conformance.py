"""The conformance suite over every backend of the ``db`` fixture."""

from doqu.testing.conformance import *  # noqa: F403
