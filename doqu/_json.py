"""The JSON value model every backend shares: kinds, equality, ordering, encoding.

Stored documents and query operands are plain JSON values (``None``, ``bool``,
``int``, ``float``, ``str``, ``list``, ``dict`` with ``str`` keys). Numbers are
one kind (``1 == 1.0``); bools are not numbers; strings compare by code point.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._errors import InvalidDocument, QueryError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "LONG_DIGITS",
    "MAX_NESTING",
    "BAD_KEY_BYTES",
    "MISSING",
    "NEGATIVE_ZERO_BYTES",
    "SUSPECT_TEXT",
    "check_json",
    "decode_document",
    "encode_document",
    "good_key",
    "holds_datetime",
    "json_equal",
    "kind",
    "sort_key",
    "stored_datetime",
    "to_json",
    "with_stored_datetimes",
]

INT_MAX: Final = 2**63 - 1
INT_MIN: Final = -(2**63)
#: A run of 19 digits in JSON text: an int that may not fit in 64 bits.
LONG_DIGITS: Final = re.compile(r"\d{19}")
# In compact JSON text, what may need :func:`check_json`'s closer look beyond numbers:
# a NUL, a ``-0.0``, or a key with a leading ``$`` or a ``.`` (``"$`` anywhere, or a
# ``.`` followed by the rest of a string and ``":``). Keys that cannot be stored
# always match; a match that is no such key only costs the closer look.
_NEGATIVE_ZERO = r"-0\.0(?![0-9])"
_BAD_KEY = r'"\$|\.(?:[^"\\]|\\.)*":'
#: For text (str): a NUL, a ``-0.0`` or a key that cannot be stored, maybe.
SUSPECT_TEXT: Final = re.compile("|".join((r"\\u0000", _NEGATIVE_ZERO, _BAD_KEY)))
#: For JSON bytes: a ``-0.0``, maybe.
NEGATIVE_ZERO_BYTES: Final = re.compile(_NEGATIVE_ZERO.encode())
#: For JSON bytes: a key that cannot be stored, maybe.
BAD_KEY_BYTES: Final = re.compile(_BAD_KEY.encode())


class _Missing:
    """The value of a path that does not exist in a document."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def kind(value: Any) -> str:
    """Name the JSON kind of *value*: null, bool, number, string, array or object."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: same kind, numbers by value, arrays in order, objects by keys."""
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if ka == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def sort_key(value: Any) -> tuple[int, Any]:
    """Key for the API's mixed-kind order: missing/null, numbers, strings, the rest (tied)."""
    if value is MISSING or value is None:
        return (0, 0)
    if value is True or value is False:
        return (3, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, 0)


#: Containers nested in a stored document, the document itself included (MariaDB: 32 levels
#: of JSON_DEPTH, scalars counting one).
MAX_NESTING = 30


def good_key(key: str) -> bool:
    """Whether *key* may name a stored object's member on every backend.

    Not with a leading ``$`` or a ``.`` (MongoDB cannot store them, and a path could
    never reach a key holding ``.``), no NUL, and valid Unicode.
    """
    return (
        not key.startswith("$")
        and "." not in key
        and "\x00" not in key
        and (key.isascii() or encodable(key))
    )


def check_json(
    value: Any,
    *,
    error: type[Exception] = InvalidDocument,
    where: str = "value",
    operand: bool = False,
) -> Any:
    """The one "can be stored" rule: *value* as every backend stores it, or *error*.

    Refused: NaN/Infinity, ints beyond 64 bits, text that is not valid Unicode or
    holds NUL, object keys that are not strings, start with ``$`` or hold ``.``,
    and containers nested deeper than :data:`MAX_NESTING`. ``-0.0`` is stored as
    ``0.0`` (PostgreSQL's jsonb cannot keep the sign): the value returned is
    *value* itself, or a copy where such a zero was replaced.

    An *operand* (a query value, compared but never stored) may hold NUL and any
    key: it then simply equals no stored value.
    """
    zeros: list[tuple[Any, Any]] = []  # (container, key or index) holding a -0.0
    stack: list[tuple[Any, int]] = [(value, 1)]
    nul = not operand
    while stack:
        v, depth = stack.pop()
        if v is None or v is True or v is False:
            continue
        if isinstance(v, str):
            _check_text(v, error, where, nul)
        elif isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                raise error(f"{where}: integer {v} does not fit in 64 bits")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise error(f"{where}: {v} is not a finite number (JSON has no NaN/Infinity)")
        elif isinstance(v, (list, dict)) and depth > MAX_NESTING:
            raise error(f"{where}: nested deeper than {MAX_NESTING} levels (MariaDB's JSON limit)")
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if type(item) is float and item == 0.0 and math.copysign(1.0, item) < 0:
                    zeros.append((v, i))
                else:
                    stack.append((item, depth + 1))
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise error(f"{where}: object keys must be strings, not {k!r}")
                _check_text(k, error, where, nul)
                if not operand and (k.startswith("$") or "." in k):
                    raise error(
                        f"{where}: the object key {k[:40]!r} cannot be stored"
                        " (no leading '$', no '.', no NUL)"
                    )
                if type(item) is float and item == 0.0 and math.copysign(1.0, item) < 0:
                    zeros.append((v, k))
                else:
                    stack.append((item, depth + 1))
        else:
            raise error(f"{where}: {type(v).__name__} is not a JSON value")
    if type(value) is float and value == 0.0:
        return 0.0
    return _without_negative_zeros(value, zeros) if zeros else value


def _without_negative_zeros(value: Any, zeros: list[tuple[Any, Any]]) -> Any:
    """A copy of *value* in which the members listed in *zeros* are ``0.0``.

    Only the containers on the way to such a zero are copied: the caller's data is
    never changed.
    """
    marked = {id(c) for c, _ in zeros}
    spots: dict[int, list[Any]] = {}
    for container, key in zeros:
        spots.setdefault(id(container), []).append(key)

    def holds(v: Any, memo: dict[int, bool]) -> bool:
        found = memo.get(id(v))
        if found is None:
            if id(v) in marked:
                found = True
            elif type(v) is dict:
                found = any(holds(x, memo) for x in v.values() if type(x) in (dict, list))
            elif type(v) is list:
                found = any(holds(x, memo) for x in v if type(x) in (dict, list))
            else:
                found = False
            memo[id(v)] = found
        return found

    memo: dict[int, bool] = {}

    def rebuild(v: Any) -> Any:
        if not holds(v, memo):
            return v
        if type(v) is dict:
            out: Any = {k: rebuild(x) for k, x in v.items()}
        else:
            out = [rebuild(x) for x in v]
        for key in spots.get(id(v), ()):
            out[key] = 0.0
        return out

    return rebuild(value)


def encodable(text: str) -> bool:
    """Whether *text* encodes as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(text: str, error: type[Exception], where: str, nul: bool = True) -> None:
    if nul and "\x00" in text:
        raise error(f"{where}: text holds a NUL character, which PostgreSQL cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(f"{where}: text is not valid Unicode ({exc.reason})") from None


def stored_datetime(value: datetime) -> str:
    """A datetime's stored text: fixed width, so text order is time order.

    Aware datetimes are converted to UTC and end in ``Z``; naive ones are kept as
    given. Both always carry microseconds: ``2026-01-01T09:00:00.000000Z``.
    """
    offset = value.utcoffset()
    if offset is None:
        return value.isoformat(timespec="microseconds")
    utc = (value.replace(tzinfo=None) - offset) if offset else value.replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def with_stored_datetimes(value: Any, dumped: Any) -> Any:
    """*dumped* (pydantic's JSON form of *value*) with each datetime in its stored form.

    Walks *value* and *dumped* side by side (models, their extras, lists, tuples,
    sets and dicts), replacing the text pydantic wrote for a ``datetime`` by
    :func:`stored_datetime`. A datetime a custom serializer wrote differently is
    left as it wrote it. Copies only what it changes.
    """
    kind = type(value)
    if kind in _PLAIN:
        return dumped
    if isinstance(value, datetime):
        if isinstance(dumped, str) and dumped == to_jsonable_python(value):
            return stored_datetime(value)
        return dumped
    if isinstance(value, BaseModel):
        if type(dumped) is not dict:
            return dumped
        names = _serialized_names(kind)
        fields = value.__dict__
        extra = value.__pydantic_extra__ or {}
        out = dumped
        for key, item in dumped.items():
            name = names.get(key, key)
            if name in fields:
                source = fields[name]
            elif key in extra:
                source = extra[key]
            else:
                continue  # a computed field or a custom serializer's own key
            if type(source) in _PLAIN:
                continue
            new = with_stored_datetimes(source, item)
            if new is not item:
                if out is dumped:
                    out = dict(dumped)
                out[key] = new
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        if type(dumped) is not list or len(dumped) != len(value):
            return dumped
        items = [with_stored_datetimes(v, d) for v, d in zip(value, dumped)]
        return items if any(n is not d for n, d in zip(items, dumped)) else dumped
    if isinstance(value, dict):
        if type(dumped) is not dict or len(dumped) != len(value):
            return dumped
        changed = False
        out = {}
        for (key, item), (dkey, ditem) in zip(value.items(), dumped.items()):
            new_key = with_stored_datetimes(key, dkey) if isinstance(key, datetime) else dkey
            new = with_stored_datetimes(item, ditem)
            changed = changed or new is not ditem or new_key is not dkey
            out[new_key] = new
        return out if changed else dumped
    return dumped


def holds_datetime(value: Any) -> bool:
    """Whether *value* holds a datetime, or a model that may (extras, ``Any`` fields)."""
    if isinstance(value, (datetime, BaseModel)):
        return True
    if isinstance(value, dict):
        return any(type(v) not in _PLAIN and holds_datetime(v) for v in value.values()) or any(
            isinstance(k, datetime) for k in value
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(type(v) not in _PLAIN and holds_datetime(v) for v in value)
    return False


def _serialized_names(model: type[BaseModel]) -> dict[str, str]:
    """Serialized key → attribute name of a model's declared fields that differ."""
    known = model.__dict__.get("__doqu_serialized_names__")
    if known is not None:
        return known  # type: ignore[no-any-return]
    by_alias = bool(model.model_config.get("serialize_by_alias"))
    names = {}
    for name, info in model.model_fields.items():
        key = info.serialization_alias or (info.alias if by_alias else None) or name
        if key != name:
            names[key] = name
    type.__setattr__(model, "__doqu_serialized_names__", names)
    return names


def to_json(
    value: Any,
    *,
    error: type[Exception] = QueryError,
    where: str = "operand",
    stored: bool = False,
) -> Any:
    """Convert a Python value the way documents are stored (``model_dump(mode="json")``,
    datetimes in their stored form), checked by :func:`check_json`.

    *stored*: the value will be stored (an update's operand), not only compared.
    """
    try:
        out = to_jsonable_python(value, inf_nan_mode="constants")
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise error(f"{where}: {value!r} cannot be converted to JSON: {exc}") from None
    if type(value) not in _PLAIN:
        out = with_stored_datetimes(value, out)
    return check_json(out, error=error, where=where, operand=not stored)


def encode_document(data: dict[str, Any]) -> str:
    """Serialize a stored document to compact JSON text, refusing what cannot be stored."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        check_json(data, where="document")
        raise  # check_json raises first; this is for what it cannot name
    if LONG_DIGITS.search(text):
        check_json(data, where="document")
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            check_json(data, where="document")
            raise
    return text


def decode_document(text: str | bytes) -> Any:
    """Parse stored JSON text."""
    return json.loads(text)
