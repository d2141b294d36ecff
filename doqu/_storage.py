"""The storage adapter contract: a few primitives per backend, the rest built here.

A backend subclasses :class:`Storage` and implements the ``_``-prefixed
abstract primitives. They take a :class:`CollectionInfo` and plain JSON data
(``dict``), never models: models are validated and converted here. The base
class builds ``get``, ``get_many``, ``get_or_create``, ``update`` (an
optimistic compare-and-swap loop), ``increment`` and the bulk paths from them;
a backend overrides a default only when it can do better natively.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from ._document import CollectionInfo, Document, revalidator
from ._errors import (
    CorruptDocument,
    DuplicateKey,
    InvalidDocument,
    NotFound,
    QueryError,
    StorageError,
)
from ._evaluator import apply_update, canonical, matches, resolve
from ._json import (
    BAD_KEY_BYTES,
    MAX_NESTING,
    NEGATIVE_ZERO_BYTES,
    check_json,
    encode_document,
    holds_datetime,
    json_equal,
    with_stored_datetimes,
)
from ._options import check_options, flag
from ._pk import new_pk, new_pks
from ._shape import ALL_CHECKS, TextChecks, plan_of, save_plan
from ._tree import And, Cond, Node, Path, UpdateOp, make_cond, parse_collection_name
from ._unique import PK_INDEX, find_clash

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._mapping import MappingView
    from ._query import Query

__all__ = ["QuerySpec", "Storage", "check_pk"]

D = TypeVar("D", bound=Document)
Data = dict[str, Any]
Row = tuple[str, Data]
Finalize = Callable[[Data], Data]
Target = "type[Document] | str"

MAX_PK_LENGTH = 255
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
#: ``save_many`` pauses the cycle collector for batches larger than this.
_BIG_BATCH = 256


def _unset(_: Any) -> Any:
    raise AssertionError("not a model")


#: What is left to scan in the text of an instance :attr:`SavePlan.exact` passed.
_NO_CHECKS = TextChecks(big_ints=False, non_finite=False, nesting=False, keys=False)
_DEPTH_ONLY = TextChecks(big_ints=False, non_finite=False, nesting=True, keys=False)


def _plain_text(raw: bytes, checks: TextChecks = ALL_CHECKS) -> bool:
    """Whether JSON text shows nothing :func:`check_json` might refuse, but its depth.

    That is no NUL (``\\u0000``, in any text), no ``NaN``, ``Infinity`` (also as
    words in strings) or ``-0.0``, no run of 19 digits (an int that may not fit in
    64 bits) and no key that cannot be stored, each looked for only where *checks*
    says the model's types may hold it. One call covers a batch.
    """
    if b"\\u0000" in raw:
        return False
    if checks.big_ints and b"0000000000000000000" in raw.translate(_DIGITS):
        return False
    if checks.non_finite and (
        b"NaN" in raw or b"Infinity" in raw or (b"-0.0" in raw and NEGATIVE_ZERO_BYTES.search(raw))
    ):
        return False
    return not (checks.keys and BAD_KEY_BYTES.search(raw))


def _shallow(raw: bytes) -> bool:
    """Whether one document's JSON text cannot nest deeper than ``MAX_NESTING``."""
    return raw.count(b"[") + raw.count(b"{") <= MAX_NESTING


def _clean(raw: bytes, checks: TextChecks = ALL_CHECKS) -> bool:
    """Whether pydantic's JSON text of one document can be stored as it is.

    Documents that fail this take the slow, exact :func:`check_json`.
    """
    return _plain_text(raw, checks) and (not checks.nesting or _shallow(raw))


def _clean_batch(raws: Sequence[bytes], checks: TextChecks) -> bool:
    """:func:`_clean` for every text of a batch: one scan of the joined texts."""
    if not _plain_text(b"\n".join(raws), checks):
        return False
    return not checks.nesting or all(map(_shallow, raws))


def _batch_pks(docs: Sequence[Any]) -> list[str]:
    """The documents' pks, checked, with new ones (made in one go) where they have none."""
    pks = [d.pk for d in docs]
    fresh = pks.count(None)
    if fresh == len(pks):
        return new_pks(fresh)
    keys = iter(new_pks(fresh))
    return [next(keys) if pk is None else check_pk(pk) for pk in pks]


def stored_dump(model: Any) -> Data:
    """A validated model's stored data: pydantic's JSON form, datetimes in stored form."""
    data: Data = with_stored_datetimes(model, model.model_dump(mode="json"))
    return data


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector while a batch of fresh objects is built.

    Such a batch holds no garbage cycles, and collecting while it grows would
    traverse it again and again. The collector's previous state is restored.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


@dataclass(frozen=True)
class QuerySpec:
    """What ``_select`` is asked for: a filter, an order and a window."""

    node: Node | None = None
    order: tuple[tuple[Path, bool], ...] = ()
    offset: int = 0
    limit: int | None = None


def check_pk(pk: Any) -> str:
    """A primary key is a ``str`` of at most 255 characters, with no NUL and valid Unicode."""
    if not isinstance(pk, str):
        raise TypeError(f"primary keys are str, not {type(pk).__name__}: {pk!r}")
    if len(pk) > MAX_PK_LENGTH or "\x00" in pk:
        raise InvalidDocument(f"primary key {pk[:40]!r}… is longer than 255 or holds NUL")
    if not pk.isascii():
        try:
            pk.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidDocument(f"primary key {pk!r} is not valid Unicode") from None
    return pk


def _check_stored_keys(data: Mapping[str, Any]) -> None:
    if "_id" in data:
        raise InvalidDocument("the field name '_id' is reserved (MongoDB keeps the pk there)")


class Storage(ABC):
    """Base of every backend: the public storage API over a handful of primitives.

    Capability flags tell the core (and users) what a backend can do natively.
    """

    #: URL scheme(s) the backend is registered under (informational).
    scheme: ClassVar[str] = ""
    #: Several writes can be made atomic together.
    supports_transactions: ClassVar[bool] = False
    #: ``update()`` runs natively (not through the compare-and-swap loop).
    native_update: ClassVar[bool] = False
    #: Data outlives the process.
    persistent: ClassVar[bool] = True
    #: ``save`` hands documents to :meth:`_put_text` as JSON text, not to ``_put``.
    stores_text: ClassVar[bool] = False
    #: ``save`` may hand documents of plain-typed models to :meth:`_put_sorted` as
    #: data with object keys sorted and MongoDB's key rules checked.
    stores_sorted: ClassVar[bool] = False
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
        self._closed = False
        self._infos: dict[str, CollectionInfo] = {}
        self._prepared: dict[str, CollectionInfo] = {}
        self._prepare_lock = threading.Lock()
        self._ready: dict[Any, tuple[CollectionInfo, type[Document] | None]] = {}

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

    def _put_sorted(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        """``_put`` with each document as checked data, object keys sorted.

        Called instead of ``_put_text`` when :attr:`stores_sorted` is set and the
        model's types allow it (see :func:`doqu._shape.save_plan`).
        """
        self._put(coll, rows)

    def _sorted_rows(self, docs: Sequence[Any]) -> list[Row] | None:
        """``(pk, data)`` for a batch of one plain-typed model, keys sorted; ``None``
        when a document (or the model) needs the JSON text path."""
        cls = type(docs[0])
        plan = plan_of(cls)
        if plan is None or plan.stored_form is None or not plan.plain_keys:
            return None
        validate, stored = plan.validate, plan.stored_form
        # What the stored form takes needs no validated copy; the rest gets one.
        datas = [stored(d) or stored(validate(d)) for d in docs]
        if None in datas:
            return None
        return list(zip(_batch_pks(docs), datas))

    def _prepare(self, coll: CollectionInfo) -> None:  # noqa: B027 - optional hook
        """Create the collection's table and indexes; called before its first use."""

    def _flush(self) -> None:  # noqa: B027 - optional hook
        """Make buffered writes durable."""

    def _reconnect(self) -> None:  # noqa: B027 - optional hook
        """Drop and reopen connections (default: nothing to reopen)."""

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
        if self._closed:
            raise StorageError(f"storage {self.url!r} is closed")

    def _coll(self, target: type[Document] | str) -> tuple[CollectionInfo, type[Document] | None]:
        ready = self._ready.get(target)
        if ready is not None and not self._closed:
            return ready
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

    def _load(self, model: type[D] | None, coll: CollectionInfo, pk: str, data: Any) -> Any:
        """Turn stored data (or its JSON text) into a validated model or a dict with ``"pk"``."""
        if model is None:
            if isinstance(data, (str, bytes)):
                data = json.loads(data)
            return {"pk": pk, **data}
        try:
            if isinstance(data, (str, bytes)):
                doc = model.__pydantic_validator__.validate_json(data)
            else:
                doc = model.__pydantic_validator__.validate_python(data)
        except ValidationError as exc:
            raise CorruptDocument(coll.name, pk, exc) from exc
        doc.__dict__["pk"] = pk
        return doc

    @staticmethod
    def _finalizer(model: type[Document] | None) -> Finalize:
        def finalize(data: Data) -> Data:
            if model is not None:
                data = stored_dump(model.model_validate(data))
            _check_stored_keys(data)
            return check_json(data)  # type: ignore[no-any-return]

        return finalize

    def _dump(self, doc: Document | Mapping[str, Any]) -> Row:
        """``(pk, data)``: the document validated again, checked, as plain JSON data."""
        row: Row = self._encode_docs([doc], text=False)[0]
        return row

    def _encode_docs(
        self, docs: Sequence[Document | Mapping[str, Any]], *, text: bool
    ) -> list[Any]:
        """``(pk, data)`` per document, or ``(pk, json_text)`` with *text*, all checked.

        Models are validated again (they may have been changed since) and
        serialized by pydantic; one scan of the whole batch's JSON text stands
        for :func:`check_json` unless it finds something to look at closely.
        """
        fast = self._encode_same_model(docs, text)
        if fast is not None:
            return fast
        staged: list[tuple[str | None, Any, bytes | None]] = []
        append = staged.append
        model: type | None = None
        validate: Callable[[Any], Any] = _unset
        to_json: Callable[..., bytes] = _unset
        nested: Callable[[Any], bool] | None = None
        temporal = False
        fresh = 0
        for doc in docs:
            cls = type(doc)
            if cls is not model:
                if issubclass(cls, Document):
                    plan = save_plan(cls)
                    validate, nested, temporal = plan.validate, plan.nested, plan.temporal
                    to_json = cls.__pydantic_serializer__.to_json if plan.plain_keys else _unset
                model = cls
            if validate is not _unset and isinstance(doc, Document):
                extra = doc.__pydantic_extra__
                item: Any = doc
                raw: bytes | None = None
                if (
                    to_json is not _unset
                    and not temporal
                    and not (extra and ("_id" in extra or holds_datetime(extra)))
                ):
                    item = validate(doc)  # kept: the dict is made from the copy
                    if nested is None or nested(item):
                        # On an error, the slow path below names the problem.
                        with contextlib.suppress(PydanticSerializationError):
                            raw = to_json(item)
                pk = doc.pk
                if pk is None:
                    fresh += 1
                else:
                    check_pk(pk)
                append((pk, item, raw))
            else:
                data = self._plain(doc)
                pk = self._pk_of(data)
                _check_stored_keys(data)
                append((pk, check_json(data, where=f"document {pk!r}"), None))
        keys = iter(new_pks(fresh))
        batch = b"\n".join([raw for _, _, raw in staged if raw is not None])
        batch_clean = _plain_text(batch)
        rows: list[Any] = []
        for pk, item, raw in staged:
            if pk is None:
                pk = next(keys)
            if raw is not None and (_shallow(raw) if batch_clean else _clean(raw)):
                if text:
                    rows.append((pk, raw.decode()))
                else:
                    ser = type(item).__pydantic_serializer__
                    rows.append((pk, ser.to_python(item, mode="json")))
                continue
            if isinstance(item, Document):
                item = stored_dump(revalidator(type(item))(item))
                _check_stored_keys(item)
                item = check_json(item, where=f"document {pk!r}")
            rows.append((pk, encode_document(item) if text else item))
        return rows

    @staticmethod
    def _encode_same_model(
        docs: Sequence[Document | Mapping[str, Any]], text: bool
    ) -> list[Any] | None:
        """The common batch, in a few comprehensions: one model, nothing to look at closely.

        ``None`` when the general path of :meth:`_encode_docs` must run instead.
        """
        if not docs:
            return []
        cls: Any = type(docs[0])
        plan = plan_of(cls) if text else None
        if plan is None or not plan.plain_keys or plan.temporal:
            return None  # datetimes: the general path writes their stored form
        if len(docs) == 1:
            doc: Any = docs[0]  # one document (save()): no batch bookkeeping
            if plan.exact is not None and plan.exact(doc):
                # Already what validating it returns, nothing for the scans but depth.
                copy, checks = doc, _DEPTH_ONLY if plan.checks.nesting else _NO_CHECKS
            else:
                extra = doc.__pydantic_extra__
                if extra and "_id" in extra:
                    return None
                copy, checks = plan.validate(doc), ALL_CHECKS if extra else plan.checks
                if plan.nested is not None and not plan.nested(copy):
                    return None
            try:
                raw = cls.__pydantic_serializer__.to_json(copy)
            except PydanticSerializationError:
                return None
            if not _clean(raw, checks):
                return None
            pk = doc.pk
            return [(new_pk() if pk is None else check_pk(pk), raw.decode())]
        if not all(type(d) is cls for d in docs):
            return None
        models: Sequence[Any] = docs
        to_json = cls.__pydantic_serializer__.to_json
        if plan.exact is not None and all(map(plan.exact, models)):
            # Each is already what validating it returns; the scans but depth are moot.
            try:
                raws = [to_json(d) for d in models]
            except PydanticSerializationError:
                return None
            if not _clean_batch(raws, _DEPTH_ONLY if plan.checks.nesting else _NO_CHECKS):
                return None
            return list(zip(_batch_pks(models), map(bytes.decode, raws)))
        if any(d.__pydantic_extra__ for d in models):
            return None  # the general path looks at each document's extras
        validate, nested = plan.validate, plan.nested
        try:
            if nested is None:
                raws = [to_json(validate(d)) for d in models]
            else:  # each copy checked while it is in the cache
                raws = [to_json(c) for c in map(validate, models) if nested(c)]
                if len(raws) != len(models):
                    return None
        except PydanticSerializationError:
            return None
        if not _clean_batch(raws, plan.checks):
            return None
        return list(zip(_batch_pks(models), map(bytes.decode, raws)))

    @staticmethod
    def _plain(doc: object) -> Data:
        if not isinstance(doc, Mapping):
            raise TypeError(f"cannot save {type(doc).__name__}: expected a Document or a dict")
        return dict(doc)

    @staticmethod
    def _pk_of(doc: Document | Data) -> str:
        pk = doc.pk if isinstance(doc, Document) else doc.pop("pk", None)
        return new_pk() if pk is None else check_pk(pk)

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
        if docs and isinstance(docs[0], Document):
            model = type(docs[0])
            if all(type(d) is model for d in docs):  # one model: the common case
                one = self._coll(model)[0]
                # A big batch is built and dropped with the collector paused: its rows
                # are freed before it runs again, so it never traverses them.
                with paused_gc() if len(docs) > _BIG_BATCH else contextlib.nullcontext():
                    rows: list[Any] | None = self._sorted_rows(docs) if self.stores_sorted else None
                    if rows is not None:
                        self._put_sorted(one, rows)
                    else:
                        rows = self._encode_docs(docs, text=self.stores_text)
                        (self._put_text if self.stores_text else self._put)(one, rows)
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
        rows = self._encode_docs(docs, text=self.stores_text)
        put = self._put_text if self.stores_text else self._put
        if info is not None and all(i is info for i in infos):
            put(info, rows)  # one collection: the common case
        else:
            groups: dict[str, tuple[CollectionInfo, list[Any]]] = {}
            for one, row in zip(infos, rows):
                groups.setdefault(one.name, (one, []))[1].append(row)
            for one, group in groups.values():
                put(one, group)
        pks = [pk for pk, _ in rows]
        for doc, pk in zip(docs, pks):
            if isinstance(doc, Document):
                doc.__dict__["pk"] = pk
        return pks

    @overload
    def get(self, target: type[D], pk: str) -> D: ...
    @overload
    def get(self, target: str, pk: str) -> dict[str, Any]: ...
    def get(self, target: type[D] | str, pk: str) -> D | dict[str, Any]:
        """The document stored under *pk*; ``NotFound`` (a ``KeyError``) if there is none."""
        info, model = self._coll(target)
        found = self._fetch_one(info, check_pk(pk))
        if found is None:
            raise NotFound(info.name, [pk])
        return self._load(model, info, pk, found)  # type: ignore[no-any-return]

    @overload
    def get_many(self, target: type[D], pks: Iterable[str]) -> list[D]: ...
    @overload
    def get_many(self, target: str, pks: Iterable[str]) -> list[dict[str, Any]]: ...
    def get_many(self, target: type[D] | str, pks: Iterable[str]) -> list[Any]:
        """Documents in the order asked, in one query; ``NotFound`` naming every missing pk."""
        info, model = self._coll(target)
        wanted = [check_pk(pk) for pk in pks]
        found = self._fetch_stored(info, list(dict.fromkeys(wanted))) if wanted else {}
        missing = [pk for pk in wanted if pk not in found]
        if missing:
            raise NotFound(info.name, missing)
        return [self._load(model, info, pk, found[pk]) for pk in wanted]

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
            created[:] = [doc]
            pk, data = self._dump(doc)
            if given_pk is not None:
                pk = check_pk(given_pk)
            elif attempt == 0:
                # Racing creators all try this key; only one insert can win.
                pk = hashlib.sha256(f"{info.name}\x00{canonical(values)}".encode()).hexdigest()[:32]
            return pk, data

        (pk, data), was_created = self._find_or_insert(info, node, build, given_pk is not None)
        if not was_created:
            return self._load(model, info, pk, data), False
        doc = created[0]
        if isinstance(doc, Document):
            doc.__dict__["pk"] = pk
            return doc, True
        return self._load(None, info, pk, data), True

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
        if isinstance(target, Document):
            if target.pk is None:
                raise NotFound(type(target).__doqu_collection__.name, ["None"])
            info, _ = self._coll(type(target))
            pk = target.pk
        else:
            info, _ = self._coll(target)
            if pk is None:
                raise TypeError("delete() needs a pk with a model or collection name")
        self._check_writable("delete")
        if not self._remove(info, [check_pk(pk)]):
            raise NotFound(info.name, [pk])

    @overload
    def query(self, target: type[D]) -> Query[D]: ...
    @overload
    def query(self, target: str) -> Query[dict[str, Any]]: ...
    def query(self, target: type[D] | str) -> Query[Any]:
        """A lazy query over the collection of *target* (a model, or a name for plain dicts)."""
        from ._query import Query

        info, model = self._coll(target)
        return Query(self, info, model)

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
    def dict(self, target: type[D], **options: Any) -> MappingView[D]: ...
    @overload
    def dict(self, target: str, **options: Any) -> MappingView[Any]: ...
    def dict(self, target: type[D] | str, **options: Any) -> MappingView[Any]:
        """A ``MutableMapping`` view over one collection (see the mapping view guide)."""
        from ._mapping import MappingView

        info, model = self._coll(target)
        return MappingView(self, info, model, **options)

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
        if not self._closed:
            try:
                self._close()
            finally:
                self._closed = True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}{' closed' if self._closed else ''}>"
