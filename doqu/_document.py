"""``Document``: a pydantic v2 model that knows its collection and primary key."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, overload

from pydantic import BaseModel, ConfigDict, Field
from pydantic._internal._model_construction import ModelMetaclass

from ._errors import QueryError
from ._expr import Field as FieldExpr
from ._expr import model_field
from ._refs import register_document
from ._schema import Fixed
from ._tree import Path, near_names, parse_collection_name, parse_path

#: A migration: the stored dict of one version to the next.
Upgrade = Callable[[dict[str, Any]], dict[str, Any]]

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._async import AsyncQuery, AsyncStorage
    from ._query import Query
    from ._storage import Storage

__all__ = ["CollectionInfo", "Document", "DocumentMeta"]


@dataclass(frozen=True)
class CollectionInfo:
    """What a backend needs to know about a collection: its name and declared indexes.

    ``kinds`` (not part of equality) is set on the collection a model-bound
    query reads: the paths whose declared type fixes their kind
    (:func:`doqu._schema.fixed_kinds`), where a backend may compare the bare
    value instead of testing its kind first. Empty for queries by name.
    """

    name: str
    indexes: tuple[tuple[Path, ...], ...] = ()
    unique: tuple[tuple[Path, ...], ...] = ()
    kinds: Mapping[Path, Fixed] = field(default_factory=dict, compare=False, repr=False)

    def merged(self, other: CollectionInfo) -> CollectionInfo:
        """Both sets of indexes (several models may share a collection)."""
        indexes = self.indexes + tuple(i for i in other.indexes if i not in self.indexes)
        unique = self.unique + tuple(u for u in other.unique if u not in self.unique)
        return CollectionInfo(self.name, indexes, unique)


def _fire(doc: Document, name: str) -> None:
    """Run the functions registered (``Model.hook(name)``) for *doc*'s class."""
    for fn in functions(type(doc), name):
        fn(doc)


# ------------------------------------------------------------------ hooks registry
HOOKS = ("before_save", "after_save", "before_delete", "after_delete")


_KNOWN: weakref.WeakKeyDictionary[type[Any], dict[str, bool]] = weakref.WeakKeyDictionary()
#: Functions registered with ``Model.hook(name)``, by the class they were registered on.
_REGISTERED: weakref.WeakKeyDictionary[type[Any], dict[str, list[Callable[[Any], object]]]] = (
    weakref.WeakKeyDictionary()
)


def registered(model: type[Any], name: str, fn: Callable[[Any], object]) -> None:
    """Add *fn* to *model*'s hook *name* (and its subclasses')."""
    _REGISTERED.setdefault(model, {}).setdefault(name, []).append(fn)
    _KNOWN.clear()  # a model (or a subclass) may have hooks now


def functions(model: type[Any], name: str) -> list[Callable[[Any], object]]:
    """The functions registered for hook *name* on *model* and its bases, bases first."""
    out: list[Callable[[Any], object]] = []
    for cls in reversed(model.__mro__):
        found = _REGISTERED.get(cls)
        if found:
            out.extend(found.get(name, ()))
    return out


def has_hooks(model: type[Any] | None, kind: str) -> bool:
    """Whether *model* overrides the ``save`` or the ``delete`` hooks (*kind*)."""
    if model is None:
        return False
    known = _KNOWN.get(model)
    if known is None:
        known = _KNOWN[model] = {
            k: any(
                getattr(model, n) is not getattr(Document, n) or functions(model, n) for n in names
            )
            for k, names in (
                ("save", ("before_save", "after_save")),
                ("delete", ("before_delete", "after_delete")),
            )
        }
    return known[kind]


def _migration_start(cls: type[Document], start: Any) -> int:
    version = cls.__doqu_version__
    if version is None:
        raise QueryError(f"{cls.__name__} has migrations but no Meta.version")
    if type(start) is not int or not 1 <= start < version:
        raise QueryError(
            f"{cls.__name__}: a migration starts from a version 1 to {version - 1}"
            f" (Meta.version is {version}), not {start!r}"
        )
    return start


def _snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _index_paths(spec: Any, where: str) -> tuple[Path, ...]:
    fields = (spec,) if isinstance(spec, str) else tuple(spec)
    if not fields:
        raise QueryError(f"{where}: an index needs at least one field")
    return tuple(parse_path(f, what=f"{where} field") for f in fields)


_BUILDING: ContextVar[bool] = ContextVar("doqu_building_a_model", default=False)


class DocumentMeta(ModelMetaclass):
    """The metaclass of :class:`Document`: ``Person.age`` is a field expression.

    Only for declared fields, and only once the class is complete (pydantic
    reads class attributes while it builds a class, to find defaults).
    Instances keep their plain values: pydantic stores those per instance.
    """

    if not TYPE_CHECKING:  # for a type checker, ``Person.nosuch`` stays an error

        def __new__(mcs, *args: Any, **kwargs: Any) -> Any:
            # While pydantic builds a class it probes its bases with hasattr() (to
            # find defaults, to warn of shadowing): fields are no attributes then.
            token = _BUILDING.set(True)
            try:
                return super().__new__(mcs, *args, **kwargs)
            finally:
                _BUILDING.reset(token)

        def __getattr__(cls, name: str) -> Any:
            if name.startswith("_") or _BUILDING.get():
                return super().__getattr__(name)
            exprs: dict[str, FieldExpr[Any]] | None = cls.__dict__.get("__doqu_fields__")
            if exprs is None:
                return super().__getattr__(name)
            expr = exprs.get(name)
            if expr is not None:
                return expr
            if name in cls.__pydantic_fields__:
                expr = model_field(cls, (name,))
                if cls.__pydantic_complete__:
                    exprs[name] = expr
                return expr
            near = near_names(name, cls.__pydantic_fields__)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise AttributeError(
                f"type object {cls.__name__!r} has no attribute {name!r}"
                f" (and {cls.__name__} declares no field {name!r}){hint}"
            )


class Document(BaseModel, metaclass=DocumentMeta):
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
    __doqu_fields__: ClassVar[dict[str, FieldExpr[Any]]]
    #: ``Meta.version`` (``None``: documents are not versioned).
    __doqu_version__: ClassVar[int | None] = None
    #: The upgrades by the version they start from.
    __doqu_migrations__: ClassVar[dict[int, Upgrade]] = {}

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
        cls.__doqu_fields__ = {}
        version = getattr(meta, "version", None)
        if version is None:
            version = getattr(cls, "__doqu_version__", None)  # a subclass keeps its base's
        elif type(version) is not int or version < 1:
            raise QueryError(f"{where}.version is a positive int, not {version!r}")
        cls.__doqu_version__ = version
        steps = dict(getattr(cls, "__doqu_migrations__", {}))
        for start, upgrade in dict(getattr(meta, "migrations", None) or {}).items():
            steps[_migration_start(cls, start)] = upgrade
        cls.__doqu_migrations__ = steps
        register_document(cls)

    @classmethod
    def migration(cls, from_version: int) -> Callable[[Upgrade], Upgrade]:
        """Register ``fn(stored_dict) -> stored_dict`` upgrading a document of version
        *from_version* to the next (see :doc:`changing-models`)::

            @Person.migration(from_version=1)
            def _split(doc: dict) -> dict:
                doc["full_name"] = doc.pop("name")
                return doc
        """
        start = _migration_start(cls, from_version)

        def register(fn: Upgrade) -> Upgrade:
            if not callable(fn):
                raise TypeError(f"a migration is a function, not {fn!r}")
            cls.__doqu_migrations__[start] = fn
            return fn

        return register

    @overload
    @classmethod
    def objects(cls, db: Storage) -> Query[Self]: ...
    @overload
    @classmethod
    def objects(cls, db: AsyncStorage) -> AsyncQuery[Self]: ...
    @classmethod
    def objects(cls, db: Storage | AsyncStorage) -> Query[Self] | AsyncQuery[Self]:
        """A query over this model's collection in *db* (same as ``db.query(cls)``);
        on an async storage (:func:`doqu.connect_async`) an async query."""
        return db.query(cls)

    # Lifecycle hooks: override them, or register functions with hook() (see
    # doqu._hooks for where each fires). The defaults call the registered functions.
    def before_save(self) -> None:
        """Called before this document is written (any write path); raise to refuse it."""
        _fire(self, "before_save")

    def after_save(self) -> None:
        """Called once this document's write is acknowledged."""
        _fire(self, "after_save")

    def before_delete(self) -> None:
        """Called before this (stored) document is deleted; raise to refuse it."""
        _fire(self, "before_delete")

    def after_delete(self) -> None:
        """Called once this document is deleted."""
        _fire(self, "after_delete")

    @classmethod
    def hook(cls, name: str) -> Callable[[Callable[[Any], object]], Callable[[Any], object]]:
        """Register ``fn(doc)`` to run as the hook *name* (``"before_save"``,
        ``"after_save"``, ``"before_delete"``, ``"after_delete"``) of this model and
        its subclasses, after any registered before it. A model that overrides
        the method runs them when it calls ``super()``'s."""
        if name not in HOOKS:
            raise ValueError(f"no hook {name!r}: one of {', '.join(HOOKS)}")

        def register(fn: Callable[[Any], object]) -> Callable[[Any], object]:
            if not callable(fn):
                raise TypeError(f"a hook is a function, not {fn!r}")
            registered(cls, name, fn)
            return fn

        return register

    def __doqu_operand__(self) -> str:
        """As a query operand (``where(author=frank)``): this document's pk."""
        pk = self.__dict__.get("pk")
        if pk is None:
            raise QueryError(
                f"a {type(self).__name__} that is not saved (its pk is None) as a query operand"
            )
        return pk  # type: ignore[no-any-return]

    @overload
    def save(self, db: Storage) -> str: ...
    @overload
    def save(self, db: AsyncStorage) -> Coroutine[Any, Any, str]: ...
    def save(self, db: Storage | AsyncStorage) -> str | Coroutine[Any, Any, str]:
        """Insert or replace this document in *db*; returns (and sets) its pk
        (``await doc.save(adb)`` on an async storage)."""
        return db.save(self)

    @overload
    def delete(self, db: Storage) -> None: ...
    @overload
    def delete(self, db: AsyncStorage) -> Coroutine[Any, Any, None]: ...
    def delete(self, db: Storage | AsyncStorage) -> Coroutine[Any, Any, None] | None:
        """Delete this document from *db* (``NotFound`` if it is not stored);
        ``await doc.delete(adb)`` on an async storage."""
        return db.delete(self)
