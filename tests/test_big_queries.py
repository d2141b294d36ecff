"""Big queries on every backend: long operand lists, long ``|``/``&`` chains, deep trees.

Each answer is checked against the reference evaluator run over what the backend
stored; a tree nested past ``MAX_QUERY_DEPTH`` is refused with ``QueryError`` as it
is built, and nothing raises ``RecursionError`` or a driver error.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import doqu
from doqu import Q, QueryError
from doqu._tree import MAX_QUERY_DEPTH
from doqu.backend import And, Cond, Node, Not, Or, canonical, distinct, filter_rows

COLL = "big"
N = 10_000
PLAIN = 24


def _docs() -> list[dict[str, Any]]:
    """About 40 documents, with the values a list lookup must tell apart."""
    docs: list[dict[str, Any]] = []
    for i in range(PLAIN):
        docs.append(
            {"pk": f"d{i:02d}", "n": i, "f": i + 0.5, "s": f"s{i}", "tags": [i, f"t{i}", i * 1.5]}
        )
    odd: list[Any] = [
        True, False, None, "5", 7.0, 2**60, 2**53 + 1, 2.0**53, -0.5, [3], [3, 4], {"x": 1},
        {"x": 1, "y": [1.0]}, "", "S5", 1e300,
    ]  # fmt: skip
    for i, value in enumerate(odd):
        docs.append({"pk": f"o{i:02d}", "n": value, "s": value, "tags": [value, None, [i]]})
    docs.append({"pk": "z-missing"})
    docs.append({"pk": "z-scalar", "n": "t3", "tags": "t3"})
    docs.append({"pk": "z-empty", "tags": []})
    return docs


def _operands(seed: int = 1, n: int = N) -> list[Any]:
    """*n* operands, almost all matching nothing, of every kind; a few that match."""
    rng = random.Random(seed)
    ops: list[Any] = []
    while len(ops) < n:
        r = rng.random()
        if r < 0.35:
            ops.append(rng.randrange(10**6, 10**12))
        elif r < 0.7:
            ops.append(rng.uniform(1e6, 1e9))
        else:
            ops.append(f"x{rng.randrange(10**9)}")
    # Matches (and near misses: 1 is no True, "5" no 5, 2**53 no 2**53 + 1, [3] no [[3]]).
    tricky = [
        3, 4.0, "s5", "t7", 1, "5", 2**60, 2.0**53, [3], {"y": [1], "x": 1}, None, 1e300,
        "S5", -0.5, 10.5, "", 12, "t12", 18.0,
    ]  # fmt: skip
    for k, value in enumerate(tricky):
        ops[(k * 997) % n] = value
    return ops


def _fill(db: doqu.Storage) -> list[tuple[str, dict[str, Any]]]:
    db.save_many(_docs(), collection=COLL)
    return _stored(db)


def _stored(db: doqu.Storage) -> list[tuple[str, dict[str, Any]]]:
    """What the backend holds, as the evaluator's rows."""
    return [(d.pop("pk"), d) for d in db.query(COLL)]


def _expected(rows: list[tuple[str, dict[str, Any]]], node: Node | None) -> list[str]:
    return sorted(pk for pk, _ in filter_rows(rows, node))


def _same_values(got: list[Any], want: list[Any]) -> bool:
    """``values()`` results alike up to the spelling of JSON-equal values (``1``/``1.0``)."""
    return sorted(map(canonical, got)) == sorted(map(canonical, want))


def _check(db: doqu.Storage, rows: list[tuple[str, dict[str, Any]]], q: Q) -> list[str]:
    """Iterate and count *q*; both must agree with the evaluator. Returns the pks."""
    want = _expected(rows, q.node)
    query = db.query(COLL).where(q)
    assert sorted(d["pk"] for d in query) == want
    assert query.count() == len(want)
    return want


# ---------------------------------------------------------------- long lists
def test_in_nin_any_all_with_ten_thousand_operands(db: doqu.Storage) -> None:
    rows = _fill(db)
    ops = _operands()
    assert len(_check(db, rows, Q(n__in=ops))) >= 8
    assert len(_check(db, rows, Q(s__nin=ops))) >= 30
    assert len(_check(db, rows, Q(tags__any=ops))) >= 10
    assert _check(db, rows, Q(tags__all=ops)) == []  # no list holds 10,000 values
    assert _check(db, rows, Q(pk__in=[f"d{i:02d}" for i in range(0, 80, 2)] + ops)) == [
        f"d{i:02d}" for i in range(0, PLAIN, 2)
    ]


def test_all_finds_a_list_holding_every_operand(db: doqu.Storage, backend: str) -> None:
    # MongoDB tests each operand of $all with a scan of the list (SecantusDB in Python):
    # a list of n holding n operands costs n**2 / 2 compares there, so n is smaller.
    ops = _operands(seed=2, n=300 if backend == "mongodb" else N)
    full = [*reversed(ops), 2**60 + 1, "extra"]
    db.save_many(
        [
            {"pk": "full", "tags": full},
            {"pk": "short", "tags": full[1:]},  # long enough, one operand short
            {"pk": "twice", "tags": ops[: len(ops) // 2] * 3},  # long enough, half the operands
            {"pk": "as-floats", "tags": [float(v) if type(v) is int else v for v in full]},
        ],
        collection=COLL,
    )
    rows = _stored(db)
    assert _check(db, rows, Q(tags__all=ops)) == ["as-floats", "full"]
    assert _check(db, rows, Q(tags__all=[*ops, 1, 1.0, 3.0])) == ["as-floats", "full"]
    assert _check(db, rows, Q(tags__all=[*ops, "missing"])) == []
    assert _check(db, rows, Q(tags__any=ops)) == ["as-floats", "full", "short", "twice"]


@pytest.mark.parametrize("lookup", ["in", "nin", "all", "any"])
def test_list_lookups_keep_kinds_apart(db: doqu.Storage, lookup: str) -> None:
    """Short lists of every kind: numbers by value, bools no numbers, lists whole."""
    rows = _fill(db)
    lists: list[list[Any]] = [
        [1, 3.0, "t3"],
        [True, None, "5", 2**53 + 1],
        [[3], {"x": 1}, 2.0**60, ""],
        [0, 0.0, False, 1e300, -0.5, "S5"],
        [None, [0], [16], "t1", 1, 1.5],
    ]
    field = "tags" if lookup in ("all", "any") else "n"
    for ops in lists:
        _check(db, rows, Q(**{f"{field}__{lookup}": ops}))


def test_values_update_and_delete_with_long_lists(db: doqu.Storage) -> None:
    rows = _fill(db)
    ops = _operands(seed=3)
    hit = db.query(COLL).where(n__in=ops)
    assert _same_values(hit.values("s"), distinct(filter_rows(rows, Q(n__in=ops).node), ("s",)))
    matched = _expected(rows, Q(n__in=ops).node)
    assert hit.update(hit=True) == len(matched)
    assert sorted(d["pk"] for d in db.query(COLL).where(hit=True)) == matched
    kept = _expected(rows, Q(tags__any=ops).node)
    gone = db.query(COLL).where_not(tags__any=ops).delete()
    assert gone == len(rows) - len(kept)
    assert sorted(d["pk"] for d in db.query(COLL)) == kept


# --------------------------------------------------------------- long chains
def _mixed_or(ops: list[Any], terms: int) -> Q:
    """A left-deep ``q = q | Q(...)`` chain of *terms* conditions of several lookups."""
    q = Q(n=ops[0])
    for k in range(1, terms):
        op = ops[k]
        if k % 50 == 0:
            term = Q(tags__contains=f"t{k % 60}")  # a subquery on SQL: a few of them
        elif k % 4 == 1:
            term = Q(s__startswith=f"s{k % 97}x")
        elif k % 4 == 2:
            term = Q(f__gt=1e6 + k) if isinstance(op, str) else Q(f=op)
        else:
            term = Q(n=op)
        q = q | term
    return q | Q(s__endswith="9") | Q(n__isnull=True)


def test_two_thousand_term_or_and_and_chains(db: doqu.Storage) -> None:
    rows = _fill(db)
    ops = _operands(seed=4, n=2_000)
    wide_or = _mixed_or(ops, 2_000)
    assert isinstance(wide_or.node, Or) and wide_or.node.depth == 1
    assert len(_check(db, rows, wide_or)) >= 10
    wide_and = Q(n__ne=-1)
    for k, op in enumerate(ops):
        wide_and = wide_and & (Q(s__ne=op) if k % 3 else Q(f__lt=2e9 + k))
    assert isinstance(wide_and.node, And) and wide_and.node.depth == 1
    assert len(_check(db, rows, wide_and)) >= 20
    exacts = Q(n=-1)
    for op in ops:
        exacts = exacts | Q(n=op)
    _check(db, rows, exacts)
    _check(db, rows, exacts & wide_and)
    _check(db, rows, ~wide_or | Q(n__in=ops))


def test_chains_in_where_where_not_count_values_update_delete(db: doqu.Storage) -> None:
    rows = _fill(db)
    ops = _operands(seed=5, n=2_000)
    wide_or = _mixed_or(ops, 2_000)
    narrow = Q(s__nin=ops[:500])
    query = db.query(COLL).where(wide_or).where_not(narrow, n__gt=30)
    assert query.node == And((wide_or.node, Not(And((narrow.node, Cond(("n",), "gt", 30))))))
    want = _expected(rows, query.node)
    assert sorted(d["pk"] for d in query) == want
    assert query.count() == len(want)
    chosen = [(pk, d) for pk, d in rows if pk in want]
    assert _same_values(query.values("n"), distinct(chosen, ("n",)))
    assert query.update(seen=1) == len(want)
    assert db.query(COLL).where(seen=1).count() == len(want)
    assert db.query(COLL).where(wide_or).where_not(narrow, n__gt=30).delete() == len(want)
    assert db.query(COLL).count() == len(rows) - len(want)


# ---------------------------------------------------------------- deep trees
def _deep(levels: int) -> Q:
    """``&``, ``|`` and ``~`` nested inside one another: *levels* levels, every lookup kind."""
    leaves = [
        Q(tags__all=[3, "t3"]), Q(tags__any=[5, "t7", None]), Q(n__isnull=True),
        Q(s__nin=["s1", "s2"]), Q(tags__contains="t4"), Q(s__startswith="s1"),
        Q(n__in=[2**60, 3, [3]]), Q(f__between=(2, 30)),
    ]  # fmt: skip
    q = leaves[0]
    k = 0
    while q.node.depth < levels:
        k += 1
        step = k % 3
        if step == 0:
            q = Q(q, leaves[k % 8], leaves[(k + 3) % 8])
        elif step == 1:
            q = q | leaves[k % 8] | leaves[(k + 5) % 8]
        else:
            q = ~q
    return q


def test_trees_at_the_depth_limit_run_everywhere(db: doqu.Storage) -> None:
    rows = _fill(db)
    q = _deep(MAX_QUERY_DEPTH)
    assert q.node.depth == MAX_QUERY_DEPTH
    _check(db, rows, q)
    assert hash(q) == hash(_deep(MAX_QUERY_DEPTH)) and q == _deep(MAX_QUERY_DEPTH)
    assert repr(q).startswith("Q(Not(child=")
    at_limit = Q(_deep(MAX_QUERY_DEPTH - 1), n__exists=True)
    query = db.query(COLL).where(at_limit).where(n__ne=1).where_not(s="x")
    assert query.node is not None and query.node.depth == MAX_QUERY_DEPTH
    assert sorted(d["pk"] for d in query) == _expected(rows, query.node)
    nots = Q(tags__any=[3, "t3"])
    for _ in range(MAX_QUERY_DEPTH):
        nots = ~nots
    _check(db, rows, nots)
    want = _expected(rows, q.node)
    assert db.query(COLL).where(q).update(deep=True) == len(want)
    assert db.query(COLL).where(q).delete() == len(want)


def test_deeper_trees_are_refused_naming_the_limit(db: doqu.Storage) -> None:
    _fill(db)
    limit = f"{MAX_QUERY_DEPTH} levels"
    with pytest.raises(QueryError, match=limit):
        _deep(2_000)
    with pytest.raises(QueryError, match=limit):
        q = Q(n=1)
        for _ in range(2_000):
            q = ~q
    with pytest.raises(QueryError, match=limit):
        q = Q(n=1)
        for k in range(2_000):
            q = Q(n=k) & (Q(s=k) | q)
    node: Node = Cond(("n",), "exact", 1)
    with pytest.raises(QueryError, match=limit):  # built by hand, from the backend API
        for k in range(2_000):
            node = And((Or((node, Cond(("s",), "exact", k))),))
    deep = _deep(MAX_QUERY_DEPTH)
    with pytest.raises(QueryError, match=limit):
        db.query(COLL).where(~deep)
    with pytest.raises(QueryError, match=limit):
        db.query(COLL).where_not(deep | Q(n=1))
    with pytest.raises(QueryError, match=limit):
        db.query(COLL).where(deep).where(n=1)  # And(Not(...), n=1): one level more


# ------------------------------------------------------------- the tree itself
def test_chains_flatten_and_keep_equality_and_hashing() -> None:
    a, b, c, d = Q(a=1), Q(b=2), Q(c=3), Q(d=4)
    assert (a | b) | (c | d) == a | (b | (c | d)) == ((a | b) | c) | d
    assert hash((a & b) & c) == hash(a & (b & c))
    assert (a & b) | c != a & (b | c)
    assert Q(a & b, c) == a & b & c
    assert isinstance((~~a).node, Not) and (~~a).node.depth == 2
    chain = Q(n=0)
    for k in range(1, 2_000):
        chain = chain | Q(n=k)
    assert isinstance(chain.node, Or) and len(chain.node.children) == 2_000
    again = Q(n=0)
    for k in range(1, 2_000):
        again = again | Q(n=k)
    assert chain == again and hash(chain) == hash(again) and len({chain, again}) == 1
    assert repr(chain).startswith("Q(Or(children=(Cond(")
