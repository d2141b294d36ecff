"""The API page's examples on ``memory://``, exactly as written, plus the public names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pydantic import BaseModel

import doqu
from doqu import Document, Q

EXPECTED_PUBLIC = {
    "DoquError",
    "NotFound",
    "DuplicateKey",
    "QueryError",
    "ConfigError",
    "StorageError",
    "CorruptDocument",
    "InvalidDocument",
    "Query",
    "Storage",
    "Q",
    "Document",
    "Field",
    "NotLoaded",
    "Ref",
    "Sort",
    "UpdateOp",
    "field",
    "connect",
    "register_backend",
    "AsyncMappingView",
    "AsyncQuery",
    "AsyncStorage",
    "connect_async",
    "MigrationReport",
}


class Address(BaseModel):  # embedded: any pydantic model
    city: str
    zip: str | None = None


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []  # noqa: RUF012
    address: Address | None = None

    class Meta:
        collection = "people"  # default: the class name in snake_case
        indexes = ["age", ("name", "age")]  # noqa: RUF012 - created on first use
        unique = ["email"]  # noqa: RUF012


def test_public_names() -> None:
    assert set(doqu.__all__) == EXPECTED_PUBLIC
    assert len(doqu.__all__) == len(EXPECTED_PUBLIC)
    for name in EXPECTED_PUBLIC:
        assert getattr(doqu, name) is not None


def test_error_tree() -> None:
    assert issubclass(doqu.NotFound, doqu.DoquError) and issubclass(doqu.NotFound, KeyError)
    for cls in (doqu.QueryError, doqu.ConfigError, doqu.InvalidDocument):
        assert issubclass(cls, doqu.DoquError) and issubclass(cls, ValueError)
    for other in (doqu.DuplicateKey, doqu.StorageError, doqu.CorruptDocument):
        assert issubclass(other, doqu.DoquError)
        assert not issubclass(other, (KeyError, ValueError))
    assert issubclass(doqu.DoquError, Exception)
    err = doqu.NotFound("people", ["a", "b"])
    assert err.pks == ["a", "b"] and err.collection == "people"
    assert str(err) == "not found in 'people': 'a', 'b'"
    corrupt = doqu.CorruptDocument("people", "x")
    assert corrupt.collection == "people" and corrupt.pk == "x"


def test_connect_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    db = doqu.connect("memory://")
    assert isinstance(db, doqu.Storage)
    db.close()
    monkeypatch.setenv("DOQU_URL", "memory://")
    db = doqu.connect()  # $DOQU_URL
    assert db.url == "memory://"
    db.close()
    with doqu.connect("memory://") as db:  # closes on exit
        db.save({"x": 1}, collection="c")
    assert db.closed
    with pytest.raises(doqu.StorageError):
        db.query("c").count()


def test_connect_default_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No argument and no ``$DOQU_URL``: ``sqlite:///doqu.sqlite3`` in the working directory."""
    if importlib.util.find_spec("doqu.ext.sql") is None:
        pytest.skip("doqu.ext.sql is not built yet")
    monkeypatch.delenv("DOQU_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with doqu.connect() as db:
        assert db.url == "sqlite:///doqu.sqlite3"
        db.save({"x": 1}, collection="c")
    assert (tmp_path / "doqu.sqlite3").exists()


def test_documents_section() -> None:
    with doqu.connect("memory://") as db:
        ann = Person(pk="ann", name="Ann", age=31, address=Address(city="Paris"))
        assert ann.pk == "ann"
        assert "pk" not in ann.model_dump()
        bob = Person(name="Bob")
        assert bob.pk is None
        assert db.save(ann) == "ann"
        pk = bob.save(db)
        assert bob.pk == pk and len(pk) == 32
        assert Person.__doqu_collection__.indexes == ((("age",),), (("name",), ("age",)))
        assert Person.__doqu_collection__.unique == ((("email",),),)
        db.save(Person(name="C", email="c@x"))
        with pytest.raises(doqu.DuplicateKey):
            db.save(Person(name="D", email="c@x"))
        assert db.query(Person).count() == 3


def test_storage_table() -> None:
    with doqu.connect("memory://") as db:
        doc = Person(name="Ann", age=31)
        pk = db.save(doc)
        assert doc.save(db) == pk
        pks = db.save_many([Person(name="Bob"), Person(name="Cy")])
        assert db.get(Person, pk) == doc
        assert [p.name for p in db.get_many(Person, [pks[1], pk])] == ["Cy", "Ann"]
        with pytest.raises(doqu.NotFound) as info:
            db.get_many(Person, [pk, "nope"])
        assert "nope" in str(info.value)
        got, created = db.get_or_create(Person, defaults={"age": 5}, name="Dee")
        assert created and got.age == 5
        got2, created2 = db.get_or_create(Person, defaults={"age": 5}, name="Dee")
        assert not created2 and got2.pk == got.pk
        db.delete(got)
        db.delete(Person, pks[0])
        db.get(Person, pks[1]).delete(db)
        with pytest.raises(doqu.NotFound):
            db.delete(Person, pks[0])
        assert [p.name for p in db.query(Person)] == [p.name for p in Person.objects(db)]
        assert [d["pk"] for d in db.query("people")] == [pk]
        assert db.query("people").first() == {
            "pk": pk,
            "name": "Ann",
            "age": 31,
            "email": None,
            "tags": [],
            "address": None,
        }
        db.save({"k": 1}, collection="other")
        assert db.collections() == ["other", "people"]
        db.clear(Person)
        assert db.collections() == ["other"]
        db.save(Person(name="x"))
        db.clear("people")
        assert db.collections() == ["other"]
        db.clear()
        assert db.collections() == []
        db.reconnect()
        db.flush()
        db.close()
        with pytest.raises(doqu.StorageError):
            db.get(Person, pk)
        with pytest.raises(doqu.StorageError):
            db.save(Person(name="late"))


def test_queries_section() -> None:
    with doqu.connect("memory://") as db:
        db.save_many(
            [
                Person(pk="ann", name="Ann", age=40, address=Address(city="Paris")),
                Person(pk="bea", name="Bea", age=30, address=Address(city="Paris")),
                Person(pk="cal", name="Cal", age=40, address=Address(city="Paris")),
                Person(pk="dan", name="Dan", age=50, address=Address(city="Oslo")),
                Person(pk="kid", name="Kid", age=10, tags=["x"]),
                Person(pk="old", name="Old", age=70),
                Person(pk="oldx", name="Oldx", age=70, tags=["x"]),
            ]
        )
        q = Person.objects(db).where(age__gte=30, address__city="Paris")
        q = q.where_not(name__startswith="A").order_by("-age", "name")
        assert [p.pk for p in q] == ["cal", "bea"]
        r = q.where(Q(age__lt=18) | Q(age__gt=65) & ~Q(tags__contains="x"))
        assert list(r) == []
        everyone = Person.objects(db)
        picked = everyone.where(Q(age__lt=18) | Q(age__gt=65) & ~Q(tags__contains="x"))
        assert {p.pk for p in picked} == {"kid", "old"}
        ordered = everyone.order_by("age", "name")
        assert ordered[3].pk == "cal"
        assert [p.pk for p in ordered[1:3]] == ["bea", "ann"]
        assert ordered.first() is not None and ordered.first().pk == "kid"  # type: ignore[union-attr]
        assert everyone.exists() and everyone.count() == len(everyone) == 7
        assert sorted(everyone.values("address__city")) == ["Oslo", "Paris"]
        assert sorted(everyone.values("tags")) == ["x"]
        n = everyone.where(pk="ann").update(age__inc=1, name="x", tags__push="y", email__unset=True)
        assert n == 1
        ann = db.get(Person, "ann")
        assert (ann.age, ann.name, ann.tags, ann.email) == (41, "x", ["y"], None)
        assert everyone.where(age__gte=70).delete() == 2
        assert everyone.count() == 5
