"""doqu: pydantic documents stored anywhere, queried the same way everywhere.

>>> import doqu
>>> with doqu.connect("memory://") as db:
...     pk = db.save({"name": "Ann", "age": 31}, collection="people")
...     db.query("people").where(age__gt=30).count()
1
"""

from __future__ import annotations

from ._async import AsyncMappingView, AsyncQuery, AsyncStorage, connect_async
from ._document import Document
from ._errors import (
    ConfigError,
    CorruptDocument,
    DoquError,
    DuplicateKey,
    InvalidDocument,
    NotFound,
    NotLoaded,
    QueryError,
    StorageError,
)
from ._expr import Field, Sort, field
from ._migrations import MigrationReport
from ._query import Query
from ._refs import Ref
from ._registry import connect, register_backend
from ._storage import Storage
from ._tree import Q, UpdateOp

__all__ = [
    "AsyncMappingView",
    "AsyncQuery",
    "AsyncStorage",
    "ConfigError",
    "CorruptDocument",
    "Document",
    "DoquError",
    "DuplicateKey",
    "Field",
    "InvalidDocument",
    "MigrationReport",
    "NotFound",
    "NotLoaded",
    "Q",
    "Query",
    "QueryError",
    "Ref",
    "Sort",
    "Storage",
    "StorageError",
    "UpdateOp",
    "connect",
    "connect_async",
    "field",
    "register_backend",
]

__version__ = "0.1.0"
