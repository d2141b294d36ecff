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
with every write — in the write's transaction where the server has them
(replica sets, ``mongos``), right after it on a standalone server.

``update()`` validates every result first, then writes each document with
native operators (``$set``, ``$inc``, ``$push``, … see :func:`to_update`),
guarded by the document's content as read.

The modules, by subject: ``_stored`` (the stored form: sorted keys, ``_id``,
16 MiB, the codec), ``_filters`` (query trees as filters and pipelines),
``_updates`` (native update documents and their guards), ``_storage``
(:class:`MongoStorage` and the driver's errors).
"""

from __future__ import annotations

from ...backend import missing_driver

try:  # first, so that a missing driver is named even when the submodules are loaded
    import bson  # noqa: F401
    import pymongo  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise missing_driver("mongodb", exc) from exc

from ._filters import NEVER, to_filter
from ._storage import META_COLLECTION, MongoStorage
from ._stored import MAX_DOCUMENT_BYTES
from ._updates import to_update

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "META_COLLECTION",
    "NEVER",
    "MongoStorage",
    "to_filter",
    "to_update",
]
