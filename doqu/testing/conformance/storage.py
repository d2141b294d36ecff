"""The storage object: queries by model or by name, collections, versions, lifecycle.

``db.query(Model)`` against ``Model.objects(db)``, plain-dict collections,
``clear()`` and ``collections()``, the version token changing on every write,
and ``close()``, ``flush()`` and ``reconnect()``.
"""

from __future__ import annotations

import pytest

from ..._errors import QueryError, StorageError
from ..._storage import Storage
from ._common import Person


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
