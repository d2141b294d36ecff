"""The doqu error tree.

Every error doqu raises on purpose derives from :class:`DoquError`; builtins
are mixed in where Python users expect them::

    DoquError
    ├── NotFound            (also KeyError)      a pk that is not stored
    ├── DuplicateKey                             a unique index would be violated
    ├── QueryError          (also ValueError)    a lookup, operand or path is not valid
    ├── ConfigError         (also ValueError)    a bad URL, option or missing driver
    ├── InvalidDocument     (also ValueError)    data no backend may store (NaN, huge ints, …)
    ├── StorageError                             driver and connection faults (chained)
    └── CorruptDocument                          stored data that fails the model's validation

Validation of *new* data raises pydantic's ``ValidationError`` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "CorruptDocument",
    "DoquError",
    "DuplicateKey",
    "InvalidDocument",
    "NotFound",
    "QueryError",
    "StorageError",
]


class DoquError(Exception):
    """Base class of every error doqu raises on purpose."""


class NotFound(DoquError, KeyError):
    """No document is stored under the given primary key(s).

    Attributes:
        collection: the collection that was asked.
        pks: the missing primary keys, in the order asked.
    """

    def __init__(self, collection: str, pks: Iterable[str]) -> None:
        self.collection = collection
        self.pks = list(pks)
        shown = ", ".join(repr(pk) for pk in self.pks[:10])
        more = f" (and {len(self.pks) - 10} more)" if len(self.pks) > 10 else ""
        super().__init__(f"not found in {collection!r}: {shown}{more}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicateKey(DoquError):
    """A write would violate a unique index; nothing was written."""


class QueryError(DoquError, ValueError):
    """A query, lookup, operand, field path or update is not valid."""


class ConfigError(DoquError, ValueError):
    """A connection URL, option or installed driver does not fit."""


class InvalidDocument(DoquError, ValueError):
    """A document holds data that cannot be stored (NaN, a 65-bit int, NUL on PostgreSQL, …)."""


class StorageError(DoquError):
    """The backend or its driver failed; the driver's exception is chained."""


class CorruptDocument(DoquError):
    """A stored document no longer validates against its model.

    Attributes:
        collection: where the document is stored.
        pk: its primary key.
    """

    def __init__(self, collection: str, pk: str, error: Exception | None = None) -> None:
        self.collection = collection
        self.pk = pk
        self.error = error
        detail = f": {error}" if error is not None else ""
        super().__init__(f"stored document {pk!r} in {collection!r} does not validate{detail}")
