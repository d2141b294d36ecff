"""The storage adapter contract: a few primitives per backend, the rest built here.

A backend subclasses :class:`Storage` and implements the ``_``-prefixed
abstract primitives. They take a :class:`CollectionInfo` and plain JSON data
(``dict``), never models: models are validated, checked and encoded by
:mod:`doqu._encoding` before a primitive sees them. The base class builds
``get``, ``get_many``, ``get_or_create``, ``update`` (an optimistic
compare-and-swap loop), ``increment`` and the bulk paths from them; a backend
overrides a default only when it can do better natively. :class:`Collection`
binds the primitives to one collection: it is what :class:`~doqu.Query` and the
mapping view run on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, overload

from . import _encoding as encoding
from ._bridge import ASYNC_DRIVERS, rlock
from ._document import CollectionInfo, Document
from ._encoding import check_pk, paused_gc
from ._errors import DuplicateKey, NotFound, QueryError, StorageError
from ._evaluator import apply_update, canonical, matches, resolve
from ._hooks import delete_each, has_hooks, update_each
from ._json import check_json, json_equal
from ._mapping import MappingView
from ._migrations import MigrationReport, migrate
from ._options import check_options, flag
from ._query import Query
from ._refs import Missing, load_refs, prefetch_paths
from ._schema import check_node, fixed_kinds
from ._tree import (
    And,
    Cond,
    Node,
    Path,
    QuerySpec,
    UpdateOp,
    make_cond,
    parse_collection_name,
)
from ._unique import PK_INDEX, find_clash

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Collection", "QuerySpec", "Storage", "check_pk"]

D = TypeVar("D", bound=Document)
T = TypeVar("T")
Data = dict[str, Any]
Row = tuple[str, Data]
Finalize = Callable[[Data], Data]
#: What :meth:`Storage._store` is handed: checked data, checked JSON text, or
#: checked data with object keys sorted (see :attr:`Storage.stores_sorted`).
Form = Literal["data", "text", "sorted"]
#: ``save_many`` pauses the cycle collector for batches larger than this.
_BIG_BATCH = 256


class Storage(ABC):
    """Base of every backend: the public storage API over a handful of primitives.

    Capability flags tell the core (and users) what a backend can do natively.
    """

    #: URL scheme(s) the backend is registered under (informational).
    scheme: ClassVar[str] = ""
    #: ``save`` hands documents to :meth:`_put_text` as JSON text, not to ``_put``.
    stores_text: ClassVar[bool] = False
    #: ``save`` may hand documents of plain-typed models to :meth:`_put_sorted` as
    #: checked data with object keys sorted, built straight from the instance
    #: (see :func:`doqu._encoding.sorted_rows`).
    stores_sorted: ClassVar[bool] = False
    #: The most bytes one stored document may take (``None``: no limit). The sorted
    #: path is taken only for models whose bounded size is at most half of it.
    max_document_bytes: ClassVar[int | None] = None
    #: The options the backend takes itself, as keywords or in the URL query: name ->
    #: what it does. :func:`doqu.connect` refuses any other option (but those of
    #: :meth:`_driver_options`) with ``ConfigError``. ``None``: the backend checks its
    #: options itself; only ``read_only`` is picked out for it.
    accepted_options: ClassVar[Mapping[str, str] | None] = None

    @classmethod
    def _driver_options(cls, url: str, *, query: bool) -> tuple[Container[str], str]:
        """The option names passed on to the driver (URL query keys if *query*, else
        keywords), and how an error names them (e.g. "create_engine() keywords")."""
        return (), ""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        given = check_options(type(self), url, options)
        #: Nothing is created or written: writes raise ``StorageError``, a store that
        #: does not exist is a ``ConfigError`` and a missing collection reads as empty.
        self.read_only = flag("read_only", given.get("read_only", False))
        #: Whether :meth:`close` was called (then every use raises ``StorageError``).
        self.closed = False
        self._infos: dict[str, CollectionInfo] = {}
        self._prepared: dict[str, CollectionInfo] = {}
        #: Opened for the async API (:func:`doqu.connect_async`): the backend uses async
        #: drivers, awaited with :func:`doqu.backend.wait`, and every call runs in a
        #: greenlet of the event loop's thread (see :mod:`doqu._bridge`).
        self.asynchronous = ASYNC_DRIVERS.get()
        self._prepare_lock = rlock(self.asynchronous)
        self._ready: dict[Any, tuple[CollectionInfo, type[Document] | None]] = {}
        self._handles: dict[Any, Collection[Any]] = {}

    # ------------------------------------------------------------------ primitives
    @abstractmethod
    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> bool | None:
        """Insert or replace all rows at once; a unique clash raises ``DuplicateKey``.

        May return ``False`` when every row already held its data and the
        collection's version (:meth:`_version`) was therefore not moved; any other
        result means it may have moved.
        """

    @abstractmethod
    def _fetch(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Data]:
        """The stored data of those pks that exist, in one round trip."""

    @abstractmethod
    def _remove(self, coll: CollectionInfo, pks: Sequence[str]) -> int:
        """Delete by pk; return how many existed."""

    @abstractmethod
    def _select(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        """Stream the matching rows, filtered, ordered and windowed by the database."""

    @abstractmethod
    def _count(self, coll: CollectionInfo, node: Node | None) -> int:
        """How many documents match."""

    @abstractmethod
    def _distinct(self, coll: CollectionInfo, node: Node | None, path: Path) -> list[Any]:
        """Distinct non-null values at *path* among matches, list elements one by one."""

    @abstractmethod
    def _delete_where(self, coll: CollectionInfo, node: Node | None) -> int:
        """Delete the matching documents; return how many."""

    @abstractmethod
    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        """Compare-and-swap one document atomically.

        Writes *new* (``None``: delete) only if the stored document is JSON-equal
        to *expected* (``None``: absent). Returns whether it wrote.
        """

    @abstractmethod
    def _version(self, coll: CollectionInfo) -> Any:
        """A comparable token that changes on every write to the collection, by any process."""

    @abstractmethod
    def _names(self) -> list[str]:
        """Names of the collections that hold at least one document."""

    @abstractmethod
    def _drop(self, coll: CollectionInfo) -> None:
        """Remove every document of the collection."""

    @abstractmethod
    def _close(self) -> None:
        """Release connections and files."""

    # ------------------------------------------------------------ optional hooks
    def _select_stored(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[tuple[str, Any]]:
        """As :meth:`_select`, but each document may be its stored JSON text."""
        return self._select(coll, spec)

    def _fetch_one(self, coll: CollectionInfo, pk: str) -> Any:
        """The document under *pk* as :meth:`_fetch_stored` gives it, or ``None``."""
        return self._fetch_stored(coll, [pk]).get(pk)

    def _fetch_stored(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Any]:
        """As :meth:`_fetch`, but each document may be its stored JSON text.

        Models are then validated straight from the text (``model_validate_json``),
        which skips building an intermediate dict.
        """
        return self._fetch(coll, pks)

    def _put_text(self, coll: CollectionInfo, rows: Sequence[tuple[str, str]]) -> bool | None:
        """``_put`` with each document as compact JSON text, already checked.

        Called instead of ``_put`` when :attr:`stores_text` is set, so a backend
        that stores text skips building and re-encoding dicts. Returns as ``_put``.
        """
        return self._put(coll, [(pk, json.loads(text)) for pk, text in rows])

    def _put_sorted(self, coll: CollectionInfo, rows: Sequence[Row]) -> bool | None:
        """``_put`` with each document as checked data, object keys sorted.

        Called instead of ``_put_text`` when :attr:`stores_sorted` is set and the
        model's types allow it (see :func:`doqu._encoding.sorted_rows`).
        """
        return self._put(coll, rows)

    def _store(self, coll: CollectionInfo, form: Form, rows: Sequence[Any]) -> bool | None:
        """Write rows the save path checked (:mod:`doqu._encoding`) by the primitive for
        their *form*; returns as :meth:`_put`. Every write of whole documents — ``save``,
        ``save_many``, ``get_or_create`` and the mapping view — ends here."""
        if form == "text":
            return self._put_text(coll, rows)
        if form == "sorted":
            return self._put_sorted(coll, rows)
        return self._put(coll, rows)

    def _prepare(self, coll: CollectionInfo) -> None:  # noqa: B027 - optional hook
        """Create the collection's table and indexes; called before its first use."""

    def _flush(self) -> None:  # noqa: B027 - optional hook
        """Make buffered writes durable."""

    def _reconnect(self) -> None:  # noqa: B027 - optional hook
        """Drop and reopen connections (default: nothing to reopen)."""

    def _call_done(self, cancelled: bool) -> None:  # noqa: B027 - optional hook
        """The async API finished one call (in its greenlet): give back what it held.

        *cancelled*: it ended by ``CancelledError`` (or another ``BaseException``),
        maybe inside a driver's round trip, so a connection it held may be mid-protocol.
        """

    def _explain(self, coll: CollectionInfo, spec: QuerySpec) -> str:
        """What the backend would run for *spec* (SQL text, a Mongo filter, …)."""
        return repr(spec)

    def _update_where(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        """Apply *ops* to each match atomically; return how many documents changed.

        Every match is updated and validated in memory first, so an invalid
        result writes nothing; each document is then written by compare-and-swap,
        re-read and re-applied when another writer got there first.
        """
        plans = [
            (pk, old, finalize(apply_update(old, ops)))
            for pk, old in self._select(coll, QuerySpec(node))
        ]
        changed = 0
        for pk, old, new in plans:
            while not json_equal(old, new):
                if self._swap(coll, pk, old, new):
                    changed += 1
                    break
                # The pk alone, then the filter here: And((node, pk)) could take a tree
                # at MAX_QUERY_DEPTH past it.
                only = Cond(("pk",), "exact", pk)
                again = [row for row in self._select(coll, QuerySpec(only)) if matches(node, *row)]
                if not again:
                    break
                old = again[0][1]
                new = finalize(apply_update(old, ops))
        return changed

    def _increment(self, coll: CollectionInfo, pk: str, path: Path, by: int | float) -> Any:
        """Add *by* to the number at *path* of *pk* (a missing one counts as 0); return the sum."""
        ops = (UpdateOp("inc", path, by),)
        while True:
            old = self._fetch(coll, [pk]).get(pk)
            new = check_json(apply_update(old or {}, ops))
            if self._swap(coll, pk, old, new):
                return resolve(pk, new, path)

    # ---------------------------------------------------------------- helpers
    def _check_writable(self, what: str) -> None:
        """Refuse a write on a read-only connection (and on a closed one)."""
        self._check_open()
        if self.read_only:
            raise StorageError(f"{what} on a read-only connection")

    def _duplicate(
        self,
        coll: CollectionInfo,
        rows: Sequence[tuple[str, Any]],
        index: tuple[Path, ...] | None = None,
    ) -> DuplicateKey:
        """The ``DuplicateKey`` for a write of *rows* (data or JSON text) the database
        refused on the unique index *index* (``None``: not known); see :func:`find_clash`."""
        return find_clash(self, coll, rows, index)

    def _check_open(self) -> None:
        if self.closed:
            raise StorageError(f"storage {self.url!r} is closed")

    def _coll(self, target: type[Document] | str) -> tuple[CollectionInfo, type[Document] | None]:
        ready = self._ready.get(target)
        if ready is not None and not self.closed:
            return ready
        info, model = self._resolve(target)
        with self._prepare_lock:
            if self._prepared.get(info.name) != info:
                self._prepare(info)
                self._prepared[info.name] = info
                self._infos[info.name] = info
                # Another model may have added indexes: resolve every target again.
                self._ready.clear()
            if self._infos[info.name] == info:
                self._ready[target] = (info, model)
        return info, model

    def _resolve(
        self, target: type[Document] | str
    ) -> tuple[CollectionInfo, type[Document] | None]:
        """The collection of *target* and its model, without preparing it (no I/O)."""
        self._check_open()
        if isinstance(target, str):
            parse_collection_name(target)
            info = self._infos.get(target) or CollectionInfo(target)
            model = None
        elif isinstance(target, type) and issubclass(target, Document):
            own = target.__doqu_collection__
            known = self._infos.get(own.name)
            info = known.merged(own) if known else own
            model = target
        else:
            raise TypeError(f"expected a Document subclass or a collection name, not {target!r}")
        return info, model

    # ------------------------------------------------------------- public API
    def save(self, doc: Document | Mapping[str, Any], *, collection: str | None = None) -> str:
        """Insert or replace *doc* by pk; return the pk (also set on a ``Document``).

        Plain dicts need ``collection=``; their ``"pk"`` item, if any, is the key.
        """
        if self.read_only:
            self._check_writable("save")
        return self.save_many([doc], collection=collection)[0]

    def save_many(
        self, docs: Iterable[Document | Mapping[str, Any]], *, collection: str | None = None
    ) -> list[str]:
        """Save many documents: one batch (one transaction where possible) per collection."""
        if self.read_only:
            self._check_writable("save_many")
        docs = list(docs)
        models = {type(d) for d in docs}  # one, mostly: the hooks are looked up per model
        with_hooks = {m for m in models if issubclass(m, Document) and has_hooks(m, "save")}
        hooked: list[Document] = (
            [d for d in docs if type(d) in with_hooks] if with_hooks else []  # type: ignore[misc]
        )
        for doc in hooked:
            doc.before_save()  # all before anything is written: one that raises stops all
        pks = self._save_many(docs, collection)
        for doc in hooked:
            doc.after_save()
        return pks

    def _save_many(
        self, docs: list[Document | Mapping[str, Any]], collection: str | None
    ) -> list[str]:
        if docs and isinstance(docs[0], Document):
            model = type(docs[0])
            if all(type(d) is model for d in docs):  # one model: the common case
                one = self._coll(model)[0]
                # A big batch is built and dropped with the collector paused: its rows
                # are freed before it runs again, so it never traverses them.
                with paused_gc() if len(docs) > _BIG_BATCH else contextlib.nullcontext():
                    form, rows = self._encode_batch(docs)
                    self._store(one, form, rows)
                    pks = [pk for pk, _ in rows]
                    del rows
                    for doc, pk in zip(docs, pks):
                        doc.__dict__["pk"] = pk
                return pks
        infos: list[CollectionInfo] = []
        last: Any = None
        info: CollectionInfo | None = None
        for doc in docs:
            if isinstance(doc, Document):
                target: type[Document] | str = type(doc)
            elif collection is None:
                raise TypeError("saving a plain dict needs collection='name'")
            else:
                target = collection
            if target is not last or info is None:
                info, last = self._coll(target)[0], target
            infos.append(info)
        form = "text" if self.stores_text else "data"
        rows = encoding.encode_rows(docs, text=self.stores_text)
        if info is not None and all(i is info for i in infos):
            self._store(info, form, rows)  # one collection: the common case
        else:
            groups: dict[str, tuple[CollectionInfo, list[Any]]] = {}
            for one, row in zip(infos, rows):
                groups.setdefault(one.name, (one, []))[1].append(row)
            for one, group in groups.values():
                self._store(one, form, group)
        pks = [pk for pk, _ in rows]
        for doc, pk in zip(docs, pks):
            if isinstance(doc, Document):
                doc.__dict__["pk"] = pk
        return pks

    def _encode_batch(self, docs: Sequence[Any]) -> tuple[Form, list[Any]]:
        """A batch of one model in the form this backend takes best, checked."""
        if self.stores_sorted:
            rows: list[Any] | None = encoding.sorted_rows(docs, self.max_document_bytes)
            if rows is not None:
                return "sorted", rows
        return ("text" if self.stores_text else "data"), encoding.encode_rows(
            docs, text=self.stores_text
        )

    @overload
    def get(
        self,
        target: type[D],
        pk: str,
        *,
        prefetch: Sequence[str] = (),
        missing: Missing = "raise",
    ) -> D: ...
    @overload
    def get(self, target: str, pk: str) -> dict[str, Any]: ...
    def get(
        self,
        target: type[D] | str,
        pk: str,
        *,
        prefetch: Sequence[str] = (),
        missing: Missing = "raise",
    ) -> D | dict[str, Any]:
        """The document stored under *pk*; ``NotFound`` (a ``KeyError``) if there is none.

        ``prefetch=["author"]`` loads the targets of those reference paths too,
        as :meth:`Query.prefetch` does (``missing`` likewise).
        """
        info, model = self._coll(target)
        paths = prefetch_paths(model, prefetch, missing) if prefetch else ()
        found = self._fetch_one(info, check_pk(pk))
        if found is None:
            raise NotFound(info.name, [pk])
        doc = encoding.load(model, info.name, pk, found)
        if paths:
            load_refs(self, [doc], paths, missing)
        return doc  # type: ignore[no-any-return]

    @overload
    def get_many(
        self,
        target: type[D],
        pks: Iterable[str],
        *,
        prefetch: Sequence[str] = (),
        missing: Missing = "raise",
    ) -> list[D]: ...
    @overload
    def get_many(self, target: str, pks: Iterable[str]) -> list[dict[str, Any]]: ...
    def get_many(
        self,
        target: type[D] | str,
        pks: Iterable[str],
        *,
        prefetch: Sequence[str] = (),
        missing: Missing = "raise",
    ) -> list[Any]:
        """Documents in the order asked, in one query; ``NotFound`` naming every missing pk.

        ``prefetch=[...]`` loads references as :meth:`get` does, one read per
        target collection and depth for the whole list.
        """
        info, model = self._coll(target)
        paths = prefetch_paths(model, prefetch, missing) if prefetch else ()
        wanted = [check_pk(pk) for pk in pks]
        found = self._fetch_stored(info, list(dict.fromkeys(wanted))) if wanted else {}
        missing_pks = [pk for pk in wanted if pk not in found]
        if missing_pks:
            raise NotFound(info.name, missing_pks)
        docs = [encoding.load(model, info.name, pk, found[pk]) for pk in wanted]
        if paths:
            load_refs(self, docs, paths, missing)
        return docs

    @overload
    def get_or_create(
        self, target: type[D], defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[D, bool]: ...
    @overload
    def get_or_create(
        self, target: str, defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[dict[str, Any], bool]: ...
    def get_or_create(
        self, target: type[D] | str, defaults: Mapping[str, Any] | None = None, **conditions: Any
    ) -> tuple[Any, bool]:
        """Find the document matching *conditions* (exact values), or create it atomically.

        A new document is built from the conditions and *defaults*. Its pk (unless
        *defaults* names one) is derived from the conditions, so concurrent callers
        race for one key and exactly one of them creates the document.
        """
        info, model = self._coll(target)
        if not conditions:
            raise QueryError("get_or_create() needs at least one condition")
        conds = [make_cond(k, v) for k, v in conditions.items()]
        for c in conds:
            if c.lookup != "exact":
                raise QueryError(f"get_or_create() takes exact conditions, not __{c.lookup}")
        node: Node = conds[0] if len(conds) == 1 else And(tuple(conds))
        if model is not None:
            check_node(model, node)
        values: Data = {}
        for c in conds:
            parent = values
            for seg in c.path[:-1]:
                parent = parent.setdefault(seg, {})
            parent[c.path[-1]] = c.operand
        fields = dict(defaults or {})
        given_pk = fields.pop("pk", None)
        if "pk" in values:
            given_pk = values.pop("pk")
        created: list[Document | Data] = []

        def build(attempt: int) -> Row:
            self._check_writable("get_or_create")  # found nothing: it would create
            merged = {**fields, **values}
            doc: Document | Data = model(**merged) if model is not None else merged
            if isinstance(doc, Document) and has_hooks(model, "save"):
                doc.before_save()  # (a creator that loses the race writes nothing)
            created[:] = [doc]
            pk, data = encoding.encode_one(doc)
            if given_pk is not None:
                pk = check_pk(given_pk)
            elif attempt == 0:
                # Racing creators all try this key; only one insert can win.
                pk = hashlib.sha256(f"{info.name}\x00{canonical(values)}".encode()).hexdigest()[:32]
            return pk, data

        (pk, data), was_created = self._find_or_insert(info, node, build, given_pk is not None)
        if not was_created:
            return encoding.load(model, info.name, pk, data), False
        doc = created[0]
        if isinstance(doc, Document):
            doc.__dict__["pk"] = pk
            if has_hooks(model, "save"):
                doc.after_save()
            return doc, True
        return encoding.load(None, info.name, pk, data), True

    def _find_or_insert(
        self,
        coll: CollectionInfo,
        node: Node,
        build: Callable[[int], Row],
        pk_given: bool,
    ) -> tuple[Row, bool]:
        """The first document matching *node* and ``False``, or a new one and ``True``.

        ``build(attempt)`` makes the new ``(pk, data)`` (validated); on attempt 0
        its pk is derived from the conditions, so concurrent creators race for
        one key and exactly one insert wins. Atomic against concurrent callers.
        A backend with a native upsert (MongoDB's ``$setOnInsert``) overrides this.
        """
        for attempt in range(2):
            hit = next(self._select(coll, QuerySpec(node, limit=1)), None)
            if hit is not None:
                return hit, False
            pk, data = build(attempt)
            if self._swap(coll, pk, None, data):
                return (pk, data), True
            if pk_given:
                raise self._duplicate(coll, [(pk, data)], PK_INDEX)
        raise StorageError(f"get_or_create() on {coll.name!r} kept losing races; try again")

    @overload
    def delete(self, target: Document) -> None: ...
    @overload
    def delete(self, target: type[Document] | str, pk: str) -> None: ...
    def delete(self, target: Document | type[Document] | str, pk: str | None = None) -> None:
        """Delete a document (or ``Model, pk`` / ``"name", pk``); ``NotFound`` if absent."""
        doc: Document | None = None
        if isinstance(target, Document):
            if target.pk is None:
                raise NotFound(type(target).__doqu_collection__.name, ["None"])
            info, model = self._coll(type(target))
            pk = target.pk
            doc = target
        else:
            info, model = self._coll(target)
            if pk is None:
                raise TypeError("delete() needs a pk with a model or collection name")
        self._check_writable("delete")
        if has_hooks(model, "delete"):
            if doc is None:
                doc = self.get(model, pk)  # type: ignore[arg-type]  # NotFound if absent
            doc.before_delete()
        if not self._remove(info, [check_pk(pk)]):
            raise NotFound(info.name, [pk])
        if doc is not None and has_hooks(model, "delete"):
            doc.after_delete()

    @overload
    def query(self, target: type[D]) -> Query[D]: ...
    @overload
    def query(self, target: str) -> Query[dict[str, Any]]: ...
    def query(self, target: type[D] | str) -> Query[Any]:
        """A lazy query over the collection of *target* (a model, or a name for plain dicts)."""
        return Query(self.collection(target))

    def clear(self, target: type[Document] | str | None = None) -> None:
        """Empty one collection, or with no argument every doqu collection."""
        self._check_writable("clear")
        if target is None:
            for name in self._names():
                self._drop(self._coll(name)[0])
        else:
            self._drop(self._coll(target)[0])

    def collections(self) -> list[str]:
        """Names of the collections that hold documents, sorted."""
        self._check_open()
        return sorted(self._names())

    @overload
    def collection(self, target: type[D]) -> Collection[D]: ...
    @overload
    def collection(self, target: str) -> Collection[dict[str, Any]]: ...
    def collection(self, target: type[D] | str) -> Collection[Any]:
        """The :class:`Collection` of *target*: what queries and mapping views run on."""
        info, model = self._coll(target)
        handle = self._handles.get(target)
        if handle is None or handle.info is not info:
            handle = self._handles[target] = Collection(self, info, model)
        return handle

    @overload
    def dict(self, target: type[D], **options: Any) -> MappingView[D]: ...
    @overload
    def dict(self, target: str, **options: Any) -> MappingView[Any]: ...
    def dict(self, target: type[D] | str, **options: Any) -> MappingView[Any]:
        """A ``MutableMapping`` view over one collection (see the mapping view guide)."""
        return MappingView(self.collection(target), **options)

    def migrate(
        self,
        model: type[Document],
        *,
        batch: int = 1000,
        dry_run: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> MigrationReport:
        """Rewrite every stored document of *model* below its ``Meta.version`` at the
        current version, in batches; resumable (see :func:`doqu._migrations.migrate`).
        ``dry_run``: upgrade and validate each, write nothing."""
        return migrate(self, model, batch=batch, dry_run=dry_run, progress=progress)

    def version(self, target: type[Document] | str) -> Any:
        """The collection's version token: it changes on every write, by any process."""
        info, _ = self._coll(target)
        return self._version(info)

    def flush(self) -> None:
        """Make buffered writes durable (a no-op where every write already is)."""
        self._check_open()
        self._flush()

    def reconnect(self) -> None:
        """Close the connections (if they still work) and open them again."""
        self._check_open()
        self._reconnect()

    def close(self) -> None:
        """Flush and release everything; further use raises ``StorageError``."""
        if not self.closed:
            try:
                self._close()
            finally:
                self.closed = True

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}{' closed' if self.closed else ''}>"


class Collection(Generic[T]):
    """One collection of one storage, with its model (or plain dicts): ``db.collection(x)``.

    The operations :class:`~doqu.Query` and the mapping view are built on, over
    the backend's primitives; a custom query or view can be built on them too.
    Rows are ``(pk, data)``; *stored* rows and :meth:`fetch_one` may give a
    document as its stored JSON text, which :meth:`load` takes as well.

    Attributes:
        storage: the storage that holds the collection.
        info: the collection's name and declared indexes.
        model: the ``Document`` class results are loaded as, or ``None`` (plain dicts).
    """

    __slots__ = (
        "_typed",
        "check_open",
        "check_writable",
        "fetch_one",
        "info",
        "load",
        "model",
        "select_stored",
        "storage",
    )

    def __init__(self, storage: Storage, info: CollectionInfo, model: type[Any] | None) -> None:
        self.storage = storage
        self.info = info
        self.model = model
        # Queries of a model read the collection as the model's: where its declared
        # types fix a path's kind, the backend may compare the bare value.
        typed = info if model is None else replace(info, kinds=fixed_kinds(model))
        self._typed = typed
        # The hot paths (get, iteration) as bound calls, without a method in between.
        #: Raise ``StorageError`` if the storage was closed.
        self.check_open: Callable[[], None] = storage._check_open
        #: ``check_writable(what)``: raise ``StorageError`` naming *what* on a closed or
        #: read-only storage.
        self.check_writable: Callable[[str], None] = storage._check_writable
        #: The stored document under a pk (data or its JSON text), or ``None``.
        self.fetch_one: Callable[[str], Any] = partial(storage._fetch_one, info)
        #: Stream ``(pk, data or JSON text)`` of a :class:`QuerySpec`.
        self.select_stored: Callable[[QuerySpec], Iterator[tuple[str, Any]]] = partial(
            storage._select_stored, typed
        )
        #: ``load(pk, stored)``: the model instance (or dict with ``"pk"``) of stored data.
        self.load: Callable[[str, Any], T] = partial(encoding.load, model, info.name)

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.info.name

    @property
    def closed(self) -> bool:
        """Whether the storage was closed."""
        return self.storage.closed

    def select(self, spec: QuerySpec) -> Iterator[Row]:
        """Stream ``(pk, data)`` of the matches, filtered, ordered and windowed by the database."""
        return self.storage._select(self._typed, spec)

    def fetch(self, pks: Sequence[str]) -> dict[str, Data]:
        """The stored data of those *pks* that exist, in one round trip."""
        return self.storage._fetch(self.info, pks)

    def fetch_stored(self, pks: Sequence[str]) -> dict[str, Any]:
        """As :meth:`fetch`, each document as the backend stores it (data or JSON text,
        which :meth:`load` takes as well)."""
        return self.storage._fetch_stored(self.info, pks)

    def count(self, node: Node | None) -> int:
        """How many documents match *node* (``None``: all)."""
        return self.storage._count(self._typed, node)

    def distinct(self, node: Node | None, path: Path) -> list[Any]:
        """Distinct non-null values at *path* among matches, list elements one by one."""
        return self.storage._distinct(self._typed, node, path)

    def explain(self, spec: QuerySpec) -> str:
        """What the backend runs for *spec*."""
        return self.storage._explain(self._typed, spec)

    def version(self) -> Any:
        """The collection's version token (it changes on every write, by any process)."""
        return self.storage._version(self.info)

    def write(self, rows: Sequence[Row], texts: Sequence[str] | None = None) -> bool | None:
        """Store rows of checked data (see :func:`doqu._encoding.checked_value`), given as
        JSON *texts* too when at hand, through the same primitive as ``save``.

        Returns ``False`` when nothing was changed (the version did not move).
        """
        storage = self.storage
        if texts is not None and storage.stores_text:
            return storage._store(self.info, "text", [(r[0], t) for r, t in zip(rows, texts)])
        return storage._store(self.info, "data", rows)

    def remove(self, pks: Sequence[str]) -> int:
        """Delete by pk; return how many existed."""
        return self.storage._remove(self.info, pks)

    def swap(self, pk: str, expected: Data | None, new: Data | None) -> bool:
        """Compare-and-swap one document (``None``: absent); whether it wrote."""
        return self.storage._swap(self.info, pk, expected, new)

    def increment(self, pk: str, path: Path, by: int | float) -> Any:
        """Add *by* to the number at *path* of *pk* atomically; return the new value."""
        return self.storage._increment(self.info, pk, path, by)

    def delete_where(self, node: Node | None) -> int:
        """Delete the matches; return how many (a model's delete hooks fire on each)."""
        if has_hooks(self.model, "delete"):
            return delete_each(self, node)
        return self.storage._delete_where(self._typed, node)

    def update_where(self, node: Node | None, ops: Sequence[UpdateOp]) -> int:
        """Apply update operators to each match atomically, each result validated by the
        model (if any) and checked before anything is written; how many changed."""
        if has_hooks(self.model, "save"):
            return update_each(self, node, tuple(ops))
        finalize = encoding.finalizer(self.model)
        return self.storage._update_where(self._typed, node, ops, finalize)

    def __repr__(self) -> str:
        what = self.model.__name__ if self.model is not None else repr(self.info.name)
        return f"<Collection {what} of {self.storage!r}>"
