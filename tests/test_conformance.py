"""The conformance suite over every backend of the ``db`` fixture, through the sync
and the async API."""

from collections.abc import Iterator

import pytest

from doqu.testing.aio import open_storage
from doqu.testing.conformance import *  # noqa: F403


@pytest.fixture(params=["sync", "async"])
def db(request: pytest.FixtureRequest, db_url: str) -> Iterator[object]:
    """A fresh store of the backend, used through the sync or the async API."""
    with open_storage(db_url, request.param) as storage:
        yield storage
