"""Differential tests: a backend must answer exactly what the reference evaluator does.

Import these test functions into a test module that provides a ``db`` fixture
(a connected, empty :class:`doqu.Storage`)::

    from doqu.testing.differential import *  # noqa: F403

Each hypothesis example stores random documents in one collection and checks
several random queries against :mod:`doqu._evaluator`: the set of matches,
``count``, ``values``, ordered and sliced windows, ``exists``, and ``update``
and ``delete`` results. ``DOQU_DIFF_EXAMPLES`` sets the number of examples.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from .._errors import QueryError
from .._evaluator import apply_update, canonical, distinct, matches, sort_rows
from .._json import check_json, json_equal
from .._storage import Storage
from .._tree import Node, Path, Q, UpdateOp
from .aio import BlockingQuery, BlockingStorage
from .strategies import (
    Fields,
    Spec,
    Typed,
    as_expression,
    as_keyword,
    build,
    condition_specs,
    documents,
    orders,
    paths,
    query_trees,
    typed_documents,
    typed_orders,
    typed_trees,
    updates,
)

__all__ = [
    "CASES",
    "test_differential_expressions",
    "test_differential_filters",
    "test_differential_order_and_slices",
    "test_differential_typed",
    "test_differential_updates_and_deletes",
]

EXAMPLES = int(os.environ.get("DOQU_DIFF_EXAMPLES", "300"))
QUERIES_PER_EXAMPLE = 5
CASES: Counter[str] = Counter()  # backend url scheme -> cases checked (printed by the suite)

Doc = dict[str, Any]
Rows = list[tuple[str, Doc]]


def _load(db: Storage, docs: list[Doc]) -> Rows:
    db.clear("diff")
    if docs:
        db.save_many(docs, collection="diff")
    return [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]


def _query(db: Storage, node: Node) -> Any:
    from .._async import AsyncQuery
    from .._query import Query
    from .._tree import QuerySpec

    if isinstance(db, BlockingStorage):  # the async API's query of that tree
        adb = db.storage
        unbound = adb.query("diff").query
        return BlockingQuery(db, AsyncQuery(adb, "diff", unbound._with(node=node)))
    return Query(db.collection("diff"), QuerySpec(node))


def _pks(items: Any) -> list[str]:
    return [item["pk"] for item in items]


def _scheme(db: Storage) -> str:
    scheme = db.url.split("://", 1)[0]
    return f"{scheme} (async)" if isinstance(db, BlockingStorage) else scheme


def _values_key(values: list[Any]) -> list[str]:
    return sorted(canonical(v) for v in values)


@settings(max_examples=EXAMPLES)
@given(
    docs=documents(),
    trees=st.lists(query_trees(), min_size=QUERIES_PER_EXAMPLE, max_size=QUERIES_PER_EXAMPLE),
    field=paths(),
)
def test_differential_filters(db: Storage, docs: list[Doc], trees: list[Node], field: str) -> None:
    """Matches, count, exists and values() agree with the evaluator."""
    rows = _load(db, docs)
    for node in trees:
        expected = sorted(pk for pk, data in rows if matches(node, pk, data))
        q = _query(db, node)
        assert sorted(_pks(q)) == expected, f"filter {node}"
        assert q.count() == len(expected), f"count {node}"
        assert q.exists() == bool(expected), f"exists {node}"
        path: Path = tuple(field.split("."))
        want = distinct(((pk, d) for pk, d in rows if matches(node, pk, d)), path)
        assert _values_key(q.values(field)) == _values_key(want), f"values({field}) {node}"
        CASES[_scheme(db)] += 1


@settings(max_examples=max(1, EXAMPLES // 3))
@given(
    docs=documents(),
    specs=st.lists(condition_specs(), min_size=QUERIES_PER_EXAMPLE, max_size=QUERIES_PER_EXAMPLE),
)
def test_differential_expressions(db: Storage, docs: list[Doc], specs: list[Spec]) -> None:
    """Conditions written as field expressions build the keyword tree and get its answer.

    Run through a model-bound query (``Fields``, every field ``Any``), so the
    model checks are on the path and refuse nothing that could match.
    """
    rows = _load(db, docs)
    for spec in specs:
        expr = build(spec, as_expression)
        assert expr.node == build(spec, as_keyword).node, f"trees differ: {spec}"
        expected = sorted(pk for pk, data in rows if matches(expr.node, pk, data))
        try:
            q = db.query(Fields).where(expr)
        except QueryError as exc:  # a drawn pk condition on a number, list, …: never true
            assert "pk is declared str" in str(exc), exc
            q = _query(db, expr.node)
        got = [str(d.pk) if isinstance(d, Fields) else d["pk"] for d in q]
        assert sorted(got) == expected, f"filter {expr.node}"
        assert q.count() == len(expected), f"count {expr.node}"
        CASES[_scheme(db)] += 1


@settings(max_examples=max(1, EXAMPLES // 2))
@given(
    docs=typed_documents(),
    trees=st.lists(typed_trees(), min_size=QUERIES_PER_EXAMPLE, max_size=QUERIES_PER_EXAMPLE),
    order=typed_orders(),
    window=st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(0, 6))),
    field=st.sampled_from(["i", "f", "s", "t", "e.x", "e.y", "pk"]),
)
def test_differential_typed(
    db: Storage,
    docs: list[Typed],
    trees: list[Node],
    order: tuple[tuple[Path, bool], ...],
    window: tuple[int, int | None],
    field: str,
) -> None:
    """Documents of a model whose types fix each field's kind, queried through the model.

    Backends may then compare bare values (the indexed expressions) instead of
    testing kinds first: the answers must stay the evaluator's, for filters,
    counts, ``values()``, sorts and windows.
    """
    db.clear(Typed)
    if docs:
        db.save_many(docs)
    rows = [(d.pk or "", check_json(d.model_dump(mode="json"))) for d in docs]
    q = db.query(Typed)
    for node in trees:
        expected = sorted(pk for pk, data in rows if matches(node, pk, data))
        got = q.where(Q._of(node))
        assert sorted(str(d.pk) for d in got) == expected, f"filter {node}"
        assert got.count() == len(expected), f"count {node}"
        path: Path = tuple(field.split("."))
        want = distinct(((pk, d) for pk, d in rows if matches(node, pk, d)), path)
        assert _values_key(got.values(field)) == _values_key(want), f"values({field}) {node}"
        CASES[_scheme(db)] += 1
    node = trees[0]
    ordered = [
        pk for pk, _ in sort_rows([(pk, d) for pk, d in rows if matches(node, pk, d)], order)
    ]
    keys = [("-" if desc else "") + ".".join(path) for path, desc in order]
    sorted_q = q.where(Q._of(node)).order_by(*keys)
    assert [str(d.pk) for d in sorted_q] == ordered, f"order_by{tuple(keys)} {node}"
    start, size = window
    stop = None if size is None else start + size
    assert [str(d.pk) for d in sorted_q[start:stop]] == ordered[start:stop]


@settings(max_examples=EXAMPLES)
@given(
    docs=documents(),
    node=query_trees(),
    order=orders(),
    window=st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(0, 6))),
)
def test_differential_order_and_slices(
    db: Storage,
    docs: list[Doc],
    node: Node,
    order: tuple[tuple[Path, bool], ...],
    window: tuple[int, int | None],
) -> None:
    """Ordered results (mixed kinds, missing first) and offset/limit windows agree."""
    rows = _load(db, docs)
    expected = [
        pk for pk, _ in sort_rows([(pk, d) for pk, d in rows if matches(node, pk, d)], order)
    ]
    keys = [("-" if desc else "") + ".".join(path) for path, desc in order]
    q = _query(db, node).order_by(*keys)
    assert _pks(q) == expected, f"order_by{tuple(keys)} {node}"
    start, size = window
    stop = None if size is None else start + size
    assert _pks(q[start:stop]) == expected[start:stop], (
        f"[{start}:{stop}] order_by{tuple(keys)} {node}"
    )
    assert q[start:stop].count() == len(expected[start:stop])
    CASES[_scheme(db)] += 1


@settings(max_examples=EXAMPLES)
@given(docs=documents(), node=query_trees(), ops=updates(), delete=st.booleans())
def test_differential_updates_and_deletes(
    db: Storage, docs: list[Doc], node: Node, ops: tuple[UpdateOp, ...], delete: bool
) -> None:
    """update() and delete() change exactly what the evaluator changes, or fail alike."""
    rows = _load(db, docs)
    before = dict(rows)
    q = _query(db, node)
    if delete:
        expected_after = {pk: d for pk, d in rows if not matches(node, pk, d)}
        assert q.delete() == len(rows) - len(expected_after)
    else:
        expected_after = dict(before)
        error: type[Exception] | None = None
        changed = 0
        try:
            for pk, data in rows:
                if matches(node, pk, data):
                    new = apply_update(data, ops)
                    new = check_json(new)
                    changed += not json_equal(new, data)
                    expected_after[pk] = new
        except (QueryError, ValueError) as exc:
            error, expected_after = type(exc), before
        changes = {"__".join(u.path) + f"__{u.op}": u.operand for u in ops}
        if error is None:
            assert q.update(**changes) == changed, f"update({changes}) {node}"
        else:
            try:
                q.update(**changes)
            except Exception as exc:
                assert isinstance(exc, error), f"update({changes}) raised {exc!r}, expected {error}"
            else:
                raise AssertionError(f"update({changes}) {node} should raise {error.__name__}")
    stored = {item["pk"]: {k: v for k, v in item.items() if k != "pk"} for item in db.query("diff")}
    assert {k: canonical(v) for k, v in stored.items()} == {
        k: canonical(v) for k, v in expected_after.items()
    }
    CASES[_scheme(db)] += 1
