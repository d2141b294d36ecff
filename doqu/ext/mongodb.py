"""``mongodb://`` and ``mongodb+srv://``: documents in MongoDB through pymongo.

The database is the URL path (default ``doqu``); every option pymongo accepts in
the URL (``replicaSet``, ``tls``, ``authSource``, …) or as a keyword of
:func:`doqu.connect` goes to :class:`pymongo.MongoClient` unchanged. Each doqu
collection is a MongoDB collection; ``_id`` holds the doqu pk.

Every query tree is translated to a native filter document (see
:func:`to_filter`): filtering, sorting, counting, slicing and ``values()`` run in
the server. MongoDB's own matching differs from doqu's in places (it reaches
into arrays, lets ``null`` match missing fields, compares embedded documents by
key order); the translation adds the guards that make it answer exactly what
the reference evaluator answers. Object keys are stored sorted (as
PostgreSQL's JSONB does), so that equality of embedded objects does not
depend on the order their keys were written in.

Version tokens live in the bookkeeping collection ``doqu.meta`` (a name no doqu
collection can take): one document per collection, its counter ``$inc``-ed
after every write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from .._document import CollectionInfo
from .._errors import ConfigError, DuplicateKey, InvalidDocument, StorageError
from .._evaluator import UpdateTypeError, apply_update, canonical, matches, resolve
from .._json import MISSING, json_equal
from .._registry import missing_driver
from .._storage import Finalize, QuerySpec, Row, Storage
from .._tree import And, Cond, Node, Not, Or, Path, UpdateOp, regex_replace_end_anchor

try:
    import bson
    import pymongo
    from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
    from bson.int64 import Int64
    from pymongo import ReplaceOne, ReturnDocument
    from pymongo.errors import (
        AutoReconnect,
        BulkWriteError,
        DocumentTooLarge,
        DuplicateKeyError,
        OperationFailure,
        PyMongoError,
        ServerSelectionTimeoutError,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise missing_driver("mongodb", exc) from exc

__all__ = ["MAX_DOCUMENT_BYTES", "META_COLLECTION", "MongoStorage", "to_filter"]

Data = dict[str, Any]
Filter = dict[str, Any]
T = TypeVar("T")

#: MongoDB's limit on one stored document (BSON), 16 MiB.
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
#: The bookkeeping collection: one ``{_id: name, v: counter}`` per doqu collection.
META_COLLECTION: Final = "doqu.meta"
DEFAULT_DATABASE: Final = "doqu"

#: A filter that matches nothing (and uses the ``_id`` index to say so).
NEVER: Final[Filter] = {"_id": {"$in": []}}
_NOT_ARRAY: Final = {"$not": {"$type": "array"}}
#: Index values that are present and not null, for unique indexes' partial filters.
_PRESENT_TYPES: Final = ["number", "string", "bool", "object", "array"]


# ---------------------------------------------------------------- stored form
class _Int64AsInt(TypeDecoder):
    """64-bit integers come back as plain ``int`` (pymongo's default is ``Int64``)."""

    bson_type = Int64

    def transform_bson(self, value: Any) -> int:
        return int(value)


_CODEC: Final[CodecOptions[dict[str, Any]]] = CodecOptions(
    type_registry=TypeRegistry([_Int64AsInt()])
)


def _storable(value: Any, where: str) -> Any:
    """*value* with object keys sorted (recursively); keys MongoDB cannot store refused."""
    if isinstance(value, dict):
        for key in value:
            if key.startswith("$") or "." in key or "\x00" in key:
                raise InvalidDocument(
                    f"{where}: MongoDB cannot store the key {key[:40]!r}"
                    " (no leading '$', no '.', no NUL)"
                )
        return {k: _storable(value[k], where) for k in sorted(value)}
    if isinstance(value, list):
        return [_storable(v, where) for v in value]
    return value


def _operand(value: Any) -> tuple[bool, Any]:
    """``(storable, stored form)`` of a query operand: keys sorted like stored objects.

    An operand holding a key no stored document can hold (``{"$gt": ""}``) can
    equal no stored value; callers turn it into a match-nothing filter, so it
    never reaches the server as query syntax.
    """
    try:
        return True, _storable(value, "operand")
    except InvalidDocument:
        return False, None


def _to_mongo(pk: str, data: Data) -> Data:
    doc = _storable(data, f"document {pk!r}")
    out = {"_id": pk, **doc}
    size = len(bson.encode(out))
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(
            f"document {pk!r} is {size} bytes as BSON; MongoDB stores at most"
            f" {MAX_DOCUMENT_BYTES} (16 MiB)"
        )
    return out


def _from_mongo(doc: Mapping[str, Any]) -> Row:
    data = dict(doc)
    pk = data.pop("_id")
    return str(pk), data


# ------------------------------------------------------------------ regexes
def _escape(text: str) -> str:
    """*text* as a regex matching itself, alike in PCRE (MongoDB) and Python's ``re``."""
    out = []
    for ch in text:
        if ch.isalnum() or ch == "_" or not ch.isascii():
            out.append(ch)
        elif ch.isprintable() and ch != " ":
            out.append("\\" + ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


def _ascii_insensitive(text: str) -> str:
    """Like :func:`_escape`, but ASCII letters match either case (and nothing else folds)."""
    return "".join(
        f"[{ch.lower()}{ch.upper()}]" if ch.isascii() and ch.isalpha() else _escape(ch)
        for ch in text
    )


# --------------------------------------------------------------- translation
def _field(path: Path) -> str:
    return "_id" if path == ("pk",) else ".".join(path)


def _reserved(path: Path) -> bool:
    # No stored document holds "_id" among its data (the pk lives there), so a
    # user path starting with it is always missing, as the evaluator says.
    return path[0] == "_id"


def _prefix_guards(path: Path) -> list[Filter]:
    """Keep MongoDB from walking into arrays on the way: doqu paths walk objects only."""
    return [{".".join(path[:i]): _NOT_ARRAY} for i in range(1, len(path))]


def _all(clauses: Sequence[Filter | bool]) -> Filter | bool:
    parts: list[Filter] = []
    for c in clauses:
        if c is False:
            return False
        if c is not True:
            parts.append(c)
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _any(clauses: Sequence[Filter | bool]) -> Filter | bool:
    parts: list[Filter] = []
    for c in clauses:
        if c is True:
            return True
        if c is not False:
            parts.append(c)
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _negate(clause: Filter | bool) -> Filter | bool:
    if isinstance(clause, bool):
        return not clause
    return {"$nor": [clause]}


def _scalar(field: str, ops: Filter) -> Filter:
    """*ops* on the field's own value, never on the elements of an array it holds."""
    if field == "_id":  # always a string
        return {field: ops}
    return {field: {**ops, **_NOT_ARRAY}}


def _exact(field: str, value: Any) -> Filter | bool:
    ok, value = _operand(value)
    if not ok:
        return False
    if value is None:
        # {"$eq": null} would match missing fields too.
        return _scalar(field, {"$type": "null"})
    if isinstance(value, list):
        # $eq on an array field also matches an array holding the operand as an
        # element; $elemMatch compares elements one by one and excludes that case.
        return {field: {"$eq": value, "$not": {"$elemMatch": {"$eq": value}}}}
    return _scalar(field, {"$eq": value})


def _in(field: str, values: list[Any]) -> Filter | bool:
    plain: list[Any] = []
    clauses: list[Filter | bool] = []
    for value in values:
        ok, stored = _operand(value)
        if not ok:
            continue
        if stored is None or isinstance(stored, list):
            clauses.append(_exact(field, stored))
        elif not any(json_equal(stored, p) for p in plain):
            plain.append(stored)
    if plain:
        clauses.insert(0, _scalar(field, {"$in": plain}))
    return _any(clauses)


def _has_element(field: str, value: Any) -> Filter | bool:
    """The field is an array with an element JSON-equal to *value*."""
    ok, stored = _operand(value)
    if not ok:
        return False
    return {field: {"$elemMatch": {"$eq": stored}}}


def _regex(field: str, pattern: str, options: str = "") -> Filter:
    ops: Filter = {"$regex": pattern}
    if options:
        ops["$options"] = options
    return _scalar(field, ops)


def _positive(c: Cond) -> Filter | bool:
    """The filter for a condition that never holds on a missing field."""
    field, lk, op = _field(c.path), c.lookup, c.operand
    if lk == "exact":
        return _exact(field, op)
    if lk == "in":
        return _in(field, op)
    if lk in ("gt", "gte", "lt", "lte"):
        # Type bracketing: a number operand meets only numbers (not bools), a
        # string operand only strings, compared by UTF-8 bytes = code points.
        return _scalar(field, {f"${lk}": op})
    if lk == "between":
        return _scalar(field, {"$gte": op[0], "$lte": op[1]})
    if lk == "exists":
        return {field: {"$exists": True}}
    if lk == "contains":
        in_list = _has_element(field, op)
        if isinstance(op, str):
            return _any([in_list, _regex(field, _escape(op))])
        return in_list
    if lk == "icontains":
        folded = _ascii_insensitive(op)
        in_list = {field: {"$elemMatch": {"$regex": f"^{folded}\\z"}}}
        return _any([in_list, _regex(field, folded)])
    if lk == "startswith":
        return _regex(field, "^" + _escape(op))
    if lk == "endswith":
        return _regex(field, _escape(op) + "\\z")
    if lk == "istartswith":
        return _regex(field, "^" + _ascii_insensitive(op))
    if lk == "iendswith":
        return _regex(field, _ascii_insensitive(op) + "\\z")
    if lk == "matches":
        # DOTALL ("s") and "$" only at the very end: the evaluator's re.search.
        return _regex(field, regex_replace_end_anchor(op, "\\z"), "s")
    if lk == "size":
        return {field: {"$size": op}}
    if lk == "all":
        return _all([_has_element(field, o) for o in op])
    if lk == "any":
        return _any([_has_element(field, o) for o in op])
    raise AssertionError(f"no translation for lookup {lk!r}")  # pragma: no cover


def _cond(c: Cond) -> Filter | bool:
    if _reserved(c.path):
        return matches(c, "", {})  # the value is missing in every document
    lk = c.lookup
    # The lookups that hold on missing fields are the negations of ones that don't.
    if lk == "ne":
        return _negate(_cond(Cond(c.path, "exact", c.operand)))
    if lk == "nin":
        return _negate(_cond(Cond(c.path, "in", c.operand)))
    if lk == "exists" and c.operand is False:
        return _negate(_cond(Cond(c.path, "exists", True)))
    if lk == "isnull":
        present = _all(
            [_cond(Cond(c.path, "exists", True)), _negate(_cond(Cond(c.path, "exact", None)))]
        )
        return _negate(present) if c.operand else present
    return _all([*_prefix_guards(c.path), _positive(c)])


def _node(node: Node) -> Filter | bool:
    if isinstance(node, Cond):
        return _cond(node)
    if isinstance(node, And):
        return _all([_node(n) for n in node.children])
    if isinstance(node, Or):
        return _any([_node(n) for n in node.children])
    if isinstance(node, Not):
        return _negate(_node(node.child))
    raise TypeError(f"not a query node: {node!r}")


def to_filter(node: Node | None) -> Filter:
    """The MongoDB filter document that matches exactly what *node* matches.

    Operand values are always literal (``{"$eq": v}``, ``$in`` of values,
    escaped regexes); a value that could only be query syntax (an object with a
    ``$`` key) cannot equal any stored value and becomes a match-nothing filter.
    """
    if node is None:
        return {}
    out = _node(node)
    if out is True:
        return {}
    if out is False:
        return dict(NEVER)
    return out


# ------------------------------------------------------------------- sorting
def _resolved(path: Path) -> Any:
    """An aggregation expression for the value at *path*, walking objects only."""
    if path == ("pk",):
        return "$_id"
    if _reserved(path):
        return None
    ref = "$" + ".".join(path)
    if len(path) == 1:
        return ref
    objects = [
        {"$eq": [{"$type": "$" + ".".join(path[:i])}, "object"]} for i in range(1, len(path))
    ]
    return {"$cond": [{"$and": objects}, ref, None]}


def _rank(ref: str) -> Any:
    """0 missing/null, 1 numbers, 2 strings, 3 everything else (bools, arrays, objects)."""
    return {
        "$switch": {
            "branches": [
                {"case": {"$isNumber": ref}, "then": 1},
                {"case": {"$eq": [{"$type": ref}, "string"]}, "then": 2},
                {"case": {"$in": [{"$type": ref}, ["missing", "null"]]}, "then": 0},
            ],
            "default": 3,
        }
    }


def _orderable(ref: str) -> Any:
    """The value itself for numbers and strings, null for the kinds that tie."""
    return {
        "$cond": [
            {"$or": [{"$isNumber": ref}, {"$eq": [{"$type": ref}, "string"]}]},
            ref,
            None,
        ]
    }


def _pipeline(spec: QuerySpec) -> list[Filter]:
    """Filter, computed sort keys (doqu's mixed-kind order), window; rows under ``d``."""
    keys: Filter = {"d": "$$ROOT"}
    ranked: Filter = {}
    sort: Filter = {}
    for i, (path, descending) in enumerate(spec.order):
        direction = -1 if descending else 1
        if path == ("pk",):
            sort["_id"] = direction
            continue
        keys[f"x{i}"] = _resolved(path)
        ranked[f"r{i}"] = _rank(f"$x{i}")
        ranked[f"v{i}"] = _orderable(f"$x{i}")
        sort[f"r{i}"] = direction
        sort[f"v{i}"] = direction
    # A total order, so that pages of one query never overlap.
    sort.setdefault("_id", 1)
    stages: list[Filter] = [{"$match": to_filter(spec.node)}, {"$project": keys}]
    if ranked:
        stages.append({"$addFields": ranked})
    stages.append({"$sort": sort})
    if spec.offset:
        stages.append({"$skip": spec.offset})
    if spec.limit is not None:
        stages.append({"$limit": spec.limit})
    stages.append({"$project": {"d": 1}})
    return stages


def _native_order(spec: QuerySpec) -> list[tuple[str, int]] | None:
    """A plain ``find().sort()`` when the order is by pk only (always a string)."""
    if all(path == ("pk",) for path, _ in spec.order):
        return [("_id", -1 if desc else 1) for _, desc in spec.order[:1]]
    return None


def _distinct_pipeline(node: Node | None, path: Path) -> list[Filter]:
    guards: list[Filter | bool] = [*_prefix_guards(path)] if path != ("pk",) else []
    match = _all([to_filter(node), *guards])
    return [
        {"$match": {} if match is True else match},
        {"$project": {"_id": 0, "v": _resolved(path)}},
        # One level, like the evaluator: elements of a list count one by one.
        {"$unwind": "$v"},
        {"$match": {"$expr": {"$ne": ["$v", None]}}},
        # Grouping by type too keeps true apart from 1; 1 and 1.0 merge below.
        {"$group": {"_id": {"t": {"$type": "$v"}, "v": "$v"}}},
    ]


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# ------------------------------------------------------------------- storage
class MongoStorage(Storage):
    """MongoDB through pymongo; queries become native filters and pipelines.

    Reads that fail with a network error are retried once on a fresh attempt;
    other driver faults raise :class:`doqu.StorageError` with the pymongo
    exception chained. A unique violation raises :class:`doqu.DuplicateKey`.
    """

    scheme = "mongodb"
    native_update = False

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        if parts.scheme not in ("mongodb", "mongodb+srv"):
            raise ConfigError(f"not a mongodb:// URL: {url!r}")
        name = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
        if any(ch in name for ch in '/\\. "$\x00') or len(name) > 63:
            raise ConfigError(f"not a MongoDB database name: {name!r}")
        self.database_name = name
        self._client_options = options
        self._client = self._connect()

    def _connect(self) -> pymongo.MongoClient[Data]:
        try:
            return pymongo.MongoClient(self.url, **self._client_options)
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

    def _run(self, what: str, call: Callable[[], T], *, read: bool = False) -> T:
        """Run one driver call, translating its errors; reads retry once on a lost link."""
        try:
            return call()
        except PyMongoError as exc:
            if not (read and _retryable(exc)):
                raise _error(what, exc) from exc
        try:
            return call()
        except PyMongoError as exc:
            raise _error(what, exc) from exc

    def _bump(self, coll: CollectionInfo) -> None:
        meta = self._db()[META_COLLECTION]

        def bump() -> Any:
            try:
                return meta.update_one({"_id": coll.name}, {"$inc": {"v": 1}}, upsert=True)
            except DuplicateKeyError:
                # Another client's upsert created the counter first: increment it.
                return meta.update_one({"_id": coll.name}, {"$inc": {"v": 1}}, upsert=True)

        self._run(f"{coll.name}: version", bump)

    # ----------------------------------------------------------- primitives
    def _prepare(self, coll: CollectionInfo) -> None:
        target = self._c(coll)
        for paths in coll.indexes:
            index = [(_field(p), pymongo.ASCENDING) for p in paths]

            def plain(k: list[tuple[str, int]] = index) -> Any:
                return target.create_index(k)

            self._run(f"{coll.name}: create index", plain)
        for paths in coll.unique:
            keys = [(_field(p), pymongo.ASCENDING) for p in paths]
            # As in SQL, documents whose key holds a null or missing part are exempt.
            partial = {_field(p): {"$type": _PRESENT_TYPES} for p in paths if p != ("pk",)}
            name = "doqu_unique_" + "_".join(_field(p).replace(".", "_") for p in paths)

            def create(k: Any = keys, f: Filter = partial, n: str = name) -> Any:
                options: Filter = {"unique": True, "name": n}
                if f:
                    options["partialFilterExpression"] = f
                return target.create_index(k, **options)

            self._run(f"{coll.name}: create unique index", create)

    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        docs = [_to_mongo(pk, data) for pk, data in rows]  # every size checked before writing
        target = self._c(coll)
        if len(docs) == 1:
            doc = docs[0]
            self._run(
                f"{coll.name}: save",
                lambda: target.replace_one({"_id": doc["_id"]}, doc, upsert=True),
            )
            self._bump(coll)
            return
        before: dict[str, Data] = {}
        if coll.unique:
            pks = list(dict.fromkeys(d["_id"] for d in docs))
            before = self._run(
                f"{coll.name}: save_many",
                lambda: {d["_id"]: d for d in target.find({"_id": {"$in": pks}})},
                read=True,
            )
        requests = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
        try:
            target.bulk_write(requests, ordered=True)
        except PyMongoError as exc:
            error = _error(f"{coll.name}: save_many", exc)
            if isinstance(exc, BulkWriteError) and isinstance(error, DuplicateKey):
                self._undo(coll, docs[: exc.details["writeErrors"][0]["index"]], before)
            else:
                self._bump(coll)  # some batches may have been written
            raise error from exc
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
        result = self._run(
            f"{coll.name}: delete", lambda: target.delete_many({"_id": {"$in": list(pks)}})
        )
        if result.deleted_count:
            self._bump(coll)
        return int(result.deleted_count)

    def _cursor(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        target = self._c(coll)
        native = _native_order(spec)
        if native is not None:
            cursor = target.find(to_filter(spec.node), sort=native or None, skip=spec.offset)
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
        query = to_filter(node)
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
        query = to_filter(node)
        result = self._run(f"{coll.name}: delete", lambda: target.delete_many(query))
        if result.deleted_count:
            self._bump(coll)
        return int(result.deleted_count)

    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        target = self._c(coll)
        doc = None if new is None else _to_mongo(pk, new)
        if expected is None:
            if doc is None:
                return False
            try:
                target.insert_one(doc)
            except DuplicateKeyError as exc:
                if self._fetch(coll, [pk]):
                    return False  # the pk is taken: the compare failed
                raise DuplicateKey(f"{coll.name}: a unique index is violated: {exc}") from exc
            except PyMongoError as exc:
                raise _error(f"{coll.name}: insert", exc) from exc
            self._bump(coll)
            return True
        # The stored form of *expected*: keys sorted, so BSON equality is JSON equality.
        image = {"_id": pk, **_storable(expected, f"document {pk!r}")}
        if self._replace_if(coll, image, doc):
            return True
        # A document written by another tool may hold its keys in another order:
        # when it is JSON-equal, compare against exactly what is stored.
        current = self._run(f"{coll.name}: get", lambda: target.find_one({"_id": pk}), read=True)
        if current is None or not json_equal(_from_mongo(current)[1], expected):
            return False
        return self._replace_if(coll, current, doc)

    def _replace_if(self, coll: CollectionInfo, image: Data, doc: Data | None) -> bool:
        """Replace (*doc* ``None``: delete) the document only while it is BSON-equal to *image*."""
        target = self._c(coll)
        guard = {"_id": image["_id"], "$expr": {"$eq": ["$$ROOT", {"$literal": image}]}}
        if doc is None:
            hit = self._run(f"{coll.name}: delete", lambda: target.delete_one(guard)).deleted_count
        else:
            hit = self._run(
                f"{coll.name}: update", lambda: target.replace_one(guard, doc)
            ).matched_count
        if hit:
            self._bump(coll)
        return bool(hit)

    def _update_where(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        """Validate every result first, then write all changed documents in one bulk.

        Each write is guarded by the document's old content, so it applies only
        if nobody changed the document meanwhile; those that lost a race are
        recomputed from their new content and written by compare-and-swap.
        """
        plans: list[tuple[str, Data, Data, Data]] = []
        for pk, old in self._select(coll, QuerySpec(node)):
            new = finalize(apply_update(old, ops))
            if not json_equal(old, new):
                image = {"_id": pk, **_storable(old, f"document {pk!r}")}
                plans.append((pk, old, new, image))
        if not plans:
            return 0
        docs = [_to_mongo(pk, new) for pk, _, new, _ in plans]  # sizes checked before writing
        requests = [
            ReplaceOne({"_id": pk, "$expr": {"$eq": ["$$ROOT", {"$literal": image}]}}, doc)
            for (pk, _, _, image), doc in zip(plans, docs)
        ]
        target = self._c(coll)
        try:
            result = target.bulk_write(requests, ordered=False)
            matched = int(result.matched_count)
        except PyMongoError as exc:
            self._bump(coll)  # some documents may have been written
            raise _error(f"{coll.name}: update", exc) from exc
        self._bump(coll)
        if matched == len(plans):
            return matched
        # Some documents changed under us: find them and redo them one by one.
        stored = self._fetch(coll, [pk for pk, *_ in plans])
        changed = 0
        for pk, _, new, _ in plans:
            now = stored.get(pk)
            if now is not None and json_equal(now, new):
                changed += 1
                continue
            changed += self._redo(coll, node, pk, ops, finalize)
        return changed

    def _redo(
        self,
        coll: CollectionInfo,
        node: Node | None,
        pk: str,
        ops: Sequence[UpdateOp],
        finalize: Finalize,
    ) -> int:
        only: Node = Cond(("pk",), "exact", pk)
        while True:
            hit = next(
                self._select(coll, QuerySpec(only if node is None else And((node, only)))), None
            )
            if hit is None:
                return 0
            old = hit[1]
            new = finalize(apply_update(old, ops))
            if json_equal(old, new):
                return 0
            if self._swap(coll, pk, old, new):
                return 1

    def _increment(self, coll: CollectionInfo, pk: str, path: Path, by: int | float) -> Any:
        if len(path) != 1 or _reserved(path):
            # Nested paths: $inc would append new keys out of the sorted order and
            # fail on null parents, where doqu creates the object.
            return super()._increment(coll, pk, path, by)
        target = self._c(coll)
        doc = None
        for _ in range(3):
            try:
                doc = target.find_one_and_update(
                    {"_id": pk},
                    {"$inc": {path[0]: by}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                # Two upserts of one new pk raced and this insert lost: the
                # document exists now, so the next attempt increments it.
                continue
            except OperationFailure as exc:
                if exc.code in (14, 2):  # TypeMismatch (not a number), BadValue (overflow)
                    # The compare-and-swap path raises doqu's error for the exact case.
                    return super()._increment(coll, pk, path, by)
                raise _error(f"{coll.name}: increment", exc) from exc
            except PyMongoError as exc:
                raise _error(f"{coll.name}: increment", exc) from exc
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
        self._bump(coll)
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
        result = self._run(f"{coll.name}: clear", lambda: target.delete_many({}))
        if result.deleted_count:
            self._bump(coll)

    def _explain(self, coll: CollectionInfo, spec: QuerySpec) -> str:
        """The find (filter, sort, skip, limit) or aggregate pipeline that runs, as JSON."""
        native = _native_order(spec)
        if native is None:
            return _dump({"aggregate": coll.name, "pipeline": _pipeline(spec)})
        out: Filter = {"find": coll.name, "filter": to_filter(spec.node)}
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
        with contextlib.suppress(PyMongoError):  # the old link may already be broken
            old.close()

    def _close(self) -> None:
        self._client.close()


def _retryable(exc: PyMongoError) -> bool:
    """A lost connection (worth one more try), not a server that cannot be found."""
    return isinstance(exc, AutoReconnect) and not isinstance(exc, ServerSelectionTimeoutError)


def _error(what: str, exc: PyMongoError) -> Exception:
    """The doqu error for a pymongo one (the caller chains it)."""
    if isinstance(exc, DuplicateKeyError):
        return DuplicateKey(f"{what}: a unique index is violated: {exc}")
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        if errors and errors[0].get("code") == 11000:
            return DuplicateKey(f"{what}: a unique index is violated: {errors[0].get('errmsg')}")
    if isinstance(exc, DocumentTooLarge):
        return InvalidDocument(f"{what}: a document is over MongoDB's 16 MiB limit")
    if isinstance(exc, ServerSelectionTimeoutError):
        return StorageError(f"{what}: no MongoDB server answers: {exc}")
    if isinstance(exc, AutoReconnect):
        return StorageError(f"{what}: the connection to MongoDB failed: {exc}")
    return StorageError(f"{what}: {exc}")
