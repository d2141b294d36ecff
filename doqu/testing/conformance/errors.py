"""Errors and hostile input: what is refused before anything reaches a backend.

Bad operands and order keys (``QueryError``), field names that are not plain
paths, values that look like query syntax (compared literally), and an ``inc``
that overflows 64 bits (``InvalidDocument``).
"""

from __future__ import annotations

from typing import Any

import pytest

from ..._errors import InvalidDocument, QueryError
from ..._storage import Storage
from ..._tree import Q
from ._common import _check, _pks, _store


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
