"""``Query``: lazy, immutable, chainable queries over one collection."""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from ._encoding import paused_gc
from ._errors import CorruptDocument, QueryError
from ._expr import Field, Sort
from ._refs import Missing, load_refs, prefetch_paths
from ._schema import check_node, check_path, check_updates
from ._tree import (
    And,
    Node,
    Not,
    Path,
    Q,
    QuerySpec,
    UpdateOp,
    joined,
    make_cond,
    parse_path,
    parse_update,
)

if TYPE_CHECKING:
    from ._storage import Collection

__all__ = ["Query"]

T = TypeVar("T")
OnCorrupt = Literal["raise", "skip"] | Callable[[CorruptDocument], object]

log = logging.getLogger("doqu")

#: ``len(q)`` right after ``iter(q)`` (what ``list(q)`` does) reads up to this many
#: rows ahead instead of asking the database for a count.
PREFETCH_LIMIT = 100_000
#: A streaming query with ``prefetch()`` loads references after each batch of this many.
PREFETCH_BATCH = 1000


def replace_prefetch(query: Query[T]) -> Query[T]:
    """*query* without its ``prefetch`` (the results already hold the references)."""
    if query._prefetch is None:
        return query
    q = query._with()
    q._prefetch = None
    return q


class _Raise:
    """A result that is an error: raised when iteration reaches it."""

    __slots__ = ("error",)

    def __init__(self, error: CorruptDocument) -> None:
        self.error = error


class _Results(Iterator[T]):
    """Iteration of a query: streams rows, or serves results read ahead by ``len()``."""

    __slots__ = ("__weakref__", "_buffer", "_built", "_loaded", "_query", "_rows")

    def __init__(self, query: Query[T]) -> None:
        self._query = query
        self._rows: Iterator[tuple[str, Any]] | None = None
        self._buffer: deque[tuple[str, Any]] | None = None
        # With ``prefetch`` results are served from batches (an empty one asks for the next).
        self._built: deque[Any] | None = deque() if query._prefetch is not None else None
        #: ``prefetch``: the targets earlier batches loaded (collection -> pk -> document).
        self._loaded: dict[str, dict[str, Any]] = {}

    def _next_batch(self) -> None:
        """With ``prefetch``: load the next batch of results and their references."""
        rows = self._rows if self._rows is not None else self._start()
        buffer = self._buffer
        load = self._query._collection.load
        built: deque[Any] = deque()
        for _ in range(PREFETCH_BATCH):
            if buffer:
                pk, data = buffer.popleft()
            else:
                row = next(rows, None)
                if row is None:
                    break
                pk, data = row
            try:
                built.append(load(pk, data))
            except CorruptDocument as exc:
                built.append(_Raise(exc))
        self._prefetched(built)
        self._built = built if built else deque()
        if not built:
            self._query = replace_prefetch(self._query)  # the end: no more batches

    def _prefetched(self, built: deque[Any]) -> None:
        q = self._query
        if q._prefetch is not None and built:
            paths, missing = q._prefetch
            docs = [d for d in built if type(d) is not _Raise]
            load_refs(q._collection.storage, docs, paths, missing, self._loaded)

    def _start(self) -> Iterator[tuple[str, Any]]:
        q = self._query
        q._collection.check_open()
        self._rows = q._collection.select_stored(q._spec)
        return self._rows

    def __next__(self) -> T:
        built = self._built
        if built is not None:
            if not built:
                if self._query._prefetch is None:
                    raise StopIteration
                self._next_batch()
                built = self._built
                if not built:
                    raise StopIteration
            item = built.popleft()
            if type(item) is _Raise:
                raise item.error
            return item  # type: ignore[no-any-return]
        buffer = self._buffer
        if buffer:
            pk, data = buffer.popleft()
        else:
            rows = self._rows
            if rows is None:
                rows = self._start()
            pk, data = next(rows)
        return self._query._collection.load(pk, data)

    def read_ahead(self) -> int | None:
        """Before the first result: read ahead; the number of results if all were read.

        When every row fits in :data:`PREFETCH_LIMIT`, the results are built at
        once (``list()`` is about to take them all) with the cycle collector
        paused (:func:`~doqu._encoding.paused_gc`). A stored document that
        fails validation is kept in its place and raised when iteration gets there.
        """
        if self._rows is not None:
            return None
        with paused_gc():
            rows = self._start()
            buffer = self._buffer = deque()
            for row in rows:
                buffer.append(row)
                if len(buffer) > PREFETCH_LIMIT:
                    return None
            load = self._query._collection.load
            built: deque[Any] = deque()
            while buffer:
                pk, data = buffer.popleft()
                try:
                    built.append(load(pk, data))
                except CorruptDocument as exc:
                    built.append(_Raise(exc))
            self._prefetched(built)
            self._built = built
            self._query = replace_prefetch(self._query)  # all read: nothing more to load
            return len(built)

    def close(self) -> None:
        """Stop early and release the database cursor."""
        self._buffer = self._built = None
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


def _conditions(args: tuple[Q, ...], kwargs: dict[str, Any]) -> list[Node]:
    nodes: list[Node] = []
    for arg in args:
        if not isinstance(arg, Q):
            raise QueryError(
                "where() takes conditions (Person.age > 3, Q objects) and keyword lookups,"
                f" not {arg!r}"
            )
        nodes.append(arg.node)
    nodes.extend(make_cond(k, v) for k, v in kwargs.items())
    return nodes


def _sort_key(key: str | Field[Any] | Sort) -> tuple[Path, bool]:
    if isinstance(key, Sort):
        return key.path, key.descending
    if isinstance(key, Field):
        return key._path, False
    if not isinstance(key, str) or not key:
        raise QueryError(f"order_by() takes field names or fields (Person.age.desc()), not {key!r}")
    descending = key[0] == "-"
    name = key[1:] if key[0] in "+-" else key
    return parse_path(name, what="order_by key"), descending


class Query(Generic[T]):
    """A lazy query; every method returns a new ``Query`` or runs it in the database.

    Results are models when the query is bound to a ``Document`` class, else
    plain dicts that carry their ``"pk"``. Iterating runs the query again each
    time and streams the results.
    """

    __slots__ = ("_collection", "_fresh", "_prefetch", "_spec")

    def __init__(self, collection: Collection[T], spec: QuerySpec | None = None) -> None:
        self._collection = collection
        self._spec = spec or QuerySpec()
        self._fresh: weakref.ref[_Results[T]] | None = None
        #: ``prefetch()``'s reference paths and its ``missing``, or ``None``.
        self._prefetch: tuple[tuple[Path, ...], Missing] | None = None

    def _with(self, **changes: Any) -> Query[T]:
        q = Query(self._collection, replace(self._spec, **changes))
        q._prefetch = self._prefetch
        return q

    def _rebind(self, collection: Collection[T]) -> Query[T]:
        """This query over *collection* (the same one, prepared, for the async API)."""
        if collection is self._collection:
            return self
        q = Query(collection, self._spec)
        q._prefetch = self._prefetch
        return q

    def _add(self, node: Node) -> Query[T]:
        if self._sliced:
            raise QueryError("cannot filter a query once a slice has been taken")
        old = self._spec.node
        return self._with(node=node if old is None else joined(And, (old, node)))

    @property
    def _sliced(self) -> bool:
        return self._spec.offset > 0 or self._spec.limit is not None

    @property
    def collection(self) -> str:
        """The name of the collection queried."""
        return self._collection.name

    @property
    def node(self) -> Node | None:
        """The query tree (``None`` matches every document)."""
        return self._spec.node

    # ------------------------------------------------------------------ building
    def _checked(self, node: Node) -> Node:
        model = self._collection.model
        if model is not None:
            check_node(model, node)
        return node

    def where(self, *args: Q, **conditions: Any) -> Query[T]:
        """Narrow to documents matching every condition.

        Conditions are field expressions (``Person.age >= 30``), ``Q`` objects
        and keyword lookups (``age__gte=30``), mixed freely. On a query bound to
        a model, a condition its declared types make impossible raises
        :class:`~doqu.QueryError` here, naming the field and the nearest names.
        """
        nodes = _conditions(args, conditions)
        if not nodes:
            return self
        return self._add(self._checked(joined(And, nodes)))

    def where_not(self, *args: Q, **conditions: Any) -> Query[T]:
        """Leave out documents matching all the conditions: ``NOT (c1 AND c2 …)``."""
        nodes = _conditions(args, conditions)
        if not nodes:
            return self
        return self._add(Not(self._checked(joined(And, nodes))))

    def order_by(self, *keys: str | Field[Any] | Sort) -> Query[T]:
        """Sort by fields: ``"-age"``, ``"name"``, ``Person.age.desc()``, ``Person.name``.

        No keys clears the order.
        """
        order = [_sort_key(key) for key in keys]
        model = self._collection.model
        if model is not None:
            for path, _ in order:
                check_path(model, path, what=f"order_by key {'__'.join(path)}")
        if self._sliced:
            raise QueryError("cannot reorder a query once a slice has been taken")
        return self._with(order=tuple(order))

    def prefetch(self, *paths: str, missing: Missing = "raise") -> Query[T]:
        """Load the targets of these reference paths along with the results.

        ``prefetch("author", "tags", "author__publisher")``: after each batch of
        results, one read per target collection and depth loads the documents
        referred to (``ref.doc``), shared within the result. A target that is gone
        raises :class:`~doqu.NotFound` naming the dangling pks, or with
        ``missing="none"`` leaves ``ref.doc`` as ``None``. Calling it again
        replaces the paths.
        """
        q = self._with()
        q._prefetch = (prefetch_paths(self._collection.model, paths, missing), missing)
        return q

    # ------------------------------------------------------------------ running
    def __iter__(self) -> Iterator[T]:
        results = _Results(self)
        self._fresh = weakref.ref(results)
        return results

    def iter(self, *, on_corrupt: OnCorrupt = "raise") -> Iterator[T]:
        """Stream the results, choosing what a stored document that fails validation does.

        ``on_corrupt="raise"`` (the default, as plain iteration) stops with
        :class:`~doqu.CorruptDocument`. ``"skip"`` leaves such documents out and
        logs a warning naming collection and pk on the ``doqu`` logger. A callable
        is called with each :class:`~doqu.CorruptDocument` (``errors.append``, say)
        and the document is left out.
        """
        if on_corrupt == "raise":
            yield from self
            return
        if on_corrupt == "skip":
            report: Callable[[CorruptDocument], object] = log_corrupt
        elif callable(on_corrupt):
            report = on_corrupt
        else:
            raise ValueError(f"on_corrupt is 'raise', 'skip' or a callable, not {on_corrupt!r}")
        results = _Results(self)
        while True:
            try:
                doc = next(results)
            except StopIteration:
                return
            except CorruptDocument as exc:
                report(exc)
                continue
            yield doc

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Query[T]: ...
    def __getitem__(self, index: int | slice) -> T | Query[T]:
        spec = self._spec
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise QueryError("query slices take no step")
            start, stop = index.start or 0, index.stop
            if not isinstance(start, int) or (stop is not None and not isinstance(stop, int)):
                raise QueryError("query slices take whole numbers")
            if start < 0 or (stop is not None and stop < 0):
                raise QueryError("negative indexing is not supported on queries")
            offset = spec.offset + start
            limit = None if stop is None else max(0, stop - start)
            if spec.limit is not None:
                limit = (
                    max(0, spec.limit - start)
                    if limit is None
                    else min(limit, max(0, spec.limit - start))
                )
            return self._with(offset=offset, limit=limit)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"query indices are int or slice, not {type(index).__name__}")
        if index < 0:
            raise QueryError("negative indexing is not supported on queries")
        for item in self[index : index + 1]:
            return item
        raise IndexError(f"query index {index} out of range")

    def first(self) -> T | None:
        """The first result, or ``None``."""
        for item in self[0:1]:
            return item
        return None

    def exists(self) -> bool:
        """Whether anything matches (asks the database for one row at most)."""
        self._collection.check_open()
        if self._spec.limit == 0:
            return False
        spec = replace(self._spec, order=(), limit=1)
        return next(self._collection.select(spec), None) is not None

    def count(self) -> int:
        """How many documents match (within the slice, if one was taken)."""
        self._collection.check_open()
        total = self._collection.count(self._spec.node)
        total = max(0, total - self._spec.offset)
        return total if self._spec.limit is None else min(total, self._spec.limit)

    def __len__(self) -> int:
        # list(q) asks for len(q) right after iter(q): answer from one read of the
        # rows that list() is about to consume, instead of a separate COUNT.
        fresh = self._fresh() if self._fresh is not None else None
        self._fresh = None
        if fresh is not None:
            n = fresh.read_ahead()
            if n is not None:
                return n
        return self.count()

    def __bool__(self) -> bool:
        return self.exists()

    def values(self, field: str | Field[Any]) -> list[Any]:
        """Distinct values of *field* among matches; list elements one by one; no nulls."""
        self._refuse_slice("values()")
        path = field._path if isinstance(field, Field) else parse_path(field)
        model = self._collection.model
        if model is not None:
            check_path(model, path, what=f"values() field {'__'.join(path)}")
        self._collection.check_open()
        return self._collection.distinct(self._spec.node, path)

    def delete(self) -> int:
        """Delete every match; return how many were deleted."""
        self._refuse_slice("delete()")
        self._collection.check_writable("delete")
        return self._collection.delete_where(self._spec.node)

    def update(self, *ops: UpdateOp, **changes: Any) -> int:
        """Apply update operators to every match; return how many documents changed.

        ``field=v`` or ``field__set=v``, ``field__unset=True``, ``field__inc=n``,
        ``field__push=v``, ``field__pull=v``, ``field__add_to_set=v``, or the
        same as field updates: ``Person.age.inc(1)``, ``Person.tags.push("y")``.
        Each document is updated atomically; the result is validated against the
        bound model first, and if any result is invalid nothing is written.
        """
        self._refuse_slice("update()")
        parsed = parse_update(changes, ops)
        model = self._collection.model
        if model is not None:
            check_updates(model, parsed)
        self._collection.check_writable("update")
        return self._collection.update_where(self._spec.node, parsed)

    def explain(self) -> str:
        """What the backend runs for this query (SQL text, a MongoDB filter, …)."""
        self._collection.check_open()
        return self._collection.explain(self._spec)

    def _refuse_slice(self, what: str) -> None:
        if self._sliced:
            raise QueryError(f"cannot call {what} once a slice has been taken")

    def __repr__(self) -> str:
        model = self._collection.model
        target = model.__name__ if model else repr(self._collection.name)
        return f"<Query {target} {self._spec}>"


def log_corrupt(exc: CorruptDocument) -> None:
    log.warning("skipped corrupt document %r in %r: %s", exc.pk, exc.collection, exc.error)
