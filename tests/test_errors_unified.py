"""Errors a program can act on: the same ``DuplicateKey`` and ``ConfigError`` on every backend.

``DuplicateKey`` names the collection, the unique fields, the value and the pk
already holding it, with the same attributes and message text everywhere; an
unknown connect option (keyword or URL query) is a ``ConfigError`` listing the
accepted ones.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pydantic import BaseModel

import doqu
from doqu import ConfigError, Document, DuplicateKey, QueryError, Storage


class Address(BaseModel):
    city: str


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None
    address: Address | None = None

    class Meta:
        collection = "people"
        unique = ["email", ("name", "age"), "address__city"]  # noqa: RUF012


def _pks(db: Storage) -> set[str]:
    return {p.pk for p in db.query(Person) if p.pk is not None}


def _raised(call: Any) -> DuplicateKey:
    with pytest.raises(DuplicateKey) as info:
        call()
    return info.value


# ------------------------------------------------------------------ DuplicateKey
def test_one_field(db: Storage) -> None:
    db.save(Person(pk="ann", name="Ann", email="a@x"))
    err = _raised(lambda: db.save(Person(pk="bob", name="Bob", email="a@x")))
    assert (err.collection, err.fields, err.value, err.pk) == ("people", ("email",), "a@x", "ann")
    assert str(err) == "duplicate key in 'people': email='a@x' is already held by pk 'ann'"
    assert _pks(db) == {"ann"}


def test_compound_and_nested_fields(db: Storage) -> None:
    db.save(Person(pk="ann", name="Ann", age=30, address=Address(city="Paris")))
    err = _raised(lambda: db.save(Person(pk="bob", name="Ann", age=30)))
    assert (err.fields, err.value, err.pk) == (("name", "age"), ("Ann", 30), "ann")
    assert str(err) == "duplicate key in 'people': name='Ann', age=30 is already held by pk 'ann'"
    err = _raised(lambda: db.save(Person(pk="cy", name="Cy", address=Address(city="Paris"))))
    assert (err.fields, err.value, err.pk) == (("address.city",), "Paris", "ann")
    assert str(err) == "duplicate key in 'people': address.city='Paris' is already held by pk 'ann'"
    assert _pks(db) == {"ann"}


def test_save_many_with_a_clash_writes_nothing(db: Storage) -> None:
    db.save(Person(pk="ann", name="Ann", email="a@x"))
    version = db.version(Person)
    batch = [Person(pk="b", name="B", email="b@x"), Person(pk="c", name="C", email="a@x")]
    err = _raised(lambda: db.save_many(batch))
    assert (err.fields, err.value, err.pk) == (("email",), "a@x", "ann")
    assert _pks(db) == {"ann"}
    # Within the batch: the holder is the batch's earlier document.
    batch = [Person(pk="d", name="D", email="d@x"), Person(pk="e", name="E", email="d@x")]
    err = _raised(lambda: db.save_many(batch))
    assert (err.fields, err.value, err.pk) == (("email",), "d@x", "d")
    assert str(err) == "duplicate key in 'people': email='d@x' is already held by pk 'd'"
    assert _pks(db) == {"ann"}
    if not db.url.startswith("mongodb"):
        # MongoDB without a replica set inserts, then undoes: its version moves (a reader
        # may have seen the documents meanwhile); everywhere else nothing was written.
        assert db.version(Person) == version


def test_update_causing_a_clash(db: Storage) -> None:
    db.save_many([Person(pk="ann", name="Ann", email="a@x"), Person(pk="bob", name="Bob")])
    err = _raised(lambda: db.query(Person).where(pk="bob").update(email="a@x"))
    assert (err.collection, err.fields, err.value, err.pk) == ("people", ("email",), "a@x", "ann")
    assert str(err) == "duplicate key in 'people': email='a@x' is already held by pk 'ann'"
    assert db.get(Person, "bob").email is None


def test_taken_pk_in_get_or_create(db: Storage) -> None:
    db.save(Person(pk="ann", name="Ann"))
    err = _raised(lambda: db.get_or_create(Person, name="Zed", defaults={"pk": "ann"}))
    assert (err.collection, err.fields, err.value, err.pk) == ("people", ("pk",), "ann", "ann")
    assert str(err) == "duplicate key in 'people': pk 'ann' is already taken"
    assert db.get(Person, "ann").name == "Ann"


def test_mapping_view_of_a_model(db: Storage) -> None:
    people = db.dict(Person)
    people["ann"] = Person(name="Ann", email="a@x")
    err = _raised(lambda: people.__setitem__("bob", Person(name="Bob", email="a@x")))
    assert (err.fields, err.value, err.pk) == (("email",), "a@x", "ann")
    assert "bob" not in people


class Late(Document):
    name: str
    email: str | None = None

    class Meta:
        collection = "late"
        unique = ["email"]  # noqa: RUF012


def test_unique_index_over_stored_duplicates(db: Storage) -> None:
    """An index that cannot be built names two documents sharing a value (SQL, MongoDB)."""
    rows = [{"pk": "a", "name": "A", "email": "x"}, {"pk": "b", "name": "B", "email": "x"}]
    db.save_many(rows, collection="late")
    try:
        count = db.query(Late).count()
    except DuplicateKey as err:  # the database builds unique indexes
        assert (err.collection, err.fields, err.value) == ("late", ("email",), "x")
        assert err.pk in ("a", "b")
    else:  # memory and TinyDB check on write
        assert count == 2
        with pytest.raises(DuplicateKey):
            db.save(Late(pk="c", name="C", email="x"))


def test_duplicate_key_is_plain_data() -> None:
    err = DuplicateKey("people", ["name", "age"], ("Ann", 30))
    assert err.fields == ("name", "age") and err.pk is None
    assert (
        str(err)
        == "duplicate key in 'people': name='Ann', age=30 is already held by another document"
    )
    again = pickle.loads(pickle.dumps(err))
    assert (again.collection, again.fields, again.value, again.pk) == (
        "people",
        ("name", "age"),
        ("Ann", 30),
        None,
    )
    assert str(again) == str(err)
    long = DuplicateKey("c", ["v"], "x" * 500, "p")
    assert len(str(long)) < 120 and str(long).endswith("… is already held by pk 'p'")


# ---------------------------------------------------------------- unknown options
def _with_query(url: str, item: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{item}"


#: An option each backend passes to its driver (or takes itself): still accepted.
DRIVER_OPTION = {
    "memory": "read_only=false",
    "memory-persist": "read_only=false",
    "sqlite": "timeout=5",
    "sqlite-memory": "timeout=5",
    "postgresql": "connect_timeout=5",
    "mysql": "connect_timeout=5",
    "tinydb": "autoflush=true",
    "mongodb": "appName=doqu-test",
}


def test_unknown_keyword_option(db_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        doqu.connect(db_url, nonsense=1)
    text = str(info.value)
    assert text.startswith("unknown option 'nonsense' for ") and "; accepted: " in text
    assert "read_only" in text and "?" not in text.split(";")[0]  # no URL query shown


def test_unknown_url_option(db_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        doqu.connect(_with_query(db_url, "nonsense=1"))
    text = str(info.value)
    assert text.startswith("unknown option 'nonsense' for ") and "read_only" in text


def test_known_options_still_work(db_url: str, backend: str) -> None:
    with doqu.connect(_with_query(db_url, DRIVER_OPTION[backend])) as db:
        db.save({"pk": "a", "v": 1}, collection="c")
        assert db.get("c", "a") == {"pk": "a", "v": 1}
    with doqu.connect(db_url, read_only=False) as db:
        assert not db.read_only


def test_option_errors_name_the_options() -> None:
    with pytest.raises(ConfigError, match=r"accepted: persist, read_only$"):
        doqu.connect("memory://", nonsense=1)
    with pytest.raises(ConfigError, match=r"sqlalchemy.create_engine\(\) keywords"):
        doqu.connect("sqlite:///a.db", nonsense=1)
    with pytest.raises(ConfigError, match=r"sqlite3 driver's URL parameters \(.*timeout"):
        doqu.connect("sqlite:///a.db?nonsense=1")
    with pytest.raises(ConfigError, match=r"for postgresql://u:\*\*\*@h/x; accepted"):
        doqu.connect("postgresql://u:secret@h/x?nonsense=1")
    with pytest.raises(ConfigError, match="not a boolean"):
        doqu.connect("memory://?read_only=maybe")


# -------------------------------------------------------------- update overlaps
def test_update_twice_says_what_to_do(db: Storage) -> None:
    with pytest.raises(QueryError) as info:
        db.query("t").update(labels__push="a", labels__pull="b")
    assert str(info.value) == (
        "update() changes 'labels' twice (push and pull); make two update() calls, one per operator"
    )
    with pytest.raises(QueryError, match="make two update"):
        db.query("t").update(o=1, o__k=2)
