"""Lookups: every filter of the API table, on values of every kind.

``exact``/``ne``, comparisons and ``between`` within one kind, ``in``/``nin``,
``exists``/``isnull``, ``contains``, prefixes and suffixes, ASCII-only case
folding, ``matches`` (the portable regular expressions), ``size``,
``all``/``any``, and the paths they take: nested, named like a lookup, ``pk``.
"""

from __future__ import annotations

from typing import Any

from ..._storage import Storage
from ..._tree import Q
from ._common import STRINGS, _check, _kinds, _ordered, _pks, _store, _values_set


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
