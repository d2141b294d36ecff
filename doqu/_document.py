"""``Document``: a pydantic v2 model that knows its collection and primary key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._errors import QueryError
from ._tree import Path, parse_collection_name, parse_path

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._query import Query
    from ._storage import Storage

__all__ = ["CollectionInfo", "Document"]


@dataclass(frozen=True)
class CollectionInfo:
    """What a backend needs to know about a collection: its name and declared indexes."""

    name: str
    indexes: tuple[tuple[Path, ...], ...] = ()
    unique: tuple[tuple[Path, ...], ...] = ()

    def merged(self, other: CollectionInfo) -> CollectionInfo:
        """Both sets of indexes (several models may share a collection)."""
        indexes = self.indexes + tuple(i for i in other.indexes if i not in self.indexes)
        unique = self.unique + tuple(u for u in other.unique if u not in self.unique)
        return CollectionInfo(self.name, indexes, unique)


def _snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _index_paths(spec: Any, where: str) -> tuple[Path, ...]:
    fields = (spec,) if isinstance(spec, str) else tuple(spec)
    if not fields:
        raise QueryError(f"{where}: an index needs at least one field")
    return tuple(parse_path(f, what=f"{where} field") for f in fields)


class Document(BaseModel):
    """Base class of stored models.

    Subclass it like any pydantic model; an inner ``class Meta`` may set
    ``collection`` (default: the class name in snake_case), ``indexes`` and
    ``unique`` (each a field name or a tuple of field names). Extra fields are
    kept unless the model forbids them. ``pk`` is ``None`` until saved and is not
    part of ``model_dump()``.
    """

    model_config = ConfigDict(
        extra="allow",
        revalidate_instances="always",
        ser_json_inf_nan="constants",
    )

    pk: str | None = Field(default=None, exclude=True)

    __doqu_collection__: ClassVar[CollectionInfo]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        meta = cls.__dict__.get("Meta")
        name = getattr(meta, "collection", None) or _snake(cls.__name__)
        parse_collection_name(name)
        where = f"{cls.__name__}.Meta"
        indexes = tuple(_index_paths(i, where) for i in getattr(meta, "indexes", ()) or ())
        unique = tuple(_index_paths(u, where) for u in getattr(meta, "unique", ()) or ())
        cls.__doqu_collection__ = CollectionInfo(name, indexes, unique)

    @classmethod
    def objects(cls, db: Storage) -> Query[Self]:
        """A query over this model's collection in *db* (same as ``db.query(cls)``)."""
        return db.query(cls)

    def save(self, db: Storage) -> str:
        """Insert or replace this document in *db*; returns (and sets) its pk."""
        return db.save(self)

    def delete(self, db: Storage) -> None:
        """Delete this document from *db* (``NotFound`` if it is not stored)."""
        db.delete(self)
