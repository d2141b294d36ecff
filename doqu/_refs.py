"""References between documents: ``Ref[Author]``, stored as the target's pk, loaded in batches.

A :class:`Ref` is a pydantic-compatible type: it validates a target instance or
a pk, is stored (and dumped, and shown in JSON schema) as the pk string, and
carries the loaded target once :func:`load_refs` has run over a result —
``Query.prefetch`` and the ``prefetch=`` of ``get``/``get_many`` — with one
fetch per target collection and depth, never one per document.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args, overload

from pydantic import BaseModel
from pydantic_core import core_schema

from ._errors import InvalidDocument, NotFound, NotLoaded, QueryError
from ._tree import Path, near_names, parse_path

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

    from ._async import AsyncStorage
    from ._document import Document
    from ._storage import Storage

__all__ = ["UNSAVED", "Missing", "Ref", "load_refs", "prefetch_paths", "register_document"]

T = TypeVar("T", bound="Document")
Missing = Literal["raise", "none"]

#: The text a reference to an unsaved document raises with when it is dumped.
UNSAVED = "is not saved yet (it has no pk)"
_NOT_LOADED: Any = object()


class Ref(Generic[T]):
    """A reference to a document of ``T``, stored as its pk.

    ``Ref[Author]`` accepts an ``Author`` (saved — or not yet, which is an error
    when the referring document is saved), a pk string or another ``Ref``.
    ``ref.pk`` is the target's pk; ``ref.doc`` the target once loaded (by
    ``prefetch``, or :meth:`fetch`), else :class:`~doqu.NotLoaded` is raised;
    ``None`` when it was prefetched with ``missing="none"`` and is gone.
    A ``Ref`` equals another ``Ref`` or a document of its target with the same pk.
    """

    __slots__ = ("_doc", "_pk", "_target")

    def __init__(self, target: type[T], pk: str | None, doc: T | None = _NOT_LOADED) -> None:
        self._target = target
        self._pk = pk
        self._doc = doc

    def _saved_pk(self) -> str | None:
        """The pk, read from the target instance once it is saved; ``None`` before."""
        if self._pk is None and self._doc is not _NOT_LOADED and self._doc is not None:
            self._pk = self._doc.pk
        return self._pk

    def _unsaved(self) -> str:
        name = self._target.__name__
        return f"the {name} referred to {UNSAVED}: save the {name} first"

    @property
    def pk(self) -> str:
        """The target's pk (a saved target's pk is read when the reference is)."""
        pk = self._saved_pk()
        if pk is None:
            raise InvalidDocument(self._unsaved())
        return pk

    @property
    def target(self) -> type[T]:
        """The ``Document`` class referred to."""
        return self._target

    @property
    def loaded(self) -> bool:
        """Whether :attr:`doc` holds the target (or ``None`` for a missing one)."""
        return self._doc is not _NOT_LOADED

    @property
    def doc(self) -> T | None:
        """The target document, once loaded; ``None`` if it was gone (``missing="none"``)."""
        if self._doc is _NOT_LOADED:
            raise NotLoaded(
                f"the {self._target.__name__} {self._pk!r} was not loaded:"
                " use prefetch(...) on the query, or ref.fetch(db)"
            )
        return self._doc

    @overload
    def fetch(self, db: Storage) -> T: ...
    @overload
    def fetch(self, db: AsyncStorage) -> Coroutine[Any, Any, T]: ...
    def fetch(self, db: Storage | AsyncStorage) -> T | Coroutine[Any, Any, T]:
        """Load the target from *db* (one ``get``; ``NotFound`` if it is gone) and keep it
        (``await ref.fetch(adb)`` on an async storage)."""
        got: Any = db.get(self._target, self.pk)
        if inspect.iscoroutine(got):
            return self._keep(got)
        self._doc = got
        return got  # type: ignore[no-any-return]

    async def _keep(self, pending: Coroutine[Any, Any, T]) -> T:
        doc = await pending
        self._doc = doc
        return doc

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ref):
            return _same(self._target, other._target) and self._pk == other._pk
        if isinstance(other, BaseModel):
            return isinstance(other, self._target) and other.__dict__.get("pk") == self._pk
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._target.__doqu_collection__.name, self._pk))

    def __repr__(self) -> str:
        state = "" if self._doc is _NOT_LOADED else " loaded"
        return f"Ref[{self._target.__name__}]({self._pk!r}{state})"

    def __doqu_operand__(self) -> str:
        """As a query operand: the pk (``where(author=ref)``)."""
        return self.pk

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        args = get_args(source)
        if len(args) != 1:
            raise TypeError("Ref needs the referred Document class: Ref[Author]")
        target = args[0]
        known: list[type[Any]] = []  # resolved on first use (a forward name may come later)

        def validate(value: Any) -> Ref[Any]:
            if not known:
                known.append(_resolved(target))
            model = known[0]
            if isinstance(value, Ref):
                if not _same(value._target, model):
                    raise ValueError(
                        f"a reference to {value._target.__name__}, not to {model.__name__}"
                    )
                return value
            if isinstance(value, str):
                return Ref(model, value)
            if isinstance(value, model):
                return Ref(model, value.__dict__.get("pk"), value)
            raise ValueError(
                f"a reference to {model.__name__} takes a {model.__name__} or its pk (a string),"
                f" not {type(value).__name__}"
            )

        def serialize(ref: Ref[Any]) -> str:
            pk = ref._saved_pk()
            if pk is None:  # pydantic wraps it; the encoder turns it into InvalidDocument
                raise ValueError(ref._unsaved())
            return pk

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(serialize),
        )


def _same(a: type[Any], b: type[Any]) -> bool:
    return a is b or a.__doqu_collection__.name == b.__doqu_collection__.name


#: Every ``Document`` class (registered as it is built), for references by name.
_DOCUMENTS: weakref.WeakSet[type[Any]] = weakref.WeakSet()


def register_document(cls: type[Any]) -> None:
    """Make *cls* findable by name for ``Ref["Name"]`` (``Document`` does this for each class)."""
    _DOCUMENTS.add(cls)


def _resolved(target: Any) -> type[Any]:
    if isinstance(target, type) and hasattr(target, "__doqu_collection__"):
        return target
    name = getattr(target, "__forward_arg__", target)
    if isinstance(name, str):
        found = [c for c in list(_DOCUMENTS) if name in (c.__name__, c.__qualname__)]
        if len(found) == 1:
            return found[0]
        if found:
            raise TypeError(f"Ref[{name!r}]: several Document classes are named so")
    raise TypeError(f"Ref[{target!r}]: not a Document class (or the name of one)")


# ------------------------------------------------------------------ prefetch
def prefetch_paths(
    model: type[BaseModel] | None, paths: Sequence[str], missing: Missing
) -> tuple[Path, ...]:
    """Parse ``prefetch("author", "author__publisher", "tags")`` paths, checked on *model*.

    Each path must walk declared fields (embedded models, references' targets)
    and end at a reference or a list of them; *missing* is ``"raise"`` or
    ``"none"``; else ``QueryError`` says what is wrong. The one check of
    ``Query.prefetch`` and of the ``prefetch=`` of ``get``/``get_many``.
    """
    if isinstance(paths, str):
        raise QueryError("prefetch= takes a list of reference paths, e.g. prefetch=['author']")
    if model is None:
        raise QueryError("prefetch needs a query of a model (its references are typed)")
    if missing not in ("raise", "none"):
        raise QueryError(f"prefetch(missing=...) is 'raise' or 'none', not {missing!r}")
    if not paths:
        raise QueryError("prefetch() needs at least one reference path, e.g. prefetch('author')")
    parsed = tuple(dict.fromkeys(parse_path(p, what="prefetch path") for p in paths))
    for path in parsed:
        _check_path(model, path)
    return parsed


def _check_path(model: type[BaseModel], path: Path) -> None:
    current: type[BaseModel] = model
    for depth, seg in enumerate(path):
        shown = "__".join(path)
        info = current.model_fields.get(seg)
        if info is None:
            near = near_names(seg, current.model_fields)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise QueryError(
                f"prefetch path {shown!r}: {current.__name__} declares no {seg!r}{hint}"
            )
        ref, inner = _reference_in(info.annotation)
        last = depth == len(path) - 1
        if last and ref is None:
            raise QueryError(
                f"prefetch path {shown!r}: {current.__name__}.{seg} is no reference (Ref[...])"
            )
        if not last:
            nxt = ref if ref is not None else inner
            if nxt is None:
                raise QueryError(
                    f"prefetch path {shown!r}: {current.__name__}.{seg} holds no model to go on in"
                )
            current = nxt


def _reference_in(annotation: Any) -> tuple[type[Any] | None, type[BaseModel] | None]:
    """The target of a reference in *annotation* (through Optional and lists), or the model."""
    origin = getattr(annotation, "__origin__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None, annotation
    if origin is Ref:
        return _resolved(get_args(annotation)[0]), None
    for arg in get_args(annotation):
        if arg is type(None):
            continue
        ref, model = _reference_in(arg)
        if ref is not None or model is not None:
            return ref, model
    return None, None


def load_refs(
    db: Storage,
    docs: Sequence[Any],
    paths: Sequence[Path],
    missing: Missing,
    loaded: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Load the targets of the references at *paths* of *docs*, in place.

    Breadth first: at each depth the references of every path are gathered, and
    each target collection is read once (one fetch of the distinct pks), so a
    result costs one read per collection and depth. A target loaded once is the
    same object wherever it is referred to in this result. A path reaching no
    reference (a typo) raises ``QueryError``. *loaded* (collection → pk →
    document) carries what earlier batches of the same result loaded: those
    targets are not read again, and stay the same objects. *paths* and
    *missing* are checked by :func:`prefetch_paths`.
    """
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for seg in path:
            node = node.setdefault(seg, {})
    if loaded is None:
        loaded = {}
    frontier: list[tuple[dict[str, Any], list[Any], Path]] = [(tree, list(docs), ())]
    while frontier:
        refs: list[tuple[Ref[Any], dict[str, Any], Path]] = []
        embedded: list[tuple[dict[str, Any], list[Any], Path]] = []
        for node, objects, where in frontier:
            for seg, child in node.items():
                values = _values(objects, seg)
                found = [v for v in values if isinstance(v, Ref)]
                models = [v for v in values if isinstance(v, BaseModel)]
                if not found and not models and objects and not _declares(objects, seg):
                    raise QueryError(
                        f"prefetch path {'__'.join((*where, seg))!r}: no reference there"
                    )
                refs.extend((r, child, (*where, seg)) for r in found)
                if models:
                    embedded.append((child, models, (*where, seg)))
        _fetch(db, [r for r, _, _ in refs], loaded, missing)
        frontier = embedded
        by_node: dict[int, tuple[dict[str, Any], list[Any], Path]] = {}
        seen: set[tuple[int, int]] = set()
        for ref, child, where in refs:
            doc = ref._doc
            if child and doc is not None and (id(child), id(doc)) not in seen:
                seen.add((id(child), id(doc)))
                by_node.setdefault(id(child), (child, [], where))[1].append(doc)
        frontier.extend(by_node.values())


def _values(objects: Iterable[Any], seg: str) -> list[Any]:
    out: list[Any] = []
    for obj in objects:
        value = getattr(obj, seg, None) if isinstance(obj, BaseModel) else None
        if isinstance(value, (list, tuple)):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


def _declares(objects: Sequence[Any], seg: str) -> bool:
    return any(isinstance(o, BaseModel) and seg in type(o).model_fields for o in objects)


def _fetch(
    db: Storage, refs: Sequence[Ref[Any]], loaded: dict[str, dict[str, Any]], missing: Missing
) -> None:
    by_target: dict[str, tuple[type[Any], list[Ref[Any]]]] = {}
    for ref in refs:
        name = ref._target.__doqu_collection__.name
        by_target.setdefault(name, (ref._target, []))[1].append(ref)
    for name, (target, group) in by_target.items():
        known = loaded.setdefault(name, {})
        wanted = list(dict.fromkeys(r.pk for r in group if r.pk not in known))
        if wanted:
            coll = db.collection(target)
            coll.check_open()
            stored = coll.fetch_stored(wanted)
            gone = [pk for pk in wanted if pk not in stored]
            if gone and missing == "raise":
                raise NotFound(name, gone)
            for pk in wanted:
                known[pk] = coll.load(pk, stored[pk]) if pk in stored else None
        for ref in group:
            ref._doc = known[ref.pk]
