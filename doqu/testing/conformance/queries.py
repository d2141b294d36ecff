"""Queries: composing conditions, ordering, slicing, and what a query answers.

``Q`` with ``& | ~``, chained ``where``/``where_not``, immutable queries,
``order_by`` over mixed kinds, by code point and on several keys, indexing and
slicing, ``count``/``len``/``exists``/``first``, ``values`` and ``delete``.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..._errors import QueryError
from ..._storage import Storage
from ..._tree import Q
from ._common import _kinds, _ordered, _pk, _pks, _store

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
