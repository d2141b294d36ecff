"""``MongoStorage``: the primitives over pymongo, version tokens, driver errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar
from urllib.parse import unquote, urlsplit

import pymongo
from pymongo import ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from ...backend import (
    MISSING,
    PK_INDEX,
    READ_ONLY,
    CollectionInfo,
    Cond,
    ConfigError,
    DoquError,
    DuplicateKey,
    Finalize,
    InvalidDocument,
    Node,
    Path,
    QuerySpec,
    Row,
    Storage,
    StorageError,
    UpdateOp,
    UpdateTypeError,
    apply_update,
    canonical,
    json_equal,
    resolve,
    strip_query,
    uncancelled,
)
from ._filters import (
    Filter,
    _distinct_pipeline,
    _field,
    _native_order,
    _pipeline,
    _reserved,
    to_filter,
)
from ._stored import (
    _CODEC,
    MAX_DOCUMENT_BYTES,
    Data,
    _from_mongo,
    _mongo_from_text,
    _to_mongo,
)
from ._updates import _IMMUTABLE_FIELD, _MISSED, _guard, _native_update

if TYPE_CHECKING:
    from ._aio import Facade

T = TypeVar("T")
#: Makes the ``DuplicateKey`` of a write from the server's duplicate key error.
Clash = Callable[[PyMongoError], Exception]

#: The bookkeeping collection: one ``{_id: name, v: counter}`` per doqu collection.
META_COLLECTION: Final = "doqu.meta"
DEFAULT_DATABASE: Final = "doqu"
#: Index values that are present and not null, for unique indexes' partial filters.
_PRESENT_TYPES: Final = ["number", "string", "bool", "object", "array"]


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class _ClientOptions:
    """The names of ``MongoClient`` options (URL or keyword), compared as pymongo does:
    case-insensitively."""

    def __init__(self) -> None:
        from pymongo import common

        names: set[str] = {"host", "port", "document_class", "tz_aware", "connect"}
        for table in ("VALIDATORS", "URI_OPTIONS_VALIDATOR_MAP", "URI_OPTIONS_ALIAS_MAP"):
            names.update(getattr(common, table, {}))
        self.names = {name.lower() for name in names}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.names


_CLIENT_OPTIONS: Final = _ClientOptions()


class MongoStorage(Storage):
    """MongoDB through pymongo; queries become native filters and pipelines.

    Reads that fail with a network error are retried once on a fresh attempt;
    other driver faults raise :class:`doqu.StorageError` with the pymongo
    exception chained. A unique violation raises :class:`doqu.DuplicateKey`.
    """

    scheme = "mongodb"
    stores_text = True  # documents arrive as JSON text, parsed once into stored form
    stores_sorted = True  # or, for plain-typed models, straight as sorted data
    max_document_bytes = MAX_DOCUMENT_BYTES
    accepted_options: ClassVar[Mapping[str, str]] = READ_ONLY

    @classmethod
    def _driver_options(cls, url: str, *, query: bool) -> tuple[Container[str], str]:
        return _CLIENT_OPTIONS, "pymongo.MongoClient options (appName, maxPoolSize, …)"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        if parts.scheme not in ("mongodb", "mongodb+srv"):
            raise ConfigError(f"not a mongodb:// URL: {url!r}")
        name = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
        if any(ch in name for ch in '/\\. "$\x00') or len(name) > 63:
            raise ConfigError(f"not a MongoDB database name: {name!r}")
        self.database_name = name
        ours = self.accepted_options
        self._client_url = strip_query(url, ours)
        self._client_options = {k: v for k, v in options.items() if k not in ours}
        self._client = self._connect()
        #: Whether writes and version bumps share a transaction (asked on first write).
        self._transactions: bool | None = None

    def _connect(self) -> pymongo.MongoClient[Data] | Facade:
        """A client; for the async API an ``AsyncMongoClient`` behind its sync interface
        (it connects on first use, so nothing here waits)."""
        try:
            if self.asynchronous:
                from ._aio import Facade  # pymongo.asynchronous: pymongo 4.9 and later

                return Facade(pymongo.AsyncMongoClient(self._client_url, **self._client_options))
            return pymongo.MongoClient(self._client_url, **self._client_options)
        except pymongo.errors.ConfigurationError as exc:
            raise ConfigError(f"bad MongoDB URL or option: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad MongoDB option: {exc}") from exc
        except PyMongoError as exc:
            raise StorageError(f"cannot open MongoDB at {self.url!r}: {exc}") from exc

    # ------------------------------------------------------------- plumbing
    def _db(self) -> Any:
        return self._client.get_database(self.database_name, codec_options=_CODEC)

    def _c(self, coll: CollectionInfo) -> Any:
        return self._db()[coll.name]

    def _run(
        self, what: str, call: Callable[[], T], *, read: bool = False, clash: Clash | None = None
    ) -> T:
        """Run one driver call, translating its errors; reads retry once on a lost link."""
        try:
            return call()
        except PyMongoError as exc:
            if not (read and _retryable(exc)):
                raise _error(what, exc, clash) from exc
        try:
            return call()
        except PyMongoError as exc:
            raise _error(what, exc, clash) from exc

    def _clash(self, coll: CollectionInfo, rows: Callable[[], Sequence[Row]]) -> Clash:
        """What turns a duplicate key error writing ``rows()`` into its ``DuplicateKey``."""

        def duplicate(exc: PyMongoError) -> Exception:
            return self._duplicate(coll, rows(), _clash_index(coll, exc))

        return duplicate

    def _transactional(self) -> bool:
        """Whether the server runs transactions: a replica set member or ``mongos``."""
        if self._transactions is None:
            hello = self._run("hello", lambda: self._client.admin.command("hello"), read=True)
            self._transactions = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        return self._transactions

    def _bump(self, coll: CollectionInfo, session: Any = None) -> None:
        meta = self._db()[META_COLLECTION]

        def bump() -> Any:
            step = {"$inc": {"v": 1}}
            try:
                return meta.update_one({"_id": coll.name}, step, upsert=True, session=session)
            except DuplicateKeyError:
                # Another client's upsert created the counter first: increment it.
                return meta.update_one({"_id": coll.name}, step, upsert=True, session=session)

        if session is not None:
            bump()  # inside a transaction: its errors are the transaction's
        else:
            self._run(f"{coll.name}: version", bump)

    def _atomic(
        self,
        coll: CollectionInfo,
        what: str,
        write: Callable[[Any], T],
        changed: Callable[[T], bool] = lambda _: True,
        *,
        partial: bool = False,
        clash: Clash | None = None,
    ) -> T:
        """Run ``write(session)`` and bump the version token when ``changed(result)``.

        Where the server has transactions, the write and the bump are one
        transaction (``session`` is its session; a transient conflict reruns
        both). On a standalone server ``session`` is ``None`` and the bump
        follows the write; a failed write bumps too, as part of it may be done.
        Driver errors become doqu errors, the pymongo one chained.
        """
        if self._transactional():

            def body(session: Any) -> T:
                out = write(session)
                if changed(out):
                    self._bump(coll, session)
                return out

            try:
                with self._client.start_session() as session:
                    out: T = session.with_transaction(body)
                    return out
            except PyMongoError as exc:
                raise _error(f"{coll.name}: {what}", exc, clash) from exc
        try:
            out = write(None)
        except PyMongoError as exc:
            if partial:
                with contextlib.suppress(DoquError):
                    self._bump(coll)
            raise _error(f"{coll.name}: {what}", exc, clash) from exc
        if changed(out):
            self._bump(coll)
        return out

    # ----------------------------------------------------------- primitives
    def _prepare(self, coll: CollectionInfo) -> None:
        if self.read_only:
            return  # no counter, no index: reads of a missing collection are empty anyway
        target = self._c(coll)
        if self._transactional():
            # The version counter exists before any transaction bumps it, so that
            # two transactions never race to insert it.
            meta = self._db()[META_COLLECTION]

            def counter() -> Any:
                with contextlib.suppress(DuplicateKeyError):
                    meta.update_one({"_id": coll.name}, {"$setOnInsert": {"v": 0}}, upsert=True)

            self._run(f"{coll.name}: version", counter)
        for paths in coll.indexes:
            index = [(_field(p), pymongo.ASCENDING) for p in paths]

            def plain(k: list[tuple[str, int]] = index) -> Any:
                return target.create_index(k)

            self._run(f"{coll.name}: create index", plain)
        for paths in coll.unique:
            keys = [(_field(p), pymongo.ASCENDING) for p in paths]
            # As in SQL, documents whose key holds a null or missing part are exempt.
            partial = {_field(p): {"$type": _PRESENT_TYPES} for p in paths if p != ("pk",)}
            name = _unique_name(paths)

            def create(k: Any = keys, f: Filter = partial, n: str = name) -> Any:
                options: Filter = {"unique": True, "name": n}
                if f:
                    options["partialFilterExpression"] = f
                return target.create_index(k, **options)

            # Stored documents that already share a key: name two of them.
            self._run(f"{coll.name}: create unique index", create, clash=self._clash(coll, list))

    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        self._write_docs(coll, [_to_mongo(pk, data) for pk, data in rows])

    def _put_text(self, coll: CollectionInfo, rows: Sequence[tuple[str, str]]) -> None:
        self._write_docs(coll, [_mongo_from_text(pk, text) for pk, text in rows])

    def _put_sorted(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        self._write_docs(coll, [{"_id": pk, **data} for pk, data in rows])

    def _write_docs(self, coll: CollectionInfo, docs: list[Data]) -> None:
        """Insert or replace stored-form documents (every one checked before writing)."""
        target = self._c(coll)
        clash = self._clash(coll, lambda: [_from_mongo(d) for d in docs])
        if len(docs) == 1:
            doc = docs[0]
            self._atomic(
                coll,
                "save",
                lambda s: target.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=s),
                clash=clash,
            )
            return
        if self._transactional():
            # A unique clash aborts the transaction: nothing is written.
            requests = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
            self._atomic(
                coll, "save_many", lambda s: target.bulk_write(requests, session=s), clash=clash
            )
            return
        # Several round trips: a cancelled task (async API) lets them finish first.
        with uncancelled():
            self._write_batch(coll, target, docs, clash)

    def _write_batch(
        self, coll: CollectionInfo, target: Any, docs: list[Data], clash: Clash
    ) -> None:
        """``save_many`` on a server without transactions: insert (or replace) all, and
        undo what was written if a unique index refuses a document."""
        before: dict[str, Data] = {}
        if coll.unique:
            pks = list(dict.fromkeys(d["_id"] for d in docs))
            before = self._run(
                f"{coll.name}: save_many",
                lambda: {d["_id"]: d for d in target.find({"_id": {"$in": pks}})},
                read=True,
            )
        # Inserting is much cheaper for the server than upserting, and new
        # documents (generated pks) are the common case: insert in order until a
        # pk is taken, then replace-or-insert the rest (one more round trip).
        done = 0
        try:
            try:
                target.insert_many(docs, ordered=True)
            except BulkWriteError as exc:
                first = exc.details["writeErrors"][0]
                if not _pk_taken(first):
                    raise
                done = int(first["index"])
                rest = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[done:]]
                target.bulk_write(rest, ordered=True)
        except PyMongoError as exc:
            if isinstance(exc, BulkWriteError) and _duplicate_error(exc) is not None:
                failed = done + int(exc.details["writeErrors"][0]["index"])
                self._undo(coll, docs[:failed], before)  # first, so the holder found is stored
            else:
                with contextlib.suppress(DoquError):
                    self._bump(coll)  # some batches may have been written
            raise _error(f"{coll.name}: save_many", exc, clash) from exc
        self._bump(coll)

    def _undo(self, coll: CollectionInfo, written: Sequence[Data], before: dict[str, Data]) -> None:
        """Put back what a failed batch had written before its unique clash."""
        if not written:
            return
        target = self._c(coll)
        requests: list[Any] = []
        for pk in dict.fromkeys(d["_id"] for d in written):
            if pk in before:
                requests.append(ReplaceOne({"_id": pk}, before[pk]))
            else:
                requests.append(pymongo.DeleteOne({"_id": pk}))
        self._run(f"{coll.name}: undo", lambda: target.bulk_write(requests, ordered=False))
        self._bump(coll)

    def _fetch(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Data]:
        target = self._c(coll)
        query = {"_id": pks[0]} if len(pks) == 1 else {"_id": {"$in": list(pks)}}
        return self._run(
            f"{coll.name}: get",
            lambda: dict(_from_mongo(d) for d in target.find(query)),
            read=True,
        )

    def _remove(self, coll: CollectionInfo, pks: Sequence[str]) -> int:
        target = self._c(coll)
        result = self._atomic(
            coll,
            "delete",
            lambda s: target.delete_many({"_id": {"$in": list(pks)}}, session=s),
            lambda r: bool(r.deleted_count),
            partial=True,
        )
        return int(result.deleted_count)

    def _cursor(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        target = self._c(coll)
        native = _native_order(spec, coll.kinds)
        if native is not None:
            cursor = target.find(
                to_filter(spec.node, coll.kinds), sort=native or None, skip=spec.offset
            )
            if spec.limit is not None:
                cursor = cursor.limit(spec.limit)
            with cursor:
                for doc in cursor:
                    yield _from_mongo(doc)
        else:
            with target.aggregate(_pipeline(spec), allowDiskUse=True) as cursor:
                for doc in cursor:
                    yield _from_mongo(doc["d"])

    def _select(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        if spec.limit == 0:
            return iter(())  # pymongo reads limit(0) as "no limit"
        return self._stream(coll, spec)

    def _stream(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        for attempt in (0, 1):
            rows = self._cursor(coll, spec)
            yielded = False
            try:
                for row in rows:
                    yielded = True
                    yield row
                return
            except PyMongoError as exc:
                # Retry only before anything was handed out, so no row repeats.
                if attempt == 0 and not yielded and _retryable(exc):
                    continue
                raise _error(f"{coll.name}: query", exc) from exc

    def _count(self, coll: CollectionInfo, node: Node | None) -> int:
        target = self._c(coll)
        query = to_filter(node, coll.kinds)
        return int(
            self._run(f"{coll.name}: count", lambda: target.count_documents(query), read=True)
        )

    def _distinct(self, coll: CollectionInfo, node: Node | None, path: Path) -> list[Any]:
        if _reserved(path):
            return []
        target = self._c(coll)
        pipeline = _distinct_pipeline(node, path)
        groups = self._run(
            f"{coll.name}: values",
            lambda: [g["_id"]["v"] for g in target.aggregate(pipeline)],
            read=True,
        )
        # The server keeps 1 and 1.0 apart (they differ in BSON type); doqu does not.
        seen: dict[str, Any] = {}
        for value in groups:
            seen.setdefault(canonical(value), value)
        return list(seen.values())

    def _delete_where(self, coll: CollectionInfo, node: Node | None) -> int:
        target = self._c(coll)
        query = to_filter(node, coll.kinds)
        result = self._atomic(
            coll,
            "delete",
            lambda s: target.delete_many(query, session=s),
            lambda r: bool(r.deleted_count),
            partial=True,
        )
        return int(result.deleted_count)

    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        target = self._c(coll)
        doc = None if new is None else _to_mongo(pk, new)
        if expected is None:
            if doc is None:
                return False
            inserted = doc

            def insert(s: Any) -> bool:
                if s is not None and target.find_one({"_id": pk}, {"_id": 1}, session=s):
                    return False  # in a transaction a failed insert would abort it
                target.insert_one(inserted, session=s)
                return True

            clash = self._clash(coll, lambda: [(pk, new)] if new is not None else [])
            try:
                return self._atomic(coll, "insert", insert, bool, clash=clash)
            except DuplicateKey as exc:
                if isinstance(exc.__cause__, DuplicateKeyError) and self._fetch(coll, [pk]):
                    return False  # the pk is taken: the compare failed
                raise
        # First against the document as it was read (stored key order), then, for
        # a JSON-equal document whose keys are in another order, against what is stored.
        if self._replace_if(coll, pk, expected, doc):
            return True
        current = self._fetch(coll, [pk]).get(pk)
        if current is None or not json_equal(current, expected):
            return False
        return self._replace_if(coll, pk, current, doc)

    def _replace_if(self, coll: CollectionInfo, pk: str, old: Data, doc: Data | None) -> bool:
        """Replace (*doc* ``None``: delete) the document only while it is exactly *old*."""
        target = self._c(coll)
        guard = _guard(pk, old)

        def write(s: Any) -> bool:
            if doc is None:
                return bool(target.delete_one(guard, session=s).deleted_count)
            return bool(target.replace_one(guard, doc, session=s).matched_count)

        clash = self._clash(coll, lambda: [] if doc is None else [_from_mongo(doc)])
        return self._atomic(coll, "update", write, bool, clash=clash)

    def _plan(
        self,
        coll: CollectionInfo,
        query: Filter,
        ops: Sequence[UpdateOp],
        finalize: Finalize,
        session: Any,
    ) -> list[tuple[str, Data, Filter]]:
        """``(pk, old, native update)`` of every match the update changes, all validated."""
        target = self._c(coll)

        def read() -> list[Row]:
            return [_from_mongo(d) for d in target.find(query, session=session)]

        rows = read() if session is not None else self._run(f"{coll.name}: update", read, read=True)
        plans = []
        for pk, old in rows:
            raw = apply_update(old, ops)
            new = finalize(raw)
            if not json_equal(old, new):
                _to_mongo(pk, new)  # its size checked before anything is written
                plans.append((pk, old, _native_update(old, raw, new, ops)))
        return plans

    def _update_where(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        # Several round trips: a cancelled task (async API) lets them finish first, so
        # none of its writes lands after the cancellation.
        with uncancelled():
            return self._update_matches(coll, node, ops, finalize)

    def _update_matches(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        """Validate every result first, then write the changes with native operators.

        Each document's update (``$set``, ``$inc``, ``$push``, … see
        :func:`to_update`) is guarded by its content as read, so it applies only
        to the state that was validated; all go in one ``bulk_write``. In a
        transaction (replica sets) reads and writes share a snapshot and a
        concurrent change reruns the whole. Without one, each guard that
        missed (another client changed the document) fails with error 66 via
        :data:`_MISSED`, naming the request, and that document is re-read and
        redone alone.
        """
        target = self._c(coll)
        query = to_filter(node, coll.kinds)
        planned: list[tuple[str, Data, Filter]] = []
        # A unique clash: the results the update was writing, for DuplicateKey.
        clash = self._clash(
            coll, lambda: [(pk, finalize(apply_update(old, ops))) for pk, old, _ in planned]
        )
        if self._transactional():

            def body(s: Any) -> int:
                plans = self._plan(coll, query, ops, finalize, s)
                planned[:] = plans
                if not plans:
                    return 0
                requests = [UpdateOne(_guard(pk, old), update) for pk, old, update in plans]
                matched = int(target.bulk_write(requests, ordered=False, session=s).matched_count)
                if matched != len(plans):  # pragma: no cover - the snapshot rules it out
                    raise StorageError(f"{coll.name}: update: documents changed mid-transaction")
                return matched

            return self._atomic(coll, "update", body, bool, clash=clash)
        plans = self._plan(coll, query, ops, finalize, None)
        planned[:] = plans
        if not plans:
            return 0
        requests = [
            UpdateOne(_guard(pk, old), {**update, **_MISSED}, upsert=True)
            for pk, old, update in plans
        ]
        missed: list[int] = []
        try:
            result = target.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            missed = [e["index"] for e in errors if e.get("code") == _IMMUTABLE_FIELD]
            if len(missed) != len(errors):
                with contextlib.suppress(DoquError):
                    self._bump(coll)  # other documents may have been written
                raise _error(f"{coll.name}: update", exc, clash) from exc
            upserted = [u["_id"] for u in exc.details.get("upserted", [])]
        except PyMongoError as exc:
            with contextlib.suppress(DoquError):
                self._bump(coll)
            raise _error(f"{coll.name}: update", exc) from exc
        else:
            upserted = list(result.upserted_ids.values())
        if upserted:  # pragma: no cover - MongoDB and SecantusDB refuse the insert
            self._run(
                f"{coll.name}: update",
                lambda: target.delete_many({"_id": {"$in": upserted}}),
            )
            raise StorageError(f"{coll.name}: update: the server inserted a guard's document")
        self._bump(coll)
        changed = len(plans) - len(missed)
        for i in missed:
            changed += self._redo(coll, node, plans[i][0], ops, finalize)
        return changed

    def _redo(
        self,
        coll: CollectionInfo,
        node: Node | None,
        pk: str,
        ops: Sequence[UpdateOp],
        finalize: Finalize,
    ) -> int:
        """Update one document that changed under a bulk, until its guard holds."""
        target = self._c(coll)
        only = Cond(("pk",), "exact", pk)
        # Joined here, not as And((node, only)), which could take a tree past MAX_QUERY_DEPTH.
        query = (
            to_filter(only)
            if node is None
            else {"$and": [to_filter(node, coll.kinds), to_filter(only)]}
        )
        while True:
            plans = self._plan(coll, query, ops, finalize, None)
            if not plans:
                return 0  # gone, no longer matching, or already as asked
            guard, update = _guard(pk, plans[0][1]), plans[0][2]
            new = finalize(apply_update(plans[0][1], ops))
            hit = self._run(
                f"{coll.name}: update",
                lambda g=guard, u=update: target.update_one(g, u),  # type: ignore[misc]
                clash=self._clash(coll, lambda n=new: [(pk, n)]),  # type: ignore[misc]
            ).matched_count
            if hit:
                self._bump(coll)
                return 1

    def _find_or_insert(
        self,
        coll: CollectionInfo,
        node: Node,
        build: Callable[[int], Row],
        pk_given: bool,
    ) -> tuple[Row, bool]:
        """One upsert: ``update_one(conditions, {$setOnInsert: doc}, upsert=True)``.

        A first plain find keeps ``build`` (which validates the model) from
        running when the document exists. Racing creators derive the same
        ``_id``, so one insert wins; ``upserted_id`` says whether this call
        inserted (``find_one_and_update``'s before-image is not a reliable
        answer to that on every server when upserts race), and the losers
        read the winner's document.
        """
        target = self._c(coll)
        query = to_filter(node, coll.kinds)

        def find() -> Row | None:
            hit = self._run(
                f"{coll.name}: get_or_create", lambda: target.find_one(query), read=True
            )
            return None if hit is None else _from_mongo(hit)

        attempt = 0
        for _ in range(8):  # bounded: documents could keep vanishing under us
            if attempt == 2:
                break
            hit = find()
            if hit is not None:
                return hit, False
            pk, data = build(attempt)
            doc = _to_mongo(pk, data)

            def upsert(s: Any, doc: Data = doc) -> bool:
                result = target.update_one(query, {"$setOnInsert": doc}, upsert=True, session=s)
                return result.upserted_id is not None

            clash = self._clash(coll, lambda row=(pk, data): [row])  # type: ignore[misc]
            try:
                if self._atomic(coll, "get_or_create", upsert, bool, clash=clash):
                    return (pk, data), True
                continue  # a racer's document matched: the next find returns it
            except DuplicateKey as exc:
                # The key was taken meanwhile: by a racer creating the same
                # document, by one that does not match, or a unique index clashed.
                hit = find()
                if hit is not None:
                    return hit, False
                if not isinstance(exc.__cause__, DuplicateKeyError) or not self._fetch(coll, [pk]):
                    raise
                if pk_given:
                    raise self._duplicate(coll, [(pk, data)], PK_INDEX) from exc
            attempt += 1
        raise StorageError(f"get_or_create() on {coll.name!r} kept losing races; try again")

    def _increment(self, coll: CollectionInfo, pk: str, path: Path, by: int | float) -> Any:
        if len(path) != 1 or _reserved(path):
            # Nested paths: $inc would append new keys out of the sorted order and
            # fail on null parents, where doqu creates the object.
            return super()._increment(coll, pk, path, by)
        target = self._c(coll)

        def inc(s: Any) -> Data | None:
            doc: Data | None = target.find_one_and_update(
                {"_id": pk},
                {"$inc": {path[0]: by}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=s,
            )
            return doc

        doc = None
        clash = self._clash(coll, lambda: [(pk, {})])  # the new value is the server's
        for _ in range(3):
            try:
                doc = self._atomic(coll, "increment", inc, clash=clash)
            except DuplicateKey as exc:
                if isinstance(exc.__cause__, DuplicateKeyError):
                    # Two upserts of one new pk raced and this insert lost: the
                    # document exists now, so the next attempt increments it.
                    continue
                raise
            except StorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, OperationFailure) and cause.code in (14, 2):
                    # TypeMismatch (not a number), BadValue (overflow): the
                    # compare-and-swap path raises doqu's error for the exact case.
                    return super()._increment(coll, pk, path, by)
                raise
            if doc is None:
                # MongoDB always returns the upserted document here; a stand-in
                # server (SecantusDB) may return none after applying the $inc
                # in a race of upserts. Report what is stored rather than $inc again.
                doc = self._run(
                    f"{coll.name}: increment", lambda: target.find_one({"_id": pk}), read=True
                )
            break
        if doc is None:
            raise StorageError(f"{coll.name}: increment of {pk!r} kept losing upsert races")
        value = resolve(pk, _from_mongo(doc)[1], path)
        if value is MISSING:  # pragma: no cover - $inc always leaves a number
            raise UpdateTypeError(f"cannot increment {path[0]}")
        return value

    def _version(self, coll: CollectionInfo) -> int:
        meta = self._db()[META_COLLECTION]
        doc = self._run(
            f"{coll.name}: version", lambda: meta.find_one({"_id": coll.name}), read=True
        )
        return int(doc["v"]) if doc else 0

    def _names(self) -> list[str]:
        db = self._db()

        def names() -> list[str]:
            known = [str(d["_id"]) for d in db[META_COLLECTION].find({}, {"_id": 1})]
            return [n for n in known if db[n].find_one({}, {"_id": 1}) is not None]

        return self._run("collections", names, read=True)

    def _drop(self, coll: CollectionInfo) -> None:
        # delete_many, not drop(): the collection keeps its indexes.
        target = self._c(coll)
        self._atomic(
            coll,
            "clear",
            lambda s: target.delete_many({}, session=s),
            lambda r: bool(r.deleted_count),
            partial=True,
        )

    def _explain(self, coll: CollectionInfo, spec: QuerySpec) -> str:
        """The find (filter, sort, skip, limit) or aggregate pipeline that runs, as JSON."""
        native = _native_order(spec, coll.kinds)
        if native is None:
            return _dump({"aggregate": coll.name, "pipeline": _pipeline(spec)})
        out: Filter = {"find": coll.name, "filter": to_filter(spec.node, coll.kinds)}
        if native:
            out["sort"] = dict(native)
        if spec.offset:
            out["skip"] = spec.offset
        if spec.limit is not None:
            out["limit"] = spec.limit
        return _dump(out)

    def _reconnect(self) -> None:
        old = self._client
        self._client = self._connect()
        self._transactions = None  # the new client may reach another topology
        with contextlib.suppress(PyMongoError):  # the old link may already be broken
            old.close()

    def _close(self) -> None:
        self._client.close()


def _pk_taken(error: Mapping[str, Any]) -> bool:
    """Whether a bulk write error is an insert meeting an existing ``_id``."""
    if error.get("code") != 11000:
        return False
    pattern = error.get("keyPattern")
    if pattern is not None:
        return dict(pattern) == {"_id": 1}
    return " index: _id_ " in str(error.get("errmsg", ""))


def _retryable(exc: PyMongoError) -> bool:
    """A lost connection (worth one more try), not a server that cannot be found."""
    return isinstance(exc, AutoReconnect) and not isinstance(exc, ServerSelectionTimeoutError)


def _duplicate_error(exc: PyMongoError) -> Mapping[str, Any] | None:
    """The server's report of a duplicate key error (code 11000), or ``None``."""
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return errors[0] if errors and errors[0].get("code") == 11000 else None
    if isinstance(exc, OperationFailure) and exc.code == 11000:
        return exc.details or {}
    return None


def _unique_name(paths: Sequence[Path]) -> str:
    return "doqu_unique_" + "_".join(_field(p).replace(".", "_") for p in paths)


def _clash_index(coll: CollectionInfo, exc: PyMongoError) -> tuple[Path, ...] | None:
    """The unique index a duplicate key error names (:data:`PK_INDEX`: ``_id``), if known."""
    details = _duplicate_error(exc) or {}
    pattern = details.get("keyPattern")
    message = str(details.get("errmsg", exc))
    if pattern:
        keys = list(pattern)
        if keys == ["_id"]:
            return PK_INDEX
        for paths in coll.unique:
            if [_field(p) for p in paths] == keys:
                return paths
    if " index: _id_ " in message:
        return PK_INDEX
    for paths in coll.unique:
        if f" index: {_unique_name(paths)} " in message:
            return paths
    return None


def _error(what: str, exc: PyMongoError, clash: Clash | None = None) -> Exception:
    """The doqu error for a pymongo one (the caller chains it).

    A duplicate key error becomes what *clash* makes of it (the write's
    ``DuplicateKey``); without *clash* it is a ``StorageError``.
    """
    if _duplicate_error(exc) is not None:
        if clash is not None:
            return clash(exc)
        return StorageError(f"{what}: a unique index is violated: {exc}")
    if isinstance(exc, DocumentTooLarge):
        return InvalidDocument(f"{what}: a document is over MongoDB's 16 MiB limit")
    if isinstance(exc, ServerSelectionTimeoutError):
        return StorageError(f"{what}: no MongoDB server answers: {exc}")
    if isinstance(exc, AutoReconnect):
        return StorageError(f"{what}: the connection to MongoDB failed: {exc}")
    return StorageError(f"{what}: {exc}")
