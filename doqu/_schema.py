"""What a model's declared types allow at a path: the checks of model-bound queries.

A model's annotations say which JSON kinds (null, bool, number, string, array,
object) its stored form can hold at each path, and which sub-fields an embedded
model declares. A condition, sort key, ``values()`` field or update that those
types make impossible is a mistake — a typo, almost always — and is refused here,
once, with the field, its declared type and the nearest valid names. Whatever the
annotations do not pin down (``Any``, extras the model allows, custom types) is
left unchecked: the check never refuses a query that could match.
"""

from __future__ import annotations

import collections.abc as abc
import datetime
import enum
import functools
import pathlib
import types
import uuid
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel, PlainSerializer, PlainValidator, WrapSerializer, WrapValidator
from pydantic.fields import FieldInfo

from ._errors import QueryError
from ._refs import Ref
from ._tree import (
    LOOKUPS,
    UPDATE_OPERATORS,
    And,
    Cond,
    Node,
    Not,
    Or,
    Path,
    UpdateOp,
    near_names,
)

__all__ = [
    "ANYTHING",
    "Fixed",
    "Shape",
    "check_node",
    "check_path",
    "check_updates",
    "kind_of",
    "near_names",
    "shape_at",
]

NULL, BOOL, NUMBER, STRING, ARRAY, OBJECT = "null", "bool", "number", "string", "array", "object"
_ALL_KINDS: Final = frozenset({NULL, BOOL, NUMBER, STRING, ARRAY, OBJECT})
_KIND_NAMES: Final = {
    NULL: "null", BOOL: "a bool", NUMBER: "a number", STRING: "a string",
    ARRAY: "a list", OBJECT: "an object",
}  # fmt: skip
#: Types whose stored form (``model_dump(mode="json")``) is always a string.
_STRING_TYPES: Final = (
    str, datetime.date, datetime.time, datetime.timedelta, uuid.UUID, bytes, pathlib.PurePath,
    Decimal,
)  # fmt: skip
#: Metadata that makes a field's stored form whatever a function returns.
_REWRITES: Final = (PlainSerializer, WrapSerializer, PlainValidator, WrapValidator)
_ARRAY_ORIGINS: Final = (
    list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet,
    abc.Collection, abc.Iterable,
)  # fmt: skip
_OBJECT_ORIGINS: Final = (dict, abc.Mapping, abc.MutableMapping)


@dataclass(frozen=True)
class Shape:
    """What the declared type at one path allows.

    ``kinds`` are the JSON kinds it can hold; ``models`` the pydantic models of
    its objects; ``items``/``values`` the annotations of list elements and of
    dict values. ``free`` is an undeclared or ``Any`` type: nothing is checked.
    """

    label: str
    kinds: frozenset[str] = _ALL_KINDS
    models: tuple[type[BaseModel], ...] = ()
    items: tuple[Any, ...] = ()
    values: tuple[Any, ...] = ()
    free: bool = False


ANYTHING: Final = Shape("Any", free=True)
_PK: Final = Shape("str", frozenset({STRING}))
_STRING_LOOKUPS: Final = frozenset(
    {"startswith", "endswith", "istartswith", "iendswith", "matches"}
)


def kind_of(value: Any) -> str:
    """The JSON kind of a value already in JSON form."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return ARRAY if isinstance(value, list) else OBJECT


def _label(annotation: Any) -> str:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    if annotation is None or annotation is type(None):
        return "None"
    return repr(annotation).replace("typing.", "").replace("NoneType", "None")


def _merged(label: str, shapes: Iterable[Shape]) -> Shape:
    parts = list(shapes)
    if any(s.free for s in parts):
        return Shape(label, free=True)
    return Shape(
        label,
        frozenset().union(*(s.kinds for s in parts)),
        tuple(dict.fromkeys(m for s in parts for m in s.models)),
        tuple(i for s in parts for i in s.items),
        tuple(v for s in parts for v in s.values),
    )


def _enum_kinds(cls: type[enum.Enum]) -> frozenset[str]:
    kinds = {kind_of(m.value) if isinstance(m.value, (str, int, float)) else None for m in cls}
    return _ALL_KINDS if None in kinds else frozenset(k for k in kinds if k)


@functools.lru_cache(maxsize=4096)
def _shape_of(annotation: Any) -> Shape:
    label = _label(annotation)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        if any(isinstance(m, _REWRITES) for m in args[1:]):
            return Shape(label, free=True)
        return _merged(label, [_shape_of(args[0])])
    if origin is Union or origin is types.UnionType:
        return _merged(label, map(_shape_of, args))
    if origin is Literal:
        if all(isinstance(a, (str, int, float, bool, type(None))) for a in args):
            return Shape(label, frozenset(kind_of(a) for a in args))
        return Shape(label, free=True)
    if annotation is None or annotation is type(None):
        return Shape(label, frozenset({NULL}))
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _merged(label, [_shape_of(supertype)])
    cls = origin if isinstance(origin, type) else annotation
    if not isinstance(cls, type):
        return Shape(label, free=True)
    if issubclass(cls, BaseModel):
        return Shape(label, frozenset({OBJECT}), models=(cls,))
    if issubclass(cls, Ref):
        return Shape(label, frozenset({STRING}))  # stored as the target's pk
    if issubclass(cls, enum.Enum):
        return Shape(label, _enum_kinds(cls))
    if issubclass(cls, bool):
        return Shape(label, frozenset({BOOL}))
    if issubclass(cls, (int, float)):
        return Shape(label, frozenset({NUMBER}))
    if issubclass(cls, _STRING_TYPES):
        return Shape(label, frozenset({STRING}))
    if cls in _ARRAY_ORIGINS or issubclass(cls, (list, tuple, set, frozenset)):
        items = tuple(a for a in args if a is not Ellipsis) or (Any,)
        return Shape(label, frozenset({ARRAY}), items=items)
    if cls in _OBJECT_ORIGINS or issubclass(cls, dict):
        values = args[1:2] or (Any,)
        return Shape(label, frozenset({OBJECT}), values=values)
    return Shape(label, free=True)  # a custom type: its stored form is not known here


def _shape(annotation: Any) -> Shape:
    try:
        return _shape_of(annotation)
    except TypeError:  # an unhashable annotation (odd metadata): not cached
        return _shape_of.__wrapped__(annotation)


def _allows_extra(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "allow"


def _names_field(fields: tuple[str, ...], name: str) -> bool:
    return name in fields or "*" in fields


def _field_shape(model: type[BaseModel], name: str, info: FieldInfo) -> Shape:
    """The shape of a declared field, or free when a serializer decides its stored form."""
    decorators = model.__pydantic_decorators__
    if (
        decorators.model_serializers
        or any(_names_field(d.info.fields, name) for d in decorators.field_serializers.values())
        or any(
            _names_field(d.info.fields, name) and d.info.mode in ("plain", "wrap")
            for d in decorators.field_validators.values()
        )
        or any(isinstance(m, _REWRITES) for m in info.metadata)
    ):
        return ANYTHING
    return _shape(info.annotation)


def _suggest(shown: list[str]) -> str:
    if not shown:
        return ""
    return "; did you mean " + " or ".join(f"{s!r}" for s in shown) + "?"


def _child(shape: Shape, seg: str) -> Shape | None:
    """The shape of sub-field *seg*, or ``None`` when the declared types allow none."""
    if shape.free:
        return ANYTHING
    found: list[Shape] = []
    for model in shape.models:
        info = model.model_fields.get(seg)
        if model.__pydantic_decorators__.model_serializers:
            return ANYTHING
        if info is not None and info.exclude is not True:
            found.append(_field_shape(model, seg, info))
        elif _allows_extra(model):
            return ANYTHING
    found.extend(_shape(v) for v in shape.values)
    for item in shape.items:  # a path through a list reaches into its elements
        inner = _child(_shape(item), seg)
        if inner is not None:
            found.append(inner)
    if not found:
        return None
    return found[0] if len(found) == 1 else _merged(" | ".join(s.label for s in found), found)


def _models(shape: Shape) -> list[type[BaseModel]]:
    models = list(shape.models)
    for item in shape.items:
        models.extend(_models(_shape(item)))
    return models


def _names(shape: Shape) -> list[str]:
    names = [n for m in shape.models for n, f in m.model_fields.items() if f.exclude is not True]
    for item in shape.items:
        names.extend(_names(_shape(item)))
    return names


def shape_at(model: type[BaseModel], path: Path, *, what: str, tails: Iterable[str] = ()) -> Shape:
    """The shape of the declared type at *path* in *model*'s stored form.

    Raises :class:`~doqu.QueryError` naming the field, its declared type and the
    nearest valid names when the path cannot exist. *tails* are the names that
    may end a keyword here (lookups, update operators): a last segment close to
    one of them is suggested as that, since a typo there reads as a sub-field.
    """
    if path == ("pk",):
        return _PK
    shape = Shape(model.__name__, frozenset({OBJECT}), models=(model,))
    for depth, seg in enumerate(path):
        inner = _child(shape, seg)
        if inner is not None:
            shape = inner
            continue
        head = "__".join(path[:depth])
        where = f"{head} " if head else ""
        models = _models(shape)
        if models or OBJECT in shape.kinds:
            owners = " | ".join(m.__name__ for m in models) or shape.label
            near = [
                "__".join((*path[:depth], n, *path[depth + 1 :]))
                for n in near_names(seg, _names(shape) + (["pk"] if depth == 0 else []))
            ]
            raise QueryError(f"{what}: {owners} declares no field {seg!r}{_suggest(near)}")
        near = (
            ["__".join((*path[:depth], n)) for n in near_names(seg, tails)]
            if depth == len(path) - 1
            else []
        )
        raise QueryError(
            f"{what}: {where}is declared {shape.label}, which has no sub-field {seg!r}"
            f"{_suggest(near)}"
        )
    return shape


def _refuse(what: str, field: str, shape: Shape, why: str, hint: str = "") -> QueryError:
    return QueryError(f"{what}: {field} is declared {shape.label}, {why}{hint}")


def _check_kinds(what: str, field: str, shape: Shape, operands: Iterable[Any], hint: str) -> None:
    for operand in operands:
        kind = kind_of(operand)
        if kind not in shape.kinds:
            raise _refuse(
                what, field, shape, f"which never holds {_KIND_NAMES[kind]} ({operand!r})", hint
            )


def _item_shape(shape: Shape) -> Shape:
    return _merged(" | ".join(map(_label, shape.items)), map(_shape, shape.items))


def _check_cond(model: type[BaseModel], cond: Cond) -> None:
    field = "__".join(cond.path)
    what = field if cond.lookup == "exact" else f"{field}__{cond.lookup}"
    shape = shape_at(model, cond.path, what=what, tails=LOOKUPS)
    if shape.free:
        return
    lookup, operand = cond.lookup, cond.operand
    if lookup in ("exact", "ne"):
        hint = f"; did you mean {field}__contains?" if ARRAY in shape.kinds else ""
        _check_kinds(what, field, shape, [operand], hint)
    elif lookup in ("in", "nin"):
        _check_kinds(what, field, shape, operand, "")
    elif lookup in ("gt", "gte", "lt", "lte"):
        _check_kinds(what, field, shape, [operand], "")
    elif lookup == "between":
        _check_kinds(what, field, shape, operand, "")
    elif lookup in ("contains", "icontains"):
        if ARRAY in shape.kinds:
            items = _item_shape(shape)
            if not items.free and lookup == "contains":
                _check_kinds(what, f"each element of {field}", items, [operand], "")
        elif STRING in shape.kinds:
            _check_kinds(what, field, shape, [operand], "")
        else:
            raise _refuse(what, field, shape, f"neither a list nor a string: no {lookup}")
    elif lookup in ("size", "all", "any"):
        if ARRAY not in shape.kinds:
            raise _refuse(what, field, shape, f"not a list: {lookup} is a list lookup")
        items = _item_shape(shape)
        if lookup != "size" and not items.free:
            _check_kinds(what, f"each element of {field}", items, operand, "")
    elif STRING not in shape.kinds and lookup in _STRING_LOOKUPS:
        raise _refuse(what, field, shape, f"not a string: {lookup} is a string lookup")


def check_node(model: type[BaseModel], node: Node) -> None:
    """Refuse a condition of *node* that *model*'s declared types make impossible."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Cond):
            _check_cond(model, n)
        elif isinstance(n, Not):
            stack.append(n.child)
        else:
            assert isinstance(n, (And, Or))
            stack.extend(n.children)


def check_path(model: type[BaseModel], path: Path, *, what: str) -> Shape:
    """Refuse a path (a sort key, a ``values()`` field) *model* makes impossible."""
    return shape_at(model, path, what=what)


def check_updates(model: type[BaseModel], ops: Iterable[UpdateOp]) -> None:
    """Refuse update paths *model* makes impossible, and operators its types cannot take.

    Operands of the right container are left to the validation of each result
    (``pydantic.ValidationError``, as documented for ``update()``).
    """
    for op in ops:
        field = "__".join(op.path)
        what = f"update {field}__{op.op}"
        shape = shape_at(model, op.path, what=what, tails=UPDATE_OPERATORS)
        if shape.free:
            continue
        if op.op == "inc" and NUMBER not in shape.kinds:
            raise _refuse(what, field, shape, "not a number: inc adds to numbers")
        if op.op in ("push", "pull", "add_to_set") and ARRAY not in shape.kinds:
            raise _refuse(what, field, shape, f"not a list: {op.op} changes lists")


#: Kinds a backend may compare without a kind test when a declared type fixes them.
FIXED_KINDS: Final = frozenset({NUMBER, STRING})


@dataclass(frozen=True)
class Fixed:
    """What a model's declared type fixes at one path (see :func:`fixed_kinds`).

    ``kind``: ``"number"`` or ``"string"``, the only kind a stored value there
    has besides null; ``nullable``: the type allows ``None`` (stored as null);
    ``present``: every stored document has the path (it is no sub-field of an
    ``Optional`` model), so it is never missing.
    """

    kind: str
    nullable: bool
    present: bool


def fixed_kinds(model: type[Any]) -> Mapping[Path, Fixed]:
    """The paths whose declared type fixes one kind: number or string (or null/missing).

    Every write of *model* is validated, so at such a path a stored document
    of the model holds that kind, null, or nothing: a backend may compare the
    bare value (the expression an index is built on) instead of testing its
    kind first. Paths go through embedded models (``Optional`` ones too), never
    into lists or dicts; fields whose stored form a serializer decides are left out.
    """
    return _fixed_kinds(cast(Hashable, model))  # a class is hashable; mypy doubts type[Any]


@functools.lru_cache(maxsize=256)
def _fixed_kinds(known: Hashable) -> Mapping[Path, Fixed]:
    model = cast("type[BaseModel]", known)
    out: dict[Path, Fixed] = {}

    def walk(
        m: type[BaseModel], prefix: Path, present: bool, seen: frozenset[type[BaseModel]]
    ) -> None:
        if m.__pydantic_decorators__.model_serializers or len(prefix) >= 8:
            return
        for name, info in m.model_fields.items():
            if info.exclude is True or (not prefix and name == "pk"):
                continue
            shape = _field_shape(m, name, info)
            if shape.free:
                continue
            path = (*prefix, name)
            kinds = shape.kinds - {NULL}
            nullable = NULL in shape.kinds
            if len(kinds) == 1 and next(iter(kinds)) in FIXED_KINDS:
                out[path] = Fixed(next(iter(kinds)), nullable, present)
            elif kinds == {OBJECT} and len(shape.models) == 1 and not shape.values:
                inner = shape.models[0]
                if inner not in seen:
                    walk(inner, path, present and not nullable, seen | {inner})

    walk(model, (), True, frozenset({model}))
    return types.MappingProxyType(out)
