"""Typed field expressions: ``Person.age >= 30``, ``Person.address.city``, ``Person.age.inc(1)``.

A :class:`Field` is a path into a model's stored form. Its operators and
methods build exactly the nodes that keyword lookups build (``Person.age >= 30``
is ``Q(age__gte=30)``), its ``desc()`` a sort key and its ``inc()``/``push()``…
the operators of ``Query.update``: one tree, one semantics, nothing new for
backends. The type parameter is the field's declared type; the ``self``
annotations let a type checker refuse a string lookup on an ``int``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, overload

from ._errors import QueryError
from ._schema import ANYTHING, Shape, shape_at
from ._tree import Path, Q, UpdateOp, cond, parse_path, update_op

if TYPE_CHECKING:
    import datetime
    import uuid
    from decimal import Decimal
    from enum import Enum

    from pydantic import BaseModel

__all__ = ["Field", "Sort", "field"]

T = TypeVar("T")
#: Fields that hold strings (``None`` allowed, for optional ones).
_S = TypeVar("_S", bound="str | None")
#: Fields that hold lists, tuples or sets.
_L = TypeVar(
    "_L", bound="list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any] | None"
)  # fmt: skip
#: Fields that hold numbers.
_N = TypeVar("_N", bound="int | float | Decimal | None")
#: Fields that hold values an order compares: numbers, strings and what is stored as one.
_O = TypeVar(
    "_O",
    bound="int | float | str | Decimal | datetime.date | datetime.time | datetime.timedelta"
    " | uuid.UUID | Enum | None",
)


@dataclass(frozen=True)
class Sort:
    """One ``order_by`` key: a field path and its direction (``Person.age.desc()``)."""

    path: Path
    descending: bool = False


class Field(Generic[T]):
    """A field of a model's stored form, usable in ``where``, ``order_by``, ``values``, ``update``.

    ``Person.age`` and ``Person.address.city`` are fields (any depth; through
    ``Optional`` models and lists of models); a sub-field whose name is also a
    method here is reached by ``Person.address["size"]``. Comparisons and lookup
    methods return :class:`~doqu.Q` objects, combined with ``&``, ``|``, ``~``.
    """

    __slots__ = ("_model", "_path", "_shape")
    __hash__ = None  # type: ignore[assignment]  # == builds a condition

    def __init__(self, model: type[BaseModel], path: Path, shape: Shape = ANYTHING) -> None:
        self._model = model
        self._path = path
        self._shape = shape

    @property
    def path(self) -> str:
        """The keyword spelling of this field (``"address__city"``)."""
        return "__".join(self._path)

    def __repr__(self) -> str:
        return f"<Field {_described(self._model, self._path)}: {self._shape.label}>"

    def __bool__(self) -> NoReturn:
        raise TypeError(
            f"{self!r} has no truth value: compare it (Person.age > 3) to make a condition"
        )

    # ------------------------------------------------------------- sub-fields
    def __getattr__(self, name: str) -> Field[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except QueryError as exc:
            raise AttributeError(str(exc)) from None

    def __getitem__(self, name: str) -> Field[Any]:
        path = self._path + parse_path(name)
        if self._shape.free:
            return Field(self._model, path)
        return model_field(self._model, path)

    # ------------------------------------------------------------- conditions
    def _q(self, lookup: str, operand: Any) -> Q:
        return Q._of(cond(self._path, lookup, operand))

    # On a reference field (``Field[Ref[Author]]``) the doqu.mypy plugin widens the
    # operands of ==, !=, in_ and nin to the target, a Ref or a pk: Book.author == frank.
    def __eq__(self, other: T) -> Q:  # type: ignore[override]
        return self._q("exact", other)

    def __ne__(self, other: T) -> Q:  # type: ignore[override]
        return self._q("ne", other)

    def __lt__(self: Field[_O], other: _O) -> Q:
        return self._q("lt", other)

    def __le__(self: Field[_O], other: _O) -> Q:
        return self._q("lte", other)

    def __gt__(self: Field[_O], other: _O) -> Q:
        return self._q("gt", other)

    def __ge__(self: Field[_O], other: _O) -> Q:
        return self._q("gte", other)

    def between(self: Field[_O], low: _O, high: _O) -> Q:
        """``low <= value <= high`` (two numbers or two strings)."""
        return self._q("between", (low, high))

    def in_(self, values: Iterable[T]) -> Q:
        """Equal to one of *values* (``in``)."""
        return self._q("in", values)

    def nin(self, values: Iterable[T]) -> Q:
        """Equal to none of *values*; missing fields match."""
        return self._q("nin", values)

    def exists(self, present: bool = True) -> Q:
        """Present (null counts), or absent with ``exists(False)``."""
        return self._q("exists", present)

    def isnull(self, null: bool = True) -> Q:
        """Absent or null, or present and not null with ``isnull(False)``."""
        return self._q("isnull", null)

    @overload
    def contains(self: Field[_S], value: str) -> Q: ...
    @overload
    def contains(self: Field[_L], value: Any) -> Q: ...
    def contains(self, value: Any) -> Q:
        """A list holding an element equal to *value*, or a string holding the substring."""
        return self._q("contains", value)

    @overload
    def icontains(self: Field[_S], value: str) -> Q: ...
    @overload
    def icontains(self: Field[_L], value: str) -> Q: ...
    def icontains(self, value: str) -> Q:
        """``contains``, folding ASCII letters A-Z."""
        return self._q("icontains", value)

    def startswith(self: Field[_S], prefix: str) -> Q:
        """A string starting with *prefix*."""
        return self._q("startswith", prefix)

    def istartswith(self: Field[_S], prefix: str) -> Q:
        """``startswith``, folding ASCII letters A-Z."""
        return self._q("istartswith", prefix)

    def endswith(self: Field[_S], suffix: str) -> Q:
        """A string ending with *suffix*."""
        return self._q("endswith", suffix)

    def iendswith(self: Field[_S], suffix: str) -> Q:
        """``endswith``, folding ASCII letters A-Z."""
        return self._q("iendswith", suffix)

    def matches(self: Field[_S], pattern: str) -> Q:
        """A string where the regular expression is found (the portable subset)."""
        return self._q("matches", pattern)

    def size(self: Field[_L], length: int) -> Q:
        """A list of exactly *length* elements."""
        return self._q("size", length)

    def all(self: Field[_L], values: Iterable[Any]) -> Q:
        """A list holding every one of *values*."""
        return self._q("all", values)

    def any(self: Field[_L], values: Iterable[Any]) -> Q:
        """A list holding at least one of *values*."""
        return self._q("any", values)

    # ------------------------------------------------------------------ order
    def asc(self) -> Sort:
        """This field as an ascending ``order_by`` key (what the bare field means too)."""
        return Sort(self._path)

    def desc(self) -> Sort:
        """This field as a descending ``order_by`` key (also ``-Person.age``)."""
        return Sort(self._path, True)

    def __neg__(self) -> Sort:
        return Sort(self._path, True)

    def __pos__(self) -> Sort:
        return Sort(self._path)

    # ----------------------------------------------------------------- update
    def set(self, value: T) -> UpdateOp:
        """``update()``: set this field to *value*."""
        return update_op(self._path, "set", value)

    def unset(self) -> UpdateOp:
        """``update()``: remove this field (a declared one goes back to its default)."""
        return update_op(self._path, "unset", True)

    def inc(self: Field[_N], by: int | float = 1) -> UpdateOp:
        """``update()``: add *by* to this number."""
        return update_op(self._path, "inc", by)

    def push(self: Field[_L], value: Any) -> UpdateOp:
        """``update()``: append *value* to this list."""
        return update_op(self._path, "push", value)

    def pull(self: Field[_L], value: Any) -> UpdateOp:
        """``update()``: remove every element equal to *value* from this list."""
        return update_op(self._path, "pull", value)

    def add_to_set(self: Field[_L], value: Any) -> UpdateOp:
        """``update()``: append *value* unless an equal element is there."""
        return update_op(self._path, "add_to_set", value)


def model_field(model: type[BaseModel], path: Path) -> Field[Any]:
    """The field at *path* of *model*, checked against its declared types."""
    return Field(model, path, shape_at(model, path, what=_described(model, path)))


def _described(model: type[BaseModel], path: Path) -> str:
    return f"{model.__name__}.{'.'.join(path)}"


@overload
def field(model: type[BaseModel], path: str, /) -> Field[Any]: ...
@overload
def field(expr: Field[T], /) -> Field[T]: ...
@overload
def field(expr: T, /) -> Field[T]: ...
def field(target: Any, path: str | None = None, /) -> Field[Any]:
    """A field expression, by name or typed for checkers that do not know doqu.

    ``field(Person, "json")`` reaches a field whose name a method or pydantic
    attribute hides on the class (``Person.json`` is pydantic's method), or a
    path of extra fields (``field(Person, "meta__score")``). ``field(Person.age)``
    returns the expression as it is, typed ``Field[int]`` for checkers without
    the ``doqu.mypy`` plugin (pyright), which read ``Person.age`` as an ``int``.
    """
    if path is not None:
        from pydantic import BaseModel

        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            raise TypeError(f"field(model, path) takes a model class, not {target!r}")
        return model_field(target, parse_path(path))
    if not isinstance(target, Field):
        raise TypeError(
            f"field() takes a field expression such as Person.age, not {target!r}"
            " (an instance's attribute is its plain value)"
        )
    return target
