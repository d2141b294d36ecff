"""Hypothesis strategies: random JSON documents, query trees, orders and updates.

The alphabet is small on purpose, so random queries hit random documents often:
values mix kinds (null, bools, ints, floats, strings with case and non-ASCII
twins, lists, nested objects) and fields go missing at random.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from .._document import Document
from .._errors import QueryError
from .._expr import Field, field
from .._tree import And, Cond, Node, Not, Or, Path, Q, UpdateOp, make_cond, parse_update

__all__ = [
    "FIELDS",
    "Fields",
    "Typed",
    "typed_conditions",
    "typed_documents",
    "typed_orders",
    "typed_trees",
    "as_expression",
    "as_keyword",
    "build",
    "condition_specs",
    "documents",
    "orders",
    "paths",
    "query_trees",
    "scalars",
    "updates",
]

FIELDS = ("a", "b", "s", "n", "tags", "o")
SUBFIELDS = ("x", "y")
PATHS: tuple[str, ...] = (*FIELDS, "o.x", "o.y", "nope", "pk")

TEXT = ["", "a", "A", "ab", "aB", "Ab", "b", "ba", "é", "É", "a%", "a_b", "x'y", "1", "a\nb", "Z"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([-2.5, 0.5, 1.0, 2.0, 1e15]),
    st.sampled_from(TEXT),
)
lists = st.lists(scalars, max_size=3)
nested = st.fixed_dictionaries({}, optional={k: st.one_of(scalars, lists) for k in SUBFIELDS})
values = st.one_of(scalars, scalars, lists, nested)


@st.composite
def documents(draw: st.DrawFn, min_size: int = 0, max_size: int = 12) -> list[dict[str, Any]]:
    """A list of plain documents, each with a unique ``"pk"``."""
    n = draw(st.integers(min_size, max_size))
    docs = []
    for i in range(n):
        doc = draw(st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, values)))
        doc["pk"] = f"p{i:02d}"
        docs.append(doc)
    return docs


def paths() -> st.SearchStrategy[str]:
    """Field paths, including nested, missing and ``pk``."""
    return st.sampled_from(PATHS)


def _operand(lookup: str) -> st.SearchStrategy[Any]:
    if lookup in ("gt", "gte", "lt", "lte"):
        return st.one_of(
            st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]), st.sampled_from(TEXT)
        )
    if lookup == "between":
        nums = st.tuples(st.integers(-3, 3), st.integers(-3, 3))
        return st.one_of(nums, st.tuples(st.sampled_from(TEXT), st.sampled_from(TEXT)))
    if lookup in ("in", "nin"):
        return st.lists(st.one_of(scalars, lists), max_size=3)
    if lookup in ("all", "any"):
        return st.lists(scalars, min_size=1, max_size=3)
    if lookup in ("exists", "isnull"):
        return st.booleans()
    if lookup in ("icontains", "startswith", "endswith", "istartswith", "iendswith"):
        return st.sampled_from(TEXT)
    if lookup == "matches":
        return st.sampled_from(
            ["a", "^a", "b$", "^$", "a.b", "[aé]", "^(a|b)+$", "A", "a*b?", "\\.", ".", "[^a]"]
        )
    if lookup == "size":
        return st.integers(0, 3)
    return values  # exact, ne, contains


LOOKUP_NAMES = (
    "exact", "ne", "gt", "gte", "lt", "lte", "between", "in", "nin", "exists", "isnull",
    "contains", "icontains", "startswith", "endswith", "istartswith", "iendswith",
    "matches", "size", "all", "any",
)  # fmt: skip


@st.composite
def conditions(draw: st.DrawFn) -> Cond:
    """One checked condition on a random path."""
    path = draw(paths())
    lookup = draw(st.sampled_from(LOOKUP_NAMES))
    return make_cond(f"{path}__{lookup}", draw(_operand(lookup)))


class Fields(Document):
    """The strategies' fields, declared ``Any``: field expressions for every drawn path.

    ``Any`` allows every kind, so the model-bound checks refuse nothing drawn.
    """

    a: Any = None
    b: Any = None
    s: Any = None
    n: Any = None
    tags: Any = None
    o: Any = None

    class Meta:
        collection = "diff"


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "exact": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge,
    "lt": operator.lt, "lte": operator.le,
}  # fmt: skip


def as_expression(path: str, lookup: str, operand: Any) -> Q:
    """The condition written as a field expression: ``Fields.o.x > 1``, ``Fields.a.in_([..])``."""
    head, *rest = path.split(".")
    f: Field[Any] = getattr(Fields, head) if head in Fields.model_fields else field(Fields, head)
    for seg in rest:
        f = getattr(f, seg)
    if lookup in _COMPARE:
        return _COMPARE[lookup](f, operand)  # type: ignore[no-any-return]
    if lookup == "between":
        return f.between(*operand)
    return getattr(f, "in_" if lookup == "in" else lookup)(operand)  # type: ignore[no-any-return]


def as_keyword(path: str, lookup: str, operand: Any) -> Q:
    """The condition written as a keyword lookup: ``Q(o__x__gt=1)``."""
    return Q(**{f"{path}__{lookup}": operand})


#: A drawn condition ``(path, lookup, operand)``, or ``("and"|"or", [specs])``, ``("not", spec)``.
Spec = tuple[Any, ...]


def condition_specs(max_leaves: int = 6) -> st.SearchStrategy[Spec]:
    """Random And/Or/Not trees of conditions not built yet: :func:`build` makes them."""
    leaves = st.tuples(paths(), st.sampled_from(LOOKUP_NAMES)).flatmap(
        lambda pl: st.tuples(st.just(pl[0]), st.just(pl[1]), _operand(pl[1]))
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=1, max_size=3)),
            st.tuples(st.just("not"), children),
        ),
        max_leaves=max_leaves,
    )


def build(spec: Spec, leaf: Callable[[str, str, Any], Q]) -> Q:
    """The ``Q`` of a drawn spec, each condition written by *leaf* (either style)."""
    if spec[0] == "not":
        return ~build(spec[1], leaf)
    if spec[0] in ("and", "or"):
        parts = [build(s, leaf) for s in spec[1]]
        return functools.reduce(operator.and_ if spec[0] == "and" else operator.or_, parts)
    return leaf(*spec)


def query_trees(
    max_leaves: int = 6, leaves: st.SearchStrategy[Cond] | None = None
) -> st.SearchStrategy[Node]:
    """Random And/Or/Not trees over random conditions (*leaves*: :func:`conditions`)."""
    return st.recursive(
        conditions() if leaves is None else leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
            st.lists(children, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
            children.map(Not),
        ),
        max_leaves=max_leaves,
    )


@st.composite
def orders(
    draw: st.DrawFn, fields: tuple[str, ...] = ("a", "b", "s", "n", "o.x", "nope")
) -> tuple[tuple[Path, bool], ...]:
    """One or two sort keys of *fields*, always ending with ``pk`` so the order is total."""
    keys = draw(st.lists(st.sampled_from(fields), max_size=2))
    out = [(tuple(k.split(".")), draw(st.booleans())) for k in keys]
    out.append((("pk",), draw(st.booleans())))
    return tuple(out)


@st.composite
def updates(draw: st.DrawFn) -> tuple[UpdateOp, ...]:
    """A valid set of update operators on non-overlapping paths."""
    chosen = draw(
        st.lists(
            st.sampled_from(("a", "b", "s", "n", "tags", "o.x")),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    changes: dict[str, Any] = {}
    for path in chosen:
        op = draw(st.sampled_from(("set", "unset", "inc", "push", "pull", "add_to_set")))
        key = f"{path.replace('.', '__')}__{op}"
        if op == "unset":
            changes[key] = True
        elif op == "inc":
            changes[key] = draw(st.one_of(st.integers(-2, 2), st.just(0.5)))
        else:
            changes[key] = draw(values if op == "set" else scalars)
    try:
        return parse_update(changes)
    except QueryError:  # pragma: no cover - the choices above are valid
        raise


# ------------------------------------------------------------- documents of a model
class TypedSub(BaseModel):
    """An embedded model of :class:`Typed` (optional there: its paths may be missing)."""

    x: int | None = None
    y: str = ""


class Typed(Document):
    """A model whose declared types fix each field's kind: a backend may compare bare values.

    Its indexes cover some of those paths, so the typed forms meet the indexes too.
    """

    i: int = 0
    f: float | None = None
    s: str = ""
    t: str | None = None
    e: TypedSub | None = None

    class Meta:
        collection = "diff_typed"
        indexes = ["i", "s", "e.x", ("t", "i")]  # noqa: RUF012 - read once


TYPED_NUMBERS: tuple[str, ...] = ("i", "f", "e.x")
TYPED_STRINGS: tuple[str, ...] = ("s", "t", "e.y")
#: The paths whose declared type allows None (an operand None is refused elsewhere).
TYPED_NULLABLE: frozenset[str] = frozenset({"f", "e.x", "t"})
_NUMS = st.one_of(st.integers(-3, 3), st.sampled_from([-2.5, 0.5, 1.0, 2.0, 1e15]))
_TEXTS = st.sampled_from(TEXT)


@st.composite
def typed_documents(draw: st.DrawFn, max_size: int = 12) -> list[Typed]:
    """Documents of :class:`Typed`, each with a unique pk."""
    n = draw(st.integers(0, max_size))
    docs = []
    for k in range(n):
        sub = draw(
            st.one_of(
                st.none(),
                st.builds(TypedSub, x=st.one_of(st.none(), st.integers(-3, 3)), y=_TEXTS),
            )
        )
        docs.append(
            Typed(
                pk=f"t{k:02d}",
                i=draw(st.integers(-3, 3)),
                f=draw(st.one_of(st.none(), _NUMS)),
                s=draw(_TEXTS),
                t=draw(st.one_of(st.none(), _TEXTS)),
                e=sub,
            )
        )
    return docs


_NUMBER_LOOKUPS = ("exact", "ne", "gt", "gte", "lt", "lte", "between", "in", "nin")
_STRING_LOOKUPS = (
    *_NUMBER_LOOKUPS, "contains", "icontains", "startswith", "endswith", "istartswith",
    "iendswith", "matches",
)  # fmt: skip


@st.composite
def typed_conditions(draw: st.DrawFn) -> Cond:
    """One condition on a path of :class:`Typed` with an operand of the path's kind."""
    numeric = draw(st.booleans())
    path = draw(st.sampled_from(TYPED_NUMBERS if numeric else (*TYPED_STRINGS, "pk")))
    nullable = path in TYPED_NULLABLE
    lookup = draw(st.sampled_from(_NUMBER_LOOKUPS if numeric else _STRING_LOOKUPS))
    extra = draw(st.sampled_from(["exists", "isnull", None]))
    if extra is not None:
        return make_cond(f"{path}__{extra}", draw(st.booleans()))
    value = _NUMS if numeric else _TEXTS
    if lookup == "between":
        operand: Any = draw(st.tuples(value, value))
    elif lookup in ("in", "nin"):
        operand = draw(st.lists(st.one_of(value, st.none()) if nullable else value, max_size=3))
    elif lookup in ("exact", "ne") and nullable:
        operand = draw(st.one_of(value, st.none()))
    elif lookup == "matches":
        operand = draw(st.sampled_from(["a", "^a", "b$", "^$", "a.b", "[aé]", "A", "."]))
    else:
        operand = draw(value)
    return make_cond(f"{path.replace('.', '__')}__{lookup}", operand)


def typed_trees(max_leaves: int = 6) -> st.SearchStrategy[Node]:
    """Random And/Or/Not trees over :func:`typed_conditions`."""
    return query_trees(max_leaves, typed_conditions())


def typed_orders() -> st.SearchStrategy[tuple[tuple[Path, bool], ...]]:
    """One or two sort keys on :class:`Typed` paths, ending with ``pk``."""
    return orders(TYPED_NUMBERS + TYPED_STRINGS)
