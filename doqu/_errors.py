"""The doqu error tree.

Every error doqu raises on purpose derives from :class:`DoquError`; builtins
are mixed in where Python users expect them::

    DoquError
    ├── NotFound            (also KeyError)      a pk that is not stored
    ├── NotLoaded                                a reference's target was not loaded
    ├── DuplicateKey                             a unique index would be violated
    ├── QueryError          (also ValueError)    a lookup, operand or path is not valid
    ├── ConfigError         (also ValueError)    a bad URL, option or missing driver
    ├── InvalidDocument     (also ValueError)    data no backend may store (NaN, huge ints, …)
    │   └── UnstorableValue (also TypeError)     …given to a mapping view
    ├── StorageError                             driver and connection faults (chained)
    └── CorruptDocument                          stored data that fails the model's validation

Validation of *new* data raises pydantic's ``ValidationError`` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConfigError",
    "CorruptDocument",
    "DoquError",
    "DuplicateKey",
    "InvalidDocument",
    "NotFound",
    "NotLoaded",
    "QueryError",
    "StorageError",
    "UnstorableValue",
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


class NotLoaded(DoquError):
    """A reference's target was not loaded: ``ref.doc`` before ``prefetch`` or ``fetch``."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


class DuplicateKey(DoquError):
    """A write would violate a unique index (or take a pk that is taken); nothing was written.

    The message is the same on every backend::

        duplicate key in 'people': email='a@x' is already held by pk 'ann'

    Attributes:
        collection: the collection written to.
        fields: the unique index's field paths as declared, dotted (``("email",)``,
            ``("name", "age")``); ``("pk",)`` for a primary key that is taken.
        value: the JSON value the write gave those fields; a tuple for several fields.
        pk: the pk of the document already holding *value*, or ``None`` where the
            backend cannot tell (another document in the same batch counts).
    """

    def __init__(
        self, collection: str, fields: Iterable[str], value: Any, pk: str | None = None
    ) -> None:
        self.collection = collection
        self.fields = tuple(fields)
        self.value = value
        self.pk = pk
        super().__init__(collection, self.fields, value, pk)

    def __str__(self) -> str:
        where = f"duplicate key in {self.collection!r}"
        if self.fields == ("pk",):
            return f"{where}: pk {self.value!r} is already taken"
        if len(self.fields) == 1:
            key = f"{self.fields[0]}={_shown(self.value)}"
        elif isinstance(self.value, tuple) and len(self.value) == len(self.fields):
            key = ", ".join(f"{f}={_shown(v)}" for f, v in zip(self.fields, self.value))
        else:
            key = f"({', '.join(self.fields)})={_shown(self.value)}"
        held = "another document" if self.pk is None else f"pk {self.pk!r}"
        return f"{where}: {key} is already held by {held}"


class QueryError(DoquError, ValueError):
    """A query, lookup, operand, field path or update is not valid."""


class ConfigError(DoquError, ValueError):
    """A connection URL, option or installed driver does not fit."""


class InvalidDocument(DoquError, ValueError):
    """A document holds data that cannot be stored (NaN, a 65-bit int, NUL on PostgreSQL, …)."""


class UnstorableValue(InvalidDocument, TypeError):
    """A mapping view's value that cannot be stored: an ``InvalidDocument`` as anywhere,
    and a ``TypeError`` as the view promises for what its JSON codec cannot encode."""


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
