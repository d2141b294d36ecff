"""Every backend against the reference evaluator, on random documents and queries."""

from doqu.testing.differential import *  # noqa: F403
