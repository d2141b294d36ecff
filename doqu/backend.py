"""What a backend author needs, in one public module.

A backend subclasses :class:`Storage` and implements its ``_``-prefixed
primitives (see the guide, "Writing a backend"). The primitives receive a
:class:`CollectionInfo` and plain JSON data; queries arrive as a
:class:`QuerySpec` holding a tree of :class:`Cond`, :class:`And`, :class:`Or`
and :class:`Not` nodes. The reference evaluator (:func:`matches`,
:func:`filter_rows`, :func:`sort_rows`, :func:`distinct`,
:func:`apply_update`, :func:`unique_key`) is the semantics every backend must
reproduce, and a backend that cannot push a query down may answer with it.
:func:`duplicate_key` makes the :class:`doqu.DuplicateKey` of a unique clash
found in Python (``Storage._duplicate`` one the database refused), and
:data:`READ_ONLY` is the ``read_only`` entry of ``Storage.accepted_options``.

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
from ._options import READ_ONLY
from ._storage import QuerySpec, Storage, check_pk
from ._tree import And, Cond, Node, Not, Or, Path, UpdateOp, parse_collection_name
from ._unique import duplicate_key

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MISSING",
    "READ_ONLY",
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
    "duplicate_key",
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
