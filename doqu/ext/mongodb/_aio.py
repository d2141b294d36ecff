"""pymongo's async driver behind its sync interface, for the async API.

Opened by :func:`doqu.connect_async`, :class:`MongoStorage` holds an
``AsyncMongoClient`` behind a :class:`Facade`, and its code runs unchanged: each
call's awaitable result is awaited with :func:`doqu.backend.wait`, the async
client, database, collection, cursor and session objects returned are wrapped
again, and facades passed as arguments (``session=s``) are unwrapped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase

from ...backend import bridged, spawn, wait

__all__ = ["Facade", "Session", "wrap"]

T = TypeVar("T")
_WRAPPED = (AsyncMongoClient, AsyncDatabase, AsyncCollection, AsyncCursor, AsyncCommandCursor)


def wrap(value: Any) -> Any:
    """*value*, behind a facade if it is one of pymongo's async objects."""
    if isinstance(value, AsyncClientSession):
        return Session(value)
    if isinstance(value, _WRAPPED):
        return Facade(value)
    return value


def _unwrap(value: Any) -> Any:
    return value.obj if isinstance(value, Facade) else value


class Facade:
    """One of pymongo's async objects, used as its sync counterpart is.

    Attributes:
        obj: the async object.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.obj, name)
        if isinstance(value, (*_WRAPPED, AsyncClientSession)) or not callable(value):
            return wrap(value)  # client.admin, db.name, result counts
        method = value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()})
            if inspect.isawaitable(result):
                result = wait(result)
            return wrap(result)

        return call

    def __getitem__(self, name: str) -> Any:
        return wrap(self.obj[name])

    def __iter__(self) -> Iterator[Any]:
        """A cursor's documents, each batch fetched when the last is used up."""
        cursor = self.obj
        while True:
            try:
                yield wait(cursor.next())
            except StopAsyncIteration:
                return

    def __enter__(self) -> Any:
        wait(self.obj.__aenter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        # A stream dropped outside the event loop (garbage collected) cannot await
        # its close; the driver then kills the cursor itself.
        if bridged():
            wait(self.obj.__aexit__(*exc))

    def __repr__(self) -> str:
        return f"<sync {self.obj!r}>"


class Session(Facade):
    """An ``AsyncClientSession`` behind ``ClientSession``'s interface."""

    __slots__ = ()

    def with_transaction(self, body: Callable[[Any], T], **options: Any) -> T:
        """Run the sync ``body(session)`` in a transaction, rerun on transient errors;
        each run is a greenlet of its own, as the driver awaits its callback."""

        async def callback(session: AsyncClientSession) -> T:
            return await spawn(body, Session(session))

        out: T = wait(self.obj.with_transaction(callback, **options))
        return out
