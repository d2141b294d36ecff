"""Field expressions build the trees keyword lookups build; model-bound queries are checked."""

from __future__ import annotations

import datetime as dt
import enum
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError, field_serializer

import doqu
from doqu import Document, Field, Q, QueryError, Sort, UpdateOp
from doqu._tree import LOOKUPS, Cond, Node, Not
from doqu.ext.memory import MemoryStorage
from doqu.testing import strategies


class Geo(BaseModel):
    lat: float
    lon: float = 0.0


class Address(BaseModel):
    city: str
    zip: str | None = None
    geo: Geo | None = None


class Item(BaseModel):
    sku: str
    n: int = 0


class Person(Document):
    model_config = ConfigDict(extra="forbid")

    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []  # noqa: RUF012
    address: Address | None = None
    items: list[Item] = []  # noqa: RUF012


class Loose(Document):
    """Schemaless: extra fields are kept, so unknown names stay unchecked."""

    name: str = ""
    meta: dict[str, Any] = {}  # noqa: RUF012


# ----------------------------------------------------------- class and instances
def test_class_fields_are_expressions_instances_keep_values() -> None:
    assert isinstance(Person.age, Field)
    assert Person.age.path == "age"
    assert Person.address.city.path == "address__city"
    assert Person.address.geo.lat.path == "address__geo__lat"
    assert Person.items.sku.path == "items__sku"  # through a list of models
    assert Person.pk.path == "pk"
    ann = Person(name="Ann", age=31)
    assert ann.age == 31 and type(ann.age) is int
    assert ann.tags == [] and Person(name="B").tags == []  # defaults untouched
    assert list(Person.model_fields) == ["pk", "name", "age", "email", "tags", "address", "items"]
    with pytest.raises(ValidationError):
        Person(name="x", age="not a number")
    assert Person.model_json_schema()["properties"]["age"] == {
        "default": 0,
        "title": "Age",
        "type": "integer",
    }
    assert Person.model_validate({"name": "C", "age": 3}).age == 3


def test_subclass_redeclaring_a_field_keeps_its_default() -> None:
    """pydantic reads class attributes while it builds a class: no expression leaks in."""

    class Older(Person):
        age: int = 65

    assert Older(name="x").age == 65
    assert Older.model_fields["age"].default == 65
    assert Older.age.path == "age"


def test_unknown_attributes_fail_with_a_suggestion() -> None:
    with pytest.raises(AttributeError, match="did you mean 'age'"):
        _ = Person.agee
    with pytest.raises(AttributeError, match=r"Address declares no field 'cty'.*address__city"):
        _ = Person.address.cty
    with pytest.raises(AttributeError, match="age is declared int, which has no sub-field"):
        _ = Person.age.gtee
    with pytest.raises(AttributeError):
        _ = Person.address._private


def test_no_truth_value_no_hash() -> None:
    with pytest.raises(TypeError, match="between"):
        _ = 18 <= Person.age < 65  # type: ignore[operator]
    with pytest.raises(TypeError, match="no truth value"):
        bool(Person.age)
    with pytest.raises(TypeError):
        hash(Person.age)
    with pytest.raises(TypeError, match=r"& \| ~"):
        _ = (Person.age > 1) and (Person.age < 3)


def test_fields_named_like_lookups_and_pydantic_attributes() -> None:
    class Dims(BaseModel):
        size: int
        all: list[str] = []

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydantic warns about the shadowing

        class Box(Document):
            size: int = 0
            json: str = ""  # type: ignore[assignment]
            dims: Dims | None = None

    assert (Box.size == 3) == Q(size=3)
    assert (Box.dims["size"] == 2) == Q(dims__size__exact=2)
    assert (Box.dims["all"].contains("x")) == Q(dims__all__contains="x")
    assert Box.dims.size(2) == Q(dims__size=2)  # the method: a list lookup on dims
    assert callable(Box.json)  # pydantic's method wins on the class…
    assert (doqu.field(Box, "json") == "x") == Q(json="x")  # …and field() reaches the field
    with doqu.connect("memory://") as db:
        db.save(Box(size=3, json="x", dims=Dims(size=2, all=["x"])))
        assert Box.objects(db).where(Box.dims["size"] == 2, doqu.field(Box, "json") == "x").count()
        assert Box.objects(db).where(size=3, dims__size__exact=2, json="x").count() == 1


def test_field_helper() -> None:
    assert doqu.field(Person.age) is Person.age
    assert doqu.field(Person, "address__city").path == "address__city"
    assert doqu.field(Person, "address.geo.lat").path == "address__geo__lat"
    with pytest.raises(QueryError, match="did you mean 'address__city'"):
        doqu.field(Person, "address.cty")
    with pytest.raises(TypeError, match="plain value"):
        doqu.field(Person(name="x").age)
    with pytest.raises(TypeError):
        doqu.field(object(), "age")  # type: ignore[call-overload]
    assert doqu.field(Loose, "meta__score").path == "meta__score"
    assert doqu.field(Loose, "anything__deep").path == "anything__deep"


# ---------------------------------------------------------------- one tree
#: Every lookup both ways: the expression and the keyword build equal trees.
BOTH_WAYS: list[tuple[Q, Q]] = [
    (Person.age == 3, Q(age=3)),
    (Person.email == None, Q(email=None)),  # noqa: E711
    (Person.age != 3, Q(age__ne=3)),
    (Person.age > 3, Q(age__gt=3)),
    (Person.age >= 3, Q(age__gte=3)),
    (Person.age < 3, Q(age__lt=3)),
    (Person.age <= 3, Q(age__lte=3)),
    (Person.age > 3, Q(age__gt=3)),
    (Person.age.between(1, 5), Q(age__between=(1, 5))),
    (Person.age.in_([1, 2]), Q(age__in=[1, 2])),
    (Person.age.nin([1, 2]), Q(age__nin=[1, 2])),
    (Person.email.exists(), Q(email__exists=True)),
    (Person.email.exists(False), Q(email__exists=False)),
    (Person.email.isnull(), Q(email__isnull=True)),
    (Person.email.isnull(False), Q(email__isnull=False)),
    (Person.tags.contains("x"), Q(tags__contains="x")),
    (Person.name.contains("n"), Q(name__contains="n")),
    (Person.name.icontains("N"), Q(name__icontains="N")),
    (Person.name.startswith("A"), Q(name__startswith="A")),
    (Person.name.istartswith("a"), Q(name__istartswith="a")),
    (Person.name.endswith("n"), Q(name__endswith="n")),
    (Person.name.iendswith("N"), Q(name__iendswith="N")),
    (Person.name.matches("^A.n$"), Q(name__matches="^A.n$")),
    (Person.tags.size(2), Q(tags__size=2)),
    (Person.tags.all(["a", "b"]), Q(tags__all=["a", "b"])),
    (Person.tags.any(["a", "b"]), Q(tags__any=["a", "b"])),
    (Person.address.city == "Paris", Q(address__city="Paris")),
    (Person.address.geo.lat > 1.5, Q(**{"address.geo.lat__gt": 1.5})),
    (Person.items.sku == "X", Q(items__sku="X")),
    (Person.pk.in_(["a"]), Q(pk__in=["a"])),
    ((Person.age < 18) | Person.tags.contains("x"), Q(age__lt=18) | Q(tags__contains="x")),
    (~Person.name.startswith("A") & Person.email.isnull(),
     ~Q(name__startswith="A") & Q(email__isnull=True)),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "keyword"), BOTH_WAYS, ids=lambda v: repr(v)[:60])
def test_expression_builds_the_keyword_tree(expr: Q, keyword: Q) -> None:
    assert isinstance(expr, Q)
    assert expr == keyword and expr.node == keyword.node


def test_every_lookup_is_reachable_both_ways() -> None:
    lookups = {c.lookup for _, kw in BOTH_WAYS for c in _conds(kw.node)}
    assert lookups == LOOKUPS


def _conds(node: Node) -> Iterator[Cond]:
    if isinstance(node, Cond):
        yield node
    elif isinstance(node, Not):
        yield from _conds(node.child)
    else:
        for child in node.children:
            yield from _conds(child)


def test_mixed_in_one_where_and_other_terminals() -> None:
    db = doqu.connect("memory://")
    q = Person.objects(db)
    mixed = q.where(Person.age >= 30, Q(name="Ann") | Q(name="Bo"), address__city="Paris")
    assert (
        mixed.node
        == q.where(Q(age__gte=30), Q(name="Ann") | Q(name="Bo"), address__city="Paris").node
    )
    assert q.where_not(Person.age > 3).node == q.where_not(age__gt=3).node
    assert q.order_by(Person.age.desc(), Person.name)._spec == q.order_by("-age", "name")._spec
    assert q.order_by(-Person.age, +Person.name)._spec == q.order_by("-age", "name")._spec
    assert q.order_by(Person.address.city.asc())._spec == q.order_by("address__city")._spec
    assert Person.age.desc() == Sort(("age",), True)
    assert isinstance(Person.age.inc(1), UpdateOp)
    with pytest.raises(QueryError, match="Q objects"):
        q.where(Person.age)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="order_by"):
        q.order_by(3)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="field updates"):
        q.update(Person.age > 3)  # type: ignore[arg-type]


def test_expressions_run_end_to_end() -> None:
    with doqu.connect("memory://") as db:
        db.save_many([
            Person(pk="a", name="Ann", age=31, tags=["x"], address=Address(city="Paris")),
            Person(pk="b", name="Bob", age=17, email="b@x", items=[Item(sku="X", n=1)]),
            Person(pk="c", name="Cy", age=70, address=Address(city="Rome", geo=Geo(lat=2))),
        ])  # fmt: skip
        q = Person.objects(db)
        assert [p.pk for p in q.where(Person.age >= 30).order_by(Person.age.desc())] == ["c", "a"]
        assert {p.pk for p in q.where((Person.age < 18) | Person.tags.contains("x"))} == {"a", "b"}
        assert q.where(~Person.name.startswith("A"), Person.email.isnull()).first().pk == "c"
        assert sorted(q.values(Person.address.city)) == ["Paris", "Rome"]
        assert q.where(Person.address.geo.lat > 1).count() == 1
        assert (
            q.where(Person.pk == "b").update(
                Person.age.inc(1), Person.tags.push("y"), Person.email.unset()
            )
            == 1
        )
        bob = db.get(Person, "b")
        assert (bob.age, bob.tags, bob.email) == (18, ["y"], None)
        assert q.where(pk="a").update(Person.name.set("Anna"), age__inc=1) == 1
        assert (db.get(Person, "a").name, db.get(Person, "a").age) == ("Anna", 32)
        with pytest.raises(QueryError, match="twice"):
            q.update(Person.age.inc(1), age__inc=2)
        with pytest.raises(QueryError, match="inside it"):
            q.update(Person.address.set(None), Person.address.city.set("x"))
        with pytest.raises(QueryError, match="takes a number"):
            Person.age.inc("1")  # type: ignore[arg-type]
        with pytest.raises(QueryError, match="primary key"):
            Person.pk.set("x")


# ------------------------------------------------------------ random equal trees
@settings(max_examples=400, deadline=None)
@given(strategies.condition_specs(max_leaves=8))
def test_random_conditions_build_equal_trees_both_ways(spec: strategies.Spec) -> None:
    expr = strategies.build(spec, strategies.as_expression)
    assert expr.node == strategies.build(spec, strategies.as_keyword).node


# ---------------------------------------------------------------- model checks
PRIMITIVES = frozenset({
    "_select", "_count", "_distinct", "_update_where", "_delete_where", "_fetch", "_put",
    "_swap", "_remove", "_coll", "_store", "_version", "_find_or_insert",
})  # fmt: skip


class Counting(MemoryStorage):
    """Counts every call of the backend's primitives."""

    calls = 0

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in PRIMITIVES:
            type(self).calls += 1
        return value


@pytest.fixture
def counting() -> Iterator[Counting]:
    db = Counting("memory://")
    db.save(Person(pk="a", name="Ann", age=3))
    Counting.calls = 0
    yield db
    db.close()


TYPOS: list[tuple[Callable[[Any], Any], str]] = [
    (lambda q: q.where(agee__gt=3), r"Person declares no field 'agee'; did you mean 'age'\?"),
    (lambda q: q.where(age__gtee=3),
     r"age is declared int, which has no sub-field 'gtee'; did you mean 'age__gte'"),
    (lambda q: q.where(address__cty="Paris"),
     r"Address declares no field 'cty'; did you mean 'address__city'\?"),
    (lambda q: q.where(age__gt="x"), r"age is declared int, which never holds a string \('x'\)"),
    (lambda q: q.where(tags__size="2"), r"tags__size takes a whole number"),
    (lambda q: q.order_by("-agee"),
     r"order_by key agee: Person declares no field 'agee'; did you mean 'age'\?"),
    (lambda q: q.values("agee"), r"did you mean 'age'\?"),
    (lambda q: q.where(age__size=2), r"age is declared int, not a list"),
    (lambda q: q.where(age__startswith="2"), r"age is declared int, not a string"),
    (lambda q: q.where(tags="x"),
     r"tags is declared list\[str\], which never holds a string.*tags__contains"),
    (lambda q: q.where(tags__contains=3), r"each element of tags is declared str"),
    (lambda q: q.where(tags__all=["a", 1]), r"each element of tags is declared str"),
    (lambda q: q.where(name__in=["a", 2]), r"name is declared str, which never holds a number"),
    (lambda q: q.where(name=None), r"name is declared str, which never holds null"),
    (lambda q: q.where(address__geo__lat__between=("a", "b")), r"lat is declared float"),
    (lambda q: q.where(address__city__x=1),
     r"address__city is declared str, which has no sub-field 'x'"),
    (lambda q: q.where(items__skuu="X"),
     r"Item declares no field 'skuu'; did you mean 'items__sku'\?"),
    (lambda q: q.where(Q(age=1) | Q(nmae="x")), r"did you mean 'name'\?"),
    (lambda q: q.where_not(agee=1), r"did you mean 'age'\?"),
    (lambda q: q.where(Person.age > "x"), r"age is declared int, which never holds a string"),
    (lambda q: q.update(agee=1), r"update agee__set: Person declares no field 'agee'"),
    (lambda q: q.update(age__incc=1), r"did you mean 'age__inc'\?"),
    (lambda q: q.update(name__inc=1), r"name is declared str, not a number"),
    (lambda q: q.update(age__push=1), r"age is declared int, not a list"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), TYPOS, ids=[m[:40] for _, m in TYPOS])
def test_typos_raise_before_any_io(
    counting: Counting, call: Callable[[Any], Any], message: str
) -> None:
    q = Person.objects(counting)
    before = Counting.calls
    with pytest.raises(QueryError, match=message):
        call(q)
    assert Counting.calls == before


def test_get_or_create_is_checked(counting: Counting) -> None:
    with pytest.raises(QueryError, match="did you mean 'name'"):
        counting.get_or_create(Person, nmae="x")


def test_what_the_types_allow_passes(counting: Counting) -> None:
    q = Person.objects(counting)
    for ok in [
        q.where(age__gt=3.5), q.where(email=None), q.where(address=None), q.where(tags=["a"]),
        q.where(tags__contains="x"), q.where(name__contains="x"), q.where(items__n__gt=1),
        q.where(address__geo__lat__between=(1, 2)), q.where(pk="a"), q.where(pk__startswith="a"),
        q.where(age__exists=False), q.where(address__zip__isnull=True),
        q.order_by("address__geo__lat", "-pk"), q.where(items__size=0),
    ]:  # fmt: skip
        assert ok.count() >= 0
    assert q.values("tags") == []


def test_schemaless_and_named_queries_stay_unchecked(counting: Counting) -> None:
    counting.save(Loose(pk="l", name="x", extra=5))  # type: ignore[call-arg]
    assert Loose.objects(counting).where(extra__gt=3).count() == 1
    assert Loose.objects(counting).where(meta__anything__deep=1).count() == 0
    assert Loose.objects(counting).order_by("nosuch").count() == 1
    assert counting.query("people").where(agee__gt=3, age__gtee=1).count() == 0
    with pytest.raises(QueryError, match="never holds a number"):
        Loose.objects(counting).where(name=3)  # declared fields are still checked


class Color(enum.Enum):
    RED = "red"


class Typed(Document):
    model_config = ConfigDict(extra="forbid")

    when: dt.datetime | None = None
    day: dt.date | None = None
    price: Decimal = Decimal(0)
    color: Color = Color.RED
    level: Literal[1, 2, "top"] = 1
    cents: Annotated[Decimal, PlainSerializer(float)] = Decimal(0)
    custom: int = 0
    anything: Any = None
    mapping: dict[str, int] = {}  # noqa: RUF012
    pair: tuple[int, str] = (0, "")

    @field_serializer("custom")
    def _custom(self, v: int) -> str:
        return str(v)


def test_stored_kinds_of_declared_types() -> None:
    q = Typed.objects(doqu.connect("memory://"))
    q.where(when__gt=dt.datetime(2024, 1, 1), day__lt="2024-01-01", price__gt=Decimal("1.5"))
    q.where(color="red", level__in=[1, "top"], cents__gt=1.5, custom__startswith="1")
    q.where(anything__x__y=1, mapping__k__gt=1, pair__contains="a").where(pair__contains=1)
    for bad, message in [
        ({"when__gt": 3}, "when is declared"),
        ({"color": 3}, "color is declared Color"),
        ({"level": True}, "never holds a bool"),
        ({"mapping__k": "x"}, "mapping__k is declared int"),
        ({"pair__contains": None}, "each element of pair"),
        ({"price__gt": 3}, "price is declared Decimal"),
    ]:
        with pytest.raises(QueryError, match=message):
            q.where(**bad)
