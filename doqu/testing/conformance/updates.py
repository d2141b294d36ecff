"""Updates: ``Query.update`` and its operators.

``set``/``unset``, ``inc``, ``push``/``pull``, ``add_to_set``, nested paths,
the count of documents changed, revalidation with a bound model, and bad
updates that raise ``QueryError`` and write nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ..._errors import QueryError
from ..._storage import Storage
from ._common import Person, _pks, _store


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
