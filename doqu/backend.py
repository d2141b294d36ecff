"""What a backend author needs, in one public module.

A backend subclasses :class:`Storage` and implements its ``_``-prefixed
primitives (see the guide, "Writing a backend"). The primitives receive a
:class:`CollectionInfo` and plain JSON data; queries arrive as a
:class:`QuerySpec` holding a tree of :class:`Cond`, :class:`And`, :class:`Or`
and :class:`Not` nodes. The reference evaluator (:func:`matches`,
:func:`filter_rows`, :func:`sort_rows`, :func:`distinct`,
:func:`apply_update`, :func:`unique_key`) is the semantics every backend must
reproduce, and a backend that cannot push a query down may answer with it.

This is the only core module the built-in backends (``doqu.ext.*``) and the
command line import, besides the public ``doqu`` package itself: everything
they use is here, so a third-party backend can do what a built-in one does.

A backend that can serve the async API (:func:`doqu.connect_async`) reads
:attr:`Storage.asynchronous` when it is built: it then opens async drivers and
awaits their coroutines with :func:`wait`; :func:`rlock`, :func:`sleep` and
:func:`local` are the thread primitives that would otherwise stall the event
loop (see :mod:`doqu._bridge`).

Everything here is covered by doqu's compatibility promise; the modules it
comes from (``doqu._storage``, ``doqu._tree``, …) are not.
"""

from __future__ import annotations

from ._bridge import bridged, local, rlock, sleep, spawn, uncancelled, wait
from ._document import CollectionInfo
from ._encoding import check_pk
from ._errors import (
    ConfigError,
    CorruptDocument,
    DoquError,
    DuplicateKey,
    InvalidDocument,
    NotFound,
    QueryError,
    StorageError,
)
from ._evaluator import (
    UpdateTypeError,
    apply_update,
    ascii_fold,
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
    MAX_NESTING,
    MISSING,
    check_json,
    decode_document,
    encode_document,
    good_key,
    json_equal,
    kind,
    sort_key,
)
from ._options import READ_ONLY, flag, query_options, shown_url, strip_query, unknown_option
from ._registry import missing_driver
from ._schema import Fixed, check_node, check_path, check_updates
from ._storage import Collection, Finalize, Form, Row, Storage
from ._tree import (
    MAX_QUERY_DEPTH,
    And,
    Cond,
    Node,
    Not,
    Or,
    Path,
    QuerySpec,
    UpdateOp,
    gathered,
    parse_collection_name,
    parse_path,
    parse_update,
    regex_replace_end_anchor,
)
from ._unique import PK_INDEX, duplicate_key

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_NESTING",
    "MAX_QUERY_DEPTH",
    "MISSING",
    "PK_INDEX",
    "READ_ONLY",
    "And",
    "Collection",
    "CollectionInfo",
    "Cond",
    "ConfigError",
    "CorruptDocument",
    "DoquError",
    "DuplicateKey",
    "Finalize",
    "Fixed",
    "Form",
    "InvalidDocument",
    "Node",
    "Not",
    "NotFound",
    "Or",
    "Path",
    "QueryError",
    "QuerySpec",
    "Row",
    "Storage",
    "StorageError",
    "UpdateOp",
    "UpdateTypeError",
    "apply_update",
    "bridged",
    "ascii_fold",
    "canonical",
    "check_json",
    "check_node",
    "check_path",
    "check_pk",
    "check_updates",
    "compile_regex",
    "decode_document",
    "distinct",
    "duplicate_key",
    "encode_document",
    "filter_rows",
    "flag",
    "gathered",
    "good_key",
    "json_equal",
    "kind",
    "local",
    "matches",
    "missing_driver",
    "parse_collection_name",
    "parse_path",
    "parse_update",
    "query_options",
    "regex_replace_end_anchor",
    "resolve",
    "rlock",
    "shown_url",
    "sleep",
    "sort_key",
    "spawn",
    "sort_rows",
    "strip_query",
    "uncancelled",
    "unique_key",
    "unknown_option",
    "wait",
]
