"""Run sync test suites through the async API: :class:`BlockingStorage`.

The conformance and differential suites are written against the sync API. A
:class:`BlockingStorage` has that API, but each of its calls awaits the matching
call of an :class:`~doqu.AsyncStorage` on an event loop of its own, so the same
tests, case for case, prove the async API::

    @pytest.fixture(params=["sync", "async"])
    def db(request, db_url):
        with open_storage(db_url, request.param) as storage:
            yield storage

Queries stream through ``async for``, mapping views through the async view,
and ``q[i]`` is ``await q[i]``: nothing reaches the wrapped storage but the
async API itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator, MutableMapping
from typing import Any, TypeVar

import doqu
from doqu import AsyncMappingView, AsyncQuery, AsyncStorage, Storage

__all__ = [
    "BlockingQuery",
    "BlockingStorage",
    "BlockingView",
    "blocking",
    "open_storage",
    "sync_storage",
]

R = TypeVar("R")


def blocking(url: str, **options: Any) -> BlockingStorage:
    """``doqu.connect_async(url)`` behind the sync API."""
    loop = asyncio.new_event_loop()
    try:
        return BlockingStorage(doqu.connect_async(url, **options), loop)
    except BaseException:
        loop.close()
        raise


@contextlib.contextmanager
def open_storage(url: str, api: str) -> Iterator[Storage | BlockingStorage]:
    """A storage on *url* for the ``"sync"`` or the ``"async"`` API (as
    :func:`blocking`), closed at the end: what a ``db`` fixture over both yields."""
    if api not in ("sync", "async"):
        raise ValueError(f"api is 'sync' or 'async', not {api!r}")
    if api == "sync":
        with doqu.connect(url) as storage:
            yield storage
        return
    blocked = blocking(url)
    try:
        yield blocked
    finally:
        blocked.shutdown()


def sync_storage(db: Storage | BlockingStorage) -> Storage:
    """The backend storage doing the work (for tests that look at its primitives)."""
    return db.storage.storage if isinstance(db, BlockingStorage) else db


class BlockingStorage:
    """The sync storage API, every call awaited on the async one (for tests)."""

    def __init__(self, storage: AsyncStorage, loop: asyncio.AbstractEventLoop) -> None:
        self.storage = storage
        self.loop = loop

    def run(self, awaitable: Awaitable[R]) -> R:
        """Await *awaitable* on this storage's event loop."""
        return self.loop.run_until_complete(awaitable)

    @property
    def url(self) -> str:
        return self.storage.url

    @property
    def closed(self) -> bool:
        return self.storage.closed

    @property
    def read_only(self) -> bool:
        return self.storage.read_only

    def save(self, doc: Any, **options: Any) -> str:
        return self.run(self.storage.save(doc, **options))

    def save_many(self, docs: Any, **options: Any) -> list[str]:
        return self.run(self.storage.save_many(docs, **options))

    def get(self, target: Any, pk: Any, **options: Any) -> Any:
        return self.run(self.storage.get(target, pk, **options))

    def get_many(self, target: Any, pks: Any, **options: Any) -> Any:
        return self.run(self.storage.get_many(target, pks, **options))

    def get_or_create(self, target: Any, defaults: Any = None, **conditions: Any) -> Any:
        return self.run(self.storage.get_or_create(target, defaults, **conditions))

    def delete(self, target: Any, pk: Any = None) -> None:
        self.run(self.storage.delete(target, pk))

    def query(self, target: Any) -> BlockingQuery:
        return BlockingQuery(self, self.storage.query(target))

    def dict(self, target: Any, **options: Any) -> BlockingView:
        return BlockingView(self, self.storage.dict(target, **options))

    def collection(self, target: Any) -> Any:
        # What the collection handle runs is the backend's own; the call is awaited.
        return self.run(self.storage._run(self.storage.storage.collection, target))

    def clear(self, target: Any = None) -> None:
        self.run(self.storage.clear(target))

    def collections(self) -> list[str]:
        return self.run(self.storage.collections())

    def migrate(self, model: Any, **options: Any) -> Any:
        return self.run(self.storage.migrate(model, **options))

    def version(self, target: Any) -> Any:
        return self.run(self.storage.version(target))

    def flush(self) -> None:
        self.run(self.storage.flush())

    def reconnect(self) -> None:
        self.run(self.storage.reconnect())

    def close(self) -> None:
        self.run(self.storage.close())

    def shutdown(self) -> None:
        """Close the storage, then its event loop (the storage stays usable until then:
        a use after :meth:`close` raises ``StorageError``, as on the sync API)."""
        if self.loop.is_closed():
            return
        try:
            self.close()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def __enter__(self) -> BlockingStorage:
        self.storage.storage._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingStorage {self.storage!r}>"


class BlockingQuery:
    """A :class:`~doqu.Query`'s API over an :class:`~doqu.AsyncQuery`."""

    def __init__(self, db: BlockingStorage, query: AsyncQuery[Any]) -> None:
        self._db = db
        self._query = query

    def _new(self, query: AsyncQuery[Any]) -> BlockingQuery:
        return BlockingQuery(self._db, query)

    @property
    def collection(self) -> str:
        return self._query.collection

    @property
    def node(self) -> Any:
        return self._query.node

    def where(self, *args: Any, **conditions: Any) -> BlockingQuery:
        return self._new(self._query.where(*args, **conditions))

    def where_not(self, *args: Any, **conditions: Any) -> BlockingQuery:
        return self._new(self._query.where_not(*args, **conditions))

    def order_by(self, *keys: Any) -> BlockingQuery:
        return self._new(self._query.order_by(*keys))

    def prefetch(self, *paths: str, **options: Any) -> BlockingQuery:
        return self._new(self._query.prefetch(*paths, **options))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self._new(self._query[index])
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"query indices are int or slice, not {type(index).__name__}")
        return self._db.run(self._query[index])

    def __iter__(self) -> Iterator[Any]:
        # list(q) asks len(q) right after iter(q): as on the sync API, that reads the
        # results at once (here with to_list()) instead of counting them.
        box: list[list[Any]] = []
        self._fresh: list[list[Any]] | None = box
        return self._served(box)

    def _served(self, box: list[list[Any]]) -> Iterator[Any]:
        if self._fresh is box:
            self._fresh = None
        if box:
            yield from box[0]
            return
        yield from self.iter()

    def iter(self, **options: Any) -> Iterator[Any]:
        return _blocking(self._db, self._query.iter(**options))

    def __len__(self) -> int:
        box = getattr(self, "_fresh", None)
        self._fresh = None
        if box is not None and not box:
            box.append(self.to_list())
            return len(box[0])
        return self.count()

    def __bool__(self) -> bool:
        return self.exists()

    def first(self) -> Any:
        return self._db.run(self._query.first())

    def exists(self) -> bool:
        return self._db.run(self._query.exists())

    def count(self) -> int:
        return self._db.run(self._query.count())

    def values(self, field: Any) -> list[Any]:
        return self._db.run(self._query.values(field))

    def delete(self) -> int:
        return self._db.run(self._query.delete())

    def update(self, *ops: Any, **changes: Any) -> int:
        return self._db.run(self._query.update(*ops, **changes))

    def explain(self) -> str:
        return self._db.run(self._query.explain())

    def to_list(self) -> list[Any]:
        return self._db.run(self._query.to_list())

    def __repr__(self) -> str:
        return repr(self._query)


class BlockingView(MutableMapping[str, Any]):
    """A mapping view's API over an :class:`~doqu.AsyncMappingView`."""

    def __init__(self, db: BlockingStorage, view: AsyncMappingView[Any]) -> None:
        self._db = db
        self._view = view

    @property
    def collection(self) -> str:
        return self._view.collection

    def __getitem__(self, key: str) -> Any:
        return self._db.run(self._view.getitem(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self._db.run(self._view.get(key, default))

    def __setitem__(self, key: str, value: Any) -> None:
        self._db.run(self._view.set(key, value))

    def __delitem__(self, key: str) -> None:
        self._db.run(self._view.delete(key))

    def __contains__(self, key: object) -> bool:
        return self._db.run(self._view.contains(key))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._db.run(self._view.count())

    def __iter__(self) -> Iterator[str]:
        return _blocking(self._db, self._view.__aiter__())

    def items(self) -> Any:
        return self._db.run(_awaited(self._view.items()))

    def values(self) -> Any:
        return self._db.run(_awaited(self._view.values()))

    def pop(self, key: str, *default: Any) -> Any:
        return self._db.run(self._view.pop(key, *default))

    def popitem(self) -> tuple[str, Any]:
        return self._db.run(self._view.popitem())

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._db.run(self._view.setdefault(key, default))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._db.run(self._view.update(other, **kwargs))

    def clear(self) -> None:
        self._db.run(self._view.clear())

    def increment(self, key: str, by: int | float = 1) -> Any:
        return self._db.run(self._view.increment(key, by))

    def sync(self) -> None:
        self._db.run(self._view.sync())

    def last_updated(self) -> Any:
        return self._db.run(self._view.last_updated())

    def __repr__(self) -> str:
        return repr(self._view)


async def _awaited(rows: Any) -> Any:
    return await rows


def _blocking(db: BlockingStorage, results: AsyncIterator[Any]) -> Iterator[Any]:
    """*results* (an async generator) one by one, each step awaited on *db*'s loop."""
    try:
        while True:
            try:
                yield db.run(results.__anext__())
            except StopAsyncIteration:
                return
    finally:
        db.run(results.aclose())  # type: ignore[attr-defined]
