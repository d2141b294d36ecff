"""The JSON value model every backend shares: kinds, equality, ordering, encoding.

Stored documents and query operands are plain JSON values (``None``, ``bool``,
``int``, ``float``, ``str``, ``list``, ``dict`` with ``str`` keys). Numbers are
one kind (``1 == 1.0``); bools are not numbers; strings compare by code point.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._errors import InvalidDocument, QueryError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_NESTING",
    "MISSING",
    "check_json",
    "decode_document",
    "encode_document",
    "json_equal",
    "kind",
    "sort_key",
    "to_json",
]

INT_MAX: Final = 2**63 - 1
INT_MIN: Final = -(2**63)
_LONG_DIGITS = re.compile(r"\d{19}")


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


def check_json(
    value: Any, *, error: type[Exception] = InvalidDocument, where: str = "value"
) -> None:
    """Refuse what no backend stores alike: NaN/Infinity, ints beyond 64 bits, bad text,
    containers nested deeper than :data:`MAX_NESTING`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if v is None or v is True or v is False:
            continue
        if isinstance(v, str):
            _check_text(v, error, where)
        elif isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                raise error(f"{where}: integer {v} does not fit in 64 bits")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise error(f"{where}: {v} is not a finite number (JSON has no NaN/Infinity)")
        elif isinstance(v, (list, dict)) and depth > MAX_NESTING:
            raise error(f"{where}: nested deeper than {MAX_NESTING} levels (MariaDB's JSON limit)")
        elif isinstance(v, list):
            stack.extend((item, depth + 1) for item in v)
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise error(f"{where}: object keys must be strings, not {k!r}")
                _check_text(k, error, where)
                stack.append((item, depth + 1))
        else:
            raise error(f"{where}: {type(v).__name__} is not a JSON value")


def encodable(text: str) -> bool:
    """Whether *text* encodes as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(text: str, error: type[Exception], where: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(f"{where}: text is not valid Unicode ({exc.reason})") from None


def to_json(value: Any, *, error: type[Exception] = QueryError, where: str = "operand") -> Any:
    """Convert a Python value the way documents are stored (``model_dump(mode="json")``)."""
    try:
        out = to_jsonable_python(value, inf_nan_mode="constants")
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise error(f"{where}: {value!r} cannot be converted to JSON: {exc}") from None
    check_json(out, error=error, where=where)
    return out


def encode_document(data: dict[str, Any]) -> str:
    """Serialize a stored document to compact JSON text, refusing what cannot be stored."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        check_json(data, where="document")
        raise  # check_json raises first; this is for what it cannot name
    if _LONG_DIGITS.search(text):
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
