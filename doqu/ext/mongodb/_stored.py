"""The stored form: ``_id`` first, object keys sorted, at most 16 MiB of BSON.

The core hands the backend only documents it checked (:func:`doqu.backend.check_json`:
no key with a leading ``$``, a ``.`` or a NUL, …), so nothing here checks stored
data again. What is MongoDB's own: keys sorted (so that equality of embedded
objects does not depend on the order keys were written in), ``_id`` holding the
pk, the 16 MiB limit, 64-bit integers read back as ``int``. Query operands are
another matter: they may hold any key, and :func:`_operand` is where such a key
is caught.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import bson
from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
from bson.int64 import Int64

from ...backend import InvalidDocument, Row, good_key

Data = dict[str, Any]

#: MongoDB's limit on one stored document (BSON), 16 MiB.
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024


class _Int64AsInt(TypeDecoder):
    """64-bit integers come back as plain ``int`` (pymongo's default is ``Int64``)."""

    bson_type = Int64

    def transform_bson(self, value: Any) -> int:
        return int(value)


_CODEC: Final[CodecOptions[dict[str, Any]]] = CodecOptions(
    type_registry=TypeRegistry([_Int64AsInt()])
)


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class _Unstorable(Exception):
    """An operand holds a key no stored document can hold."""


def _sorted(value: Any, check: bool = False) -> Any:
    """*value* with object keys sorted, recursively, as objects are stored.

    With *check* (operands), a key :func:`good_key` refuses raises
    :class:`_Unstorable`; stored documents need no check, the core refused
    such keys before. Lists holding no object or list are returned as they
    are, not copied.
    """
    if isinstance(value, dict):
        if check and not all(map(good_key, value)):
            raise _Unstorable
        # Keys are distinct strings, so sorting the pairs never compares values.
        items = sorted(value.items())
        for _, v in items:
            if type(v) not in _SCALARS:
                return {k: v if type(v) in _SCALARS else _sorted(v, check) for k, v in items}
        return dict(items)
    if isinstance(value, list):
        for v in value:
            if type(v) not in _SCALARS:
                return [v if type(v) in _SCALARS else _sorted(v, check) for v in value]
        return value
    return value


def _operand(value: Any) -> tuple[bool, Any]:
    """``(storable, stored form)`` of an operand: keys sorted like stored objects.

    The one check of operand keys (:func:`good_key`, the rule the core applies
    to stored documents): an operand holding a key no stored document can hold
    (``{"$gt": ""}``) can equal no stored value. Filters turn it into a
    match-nothing filter and updates refuse it, so it never reaches the server
    as query or update syntax.
    """
    if type(value) in _SCALARS:
        return True, value
    try:
        return True, _sorted(value, check=True)
    except _Unstorable:
        return False, None


def _to_mongo(pk: str, data: Data) -> Data:
    """The stored form of checked data."""
    return _sized(pk, {"_id": pk, **_sorted(data)})


def _sized(pk: str, doc: Data) -> Data:
    """*doc*, refused if it is over MongoDB's 16 MiB as BSON."""
    size = len(bson.encode(doc))
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(
            f"document {pk!r} is {size} bytes as BSON; MongoDB stores at most"
            f" {MAX_DOCUMENT_BYTES} (16 MiB)"
        )
    return doc


def _sorted_object(pairs: list[tuple[str, Any]]) -> Data:
    pairs.sort()  # keys are distinct: values are never compared
    return dict(pairs)


_PARSE: Final = json.JSONDecoder(object_pairs_hook=_sorted_object).raw_decode


#: JSON text this short is far below 16 MiB as BSON (BSON takes at most about
#: 8 bytes per byte of compact JSON, and a character is at most 4 bytes).
_SURELY_SMALL: Final = MAX_DOCUMENT_BYTES // 32


def _mongo_from_text(pk: str, text: str) -> Data:
    """The stored form of a checked JSON document: ``_id`` first, object keys sorted."""
    out = {"_id": pk, **_PARSE(text)[0]}
    return _sized(pk, out) if len(text) > _SURELY_SMALL else out


def _from_mongo(doc: Mapping[str, Any]) -> Row:
    data = dict(doc)
    pk = data.pop("_id")
    return str(pk), data
