"""What a backend author needs, in one public module.

A backend subclasses :class:`Storage` and implements its ``_``-prefixed
primitives (see the guide, "Writing a backend"). The primitives receive a
:class:`CollectionInfo` and plain JSON data; queries arrive as a
:class:`QuerySpec` holding a tree of :class:`Cond`, :class:`And`, :class:`Or`
and :class:`Not` nodes. The reference evaluator (:func:`matches`,
:func:`filter_rows`, :func:`sort_rows`, :func:`distinct`,
:func:`apply_update`, :func:`unique_key`) is the semantics every backend must
reproduce, and a backend that cannot push a query down may answer with it.

Everything here is covered by doqu's compatibility promise; the modules it
comes from (``doqu._storage``, ``doqu._tree``, …) are not.
"""

from __future__ import annotations

from ._document import CollectionInfo
from ._evaluator import (
    UpdateTypeError,
    apply_update,
    canonical,
    compile_regex,
    distinct,
    filter_rows,
    matches,
    resolve,
    sort_rows,
    unique_key,
)
from ._json import (
    INT_MAX,
    INT_MIN,
    MISSING,
    check_json,
    decode_document,
    encode_document,
    json_equal,
    kind,
    sort_key,
)
from ._storage import QuerySpec, Storage, check_pk
from ._tree import And, Cond, Node, Not, Or, Path, UpdateOp, parse_collection_name

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MISSING",
    "And",
    "CollectionInfo",
    "Cond",
    "Node",
    "Not",
    "Or",
    "Path",
    "QuerySpec",
    "Storage",
    "UpdateOp",
    "UpdateTypeError",
    "apply_update",
    "canonical",
    "check_json",
    "check_pk",
    "compile_regex",
    "decode_document",
    "distinct",
    "encode_document",
    "filter_rows",
    "json_equal",
    "kind",
    "matches",
    "parse_collection_name",
    "resolve",
    "sort_key",
    "sort_rows",
    "unique_key",
]
