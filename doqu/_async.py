"""The async API: ``doqu.connect_async(url)``, the whole storage API awaited.

Nothing here knows a backend, a query or an encoding. An :class:`AsyncStorage`
holds an ordinary :class:`~doqu.Storage` whose backend was opened on async
drivers (:attr:`Storage.asynchronous`), and runs each call of it in a greenlet
(:func:`doqu._bridge.spawn`): the same code as the sync API, suspended at each
driver round trip instead of blocking. :class:`AsyncQuery` and
:class:`AsyncMappingView` wrap a :class:`~doqu.Query` and a mapping view the
same way: building a query is plain (no I/O), and its terminals are awaited.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._bridge import ASYNC_DRIVERS, spawn
from ._document import Document
from ._errors import CorruptDocument
from ._expr import Field, Sort
from ._mapping import MappingView
from ._migrations import MigrationReport
from ._query import OnCorrupt, Query, log_corrupt
from ._refs import Missing
from ._registry import connect
from ._tree import Node, Q, UpdateOp

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._storage import Storage

__all__ = ["AsyncMappingView", "AsyncQuery", "AsyncStorage", "connect_async"]

D = TypeVar("D", bound=Document)
T = TypeVar("T")
R = TypeVar("R")
#: Results handed from a streaming query's greenlet to ``async for`` per call.
STREAM_BATCH = 200


def connect_async(url: str | None = None, **options: Any) -> AsyncStorage:
    """Open the storage at *url* for the async API (same URLs and options as
    :func:`doqu.connect`); ``async with`` closes it.

    Server backends use async drivers: aiosqlite, psycopg's ``AsyncConnection``,
    asyncmy, pymongo's ``AsyncMongoClient``. Memory and TinyDB run inline.
    """
    token = ASYNC_DRIVERS.set(True)
    try:
        return AsyncStorage(connect(url, **options))
    finally:
        ASYNC_DRIVERS.reset(token)


def _finish(storage: Storage, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
    """Run one call in its greenlet, then let the backend give back what the call held."""
    try:
        result = fn(*args, **kwargs)
    except Exception:
        storage._call_done(False)
        raise
    except BaseException:  # cancelled mid-call: a connection may be mid-protocol
        storage._call_done(True)
        raise
    storage._call_done(False)
    return result


class AsyncStorage:
    """A storage for the async API: every :class:`~doqu.Storage` call, awaited.

    Build queries with :meth:`query` (or ``Model.objects(db)``) and mapping views
    with :meth:`dict`; both are plain calls, and what they run is awaited.

    Attributes:
        storage: the :class:`~doqu.Storage` that does the work, opened on async
            drivers; its methods may only run inside this object's calls.
    """

    def __init__(self, storage: Storage) -> None:
        if not storage.asynchronous:
            raise TypeError("AsyncStorage wraps a storage opened by doqu.connect_async()")
        self.storage = storage
        # Streams not read to their end: closed by close() if the event loop has not
        # closed them yet (it does, soon after an ``async for`` is left).
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()

    async def _run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return await spawn(_finish, self.storage, fn, args, kwargs)

    @property
    def url(self) -> str:
        """The URL the storage was opened with."""
        return self.storage.url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.storage.closed

    @property
    def read_only(self) -> bool:
        """Opened with ``read_only=True``: writes raise ``StorageError``."""
        return self.storage.read_only

    # ------------------------------------------------------------- documents
    async def save(
        self, doc: Document | Mapping[str, Any], *, collection: str | None = None
    ) -> str:
        """As :meth:`doqu.Storage.save`."""
        return await self._run(self.storage.save, doc, collection=collection)

    async def save_many(
        self, docs: Iterable[Document | Mapping[str, Any]], *, collection: str | None = None
    ) -> list[str]:
        """As :meth:`doqu.Storage.save_many`: one batch per collection, all or nothing."""
        docs = list(docs)
        return await self._run(self.storage.save_many, docs, collection=collection)

    @overload
    async def get(
        self, target: type[D], pk: str, *, prefetch: Sequence[str] = (), missing: Missing = "raise"
    ) -> D: ...
    @overload
    async def get(self, target: str, pk: str) -> dict[str, Any]: ...
    async def get(self, target: Any, pk: str, **options: Any) -> Any:
        """As :meth:`doqu.Storage.get`."""
        return await self._run(self.storage.get, target, pk, **options)

    @overload
    async def get_many(
        self,
        target: type[D],
        pks: Iterable[str],
        *,
        prefetch: Sequence[str] = (),
        missing: Missing = "raise",
    ) -> list[D]: ...
    @overload
    async def get_many(self, target: str, pks: Iterable[str]) -> list[dict[str, Any]]: ...
    async def get_many(self, target: Any, pks: Iterable[str], **options: Any) -> list[Any]:
        """As :meth:`doqu.Storage.get_many`."""
        return await self._run(self.storage.get_many, target, list(pks), **options)

    @overload
    async def get_or_create(
        self, target: type[D], defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[D, bool]: ...
    @overload
    async def get_or_create(
        self, target: str, defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[dict[str, Any], bool]: ...
    async def get_or_create(
        self, target: Any, defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[Any, bool]:
        """As :meth:`doqu.Storage.get_or_create`."""
        return await self._run(self.storage.get_or_create, target, defaults, **conditions)

    @overload
    async def delete(self, target: Document) -> None: ...
    @overload
    async def delete(self, target: type[Document] | str, pk: str) -> None: ...
    async def delete(self, target: Any, pk: str | None = None) -> None:
        """As :meth:`doqu.Storage.delete`."""
        await self._run(self.storage.delete, target, pk)

    @overload
    def query(self, target: type[D]) -> AsyncQuery[D]: ...
    @overload
    def query(self, target: str) -> AsyncQuery[dict[str, Any]]: ...
    def query(self, target: type[D] | str) -> AsyncQuery[Any]:
        """A lazy query over *target*'s collection; its terminals are awaited."""
        return AsyncQuery(self, target, Query(self._unprepared(target)))

    def _unprepared(self, target: Any) -> Any:
        """The collection of *target* as a query or view is built on it, before any I/O
        (its table is created, if need be, by the first call that runs)."""
        from ._storage import Collection

        info, model = self.storage._resolve(target)
        return Collection(self.storage, info, model)

    @overload
    def dict(self, target: type[D], **options: Any) -> AsyncMappingView[D]: ...
    @overload
    def dict(self, target: str, **options: Any) -> AsyncMappingView[Any]: ...
    def dict(self, target: type[D] | str, **options: Any) -> AsyncMappingView[Any]:
        """The mapping view over one collection (options as :meth:`doqu.Storage.dict`),
        its reads and writes awaited. It opens nothing until its first call."""
        self.storage._resolve(target)  # a bad name fails here, not at the first await
        return AsyncMappingView(self, target, options)

    # ------------------------------------------------------------ collections
    async def clear(self, target: type[Document] | str | None = None) -> None:
        """As :meth:`doqu.Storage.clear`."""
        await self._run(self.storage.clear, target)

    async def collections(self) -> list[str]:
        """As :meth:`doqu.Storage.collections`."""
        return await self._run(self.storage.collections)

    async def migrate(
        self, model: type[Document], *, batch: int = 1000, dry_run: bool = False
    ) -> MigrationReport:
        """As :meth:`doqu.Storage.migrate`."""
        return await self._run(self.storage.migrate, model, batch=batch, dry_run=dry_run)

    async def version(self, target: type[Document] | str) -> Any:
        """As :meth:`doqu.Storage.version`."""
        return await self._run(self.storage.version, target)

    async def flush(self) -> None:
        """As :meth:`doqu.Storage.flush`."""
        await self._run(self.storage.flush)

    async def reconnect(self) -> None:
        """As :meth:`doqu.Storage.reconnect`."""
        await self._run(self.storage.reconnect)

    async def _stream(
        self,
        start: Callable[[], Iterator[R]],
        report: Callable[[CorruptDocument], object] | None = None,
    ) -> AsyncIterator[R]:
        """``async for`` over the sync iterator ``start()`` makes: batches of
        :data:`STREAM_BATCH` per call; closed at the end, or by :meth:`close`."""
        run = self._run
        rows = await run(start)
        self._streams.add(rows)
        try:
            while True:
                batch, error = await run(_take, rows, STREAM_BATCH, report)
                for item in batch:
                    yield item
                if error is not None:
                    raise error
                if len(batch) < STREAM_BATCH:
                    return
        finally:
            self._streams.discard(rows)
            close = getattr(rows, "close", None)
            if close is not None:
                await run(close)

    async def close(self) -> None:
        """Flush and release everything; further use raises ``StorageError``."""
        if not self.storage.closed:
            await self._run(self._close)

    def _close(self) -> None:
        for stream in list(self._streams):
            with contextlib.suppress(Exception):
                stream.close()
        self.storage.close()

    async def __aenter__(self) -> Self:
        self.storage._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncStorage {self.storage!r}>"


class AsyncQuery(Generic[T]):
    """A lazy, immutable query for the async API.

    The builders (``where``, ``where_not``, ``order_by``, ``prefetch``, slices) are
    :class:`~doqu.Query`'s, checked the same way and run no I/O. The terminals are
    awaited: ``async for``, :meth:`to_list`, :meth:`first`, ``await q[i]``,
    :meth:`count`, :meth:`exists`, :meth:`values`, :meth:`update`, :meth:`delete`,
    :meth:`explain`. ``async for`` streams: results come from the database in
    batches, never as one buffered list (use :meth:`to_list` for that).
    """

    __slots__ = ("_db", "_query", "_target")

    def __init__(self, db: AsyncStorage, target: Any, query: Query[T]) -> None:
        self._db = db
        self._target = target
        self._query = query

    def _new(self, query: Query[T]) -> AsyncQuery[T]:
        return AsyncQuery(self._db, self._target, query)

    def _bound(self) -> Query[T]:
        """The query on its prepared collection (in the call's greenlet)."""
        collection = self._db.storage.collection(self._target)
        return self._query._rebind(collection)

    async def _run(self, method: Callable[..., R], /, *args: Any) -> R:
        return await self._db._run(lambda: method(self._bound(), *args))

    @property
    def collection(self) -> str:
        """The name of the collection queried."""
        return self._query.collection

    @property
    def node(self) -> Node | None:
        """The query tree (``None`` matches every document)."""
        return self._query.node

    @property
    def query(self) -> Query[T]:
        """The :class:`~doqu.Query` this one runs (its builders, its checks)."""
        return self._query

    # ------------------------------------------------------------------ building
    def where(self, *args: Q, **conditions: Any) -> AsyncQuery[T]:
        """As :meth:`doqu.Query.where`."""
        return self._new(self._query.where(*args, **conditions))

    def where_not(self, *args: Q, **conditions: Any) -> AsyncQuery[T]:
        """As :meth:`doqu.Query.where_not`."""
        return self._new(self._query.where_not(*args, **conditions))

    def order_by(self, *keys: str | Field[Any] | Sort) -> AsyncQuery[T]:
        """As :meth:`doqu.Query.order_by`."""
        return self._new(self._query.order_by(*keys))

    def prefetch(self, *paths: str, missing: Missing = "raise") -> AsyncQuery[T]:
        """As :meth:`doqu.Query.prefetch`."""
        return self._new(self._query.prefetch(*paths, missing=missing))

    @overload
    def __getitem__(self, index: int) -> Coroutine[Any, Any, T]: ...
    @overload
    def __getitem__(self, index: slice) -> AsyncQuery[T]: ...
    def __getitem__(self, index: int | slice) -> Coroutine[Any, Any, T] | AsyncQuery[T]:
        """``q[10:20]`` is a query; ``await q[3]`` the result at that index."""
        if isinstance(index, slice):
            return self._new(self._query[index])
        return self.get_item(index)

    async def get_item(self, index: int) -> T:
        """The result at *index* (``IndexError`` past the end); same as ``await q[index]``."""
        return await self._run(Query.__getitem__, index)

    # ------------------------------------------------------------------ running
    def __aiter__(self) -> AsyncIterator[T]:
        return self.iter()

    async def iter(self, *, on_corrupt: OnCorrupt = "raise") -> AsyncIterator[T]:
        """Stream the results (``on_corrupt`` as :meth:`doqu.Query.iter`)."""
        report = _reporter(on_corrupt)
        async for item in self._db._stream(lambda: iter(self._bound()), report):
            yield item

    async def to_list(self) -> list[T]:
        """Every result, read in one call."""
        return await self._run(list)

    async def first(self) -> T | None:
        """The first result, or ``None``."""
        return await self._run(Query.first)

    async def exists(self) -> bool:
        """Whether anything matches."""
        return await self._run(Query.exists)

    async def count(self) -> int:
        """How many documents match (within the slice, if one was taken)."""
        return await self._run(Query.count)

    async def values(self, field: str | Field[Any]) -> list[Any]:
        """As :meth:`doqu.Query.values`."""
        return await self._run(Query.values, field)

    async def delete(self) -> int:
        """As :meth:`doqu.Query.delete`."""
        return await self._run(Query.delete)

    async def update(self, *ops: UpdateOp, **changes: Any) -> int:
        """As :meth:`doqu.Query.update`."""
        return await self._db._run(lambda: self._bound().update(*ops, **changes))

    async def explain(self) -> str:
        """As :meth:`doqu.Query.explain`."""
        return await self._run(Query.explain)

    def __repr__(self) -> str:
        return "<Async" + repr(self._query)[1:]


def _reporter(on_corrupt: OnCorrupt) -> Callable[[CorruptDocument], object] | None:
    """What ``on_corrupt`` does with a document that fails validation (``None``: raise)."""
    if on_corrupt == "raise":
        return None
    if on_corrupt == "skip":
        return log_corrupt
    if callable(on_corrupt):
        return on_corrupt
    raise ValueError(f"on_corrupt is 'raise', 'skip' or a callable, not {on_corrupt!r}")


def _take(
    results: Iterator[T], n: int, report: Callable[[CorruptDocument], object] | None = None
) -> tuple[list[T], BaseException | None]:
    """Up to *n* results (fewer: the end). A document that fails validation is
    reported and left out, or (*report* ``None``) ends the batch: raised if it comes
    first, else handed back, so the results before it are not lost."""
    batch: list[T] = []
    while len(batch) < n:
        try:
            item = next(results)
        except StopIteration:
            return batch, None
        except CorruptDocument as exc:
            if report is not None:
                report(exc)
                continue
            if not batch:
                raise
            return batch, exc
        batch.append(item)
    return batch, None


class _Rows(Generic[T]):
    """``await d.items()`` (a list) or ``async for k, v in d.items()`` (streamed)."""

    __slots__ = ("_make", "_view")

    def __init__(self, view: AsyncMappingView[Any], make: Callable[[MappingView[Any]], Any]):
        self._view = view
        self._make = make

    def __await__(self) -> Generator[Any, None, list[T]]:
        view = self._view
        return view._call(lambda v: list(self._make(v))).__await__()

    def __aiter__(self) -> AsyncIterator[T]:
        view = self._view
        return view._db._stream(lambda: iter(self._make(view._mapping())))


class AsyncMappingView(Generic[T]):
    """The mapping view (:meth:`doqu.Storage.dict`) for the async API.

    The same caches, version checks and atomic operations, as awaited methods:
    ``await d.get(k)``, ``await d.set(k, v)``, ``await d.delete(k)``,
    ``await d.increment(k)``, ``await d.items()``; ``async for key in d``.
    """

    __slots__ = ("_db", "_options", "_target", "_view")

    def __init__(self, db: AsyncStorage, target: Any, options: dict[str, Any]) -> None:
        self._db = db
        self._target = target
        self._options = options
        self._view: MappingView[T] | None = None

    async def _call(self, fn: Callable[[MappingView[T]], R]) -> R:
        return await self._db._run(lambda: fn(self._mapping()))

    def _mapping(self) -> MappingView[T]:
        storage = self._db.storage
        collection = storage.collection(self._target)
        view = self._view
        if view is None:
            view = self._view = MappingView(collection, **self._options)
        return view

    @property
    def collection(self) -> str:
        """The name of the collection behind the view."""
        return self._db.storage._resolve(self._target)[0].name

    async def getitem(self, key: str) -> T:
        """The value under *key*; ``KeyError`` if there is none (``d[key]``)."""
        return await self._call(lambda v: v[key])

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under *key*, else *default*."""
        return await self._call(lambda v: v.get(key, default))

    async def set(self, key: str, value: T) -> None:
        """Store *value* under *key* (``d[key] = value``)."""
        await self._call(lambda v: v.__setitem__(key, value))

    async def delete(self, key: str) -> None:
        """Remove *key*; ``KeyError`` if there is none (``del d[key]``)."""
        await self._call(lambda v: v.__delitem__(key))

    async def contains(self, key: str) -> bool:
        """Whether *key* is stored (``key in d``)."""
        return await self._call(lambda v: key in v)

    async def count(self) -> int:
        """How many items (``len(d)``)."""
        return await self._call(len)

    async def pop(self, key: str, *default: Any) -> Any:
        """Remove *key* and return its value, atomically (``KeyError`` without a default)."""
        return await self._call(lambda v: v.pop(key, *default))

    async def popitem(self) -> tuple[str, T]:
        """Remove and return some ``(key, value)``; ``KeyError`` when empty."""
        return await self._call(lambda v: v.popitem())

    async def setdefault(self, key: str, default: Any = None) -> Any:
        """The value under *key*; if there is none, store *default* atomically and return it."""
        return await self._call(lambda v: v.setdefault(key, default))

    async def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items in one batch, all checked before any is written."""
        await self._call(lambda v: v.update(other, **kwargs))

    async def clear(self) -> None:
        """Delete every item."""
        await self._call(lambda v: v.clear())

    async def increment(self, key: str, by: int | float = 1) -> Any:
        """Add *by* to the number under *key* atomically in the store; the new value."""
        return await self._call(lambda v: v.increment(key, by))

    async def sync(self) -> None:
        """Refresh the local cache now if the store changed."""
        await self._call(lambda v: v.sync())

    async def last_updated(self) -> Any:
        """The collection's version token."""
        return await self._call(lambda v: v.last_updated())

    def keys(self) -> _Rows[str]:
        """The keys: ``await d.keys()`` (a list) or ``async for key in d.keys()``."""
        return _Rows(self, iter)

    def values(self) -> _Rows[T]:
        """The values, read in one query: awaited (a list) or streamed with ``async for``."""
        return _Rows(self, lambda v: iter(v.values()))

    def items(self) -> _Rows[tuple[str, T]]:
        """The items, read in one query: awaited (a list) or streamed with ``async for``."""
        return _Rows(self, lambda v: iter(v.items()))

    def __aiter__(self) -> AsyncIterator[str]:
        return self.keys().__aiter__()

    def __repr__(self) -> str:
        view = self._view
        return f"<Async{view!r}>" if view is not None else f"<AsyncMappingView {self._target!r}>"
