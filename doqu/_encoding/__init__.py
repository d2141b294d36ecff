"""The save path: a model, or plain data, to its checked stored form, and back.

Everything a write stores goes through here: :func:`encode_rows` (``save``,
``save_many``, ``get_or_create``), :func:`sorted_rows` (backends that take
data with object keys sorted), :func:`finalizer` (``Query.update`` and the
compare-and-swap paths) and :func:`checked_value` (the mapping view). Models
are validated again (they may have been changed since they were built) and
serialized by pydantic; what may be stored is decided by one rule,
:func:`doqu._json.check_json`. The fast paths in front of it — one scan of a
batch's JSON text for what the rule might refuse (:func:`clean_text`), and
for plain-typed models a generated exact-type check (see :mod:`._plan`) — only
ever send a document to it, never past it.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError
from pydantic_core import to_json as _to_json_bytes

from .._document import Document
from .._errors import CorruptDocument, InvalidDocument, UnstorableValue
from .._json import (
    BAD_KEY_BYTES,
    LONG_DIGITS,
    MAX_NESTING,
    NEGATIVE_ZERO_BYTES,
    SUSPECT_TEXT,
    check_json,
    encodable,
    encode_document,
    holds_datetime,
    with_stored_datetimes,
)
from .._pk import new_pk, new_pks
from .._refs import UNSAVED
from .._versions import stamp, stamp_text, upgraded
from ._plan import ALL_CHECKS, SavePlan, TextChecks, plan_of, save_plan
from ._revalidate import as_is_nodes, revalidator

__all__ = [
    "ALL_CHECKS",
    "MAX_PK_LENGTH",
    "SavePlan",
    "TextChecks",
    "as_is_nodes",
    "check_pk",
    "check_stored_keys",
    "checked_value",
    "clean_text",
    "encode_model",
    "encode_one",
    "encode_rows",
    "finalizer",
    "load",
    "paused_gc",
    "plan_of",
    "revalidator",
    "save_plan",
    "sorted_rows",
    "stored_dump",
]

Data = dict[str, Any]
Row = tuple[str, Data]
Finalize = Callable[[Data], Data]

MAX_PK_LENGTH = 255

_DIGITS = bytes.maketrans(b"123456789", b"000000000")
#: ``save_many`` pauses the cycle collector for batches larger than this.
_BIG_BATCH = 256


def _unset(_: Any) -> Any:
    raise AssertionError("not a model")


#: What is left to scan in the text of an instance :attr:`SavePlan.exact` passed.
_NO_CHECKS = TextChecks(big_ints=False, non_finite=False, nesting=False, keys=False)
_DEPTH_ONLY = TextChecks(big_ints=False, non_finite=False, nesting=True, keys=False)


def clean_text(raw: bytes, checks: TextChecks = ALL_CHECKS) -> bool:
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
    return clean_text(raw, checks) and (not checks.nesting or _shallow(raw))


def _clean_batch(raws: Sequence[bytes], checks: TextChecks) -> bool:
    """:func:`_clean` for every text of a batch: one scan of the joined texts."""
    if not clean_text(b"\n".join(raws), checks):
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
    """A validated model's stored data: pydantic's JSON form, datetimes in stored form.

    A reference to a document that is not saved yet cannot be dumped (it has no
    pk): that is an :class:`~doqu.InvalidDocument` saying so, nothing written.
    """
    try:
        dumped = model.model_dump(mode="json")
    except PydanticSerializationError as exc:
        if UNSAVED in str(exc):
            why = str(exc).split(": ", 2)[-1]  # pydantic's "Error calling function …: ValueError: "
            raise InvalidDocument(f"{type(model).__name__}: {why}") from None
        raise
    data: Data = with_stored_datetimes(model, dumped)
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


def check_stored_keys(data: Mapping[str, Any]) -> None:
    if "_id" in data:
        raise InvalidDocument("the field name '_id' is reserved (MongoDB keeps the pk there)")


def sorted_rows(docs: Sequence[Any], max_bytes: int | None) -> list[Row] | None:
    """``(pk, data)`` for a batch of one plain-typed model, object keys sorted, built
    straight from the instances (:attr:`SavePlan.sorted_form`); ``None`` when a
    document (or the model) needs the JSON text path, or when the model's bounded
    size is more than half of *max_bytes* (a backend's ``max_document_bytes``)."""
    plan = plan_of(type(docs[0]))
    if plan is None or plan.sorted_form is None or not plan.plain_keys:
        return None
    if max_bytes is not None and plan.sorted_size > max_bytes // 2:
        return None
    validate, stored = plan.validate, plan.sorted_form
    # What the sorted form takes needs no validated copy; the rest gets one.
    datas = [stored(d) or stored(validate(d)) for d in docs]
    if None in datas:
        return None
    model = type(docs[0])
    if model.__doqu_version__ is not None:
        datas = [stamp(model, d, sort=True) for d in datas]
    return list(zip(_batch_pks(docs), datas))


def load(model: type[Document] | None, collection: str, pk: str, data: Any) -> Any:
    """Turn stored data (or its JSON text) into a validated model or a dict with ``"pk"``."""
    if model is None:
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        return {"pk": pk, **data}
    try:
        if model.__doqu_version__ is not None:  # an older document is upgraded first
            doc = model.__pydantic_validator__.validate_python(
                upgraded(model, collection, pk, data)
            )
        elif isinstance(data, (str, bytes)):
            doc = model.__pydantic_validator__.validate_json(data)
        else:
            doc = model.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        raise CorruptDocument(collection, pk, exc) from exc
    doc.__dict__["pk"] = pk
    return doc


def finalizer(model: type[Document] | None) -> Finalize:
    """Validate an update's result against *model* (if any) and check it can be stored."""

    def finalize(data: Data) -> Data:
        if model is not None:
            if model.__doqu_version__ is not None:  # stored older: upgraded, then updated
                name = model.__doqu_collection__.name
                current = upgraded(model, name, "(being updated)", data)
                data = stamp(model, stored_dump(model.model_validate(current)))
            else:
                data = stored_dump(model.model_validate(data))
        check_stored_keys(data)
        return check_json(data)  # type: ignore[no-any-return]

    return finalize


def encode_one(doc: Document | Mapping[str, Any]) -> Row:
    """``(pk, data)``: the document validated again, checked, as plain JSON data."""
    row: Row = encode_rows([doc], text=False)[0]
    return row


def encode_rows(docs: Sequence[Document | Mapping[str, Any]], *, text: bool) -> list[Any]:
    """``(pk, data)`` per document, or ``(pk, json_text)`` with *text*, all checked.

    Models are validated again (they may have been changed since) and
    serialized by pydantic; one scan of the whole batch's JSON text stands
    for :func:`check_json` unless it finds something to look at closely. A
    versioned model's documents carry its version (:mod:`doqu._migrations`).
    """
    rows = _encode_rows(docs, text)
    if any(m.__doqu_version__ is not None for m in _models(docs)):
        mark = stamp_text if text else stamp
        rows = [
            (pk, mark(type(doc), item)) if isinstance(doc, Document) else (pk, item)
            for doc, (pk, item) in zip(docs, rows)
        ]
    return rows


def _models(docs: Sequence[Any]) -> list[type[Document]]:
    return [m for m in {type(d) for d in docs} if issubclass(m, Document)]


def _encode_rows(docs: Sequence[Document | Mapping[str, Any]], text: bool) -> list[Any]:
    fast = _encode_same_model(docs, text)
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
            data = _plain(doc)
            pk = _pk_of(data)
            check_stored_keys(data)
            append((pk, check_json(data, where=f"document {pk!r}"), None))
    keys = iter(new_pks(fresh))
    batch = b"\n".join([raw for _, _, raw in staged if raw is not None])
    batch_clean = clean_text(batch)
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
            check_stored_keys(item)
            item = check_json(item, where=f"document {pk!r}")
        rows.append((pk, encode_document(item) if text else item))
    return rows


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


def _plain(doc: object) -> Data:
    if not isinstance(doc, Mapping):
        raise TypeError(f"cannot save {type(doc).__name__}: expected a Document or a dict")
    return dict(doc)


def _pk_of(doc: Document | Data) -> str:
    pk = doc.pk if isinstance(doc, Document) else doc.pop("pk", None)
    return new_pk() if pk is None else check_pk(pk)


def encode_model(doc: Document) -> Data:
    """One model instance's checked stored data, by the path ``save`` takes."""
    data: Data = encode_rows([doc], text=False)[0][1]
    return data


# --------------------------------------------------------------- plain values
_parse = json.JSONDecoder().raw_decode


def checked_value(value: Any) -> tuple[Any, str | None]:
    """A mapping view's value: a fresh, checked copy of the JSON value *value* (stored in
    ``{"value": …}``), and its compact JSON text when the fast path made it.

    Tuples become lists and ``str``/``int``/``float`` subclasses (enums) their plain
    values; any other kind is a ``TypeError``. A JSON value that cannot be stored is
    refused by :func:`doqu._json.check_json` with :class:`~doqu._errors.UnstorableValue`
    (both an ``InvalidDocument`` and a ``TypeError``).
    """
    if type(value) in (dict, list):
        # pydantic-core writes the text; parsing it back makes the fresh copy. What
        # it would change (tuples, non-str keys, other kinds) or what the rule might
        # refuse sends the value to the exact path below.
        try:
            raw = _to_json_bytes(value)
        except (PydanticSerializationError, ValueError, TypeError, RecursionError):
            pass
        else:
            text = raw.decode("utf-8", "surrogatepass")
            copy = _parse(text)[0]
            if (
                copy == value
                and text.count("[") + text.count("{") < MAX_NESTING
                and not LONG_DIGITS.search(text)
                and not SUSPECT_TEXT.search(text)
                and "NaN" not in text
                and "Infinity" not in text
                and (text.isascii() or encodable(text))
            ):
                return copy, text
    try:
        copy = _fresh(value, 2)
    except RecursionError:
        raise TypeError("the value is nested too deeply (or holds itself)") from None
    return check_json({"value": copy}, error=UnstorableValue)["value"], None


def _fresh(value: Any, depth: int) -> Any:
    """A copy of *value* of JSON kinds only (tuples as lists, subclasses as plain values)."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth > MAX_NESTING + 1:
        raise UnstorableValue(f"value nested deeper than {MAX_NESTING} levels (MariaDB's limit)")
    if kind is list or kind is tuple:
        return [_fresh(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__}: {k!r}")
            out[k] = _fresh(v, depth + 1)
        return out
    # Subclasses (IntEnum, StrEnum, …) are stored as their plain value, as json does.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"{kind.__name__} is not a JSON value; convert it first or use codec='pickle'")
