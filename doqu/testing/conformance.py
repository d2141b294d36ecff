"""The backend conformance suite: what every doqu backend must do, as pytest tests.

Import the tests into a test module that provides a ``db`` fixture (a connected,
empty :class:`doqu.Storage`, closed after the test)::

    from doqu.testing.conformance import *  # noqa: F403

The expected answers are written out by hand from the API contract (they are
what :mod:`doqu._evaluator` answers too). The tests never assume a backend's
natural order: results are compared as sets unless the query has a total
``order_by``. They are small on purpose: the suite runs on every backend, some
of them over the network.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._document import Document
from .._errors import (
    CorruptDocument,
    DoquError,
    DuplicateKey,
    InvalidDocument,
    NotFound,
    QueryError,
    StorageError,
)
from .._query import Query
from .._storage import Storage
from .._tree import Q

__all__ = [
    "test_all_any",
    "test_between",
    "test_case_distinct_pks",
    "test_clear_and_collections",
    "test_close_then_use_raises",
    "test_comparisons_by_kind",
    "test_contains",
    "test_corrupt_document",
    "test_count_len_exists_first",
    "test_delete_forms",
    "test_delete_query",
    "test_dict_collections",
    "test_duplicate_key_in_save_many",
    "test_duplicate_key_nothing_written",
    "test_empty_document",
    "test_exact",
    "test_exists_isnull",
    "test_extra_fields",
    "test_generated_pks",
    "test_get_many",
    "test_get_or_create",
    "test_hostile_field_names",
    "test_hostile_values_literal",
    "test_icase_ascii_only",
    "test_in_nin",
    "test_invalid_documents",
    "test_nested_models_validated_again",
    "test_invalid_operands",
    "test_lookup_named_fields",
    "test_matches",
    "test_matches_newline_and_end",
    "test_nested_paths",
    "test_nul_in_strings",
    "test_order_code_points",
    "test_order_mixed_kinds",
    "test_order_multi_key",
    "test_pk_path",
    "test_q_composition",
    "test_query_immutable",
    "test_query_model_vs_objects",
    "test_reconnect_and_flush",
    "test_save_and_get",
    "test_save_many",
    "test_size",
    "test_slicing",
    "test_stored_form_types",
    "test_strings_prefix_suffix",
    "test_unicode_roundtrip",
    "test_unique_exempts_null_and_missing",
    "test_update_add_to_set",
    "test_update_count_changed",
    "test_update_errors",
    "test_update_inc",
    "test_update_nested_paths",
    "test_update_overflow",
    "test_update_push_pull",
    "test_update_set_unset",
    "test_update_validation_nothing_written",
    "test_values",
    "test_version_changes_on_every_write",
    "test_where_chaining_and_where_not",
]


# ----------------------------------------------------------------------- models
class Address(BaseModel):
    """An embedded model (any pydantic model)."""

    city: str
    zip: str | None = None


class Person(Document):
    """The API page's model."""

    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    address: Address | None = None

    class Meta:
        collection = "people"
        indexes = ["age", ("name", "age")]  # noqa: RUF012 - read once, at class creation
        unique = ["email"]  # noqa: RUF012


class Color(enum.Enum):
    """An enum field is stored by value."""

    RED = "red"
    BLUE = "blue"


class Event(Document):
    """Fields whose stored form is a JSON string."""

    when: dt.datetime
    day: dt.date
    uid: uuid.UUID
    price: Decimal
    color: Color


class Strict(Document):
    """A model that forbids extra fields."""

    model_config = ConfigDict(extra="forbid")
    name: str


class Measure(Document):
    """A float field (NaN and Infinity validate in pydantic but cannot be stored)."""

    value: float


class Geo(BaseModel):
    """A nested model whose validation is only type checks."""

    lat: float
    lon: float


class Code(BaseModel):
    """A nested model with a constraint."""

    code: str = Field(max_length=3)


class Trip(Document):
    """Nested models, no field that may be null."""

    name: str
    start: Geo
    stops: list[Geo] = []  # noqa: RUF012 - pydantic copies defaults


class Coded(Document):
    """A nested model with a constraint, in a dict."""

    codes: dict[str, Code] = {}  # noqa: RUF012


# ---------------------------------------------------------------------- helpers
def _pk(item: Any) -> str:
    pk = item["pk"] if isinstance(item, Mapping) else item.pk
    assert isinstance(pk, str)
    return pk


def _pks(items: Iterable[Any]) -> set[str]:
    return {_pk(item) for item in items}


def _ordered(items: Iterable[Any]) -> list[str]:
    return [_pk(item) for item in items]


def _store(db: Storage, collection: str, docs: Mapping[str, Mapping[str, Any]]) -> set[str]:
    db.save_many([{"pk": pk, **doc} for pk, doc in docs.items()], collection=collection)
    return set(docs)


def _check(q: Query[Any], expected: set[str], everything: set[str], **conditions: Any) -> None:
    """``where(**c)`` finds exactly *expected*, ``where_not(**c)`` exactly the rest."""
    shown = ", ".join(f"{k}={v!r}" for k, v in conditions.items())
    assert _pks(q.where(**conditions)) == expected, f"where({shown})"
    assert q.where(**conditions).count() == len(expected), f"where({shown}).count()"
    assert _pks(q.where_not(**conditions)) == everything - expected, f"where_not({shown})"


def _values_set(values: list[Any]) -> list[str]:
    return sorted(repr(v) for v in values)


KINDS: dict[str, dict[str, Any]] = {
    "missing": {"other": 1},
    "null": {"v": None},
    "true": {"v": True},
    "false": {"v": False},
    "zero": {"v": 0},
    "one": {"v": 1},
    "onef": {"v": 1.0},
    "half": {"v": 2.5},
    "neg": {"v": -3},
    "empty": {"v": ""},
    "abc": {"v": "abc"},
    "upper": {"v": "ABC"},
    "str1": {"v": "1"},
    "list": {"v": [1, "a", None]},
    "nolist": {"v": []},
    "obj": {"v": {"a": 1}},
}
STRINGS = {"empty", "abc", "upper", "str1"}


def _kinds(db: Storage) -> tuple[Query[dict[str, Any]], set[str]]:
    return db.query("kinds"), _store(db, "kinds", KINDS)


# ------------------------------------------------------------- documents, pks
def test_save_and_get(db: Storage) -> None:
    """``save`` returns and sets the pk; ``get`` returns an equal document."""
    ann = Person(name="Ann", age=31, email="ann@example.com", tags=["a", "b"])
    ann.address = Address(city="Paris")
    assert ann.pk is None
    pk = db.save(ann)
    assert ann.pk == pk
    assert re.fullmatch(r"[0-9a-f]{32}", pk)
    got = db.get(Person, pk)
    assert isinstance(got, Person)
    assert got == ann
    assert got.pk == pk and got.address == Address(city="Paris")
    assert "pk" not in got.model_dump()
    # doc.save(db) replaces by pk
    got.age = 32
    assert got.save(db) == pk
    assert db.get(Person, pk).age == 32
    assert db.query(Person).count() == 1
    # a user-set pk is kept
    bob = Person(pk="bob", name="Bob")
    assert db.save(bob) == "bob"
    assert db.get(Person, "bob").name == "Bob"
    assert db.get("people", "bob") == {
        "pk": "bob",
        "name": "Bob",
        "age": 0,
        "email": None,
        "tags": [],
        "address": None,
    }
    with pytest.raises(NotFound):
        db.get(Person, "nobody")
    with pytest.raises(KeyError):
        db.get("people", "nobody")


def test_save_many(db: Storage) -> None:
    """``save_many`` returns the pks in order and sets them on the documents."""
    people = [Person(name=f"p{i}", age=i) for i in range(5)] + [Person(pk="fixed", name="f")]
    pks = db.save_many(people)
    assert pks == [p.pk for p in people]
    assert pks[-1] == "fixed"
    assert len(set(pks)) == 6
    assert _pks(db.query(Person)) == set(pks)
    assert db.save_many([]) == []
    dict_pks = db.save_many([{"x": 1}, {"pk": "k", "x": 2}], collection="plain")
    assert dict_pks[1] == "k"
    assert sorted(d["x"] for d in db.query("plain")) == [1, 2]


def test_get_many(db: Storage) -> None:
    """``get_many`` answers in the order asked; ``NotFound`` names every missing pk."""
    _store(db, "things", {k: {"n": i} for i, k in enumerate("abcde")})
    got = db.get_many("things", ["d", "a", "c", "a"])
    assert [d["pk"] for d in got] == ["d", "a", "c", "a"]
    assert [d["n"] for d in got] == [3, 0, 2, 0]
    assert db.get_many("things", []) == []
    with pytest.raises(NotFound) as info:
        db.get_many("things", ["a", "zz", "b", "yy"])
    assert info.value.pks == ["zz", "yy"]
    assert "zz" in str(info.value) and "yy" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_get_or_create(db: Storage) -> None:
    """``get_or_create`` creates once (with defaults), then finds."""
    doc, created = db.get_or_create(Person, defaults={"age": 7}, name="Zed")
    assert created is True
    assert isinstance(doc, Person) and doc.pk and doc.age == 7 and doc.name == "Zed"
    again, created = db.get_or_create(Person, defaults={"age": 99}, name="Zed")
    assert created is False
    assert again.pk == doc.pk and again.age == 7
    assert db.query(Person).count() == 1
    row, created = db.get_or_create("plain", defaults={"b": 2}, a=1)
    assert created is True and row["a"] == 1 and row["b"] == 2 and row["pk"]
    row2, created = db.get_or_create("plain", a=1)
    assert created is False and row2 == row
    with pytest.raises(QueryError):
        db.get_or_create(Person, name__startswith="Z")


def test_delete_forms(db: Storage) -> None:
    """``db.delete(doc)``, ``db.delete(Model, pk)``, ``doc.delete(db)``; ``NotFound`` if absent."""
    a, b, c = Person(name="a"), Person(name="b"), Person(name="c")
    db.save_many([a, b, c])
    db.delete(a)
    assert a.pk is not None and b.pk is not None
    db.delete(Person, b.pk)
    c.delete(db)
    assert db.query(Person).count() == 0
    with pytest.raises(NotFound):
        db.delete(a)
    with pytest.raises(NotFound):
        db.delete(Person, b.pk)
    with pytest.raises(NotFound):
        c.delete(db)
    db.save({"x": 1, "pk": "k"}, collection="plain")
    db.delete("plain", "k")
    with pytest.raises(NotFound):
        db.delete("plain", "k")


def test_generated_pks(db: Storage) -> None:
    """Generated pks are 32 lowercase hex, unique, and sort in creation order."""
    pks = [db.save({"i": i}, collection="seq") for i in range(20)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", pk) for pk in pks)
    assert len(set(pks)) == 20
    assert pks == sorted(pks)
    assert _ordered(db.query("seq").order_by("pk")) == pks
    assert [d["i"] for d in db.query("seq").order_by("-pk")] == list(range(19, -1, -1))


def test_case_distinct_pks(db: Storage) -> None:
    """Primary keys are compared exactly: ``"a"`` and ``"A"`` are two documents."""
    db.save_many([{"pk": "a", "n": 1}, {"pk": "A", "n": 2}, {"pk": "a ", "n": 3}], collection="c")
    assert db.get("c", "a")["n"] == 1
    assert db.get("c", "A")["n"] == 2
    assert db.get("c", "a ")["n"] == 3
    assert _pks(db.query("c").where(pk="a")) == {"a"}
    assert _ordered(db.query("c").order_by("pk")) == ["A", "a", "a "]


def test_empty_document(db: Storage) -> None:
    """An empty document round-trips."""
    pk = db.save({}, collection="empty")
    assert db.get("empty", pk) == {"pk": pk}
    assert db.query("empty").count() == 1


def test_unicode_roundtrip(db: Storage) -> None:
    """Non-ASCII text, emoji, quotes and control characters round-trip and match exactly."""
    texts = ["café", "日本語", "😀 emoji", "quote ' \" \\ backslash", "tab\tnewline\n", "\u212a"]
    pks = db.save_many([{"t": t} for t in texts], collection="uni")
    for pk, t in zip(pks, texts):
        assert db.get("uni", pk)["t"] == t
        assert _pks(db.query("uni").where(t=t)) == {pk}


def test_extra_fields(db: Storage) -> None:
    """Extra fields are kept (and queryable) unless the model forbids them."""
    p = Person(name="Ann", nickname="annie")
    db.save(p)
    assert p.pk is not None
    got = db.get(Person, p.pk)
    assert got.model_extra == {"nickname": "annie"}
    assert _pks(db.query(Person).where(nickname="annie")) == {p.pk}
    with pytest.raises(ValidationError):
        Strict(name="x", other=1)  # type: ignore[call-arg]
    db.save({"name": "x", "other": 1, "pk": "s"}, collection="strict")
    with pytest.raises(CorruptDocument):
        db.get(Strict, "s")


def test_stored_form_types(db: Storage) -> None:
    """Datetimes, dates, UUIDs, Decimals and enums round-trip; operands convert the same way."""
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    early = Event(
        when=dt.datetime(2024, 1, 1, 12, 0),
        day=dt.date(2024, 1, 1),
        uid=uid,
        price=Decimal("1.10"),
        color=Color.RED,
    )
    late = Event(
        when=dt.datetime(2025, 6, 1, 8, 30),
        day=dt.date(2025, 6, 1),
        uid=uuid.UUID(int=7),
        price=Decimal("20"),
        color=Color.BLUE,
    )
    db.save_many([early, late])
    assert early.pk is not None and late.pk is not None
    got = db.get(Event, early.pk)
    assert got == early
    assert isinstance(got.when, dt.datetime) and isinstance(got.uid, uuid.UUID)
    assert got.price == Decimal("1.10") and got.color is Color.RED
    raw = db.get("event", early.pk)
    assert raw["when"] == "2024-01-01T12:00:00.000000" and raw["uid"] == str(uid)
    assert raw["price"] == "1.10" and raw["color"] == "red"
    q = db.query(Event)
    assert _pks(q.where(when__gt=dt.datetime(2024, 6, 1))) == {late.pk}
    assert _pks(q.where(day__lte=dt.date(2024, 1, 1))) == {early.pk}
    assert _pks(q.where(uid=uid)) == {early.pk}
    assert _pks(q.where(price=Decimal("1.10"))) == {early.pk}
    assert _pks(q.where(color=Color.BLUE)) == {late.pk}
    assert _pks(q.where(color__in=[Color.RED, Color.BLUE])) == {early.pk, late.pk}
    assert _ordered(q.order_by("-when")) == [late.pk, early.pk]


def test_corrupt_document(db: Storage) -> None:
    """Stored data that no longer validates raises ``CorruptDocument`` naming collection and pk."""
    db.save(Person(pk="ok", name="Ok"))
    db.save({"pk": "bad", "name": 123, "age": "old"}, collection="people")
    with pytest.raises(CorruptDocument) as info:
        db.get(Person, "bad")
    assert info.value.collection == "people" and info.value.pk == "bad"
    assert "bad" in str(info.value) and "people" in str(info.value)
    with pytest.raises(CorruptDocument):
        list(db.query(Person))
    assert db.get(Person, "ok").name == "Ok"
    assert db.get("people", "bad")["age"] == "old"  # plain dicts are not validated


def test_invalid_documents(db: Storage) -> None:
    """NaN, Infinity, ints beyond 64 bits and lone surrogates raise ``InvalidDocument``."""
    db.save({"pk": "keep", "n": 1}, collection="bad")
    hostile: list[Any] = [
        float("nan"),
        float("inf"),
        -float("inf"),
        2**63,
        -(2**63) - 1,
        2**70,
        "\ud800",
        {"k": [1, {"deep": float("nan")}]},
        {"\udfff": 1},
    ]
    for value in hostile:
        with pytest.raises(InvalidDocument):
            db.save({"n": value}, collection="bad")
        with pytest.raises(InvalidDocument):
            db.save_many([{"n": 2}, {"n": value}], collection="bad")
    with pytest.raises(InvalidDocument):
        db.save(Measure(value=float("nan")))
    assert db.query(Measure).count() == 0
    big = db.save({"n": 2**63 - 1, "m": -(2**63)}, collection="bad")  # the 64-bit limits fit
    assert _pks(db.query("bad").where(n=2**63 - 1)) == {big}
    assert _pks(db.query("bad").where(m=-(2**63))) == {big}
    assert db.get("bad", big) == {"pk": big, "n": 2**63 - 1, "m": -(2**63)}
    assert db.query("bad").count() == 2
    with pytest.raises(ValidationError):
        Person(name=["not", "a", "string"])
    with pytest.raises(ValidationError):
        db.save(Person.model_construct(name=5))  # type: ignore[arg-type]  # revalidated before the write
    assert db.query(Person).count() == 0


def test_nested_models_validated_again(db: Storage) -> None:
    """Nested models changed after construction are validated again before every write.

    pydantic takes a nested model instance as it is when the outer model is
    validated; doqu does not: a bad value anywhere is a ``ValidationError``, and
    nothing of the batch is written.
    """

    def trip() -> Trip:
        return Trip(
            name="null and void",  # "null" in a string is just text
            start=Geo(lat=1.5, lon=2.5),
            stops=[Geo(lat=3, lon=4)],
        )

    def coded() -> Coded:
        return Coded(codes={"a": Code(code="abc")})

    spoilers: list[tuple[Callable[[], Document], Callable[[Any], object]]] = [
        (trip, lambda t: setattr(t.start, "lat", "north")),
        (trip, lambda t: setattr(t.start, "lon", None)),
        (trip, lambda t: setattr(t.stops[0], "lat", [1])),
        (trip, lambda t: t.stops.append(Geo.model_construct(lat=1))),  # type: ignore[call-arg]  # lon missing
        (coded, lambda c: setattr(c.codes["a"], "code", "toolong")),
        (coded, lambda c: setattr(c.codes["a"], "code", 7)),
        (coded, lambda c: setattr(c.codes["a"], "code", None)),
    ]
    for make, spoil in spoilers:
        bad = make()
        spoil(bad)
        with pytest.raises(ValidationError):
            db.save(bad)
        with pytest.raises(ValidationError):
            db.save_many([make(), bad, make()])
        with pytest.raises(ValidationError):
            db.dict(type(bad))["bad"] = bad
        assert bad.pk is None
    person = Person(name="Ann", address=Address(city="Paris"))
    person.address.city = 5  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        db.save(person)
    assert [db.query(m).count() for m in (Trip, Coded, Person)] == [0, 0, 0]

    fine = trip()
    fine.start.lat = 5  # an int where a float goes: validated as 5.0
    fine.stops[0] = {"lat": 7, "lon": 8}  # type: ignore[call-overload]  # a dict validates
    pk = db.save(fine)
    back = db.get(Trip, pk)
    assert back.name == "null and void"
    assert back.start == Geo(lat=5.0, lon=2.5) and back.stops == [Geo(lat=7, lon=8)]
    assert _pks(db.query(Trip).where(start__lat=5)) == {pk}
    assert _pks(db.query(Trip).where(stops__contains={"lat": 7.0, "lon": 8.0})) == {pk}
    assert len(db.save_many([trip() for _ in range(3)])) == 3
    assert db.query(Trip).count() == 4
    pks = db.save_many([coded(), coded()])
    assert [db.get(Coded, p).codes["a"].code for p in pks] == ["abc", "abc"]


def test_nul_in_strings(db: Storage) -> None:
    """A NUL character is refused with ``InvalidDocument`` on every backend; nothing is written.

    (PostgreSQL cannot store NUL in text or JSONB, so no backend does.) As a query
    operand it is compared literally: it equals no stored value.
    """
    db.save({"pk": "plain", "s": "ab"}, collection="nul")
    with pytest.raises(InvalidDocument):
        db.save({"pk": "nul", "s": "a\x00b"}, collection="nul")
    with pytest.raises(InvalidDocument):
        db.save({"pk": "nul", "o": {"k\x00": 1}}, collection="nul")
    assert _pks(db.query("nul")) == {"plain"}
    assert _pks(db.query("nul").where(s="a\x00b")) == set()
    assert _pks(db.query("nul").where(s="ab")) == {"plain"}


# ------------------------------------------------------------ unique indexes
def test_duplicate_key_nothing_written(db: Storage) -> None:
    """A unique violation raises ``DuplicateKey`` and writes nothing."""
    ann = Person(name="Ann", email="a@x")
    db.save(ann)
    with pytest.raises(DuplicateKey):
        db.save(Person(name="Imposter", email="a@x"))
    assert [p.name for p in db.query(Person)] == ["Ann"]
    # replacing the same document by pk keeps its own email
    ann.age = 5
    db.save(ann)
    assert db.query(Person).count() == 1
    # an update that would clash writes nothing either
    bob = Person(name="Bob", email="b@x")
    db.save(bob)
    with pytest.raises(DuplicateKey):
        db.query(Person).where(name="Bob").update(email="a@x")
    assert bob.pk is not None
    assert db.get(Person, bob.pk).email == "b@x"
    assert isinstance(DuplicateKey("people", ("email",), "a@x"), DoquError)


def test_duplicate_key_in_save_many(db: Storage) -> None:
    """``save_many`` refuses the whole batch on a clash, within it or with stored data."""
    db.save(Person(pk="a", name="A", email="a@x"))
    with pytest.raises(DuplicateKey):
        db.save_many([Person(name="B", email="b@x"), Person(name="C", email="a@x")])
    assert _pks(db.query(Person)) == {"a"}
    with pytest.raises(DuplicateKey):
        db.save_many([Person(name="D", email="d@x"), Person(name="E", email="d@x")])
    assert _pks(db.query(Person)) == {"a"}


def test_unique_exempts_null_and_missing(db: Storage) -> None:
    """Documents without a value (null or missing) never clash on a unique index."""
    db.save_many([Person(name=f"n{i}") for i in range(3)])
    assert db.query(Person).where(email=None).count() == 3
    db.save({"name": "raw"}, collection="people")  # email missing altogether
    db.save({"name": "raw2"}, collection="people")
    assert db.query("people").count() == 5


# ------------------------------------------------------------------- storage
def test_query_model_vs_objects(db: Storage) -> None:
    """``db.query(Person)`` and ``Person.objects(db)`` are the same query; names give dicts."""
    db.save_many([Person(pk="a", name="A", age=1), Person(pk="b", name="B", age=2)])
    q1, q2 = db.query(Person), Person.objects(db)
    assert q1.collection == q2.collection == "people"
    assert sorted(p.name for p in q1) == sorted(p.name for p in q2) == ["A", "B"]
    assert all(isinstance(p, Person) for p in q2)
    rows = sorted(db.query("people"), key=lambda d: d["pk"])
    assert rows[0] == {
        "pk": "a",
        "name": "A",
        "age": 1,
        "email": None,
        "tags": [],
        "address": None,
    }
    assert all(isinstance(r, dict) for r in rows)


def test_dict_collections(db: Storage) -> None:
    """Plain-dict collections need no model; ``"pk"`` is the key, not a stored field."""
    pk = db.save({"name": "x", "n": [1, {"a": None}]}, collection="free")
    assert db.get("free", pk) == {"pk": pk, "name": "x", "n": [1, {"a": None}]}
    db.save({"pk": pk, "name": "y"}, collection="free")  # replaces, whole
    assert db.get("free", pk) == {"pk": pk, "name": "y"}
    with pytest.raises(TypeError):
        db.save({"name": "no collection"})
    with pytest.raises(QueryError):
        db.query("bad name")


def test_clear_and_collections(db: Storage) -> None:
    """``clear(Model)``, ``clear("name")``, ``clear()``; ``collections()`` lists non-empty ones."""
    assert db.collections() == []
    db.save(Person(name="a"))
    db.save({"x": 1}, collection="other")
    db.save({"x": 1}, collection="third")
    assert db.collections() == ["other", "people", "third"]
    db.clear(Person)
    assert db.query(Person).count() == 0
    assert db.collections() == ["other", "third"]
    db.clear("other")
    assert db.query("other").count() == 0
    assert db.collections() == ["third"]
    db.save(Person(name="b"))
    db.clear()
    assert db.collections() == []
    assert db.query("third").count() == 0 and db.query(Person).count() == 0
    db.save({"x": 2}, collection="third")  # still usable after clear()
    assert db.collections() == ["third"]


def test_version_changes_on_every_write(db: Storage) -> None:
    """The collection's version token changes on every kind of write."""
    seen = [db.version("ver")]

    def changed() -> None:
        now = db.version("ver")
        assert now not in seen, f"version did not change: {seen} -> {now}"
        seen.append(now)

    pk = db.save({"n": 1}, collection="ver")
    changed()
    db.save_many([{"n": 2}, {"n": 3}], collection="ver")
    changed()
    assert db.query("ver").where(n=1).update(n__inc=10) == 1
    changed()
    db.delete("ver", pk)
    changed()
    assert db.query("ver").where(n=2).delete() == 1
    changed()
    db.clear("ver")
    changed()
    assert db.version("ver") == seen[-1]  # reading does not change it


def test_close_then_use_raises(db: Storage) -> None:
    """A closed storage raises ``StorageError`` on use; ``close()`` twice is harmless."""
    store = db
    store.save({"x": 1}, collection="c")
    q = store.query("c")
    store.close()
    assert store.closed
    store.close()
    for use in (
        lambda: store.save({"x": 2}, collection="c"),
        lambda: store.get("c", "x"),
        lambda: store.query("c"),
        lambda: list(q),
        lambda: q.count(),
        store.collections,
        store.flush,
        store.reconnect,
    ):
        with pytest.raises(StorageError):
            use()


def test_reconnect_and_flush(db: Storage) -> None:
    """``flush()`` and ``reconnect()`` keep the data and the storage usable."""
    pk = db.save(Person(name="Ann"))
    db.flush()
    db.reconnect()
    assert db.get(Person, pk).name == "Ann"
    db.save(Person(name="Bob"))
    assert db.query(Person).count() == 2


# ------------------------------------------------------------------- lookups
def test_exact(db: Storage) -> None:
    """``exact`` compares whole values: numbers by value, bools apart, lists in order."""
    q, everything = _kinds(db)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"v": 1}, {"one", "onef"}),
        ({"v": 1.0}, {"one", "onef"}),
        ({"v__exact": 1}, {"one", "onef"}),
        ({"v": None}, {"null"}),
        ({"v": True}, {"true"}),
        ({"v": False}, {"false"}),
        ({"v": 0}, {"zero"}),
        ({"v": "abc"}, {"abc"}),
        ({"v": "1"}, {"str1"}),
        ({"v": ""}, {"empty"}),
        ({"v": "a"}, set()),  # not an element of the list
        ({"v": [1, "a", None]}, {"list"}),
        ({"v": [1.0, "a", None]}, {"list"}),
        ({"v": ["a", 1, None]}, set()),
        ({"v": [1]}, set()),
        ({"v": []}, {"nolist"}),
        ({"v": {"a": 1.0}}, {"obj"}),
        ({"v": {"a": 1, "b": 2}}, set()),
        ({"v": {}}, set()),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)
    _check(q, everything - {"one", "onef"}, everything, v__ne=1)
    _check(q, everything - {"null"}, everything, v__ne=None)
    _check(q, everything - {"list"}, everything, v__ne=[1, "a", None])
    _check(q, everything, everything, v__ne="a")


def test_comparisons_by_kind(db: Storage) -> None:
    """``gt/gte/lt/lte`` compare numbers with numbers and strings with strings only."""
    q, everything = _kinds(db)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"v__gt": 0}, {"one", "onef", "half"}),
        ({"v__gte": 0}, {"zero", "one", "onef", "half"}),
        ({"v__lt": 1}, {"zero", "neg"}),
        ({"v__lte": 1.0}, {"zero", "one", "onef", "neg"}),
        ({"v__gt": 1}, {"half"}),
        ({"v__gt": -100}, {"neg", "zero", "one", "onef", "half"}),
        ({"v__lt": 0}, {"neg"}),
        ({"v__lt": 5}, {"neg", "zero", "one", "onef", "half"}),
        ({"v__gte": 2.5}, {"half"}),
        ({"v__gt": 2.4}, {"half"}),
        ({"v__gt": ""}, {"abc", "upper", "str1"}),
        ({"v__gte": ""}, STRINGS),
        ({"v__lt": "a"}, {"empty", "upper", "str1"}),
        ({"v__gt": "Z"}, {"abc"}),
        ({"v__gt": "0"}, {"abc", "upper", "str1"}),
        ({"v__lte": "ABC"}, {"empty", "upper", "str1"}),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_between(db: Storage) -> None:
    """``between`` is ``low <= v <= high`` within one kind."""
    q, everything = _kinds(db)
    _check(q, {"zero", "one", "onef"}, everything, v__between=(0, 1))
    _check(q, {"one", "onef", "half"}, everything, v__between=[1, 2.5])
    _check(q, {"neg"}, everything, v__between=(-10, -1))
    _check(q, {"upper", "abc"}, everything, v__between=("A", "b"))
    _check(q, {"empty"}, everything, v__between=("", ""))
    _check(q, set(), everything, v__between=(2, 1))


def test_in_nin(db: Storage) -> None:
    """``in`` matches whole values equal to an operand; ``nin`` is its negation (missing too)."""
    q, everything = _kinds(db)
    _check(q, {"one", "onef", "abc", "null"}, everything, v__in=[1, "abc", None])
    _check(q, {"true"}, everything, v__in=[True])
    _check(q, {"one", "onef"}, everything, v__in=(1,))
    _check(q, {"list"}, everything, v__in=[[1, "a", None]])
    _check(q, set(), everything, v__in=["a"])
    _check(q, set(), everything, v__in=[])
    _check(q, {"obj", "zero"}, everything, v__in=[{"a": 1}, 0])
    assert _pks(q.where(v__nin=[1, "abc", None])) == everything - {"one", "onef", "abc", "null"}
    assert "missing" in _pks(q.where(v__nin=[1]))
    assert _pks(q.where(v__nin=[])) == everything


def test_exists_isnull(db: Storage) -> None:
    """``exists`` counts null as present; ``isnull`` is absent or null."""
    q, everything = _kinds(db)
    _check(q, everything - {"missing"}, everything, v__exists=True)
    _check(q, {"missing"}, everything, v__exists=False)
    _check(q, {"missing", "null"}, everything, v__isnull=True)
    _check(q, everything - {"missing", "null"}, everything, v__isnull=False)


def test_contains(db: Storage) -> None:
    """``contains``: a list element equal to the operand, or a substring of a string."""
    q, everything = _kinds(db)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"v__contains": 1}, {"list"}),
        ({"v__contains": 1.0}, {"list"}),
        ({"v__contains": "a"}, {"abc", "list"}),
        ({"v__contains": "b"}, {"abc"}),
        ({"v__contains": "B"}, {"upper"}),
        ({"v__contains": "1"}, {"str1"}),
        ({"v__contains": ""}, STRINGS),
        ({"v__contains": None}, {"list"}),
        ({"v__contains": True}, set()),
        ({"v__contains": [1]}, set()),
        ({"v__icontains": "B"}, {"abc", "upper"}),
        ({"v__icontains": "a"}, {"abc", "upper", "list"}),
        ({"v__icontains": "bc"}, {"abc", "upper"}),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_strings_prefix_suffix(db: Storage) -> None:
    """``startswith``/``endswith`` and their case-insensitive forms match strings only."""
    q, everything = _kinds(db)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"v__startswith": "a"}, {"abc"}),
        ({"v__startswith": "A"}, {"upper"}),
        ({"v__startswith": ""}, STRINGS),
        ({"v__startswith": "1"}, {"str1"}),
        ({"v__startswith": "abcd"}, set()),
        ({"v__endswith": "C"}, {"upper"}),
        ({"v__endswith": "bc"}, {"abc"}),
        ({"v__istartswith": "aB"}, {"abc", "upper"}),
        ({"v__istartswith": "a"}, {"abc", "upper"}),
        ({"v__iendswith": "bC"}, {"abc", "upper"}),
        ({"v__startswith": "%"}, set()),
        ({"v__endswith": "_"}, set()),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_icase_ascii_only(db: Storage) -> None:
    """Case-insensitive lookups fold A-Z/a-z only, never other letters."""
    docs: dict[str, dict[str, Any]] = {
        "e1": {"s": "café"},
        "e2": {"s": "CAFÉ"},
        "e3": {"s": "CAFé"},
        "kelvin": {"s": "\u212a"},
        "idot": {"s": "İ"},
        "sharp": {"s": "straße"},
        "hello": {"s": "Hello"},
        "tags": {"s": ["Red", "green"]},
    }
    q, everything = db.query("fold"), _store(db, "fold", docs)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"s__icontains": "café"}, {"e1", "e3"}),
        ({"s__icontains": "CAFÉ"}, {"e2"}),
        ({"s__istartswith": "caf"}, {"e1", "e2", "e3"}),
        ({"s__iendswith": "é"}, {"e1", "e3"}),
        ({"s__iendswith": "É"}, {"e2"}),
        ({"s__icontains": "k"}, set()),
        ({"s__icontains": "i"}, set()),
        ({"s__icontains": "SS"}, set()),
        ({"s__icontains": "STRAßE"}, {"sharp"}),
        ({"s__icontains": "hello"}, {"hello"}),
        ({"s__iendswith": "LLO"}, {"hello"}),
        ({"s__icontains": "red"}, {"tags"}),
        ({"s__icontains": "GREEN"}, {"tags"}),
        ({"s__icontains": "re"}, set()),
        ({"s__contains": "Red"}, {"tags"}),
        ({"s__contains": "red"}, set()),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_matches(db: Storage) -> None:
    """``matches`` finds a regular expression (portable subset) in strings only."""
    q, everything = _kinds(db)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"v__matches": "b"}, {"abc"}),
        ({"v__matches": "^[A-Z]+$"}, {"upper"}),
        ({"v__matches": "^$"}, {"empty"}),
        ({"v__matches": "^[0-9]$"}, {"str1"}),
        ({"v__matches": "a|B"}, {"abc", "upper"}),
        ({"v__matches": "^(ab|AB)C?"}, {"abc", "upper"}),
        ({"v__matches": "^(ab|AB)C$"}, {"upper"}),
        ({"v__matches": ""}, STRINGS),
        ({"v__matches": "a"}, {"abc"}),
        ({"v__matches": "[^a-z0-9]"}, {"upper"}),
        ({"v__matches": "^.{3}$"}, {"abc", "upper"}),
        ({"v__matches": "\\."}, set()),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_matches_newline_and_end(db: Storage) -> None:
    """``.`` matches a newline; ``$`` matches only at the very end; ``^`` only at the start."""
    docs: dict[str, dict[str, Any]] = {
        "nl": {"s": "a\nb"},
        "trail": {"s": "ab\n"},
        "ab": {"s": "ab"},
        "digits": {"s": "x123y"},
    }
    q, everything = db.query("rx"), _store(db, "rx", docs)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"s__matches": "a.b"}, {"nl"}),
        ({"s__matches": "b$"}, {"nl", "ab"}),
        ({"s__matches": "b\n$"}, {"trail"}),
        ({"s__matches": "^b"}, set()),
        ({"s__matches": "^a"}, {"nl", "trail", "ab"}),
        ({"s__matches": "[0-9]{3}"}, {"digits"}),
        ({"s__matches": "[0-9]{4}"}, set()),
        ({"s__matches": "x[0-9]+y$"}, {"digits"}),
        ({"s__matches": "^(ab|zz)$"}, {"ab"}),
        ({"s__matches": "A"}, set()),
        ({"s__matches": "[\n]"}, {"nl", "trail"}),
        ({"s__matches": "a.*b"}, {"nl", "trail", "ab"}),
    ]
    for cond, expected in cases:
        _check(q, expected, everything, **cond)


def test_size(db: Storage) -> None:
    """``size`` matches lists of exactly that length."""
    q, everything = _kinds(db)
    _check(q, {"list"}, everything, v__size=3)
    _check(q, {"nolist"}, everything, v__size=0)
    _check(q, set(), everything, v__size=1)


def test_all_any(db: Storage) -> None:
    """``all``/``any``: a list holding every / at least one operand."""
    q, everything = _kinds(db)
    _check(q, {"list"}, everything, v__all=[1, "a"])
    _check(q, {"list"}, everything, v__all=[1.0])
    _check(q, {"list"}, everything, v__all=[None])
    _check(q, set(), everything, v__all=[1, 2])
    _check(q, {"list"}, everything, v__any=[2, "a"])
    _check(q, set(), everything, v__any=[2])
    _check(q, set(), everything, v__any=["abc"])
    _check(q, set(), everything, v__all=[True])


def test_nested_paths(db: Storage) -> None:
    """Paths join with ``__`` or ``.``; they walk objects, never into arrays."""
    docs: dict[str, dict[str, Any]] = {
        "deep": {"a": {"b": {"c": 1}}},
        "deepf": {"a": {"b": {"c": 1.0}, "d": "x"}},
        "shallow": {"a": {"b": 2}},
        "arr": {"a": [{"b": {"c": 1}}]},
        "nul": {"a": None},
        "none": {"x": 1},
    }
    q, everything = db.query("nest"), _store(db, "nest", docs)
    _check(q, {"deep", "deepf"}, everything, a__b__c=1)
    _check(q, {"deep", "deepf"}, everything, **{"a.b.c": 1})
    _check(q, {"deep", "deepf"}, everything, **{"a.b__c__gte": 1})
    _check(q, {"deep", "deepf", "shallow"}, everything, a__b__exists=True)
    _check(q, {"shallow", "arr", "nul", "none"}, everything, a__b__c__exists=False)
    _check(q, {"shallow"}, everything, a__b=2)
    _check(q, {"deep", "deepf"}, everything, a__b={"c": 1})
    _check(q, {"deep", "deepf", "shallow", "arr", "nul"}, everything, a__exists=True)
    _check(q, {"nul", "none"}, everything, a__isnull=True)
    _check(q, {"deepf"}, everything, **{"a.d": "x"})
    _check(q, {"arr"}, everything, a__size=1)
    assert _pks(q.where(Q(a__b__c=1) & Q(a__d="x"))) == {"deepf"}
    assert _values_set(q.values("a.b.c")) in (["1"], ["1.0"])


def test_lookup_named_fields(db: Storage) -> None:
    """A single segment is always a field; a lookup name is a lookup only in last place."""
    docs: dict[str, dict[str, Any]] = {
        "s3": {"size": 3, "in": "x", "exact": {"gt": 5}},
        "s5": {"size": 5, "in": "y", "exact": {"gt": 1}},
    }
    q, everything = db.query("named"), _store(db, "named", docs)
    _check(q, {"s3"}, everything, size=3)
    _check(q, {"s5"}, everything, size__gt=3)
    _check(q, {"s3"}, everything, **{"in": "x"})
    _check(q, {"s5"}, everything, **{"in__in": ["y"]})
    _check(q, {"s3"}, everything, exact__gt__gt=4)
    _check(q, {"s5"}, everything, **{"exact.gt__exact": 1})
    _check(q, set(), everything, **{"exact.gt": 1})  # "gt" in last place is the lookup
    assert _ordered(q.order_by("-size")) == ["s5", "s3"]
    assert sorted(q.values("in")) == ["x", "y"]


def test_pk_path(db: Storage) -> None:
    """The path ``pk`` is the primary key in filters and ordering."""
    docs = {"a1": {"n": 1}, "a2": {"n": 2}, "b1": {"n": 3}}
    q, everything = db.query("pks"), _store(db, "pks", docs)
    _check(q, {"a2"}, everything, pk="a2")
    _check(q, {"a1", "b1"}, everything, pk__in=["a1", "b1", "zz"])
    _check(q, {"a1", "a2"}, everything, pk__startswith="a")
    _check(q, {"b1"}, everything, pk__gt="a2")
    assert _ordered(q.order_by("-pk")) == ["b1", "a2", "a1"]
    assert _ordered(q.where(n__gte=2).order_by("pk")) == ["a2", "b1"]


# ---------------------------------------------------------- composition, order
PEOPLE: dict[str, dict[str, Any]] = {
    "p1": {"name": "Ann", "age": 10, "tags": ["x"]},
    "p2": {"name": "Bob", "age": 70, "tags": []},
    "p3": {"name": "Cy", "age": 70, "tags": ["x"]},
    "p4": {"name": "Dee", "age": 40, "tags": []},
    "p5": {"name": "Eve"},
}


def test_q_composition(db: Storage) -> None:
    """``&`` binds tighter than ``|``; ``~`` negates (missing fields included)."""
    q, everything = db.query("qp"), _store(db, "qp", PEOPLE)
    young_or_old_free = Q(age__lt=18) | Q(age__gt=65) & ~Q(tags__contains="x")
    assert _pks(q.where(young_or_old_free)) == {"p1", "p2"}
    grouped = (Q(age__lt=18) | Q(age__gt=65)) & ~Q(tags__contains="x")
    assert _pks(q.where(grouped)) == {"p2"}
    assert _pks(q.where(~Q(age__gt=30))) == {"p1", "p5"}
    assert _pks(q.where(~(Q(age__gt=30) & Q(tags__size=0)))) == {"p1", "p3", "p5"}
    assert _pks(q.where(Q(age__gt=30, tags__size=0))) == {"p2", "p4"}
    assert _pks(q.where(Q(age__gt=30), Q(tags__size=0))) == {"p2", "p4"}
    assert _pks(q.where(Q(age=70), name="Cy")) == {"p3"}
    assert _pks(q.where(~~Q(age=70))) == {"p2", "p3"}
    assert _pks(q.where(Q(age__lt=18) | Q(age__isnull=True))) == {"p1", "p5"}
    assert _pks(q.where(~(Q(age=10) | Q(age=70)))) == {"p4", "p5"}
    assert _pks(q.where(Q(name="Ann") | Q(name="Bob") | Q(name="Zed"))) == {"p1", "p2"}
    assert _pks(q.where(Q(name="Ann") & Q(name="Bob"))) == set()
    assert _pks(q.where_not(Q(age=70) | Q(age=10))) == {"p4", "p5"}
    assert everything == set(PEOPLE)


def test_where_chaining_and_where_not(db: Storage) -> None:
    """Chained ``where`` calls are ANDed; ``where_not(a, b)`` is NOT(a AND b)."""
    q, _ = db.query("qp"), _store(db, "qp", PEOPLE)
    assert _pks(q.where(age__gt=30).where(tags__contains="x")) == {"p3"}
    assert _pks(q.where(age__gt=30).where(age__lt=50)) == {"p4"}
    assert _pks(q.where_not(age__gt=30, name="Bob")) == {"p1", "p3", "p4", "p5"}
    assert _pks(q.where_not(age__gt=30).where_not(name="Ann")) == {"p5"}
    assert _pks(q.where_not(age=70)) == {"p1", "p4", "p5"}
    assert _pks(q.where()) == set(PEOPLE)


def test_query_immutable(db: Storage) -> None:
    """Every call returns a new query; the original is unchanged."""
    _store(db, "qp", PEOPLE)
    base = db.query("qp")
    narrowed = base.where(age__gt=30)
    ordered = narrowed.order_by("-name")
    negated = base.where_not(name="Ann")
    window = ordered[0:1]
    assert base.count() == 5
    assert narrowed.count() == 3
    assert negated.count() == 4
    assert _ordered(ordered) == ["p4", "p3", "p2"]
    assert _ordered(window) == ["p4"]
    assert _pks(narrowed) == {"p2", "p3", "p4"}
    assert base.node is None
    reordered = ordered.order_by("name")
    assert _ordered(reordered) == ["p2", "p3", "p4"]
    assert _ordered(ordered) == ["p4", "p3", "p2"]


def test_order_mixed_kinds(db: Storage) -> None:
    """Missing and null first, then numbers, strings, and the rest tied; descending reverses."""
    q, _ = _kinds(db)
    ascending = [
        "missing", "null",          # missing and null tie
        "neg", "zero", "one", "onef", "half",
        "empty", "str1", "upper", "abc",
        "false", "list", "nolist", "obj", "true",  # bools, lists, objects tie
    ]  # fmt: skip
    assert _ordered(q.order_by("v", "pk")) == ascending
    descending = [
        "false", "list", "nolist", "obj", "true",
        "abc", "upper", "str1", "empty",
        "half", "one", "onef", "zero", "neg",
        "missing", "null",
    ]  # fmt: skip
    assert _ordered(q.order_by("-v", "pk")) == descending
    assert _ordered(q.order_by("-v", "-pk")) == [
        "true", "obj", "nolist", "list", "false",
        "abc", "upper", "str1", "empty",
        "half", "onef", "one", "zero", "neg",
        "null", "missing",
    ]  # fmt: skip
    assert _ordered(q.order_by("+v", "pk")) == ascending


def test_order_code_points(db: Storage) -> None:
    """Strings sort by code point: ``"Red" < "blue"``, no locale, no case folding."""
    names = ["blue", "Red", "apple", "Äpfel", "zebra", "Zulu", "_x", "10", "9", "a b", "ab"]
    db.save_many([{"pk": f"k{i}", "name": n} for i, n in enumerate(names)], collection="cp")
    got = [d["name"] for d in db.query("cp").order_by("name")]
    assert got == sorted(names)
    assert got[:4] == ["10", "9", "Red", "Zulu"]
    assert [d["name"] for d in db.query("cp").order_by("-name")] == sorted(names, reverse=True)
    assert {d["name"] for d in db.query("cp").where(name__lt="a")} == {
        "10",
        "9",
        "Red",
        "Zulu",
        "_x",
    }
    assert {d["name"] for d in db.query("cp").where(name__gt="z")} == {"zebra", "Äpfel"}


def test_order_multi_key(db: Storage) -> None:
    """Several keys: each breaks the ties of the ones before it."""
    rows: dict[str, dict[str, Any]] = {
        "a": {"age": 30, "name": "Zoe"},
        "b": {"age": 40, "name": "Al"},
        "c": {"age": 30, "name": "Al"},
        "d": {"age": 40, "name": "Bo"},
        "e": {"name": "Cy"},
    }
    q, _ = db.query("mk"), _store(db, "mk", rows)
    assert _ordered(q.order_by("-age", "name")) == ["b", "d", "c", "a", "e"]
    assert _ordered(q.order_by("age", "-name")) == ["e", "a", "c", "d", "b"]
    assert _ordered(q.order_by("name", "age")) == ["c", "b", "d", "e", "a"]
    assert _ordered(q.where(age__gte=30).order_by("-age", "-name")) == ["d", "b", "a", "c"]


def test_slicing(db: Storage) -> None:
    """Indexing and slicing are offset/limit; negatives raise ``QueryError``."""
    db.save_many([{"pk": f"k{n:02d}", "n": n} for n in range(25)], collection="sl")
    q = db.query("sl").order_by("n")
    assert q[3]["n"] == 3
    assert [d["n"] for d in q[10:20]] == list(range(10, 20))
    assert [d["n"] for d in q[5:]] == list(range(5, 25))
    assert [d["n"] for d in q[:3]] == [0, 1, 2]
    assert [d["n"] for d in q[5:][2:4]] == [7, 8]
    assert [d["n"] for d in q[10:20][5:]] == list(range(15, 20))
    assert [d["n"] for d in q[10:20][8:30]] == [18, 19]
    assert list(q[30:40]) == []
    assert list(q[5:5]) == []
    assert q[24]["n"] == 24
    assert q.order_by("-n")[0]["n"] == 24
    with pytest.raises(IndexError):
        q[25]
    with pytest.raises(IndexError):
        q[10:12][2]
    for bad in (lambda: q[-1], lambda: q[-3:], lambda: q[:-1]):
        with pytest.raises(QueryError):
            bad()
    assert q[10:20].count() == 10
    assert len(q[20:30]) == 5
    assert len(q[30:]) == 0
    assert q.where(n__lt=5)[2:].count() == 3
    assert db.query("sl")[0:7].count() == 7  # unordered slices still count right


def test_count_len_exists_first(db: Storage) -> None:
    """``count()``/``len()``, ``exists()``/``bool()`` and ``first()`` (or ``None``)."""
    q, _ = db.query("qp"), _store(db, "qp", PEOPLE)
    assert q.count() == len(q) == 5
    assert q.where(age=70).count() == 2
    assert q.where(age=70).exists() and bool(q.where(age=70))
    assert not q.where(age=71).exists() and not q.where(age=71)
    assert q.where(age=71).count() == 0
    assert q.where(age=71).first() is None
    first = q.order_by("name").first()
    assert first is not None and first["pk"] == "p1"
    assert _pk(q.order_by("-age", "-name").first()) == "p3"
    assert q[5:].exists() is False and q[4:].exists() is True
    empty = db.query("nothing_here")
    assert empty.count() == 0 and empty.first() is None and not empty.exists()
    assert list(empty) == []


def test_values(db: Storage) -> None:
    """``values``: distinct, list elements one by one, nulls and missing left out."""
    docs: dict[str, dict[str, Any]] = {
        "a": {"tags": ["x", "y"], "n": 1, "addr": {"city": "Paris"}},
        "b": {"tags": ["y", "z", None], "n": 1.0, "addr": {"city": "Oslo"}},
        "c": {"tags": [], "n": None, "addr": {"city": "Paris"}},
        "d": {"tags": "solo", "n": 2, "addr": None},
        "e": {"tags": [["nested"], {"k": 1}], "n": True},
        "f": {"other": 1},
    }
    _store(db, "vals", docs)
    q = db.query("vals")
    tags = q.values("tags")
    assert len(tags) == 6
    assert sorted(t for t in tags if isinstance(t, str)) == ["solo", "x", "y", "z"]
    assert ["nested"] in tags and {"k": 1} in tags
    ns = q.values("n")
    assert len(ns) == 3
    assert sum(1 for n in ns if n is True) == 1  # True is not the number 1
    assert sum(1 for n in ns if not isinstance(n, bool) and n == 1) == 1  # 1 and 1.0: one value
    assert sum(1 for n in ns if not isinstance(n, bool) and n == 2) == 1
    assert sorted(q.values("addr__city")) == ["Oslo", "Paris"]
    assert sorted(q.values("addr.city")) == ["Oslo", "Paris"]
    assert sorted(q.where(n__gte=1).values("tags")) == ["solo", "x", "y", "z"]
    assert q.where(n=99).values("tags") == []
    assert q.values("nowhere") == []
    assert sorted(q.values("pk")) == sorted(docs)
    assert sorted(q.where(addr__city="Paris").values("addr__city")) == ["Paris"]


def test_delete_query(db: Storage) -> None:
    """``Query.delete()`` deletes the matches and returns how many."""
    _store(db, "qp", PEOPLE)
    q = db.query("qp")
    assert q.where(age=99).delete() == 0
    assert q.where(age__gt=30).delete() == 3
    assert _pks(q) == {"p1", "p5"}
    assert q.where_not(age=10).delete() == 1
    assert q.delete() == 1
    assert q.count() == 0


# -------------------------------------------------------------------- updates
def test_update_set_unset(db: Storage) -> None:
    """``field=v`` / ``field__set=v`` set; ``field__unset=True`` removes."""
    _store(db, "up", {"a": {"name": "A", "email": "a@x", "n": 1}, "b": {"name": "B"}})
    q = db.query("up")
    assert q.where(pk="a").update(name="x") == 1
    assert db.get("up", "a")["name"] == "x"
    assert q.where(pk="a").update(name__set={"first": "y"}) == 1
    assert db.get("up", "a")["name"] == {"first": "y"}
    assert q.update(email__unset=True) == 1  # only "a" had one
    assert db.get("up", "a") == {"pk": "a", "name": {"first": "y"}, "n": 1}
    assert db.get("up", "b") == {"pk": "b", "name": "B"}
    assert q.where(pk="b").update(n=None) == 1
    assert db.get("up", "b") == {"pk": "b", "name": "B", "n": None}
    assert _pks(q.where(n__exists=True)) == {"a", "b"}


def test_update_inc(db: Storage) -> None:
    """``inc`` adds; a missing field starts from the operand."""
    _store(db, "inc", {"a": {"n": 1}, "b": {"n": 2.5}, "c": {}})
    q = db.query("inc")
    assert q.update(n__inc=2) == 3
    assert {d["pk"]: d["n"] for d in q} == {"a": 3, "b": 4.5, "c": 2}
    assert q.where(pk="a").update(n__inc=-3) == 1
    assert db.get("inc", "a")["n"] == 0
    assert q.where(pk="a").update(n__inc=0.5) == 1
    assert db.get("inc", "a")["n"] == 0.5
    assert _pks(q.where(n__gt=1)) == {"b", "c"}


def test_update_push_pull(db: Storage) -> None:
    """``push`` appends (creating a list from missing or null); ``pull`` removes all equal."""
    docs: dict[str, dict[str, Any]] = {"a": {"t": [1, 2, 1.0, "x"]}, "b": {"t": None}, "c": {}}
    _store(db, "pp", docs)
    q = db.query("pp")
    assert q.update(t__push="y") == 3
    assert {d["pk"]: d["t"] for d in q} == {"a": [1, 2, 1.0, "x", "y"], "b": ["y"], "c": ["y"]}
    assert q.update(t__pull=1) == 1
    assert db.get("pp", "a")["t"] == [2, "x", "y"]
    assert q.update(t__pull="nothing") == 0
    assert q.where(pk="a").update(t__push=[1, 2]) == 1
    assert db.get("pp", "a")["t"] == [2, "x", "y", [1, 2]]
    assert q.where(pk="a").update(t__pull=[1, 2]) == 1
    assert db.get("pp", "a")["t"] == [2, "x", "y"]
    assert q.update(u__pull=1) == 0  # pulling from a missing field changes nothing
    assert "u" not in db.get("pp", "c")


def test_update_add_to_set(db: Storage) -> None:
    """``add_to_set`` appends only what is not there yet (JSON equality)."""
    _store(db, "ats", {"a": {"t": [1, "x"]}, "b": {}, "c": {"t": None}})
    q = db.query("ats")
    assert q.update(t__add_to_set=1.0) == 2
    assert {d["pk"]: d["t"] for d in q} == {"a": [1, "x"], "b": [1.0], "c": [1.0]}
    assert q.update(t__add_to_set="x") == 2
    assert q.update(t__add_to_set="x") == 0
    assert q.where(pk="a").update(t__add_to_set={"k": [1]}) == 1
    assert q.where(pk="a").update(t__add_to_set={"k": [1.0]}) == 0
    assert db.get("ats", "a")["t"] == [1, "x", {"k": [1]}]


def test_update_nested_paths(db: Storage) -> None:
    """Nested update paths create the objects on the way."""
    _store(db, "nu", {"a": {}, "b": {"x": {"y": 1, "keep": True}}})
    q = db.query("nu")
    assert q.update(x__y=2) == 2
    assert db.get("nu", "a") == {"pk": "a", "x": {"y": 2}}
    assert db.get("nu", "b") == {"pk": "b", "x": {"y": 2, "keep": True}}
    assert q.update(**{"x.z.w__inc": 1}) == 2
    assert db.get("nu", "a")["x"] == {"y": 2, "z": {"w": 1}}
    assert q.where(pk="b").update(x__keep__unset=True, x__tags__push="t") == 1
    assert db.get("nu", "b")["x"] == {"y": 2, "z": {"w": 1}, "tags": ["t"]}
    assert _pks(q.where(x__z__w=1)) == {"a", "b"}


def test_update_count_changed(db: Storage) -> None:
    """``update`` returns how many documents actually changed."""
    _store(db, "cnt", {"a": {"s": "x", "n": 1}, "b": {"s": "y", "n": 1.0}, "c": {"s": "x"}})
    q = db.query("cnt")
    assert q.update(s="x") == 1
    assert q.update(s="x") == 0
    assert q.where(s="nope").update(s="z") == 0
    assert q.where(n__exists=True).update(n=1) == 0  # 1.0 == 1: nothing changes
    assert q.where(pk="c").update(n__unset=True) == 0
    assert q.update(n__inc=0) == 1  # only "c" had no n


def test_update_validation_nothing_written(db: Storage) -> None:
    """With a bound model an invalid result raises ``ValidationError`` and writes nothing."""
    people = [Person(pk=f"p{i}", name=f"P{i}", age=i, email=f"{i}@x") for i in range(4)]
    db.save_many(people)
    before = sorted(db.query("people"), key=lambda d: d["pk"])
    version = db.version(Person)
    q = Person.objects(db)
    with pytest.raises(ValidationError):
        q.update(age="not a number")
    with pytest.raises(ValidationError):
        q.update(age__inc=0.5)
    with pytest.raises(ValidationError):
        q.update(name__unset=True)
    with pytest.raises(ValidationError):
        q.where(age__gte=2).update(tags__push=5, name="ok")
    assert sorted(db.query("people"), key=lambda d: d["pk"]) == before
    assert db.version(Person) == version
    # a valid update goes through, revalidated (unset restores the default)
    assert q.where(age__lt=2).update(age__inc=10, email__unset=True, tags__push="t") == 2
    got = db.get(Person, "p0")
    assert (got.age, got.email, got.tags) == (10, None, ["t"])
    # the API page's example
    ann = Person(pk="ann", name="Ann", age=31, email="ann@x")
    db.save(ann)
    changed = (
        Person.objects(db)
        .where(pk="ann")
        .update(age__inc=1, name="x", tags__push="y", email__unset=True)
    )
    assert changed == 1
    ann2 = db.get(Person, "ann")
    assert (ann2.age, ann2.name, ann2.tags, ann2.email) == (32, "x", ["y"], None)


def test_update_errors(db: Storage) -> None:
    """Bad updates raise ``QueryError`` and write nothing."""
    _store(db, "ue", {"a": {"n": "text", "t": 5, "o": {"k": 1}}})
    q = db.query("ue")
    before = db.get("ue", "a")
    with pytest.raises(QueryError):
        q.update(n__inc=1)  # a string cannot be incremented
    with pytest.raises(QueryError):
        q.update(t__push=1)  # not a list
    with pytest.raises(QueryError):
        q.update(t__add_to_set=1)
    with pytest.raises(QueryError):
        q.update(t__pull=1)
    with pytest.raises(QueryError):
        q.update(n__inc="1")
    with pytest.raises(QueryError):
        q.update(n__unset=False)
    with pytest.raises(QueryError):
        q.update(pk="other")
    with pytest.raises(QueryError):
        q.update(o=1, o__k=2)  # overlapping paths
    with pytest.raises(QueryError):
        q.update()
    with pytest.raises(QueryError):
        q.update(n=float("nan"))
    with pytest.raises(QueryError):
        q.update(n=2**64)
    with pytest.raises(QueryError):
        q.update(n__inc=1)
    with pytest.raises(QueryError):
        q.update(n__k=1)  # n is a string, not an object
    assert db.get("ue", "a") == before


# --------------------------------------------------------------------- errors
def test_invalid_operands(db: Storage) -> None:
    """Bad operands and unknown directions raise ``QueryError`` before reaching the database."""
    q = db.query("ops")
    bad: list[dict[str, Any]] = [
        {"n__between": (1,)},
        {"n__between": (1, 2, 3)},
        {"n__between": 5},
        {"n__between": (1, "z")},
        {"n__between": (True, False)},
        {"n__size": "3"},
        {"n__size": -1},
        {"n__size": True},
        {"n__exists": 1},
        {"n__exists": "yes"},
        {"n__isnull": None},
        {"n__in": "abc"},
        {"n__in": 5},
        {"n__nin": "abc"},
        {"n__all": []},
        {"n__any": "x"},
        {"n__gt": None},
        {"n__gt": True},
        {"n__lt": [1]},
        {"n__gte": {"a": 1}},
        {"n__startswith": 1},
        {"n__icontains": None},
        {"n__matches": "(unclosed"},
        {"n__matches": "\\d+"},
        {"n__matches": "(?i)x"},
        {"n__matches": 5},
        {"n": float("nan")},
        {"n": float("inf")},
        {"n": 2**64},
        {"n": "\ud800"},
        {"n__in": [1, float("nan")]},
        {"n": object()},
    ]
    for cond in bad:
        with pytest.raises(QueryError):
            q.where(**cond)
        with pytest.raises(QueryError):
            q.where_not(**cond)
        with pytest.raises(QueryError):
            Q(**cond)
    for key in ("~age", "", "-", "age desc", "age__", "*age"):
        with pytest.raises(QueryError):
            q.order_by(key)
    with pytest.raises(QueryError):
        q.where("age > 3")  # type: ignore[arg-type]
    assert isinstance(QueryError("x"), ValueError)


HOSTILE_FIELDS = ["a b", "$gt", "a..b", "", "x;y", "a'b", 'a"b', "a-b", "1a", "a.", ".a", "a/*"]


def test_hostile_field_names(db: Storage) -> None:
    """Field names that are not plain identifier paths raise ``QueryError`` everywhere."""
    db.save({"pk": "x", "a": 1}, collection="hf")
    q = db.query("hf")
    for name in HOSTILE_FIELDS:
        with pytest.raises(QueryError):
            q.where(**{name: 1})
        with pytest.raises(QueryError):
            q.where(**{f"{name}__gt": 1})
        with pytest.raises(QueryError):
            q.where_not(**{name: 1})
        with pytest.raises(QueryError):
            Q(**{name: 1})
        with pytest.raises(QueryError):
            q.order_by(name)
        with pytest.raises(QueryError):
            q.order_by(f"-{name}")
        with pytest.raises(QueryError):
            q.values(name)
        with pytest.raises(QueryError):
            q.update(**{name: 1})
        with pytest.raises(QueryError):
            q.update(**{f"{name}__inc": 1})
    assert db.get("hf", "x") == {"pk": "x", "a": 1}
    assert db.query("hf").count() == 1


HOSTILE_VALUES: list[Any] = [
    {"$gt": ""},
    {"$ne": None},
    {"$where": "1 == 1"},
    "' OR 1=1 --",
    "x'; DROP TABLE people; --",
    '") OR ("1"="1',
    "%",
    "_",
    "\\",
    "$.a",
    "*",
    ".*",
    "[",
]


def test_hostile_values_literal(db: Storage) -> None:
    """Values that look like query syntax are compared literally.

    A backend may refuse to *store* an object whose keys it cannot hold (MongoDB
    and ``$``-keys) with ``InvalidDocument``; as query operands they still work.
    """
    docs: dict[str, dict[str, Any]] = {"plain": {"v": "plain"}, "empty": {"v": ""}}
    docs["obj"] = {"v": {"a": 1}}
    docs["num"] = {"v": 1}
    for i, value in enumerate(HOSTILE_VALUES):
        try:
            db.save({"pk": f"h{i}", "v": value}, collection="hv")
        except InvalidDocument:
            assert isinstance(value, dict), f"{value!r} must be storable"
            continue
        docs[f"h{i}"] = {"v": value}
    _store(db, "hv", {k: v for k, v in docs.items() if not k.startswith("h")})
    everything = set(docs)
    assert _pks(db.query("hv")) == everything
    q = db.query("hv")
    for i, value in enumerate(HOSTILE_VALUES):
        expected = {f"h{i}"} & everything
        _check(q, expected, everything, v=value)
        _check(q, expected, everything, v__in=[value])
        _check(q, expected, everything, v__in=[value, "nothing"])
        if isinstance(value, str):
            assert expected <= _pks(q.where(v__startswith=value))
            assert expected <= _pks(q.where(v__endswith=value))
            assert expected <= _pks(q.where(v__contains=value))
            assert expected <= _pks(q.where(v__icontains=value))
            assert _pks(q.where(pk=value)) == set()
        else:
            assert _pks(q.where(v__ne=value)) == everything - expected
    assert _pks(q.where(v__contains="%")) == {"h6"}
    assert _pks(q.where(v__contains="_")) == {"h7"}
    assert _pks(q.where(v__contains="\\")) == {"h8"}
    assert _pks(q.where(v__startswith="_")) == {"h7"}
    assert _pks(q.where(v__endswith="*")) == {"h10", "h11"}
    assert _pks(q.where(v__startswith="[")) == {"h12"}
    assert _pks(q.where(v__icontains="' or 1=1 --")) == {"h3"}
    assert _pks(q.where(v__gt="")) == everything - {"obj", "num", "empty", "h0", "h1", "h2"}
    assert db.query("people").count() == 0
    assert db.query("hv").count() == len(docs)


def test_update_overflow(db: Storage) -> None:
    """An ``inc`` whose result leaves 64 bits raises ``InvalidDocument`` and writes nothing."""
    _store(db, "ovf", {"a": {"n": 2**63 - 2}, "b": {"n": -(2**63) + 1}})
    q = db.query("ovf")
    with pytest.raises(InvalidDocument):
        q.where(pk="a").update(n__inc=10)
    with pytest.raises(InvalidDocument):
        q.where(pk="b").update(n__inc=-10)
    assert q.where(pk="a").update(n__inc=1) == 1
    assert db.get("ovf", "a")["n"] == 2**63 - 1
    assert db.get("ovf", "b")["n"] == -(2**63) + 1
