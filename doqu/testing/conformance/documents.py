"""Documents: saving and reading them, primary keys, stored forms, unique indexes.

``save``/``save_many``/``get``/``get_many``/``get_or_create``/``delete``,
generated pks, Unicode and extra fields, the stored form of datetimes, UUIDs,
Decimals and enums, documents that cannot be stored (``InvalidDocument``) or no
longer validate (``CorruptDocument``), nested models validated again before a
write, and ``DuplicateKey`` on unique indexes.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ..._document import Document
from ..._errors import (
    CorruptDocument,
    DoquError,
    DuplicateKey,
    InvalidDocument,
    NotFound,
    QueryError,
)
from ..._storage import Storage
from ._common import (
    Address,
    Code,
    Coded,
    Color,
    Event,
    Geo,
    Measure,
    Person,
    Strict,
    Trip,
    _ordered,
    _pks,
    _store,
)


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
