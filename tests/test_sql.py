"""SQL-specific tests: indexes in the plan, hostile input, limits, streaming, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import resource
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import doqu
from doqu import Document, DuplicateKey, InvalidDocument, Q, QueryError, StorageError
from doqu._evaluator import canonical, distinct, matches, sort_rows, unique_key
from doqu._json import json_equal
from doqu._tree import Node, make_cond
from doqu.ext.sql import SQLStorage
from doqu.testing.differential import EXAMPLES
from doqu.testing.strategies import documents, orders, query_trees

SQL_BACKENDS = ("sqlite", "sqlite-memory", "postgresql", "mysql")


@pytest.fixture
def sql(backend: str, db: doqu.Storage) -> Iterator[SQLStorage]:
    """The ``db`` fixture, for the SQL backends only."""
    if backend not in SQL_BACKENDS:
        pytest.skip(f"{backend} is not an SQL backend")
    assert isinstance(db, SQLStorage)
    yield db


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None

    class Meta:
        collection = "people"
        indexes = ("age", "name")
        unique = ("email",)


def _raw(db: SQLStorage, sql: str) -> list[tuple[object, ...]]:
    cur = db._conn().cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


# ------------------------------------------------------------------- indexes
def test_sqlite_query_uses_expression_index(tmp_path: Path) -> None:
    with doqu.connect(f"sqlite:///{tmp_path / 'ix.db'}") as db:
        assert isinstance(db, SQLStorage)
        db.save_many([Person(name=f"n{i}", age=i) for i in range(200)])
        query = Person.objects(db).where(age=42)
        text = query.explain().split("\n-- ")[0]
        assert "json_extract(data, '$.\"age\"')" in text
        spec = query._spec
        sql, params = db._select_sql(db._coll(Person)[0], spec)
        cur = db._conn().cursor()
        plan = " ".join(str(row) for row in cur.execute("EXPLAIN QUERY PLAN " + sql, params))
        cur.close()
        assert "USING INDEX doqu_i_" in plan, plan
        assert [p.age for p in query] == [42]
        # Range on the same index.
        sql, params = db._select_sql(db._coll(Person)[0], query.where(age__lt=5)._spec)
        cur = db._conn().cursor()
        plan = " ".join(str(row) for row in cur.execute("EXPLAIN QUERY PLAN " + sql, params))
        cur.close()
        assert "USING INDEX doqu_i_" in plan, plan


def test_postgresql_query_uses_expression_index(backend: str, sql: SQLStorage) -> None:
    if sql.dialect != "postgresql":
        pytest.skip("PostgreSQL EXPLAIN")
    sql.save_many([Person(name=f"n{i}", age=i) for i in range(300)])
    info = sql._coll(Person)[0]
    stmt, params = sql._select_sql(info, Person.objects(sql).where(age=42)._spec)
    conn = sql._conn()
    cur = conn.cursor()
    try:
        cur.execute("ANALYZE")
        cur.execute("BEGIN")
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("EXPLAIN " + stmt, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK")
    finally:
        cur.close()
    assert "doqu_i_" in plan, plan
    assert [p.age for p in Person.objects(sql).where(age=42)] == [42]


def _pg_plan(db: SQLStorage, stmt: str, params: list[Any]) -> str:
    cur = db._conn().cursor()
    try:
        cur.execute("ANALYZE")
        cur.execute("BEGIN")
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("EXPLAIN " + stmt, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK")
    finally:
        cur.close()
    return plan


def test_postgresql_string_ranges_use_an_index(sql: SQLStorage) -> None:
    if sql.dialect != "postgresql":
        pytest.skip("PostgreSQL EXPLAIN")
    sql.save_many([Person(name=f"n{i:03d}", age=i) for i in range(300)])
    info = sql._coll(Person)[0]
    cases = [
        (Q(name__gt="n290"), 9),
        (Q(name__lte="n004"), 5),
        (Q(name__between=("n100", "n109")), 10),
        (Q(name__startswith="n04"), 10),
    ]
    for q, n in cases:
        query = Person.objects(sql).where(q)
        stmt, params = sql._select_sql(info, query._spec)
        assert 'COLLATE "C"' in stmt
        plan = _pg_plan(sql, stmt, params)
        assert "doqu_i_" in plan and "Seq Scan" not in plan, plan
        assert len(list(query)) == n


def _mysql_plan(db: SQLStorage, stmt: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = db._conn().cursor()
    try:
        cur.execute("ANALYZE TABLE " + db._statements(db._coll(Person)[0])["table"])
        cur.fetchall()
        cur.execute("EXPLAIN " + stmt, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        cur.close()


def test_mysql_queries_use_declared_indexes(sql: SQLStorage) -> None:
    if sql.dialect != "mysql":
        pytest.skip("MariaDB EXPLAIN")
    sql.save_many([Person(name=f"n{i:03d}", age=i) for i in range(300)])
    sql.save_many([{"age": str(i), "name": i} for i in range(50)], collection="people")
    info = sql._coll(Person)[0]
    cases = [
        (Q(age=42), 1),
        (Q(age=42.0), 1),
        (Q(age__lt=5), 5),
        (Q(age__gte=295.5), 4),
        (Q(age__in=[3, 5, "5"]), 3),
        (Q(name="n042"), 1),
        (Q(name__gte="n295"), 5),
        (Q(name__startswith="n04"), 10),
    ]
    for q, n in cases:
        # By collection name: the stored ages are of both kinds ("5" among them), which
        # Person's declared int never holds (a model-bound query refuses the operand).
        query = sql.query("people").where(q)
        stmt, params = sql._select_sql(info, query._spec)
        plan = _mysql_plan(sql, stmt, params)
        assert len(plan) == 1, plan
        assert plan[0]["type"] in ("ref", "range", "index_merge"), plan
        assert all(key.startswith("doqu_i_") for key in str(plan[0]["key"]).split(",")), plan
        assert len(list(sql.query("people").where(q))) == n, q


def _pks(items: Any) -> list[str]:
    return sorted(item["pk"] for item in items)


def _where(db: SQLStorage, name: str, node: Node) -> doqu.Query[dict[str, Any]]:
    """A query on collection *name* filtered by a bare query tree."""
    from doqu._query import Query
    from doqu._tree import QuerySpec

    return Query(db.collection(name), QuerySpec(node))


class Indexed(Document):
    """Every field of the differential strategies indexed (and a composite)."""

    class Meta:
        collection = "indexed"
        indexes = ("a", "b", "s", "n", "tags", "o.x", ("a", "s"))


@settings(max_examples=max(EXAMPLES // 3, 20))
@given(docs=documents(), trees=st.lists(query_trees(), min_size=3, max_size=3), order=orders())
def test_indexed_queries_agree_with_the_evaluator(
    sql: SQLStorage, docs: list[dict[str, Any]], trees: list[Node], order: Any
) -> None:
    """Queries on indexed paths (MariaDB: through the index columns) give the evaluator's rows."""
    sql.query(Indexed)  # the collection with its indexes
    sql.clear("indexed")
    if docs:
        sql.save_many(docs, collection="indexed")
    rows = [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]
    for tree in trees:
        want = [pk for pk, data in rows if matches(tree, pk, data)]
        query = _where(sql, "indexed", tree)
        assert _pks(query) == sorted(want), tree
        assert query.count() == len(want)
        got = [d["pk"] for d in query.order_by(*_order_fields(order))]
        kept = [row for row in rows if row[0] in want]
        assert got == [pk for pk, _ in sort_rows(kept, order)], (tree, order)
        values = query.values("a")
        assert sorted(map(canonical, values)) == sorted(
            map(canonical, distinct([r for r in rows if r[0] in want], ("a",)))
        )


def _order_fields(order: Any) -> list[str]:
    return [("-" if desc else "") + ".".join(path) for path, desc in order]


# Numbers where doubles are not exact, and strings longer than MariaDB's index prefix.
BIG = 2**53
EDGE_NUMBERS = [
    0,
    3,
    -3,
    0.5,
    -2.5,
    BIG - 1,
    BIG,
    BIG + 1,
    -BIG - 1,
    float(BIG),
    float(BIG + 2),
    2**60,
    float(2**60),
    2**60 + 1,
    2**63 - 1,
    -(2**63),
    float(-(2**63)),
    float(2**63),
    1e300,
    -1e300,
]
LONG = "x" * 300
EDGE_STRINGS = [
    "",
    "a",
    "A",
    "é",
    "\U0001f600",
    "a\tb",
    "a ",
    LONG,
    LONG + "a",
    LONG + "b",
    "x" * 255,
]
EDGE_VALUES = [*EDGE_NUMBERS, *EDGE_STRINGS, None, True, False, [BIG + 1], [float(BIG)], [1.0]]


@st.composite
def edge_conditions(draw: st.DrawFn) -> Node:
    field = draw(st.sampled_from(("a", "s")))
    lookup = draw(st.sampled_from(("exact", "ne", "gt", "gte", "lt", "lte", "between", "in")))
    pool = st.sampled_from(EDGE_VALUES)
    if lookup == "between":
        kinds = (
            st.sampled_from(EDGE_NUMBERS) if draw(st.booleans()) else st.sampled_from(EDGE_STRINGS)
        )
        operand: Any = (draw(kinds), draw(kinds))
    elif lookup == "in":
        operand = draw(st.lists(pool, max_size=3))
    elif lookup in ("gt", "gte", "lt", "lte"):
        operand = draw(st.sampled_from([*EDGE_NUMBERS, *EDGE_STRINGS]))
    else:
        operand = draw(pool)
    return make_cond(f"{field}__{lookup}", operand)


@settings(max_examples=max(EXAMPLES // 3, 20))
@given(
    values=st.lists(st.sampled_from(EDGE_VALUES), min_size=1, max_size=10),
    conds=st.lists(edge_conditions(), min_size=4, max_size=4),
    starts=st.sampled_from(["", "x", "x" * 255, LONG + "a", "a", "\U0001f600"]),
)
def test_edge_values_compare_exactly(
    sql: SQLStorage, values: list[Any], conds: list[Node], starts: str
) -> None:
    """Integers beyond 2**53 against floats, and long strings, on indexed and plain fields."""
    sql.query(Indexed)
    sql.clear("indexed")
    docs = [{"pk": f"p{i:02d}", "a": v, "s": v, "n": i} for i, v in enumerate(values)]
    sql.save_many(docs, collection="indexed")
    rows = [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]
    for cond in [*conds, make_cond("a__startswith", starts)]:
        want = sorted(pk for pk, data in rows if matches(cond, pk, data))
        assert _pks(_where(sql, "indexed", cond)) == want, cond
    for desc in (False, True):
        order = ((("a",), desc), (("pk",), False))
        got = [d["pk"] for d in sql.query("indexed").order_by(*_order_fields(order))]
        assert got == [pk for pk, _ in sort_rows(rows, order)], desc


def test_big_numbers_compare_exactly_without_an_index(sql: SQLStorage) -> None:
    docs = [{"pk": f"k{i:02d}", "v": v} for i, v in enumerate(EDGE_NUMBERS)]
    sql.save_many(docs, collection="nums")
    rows = [(d["pk"], {"v": d["v"]}) for d in docs]
    for lookup in ("exact", "ne", "gt", "gte", "lt", "lte"):
        for op in EDGE_NUMBERS:
            cond = make_cond(f"v__{lookup}", op)
            want = sorted(pk for pk, data in rows if matches(cond, pk, data))
            assert _pks(_where(sql, "nums", cond)) == want, (lookup, op)
    # The examples the issue names, both ways round.
    assert _pks(sql.query("nums").where(v=BIG + 1)) == ["k07"]
    assert _pks(sql.query("nums").where(v__gt=BIG)) == _pks(sql.query("nums").where(v__gte=BIG + 1))
    assert "k07" in _pks(sql.query("nums").where(v__gt=float(BIG)))
    assert "k09" not in _pks(sql.query("nums").where(v__gt=float(BIG)))
    for pk, value in rows:
        stored = sql.get("nums", pk)["v"]
        assert json_equal(stored, value["v"]) and type(stored) is type(value["v"]), pk
    ordered = [d["pk"] for d in sql.query("nums").order_by("v", "pk")]
    assert ordered == [pk for pk, _ in sort_rows(rows, ((("v",), False), (("pk",), False)))]
    # Inside arrays too (JSON equality of lists).
    sql.save_many(
        [{"pk": f"l{i:02d}", "v": [v]} for i, v in enumerate(EDGE_NUMBERS)],
        collection="nums",
    )
    for op in EDGE_NUMBERS:
        want = sorted(f"l{i:02d}" for i, v in enumerate(EDGE_NUMBERS) if json_equal(v, op))
        assert _pks(sql.query("nums").where(v=[op])) == want, op
        assert _pks(sql.query("nums").where(v__in=[[op]])) == want, op


class Uniq(Document):
    class Meta:
        collection = "uniq"
        unique = ("v",)


UNIQUE_PAIRS = [
    (1, 1.0),
    ([1], [1.0]),
    ({"a": 1, "b": [2]}, {"b": [2.0], "a": 1.0}),
    ([[1, {"x": 2}]], [[1.0, {"x": 2.0}]]),
    (-0.0, 0),
    (2**60, float(2**60)),
    ([{"a": 2**60}], [{"a": float(2**60)}]),
    (True, 1),
    ("1", 1),
    ([1], [True]),
    ([1, 2], [2, 1]),
    (BIG + 1, float(BIG)),
    ([BIG + 1], [BIG]),
    ("a", "A"),
    ("a", "a "),
    (LONG + "a", LONG + "b"),
]


@pytest.mark.parametrize(("first", "second"), UNIQUE_PAIRS, ids=repr)
def test_unique_index_follows_json_equality(sql: SQLStorage, first: Any, second: Any) -> None:
    """A unique index clashes exactly when the evaluator's keys are equal."""
    clash = unique_key("a", {"v": first}, [("v",)]) == unique_key("b", {"v": second}, [("v",)])
    sql.save(Uniq(pk="a", v=first))
    version = sql.version(Uniq)
    if clash:
        with pytest.raises(DuplicateKey):
            sql.save(Uniq(pk="b", v=second))
        with pytest.raises(DuplicateKey):
            sql.save_many([Uniq(pk="c", v="free"), Uniq(pk="b", v=second)])
        assert _pks(sql.query("uniq")) == ["a"]
        assert sql.version(Uniq) == version
    else:
        sql.save(Uniq(pk="b", v=second))
        assert _pks(sql.query("uniq")) == ["a", "b"]


def test_unique_pairs_cover_both_answers() -> None:
    keys = [
        unique_key("a", {"v": a}, [("v",)]) == unique_key("b", {"v": b}, [("v",)])
        for a, b in UNIQUE_PAIRS
    ]
    assert keys[:7] == [True] * 7 and not any(keys[7:])


def test_unique_index_exempts_null_and_rolls_back_batches(sql: SQLStorage) -> None:
    sql.save(Person(pk="a", name="A", email="x@example.org"))
    sql.save_many([Person(pk="n1", name="N1"), Person(pk="n2", name="N2")])  # nulls: exempt
    sql.save({"pk": "m1", "name": "M"}, collection="people")  # missing: exempt
    before = sql.version(Person)
    with pytest.raises(DuplicateKey):
        sql.save_many([Person(pk="b", name="B"), Person(pk="c", name="C", email="x@example.org")])
    assert sorted(p.pk for p in Person.objects(sql)) == ["a", "m1", "n1", "n2"]
    assert sql.version(Person) == before
    # Replacing the holder itself is no clash; a kind twin (true vs 1) is no clash either.
    sql.save(Person(pk="a", name="A2", email="x@example.org"))
    assert sql.get(Person, "a").name == "A2"


# ------------------------------------------------------------ hostile input
HOSTILE = [
    "x' OR 1=1 --",
    "'; DROP TABLE doqu_collections; --",
    '" OR ""="',
    "/* comment */",
    "-- comment",
    "%s %% ? :p $1",
    "\\'",
    "a\x00b",
    "\x00",
    '{"$gt": ""}',
]
LOOKUPS = [
    "exact",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "icontains",
    "startswith",
    "endswith",
    "istartswith",
    "iendswith",
]


class HostileIx(Document):
    class Meta:
        collection = "hostile_ix"
        indexes = ("s", "tags", ("s", "tags"))


@pytest.mark.parametrize("indexed", [False, True], ids=["plain", "indexed"])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_compared_literally(sql: SQLStorage, value: str, indexed: bool) -> None:
    """Every lookup taking a string, on plain and indexed fields, stored and queried."""
    name = "hostile_ix" if indexed else "hostile"
    if indexed:
        sql.query(HostileIx)  # the collection with its indexes (MariaDB: index columns)
    docs: list[dict[str, Any]] = [
        {"pk": "plain", "s": "plain", "tags": ["x"]},
        {"pk": "semi", "s": "x' OR 1=1 --", "tags": ["'; DROP TABLE x; --", "/* c */"]},
        {"pk": "pct", "s": "%s %% ? :p $1", "tags": ["-- comment"]},
    ]
    if "\x00" not in value:  # NUL is refused in documents on every backend
        docs.append({"pk": "same", "s": value, "tags": [value, "plain"]})
        docs.append({"pk": "longer", "s": value + "~" + value, "tags": [value + value]})
    sql.save_many(docs, collection=name)
    rows = [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]

    def check(field: str, lookup: str, operand: Any) -> None:
        cond = make_cond(f"{field}__{lookup}", operand)
        want = sorted(pk for pk, data in rows if matches(cond, pk, data))
        query = sql.query(name).where(Q(**{cond_key(cond): operand}))
        assert _pks(query) == want, (field, lookup, operand)
        assert query.count() == len(want), (field, lookup, operand)
        negated = sql.query(name).where_not(Q(**{cond_key(cond): operand}))
        assert len(_pks(negated)) == len(docs) - len(want), (field, lookup, operand)

    for field in ("s", "tags", "pk"):
        for lookup in LOOKUPS:
            check(field, lookup, value)
        for lookup in ("in", "nin", "all", "any"):
            check(field, lookup, [value, "plain"])
        for low, high in ((value, value), ("", value), (value, "\U0010ffff")):
            check(field, "between", (low, high))
    if "\x00" not in value:
        # Regular expressions: the value's punctuation escaped, matched literally.
        pattern = "".join("\\" + c if not c.isalnum() and c != " " else c for c in value)
        got = _pks(sql.query(name).where(s__matches=pattern))
        assert got == sorted(d["pk"] for d in docs if value in d["s"])
    assert sorted(map(canonical, sql.query(name).values("s"))) == sorted(
        map(canonical, distinct(rows, ("s",)))
    )
    ordered = [d["pk"] for d in sql.query(name).order_by("-s", "pk")]
    assert ordered == [pk for pk, _ in sort_rows(rows, ((("s",), True), (("pk",), False)))]
    assert sql.query(name).count() == len(docs)
    assert name in sql.collections()


def cond_key(cond: object) -> str:
    from doqu._tree import Cond

    assert isinstance(cond, Cond)
    return "__".join(cond.path) + "__" + cond.lookup


def test_hostile_names_are_refused(sql: SQLStorage) -> None:
    for name in ["x; DROP TABLE y", 'a"b', "a`b", "a'b", "-x", "a" * 49, "a b", "a\x00"]:
        with pytest.raises(QueryError):
            sql.save({"v": 1}, collection=name)
    for path in ["a;b", "a'--", 'a"', "a b", "1a", "a/*"]:
        with pytest.raises(QueryError):
            sql.query("ok").where(**{path: 1}).count()


def test_mixed_case_collections_stay_apart(sql: SQLStorage) -> None:
    sql.save({"pk": "1", "v": "lower"}, collection="things")
    sql.save({"pk": "1", "v": "upper"}, collection="Things")
    assert sql.get("things", "1")["v"] == "lower"
    assert sql.get("Things", "1")["v"] == "upper"
    assert sql.collections() == ["Things", "things"]


# -------------------------------------------------------------------- limits
def test_nul_and_size_limits_leave_the_table_unchanged(sql: SQLStorage) -> None:
    sql.save({"pk": "keep", "v": 1}, collection="lim")
    version = sql.version("lim")
    if sql.dialect in ("postgresql", "sqlite"):
        with pytest.raises(InvalidDocument, match="NUL"):
            sql.save_many([{"pk": "ok", "v": 2}, {"pk": "bad", "s": "a\x00b"}], collection="lim")
        with pytest.raises(InvalidDocument, match="NUL"):
            sql.save({"pk": "bad", "a\x00b": 1}, collection="lim")
    for bad in ({"pk": "nan", "v": float("nan")}, {"pk": "inf", "v": float("inf")}):
        with pytest.raises(InvalidDocument):
            sql.save(bad, collection="lim")
    with pytest.raises(InvalidDocument):
        sql.save({"pk": "big", "v": 2**64}, collection="lim")
    limit = sql._max_document
    sql._max_document = 1000 if sql.dialect != "mysql" else limit
    try:
        size = sql._max_document + 10
        with pytest.raises(InvalidDocument, match="limit"):
            sql.save_many([{"pk": "ok2"}, {"pk": "huge", "s": "x" * size}], collection="lim")
    finally:
        sql._max_document = limit
    assert [d["pk"] for d in sql.query("lim")] == ["keep"]
    assert sql.version("lim") == version


# ---------------------------------------------------------------- streaming
def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


@pytest.mark.slow
def test_iterating_a_million_rows_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with doqu.connect(f"sqlite:///{path}") as db:
        db.save({"pk": "seed", "i": -1}, collection="big")
    raw = sqlite3.connect(path)
    doc = json.dumps({"i": 1, "name": "some text to make rows bigger", "tags": ["a", "b"]})
    with raw:
        raw.executemany(
            'INSERT INTO "doqu_c_big" (pk, data) VALUES (?, ?)',
            ((f"k{i:07d}", doc) for i in range(1_000_000)),
        )
    raw.close()
    with doqu.connect(f"sqlite:///{path}") as db:
        before = _rss_mb()
        n = 0
        peak = before
        for item in db.query("big").where(i__gte=0):
            n += 1
            if n % 100_000 == 0:
                peak = max(peak, _rss_mb())
                assert item["name"].startswith("some")
        peak = max(peak, _rss_mb())
    assert n == 1_000_000
    assert peak - before < 100, f"RSS grew by {peak - before:.0f} MB"


# ---------------------------------------------------------------- concurrency
def _bump(url: str, times: int) -> None:
    with doqu.connect(url) as db:
        counter = db.dict("counters")
        for _ in range(times):
            counter.increment("hits")


def test_increment_is_atomic_across_processes(sql: SQLStorage, db_url: str) -> None:
    if sql.memory:
        pytest.skip("an in-memory SQLite database is private to its process")
    sql.save({"pk": "hits", "value": 0}, collection="counters")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(db_url, 500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sql.get("counters", "hits")["value"] == 2000


def test_versions_change_on_every_write(sql: SQLStorage) -> None:
    seen = {sql.version("v")}
    steps = [
        lambda: sql.save({"pk": "a", "n": 1}, collection="v"),
        lambda: sql.save_many([{"pk": "b"}, {"pk": "c"}], collection="v"),
        lambda: sql.query("v").where(pk="a").update(n__inc=1),
        lambda: sql.delete("v", "b"),
        lambda: sql.query("v").where(pk="c").delete(),
        lambda: sql.clear("v"),
    ]
    for step in steps:
        step()
        version = sql.version("v")
        assert version not in seen
        seen.add(version)
    assert sql.collections() == []


# ------------------------------------------------------------- connections
def test_reconnect_and_close(sql: SQLStorage) -> None:
    sql.save({"pk": "a"}, collection="rc")
    sql.reconnect()
    assert sql.get("rc", "a") == {"pk": "a"}
    sql.close()
    with pytest.raises(StorageError):
        sql.get("rc", "a")


def test_plain_postgresql_url_uses_psycopg(backend: str, db_url: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL URL")
    plain = "postgresql://" + db_url.split("://", 1)[1]
    with doqu.connect(plain) as db:
        assert isinstance(db, SQLStorage)
        assert db._engine.dialect.driver == "psycopg"
        db.save({"pk": "a"}, collection="p")
        assert db.get("p", "a") == {"pk": "a"}


def test_unreachable_server_is_a_storage_error() -> None:
    db = doqu.connect("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StorageError) as info:
            db.save({"pk": "a"}, collection="x")
        assert info.value.__cause__ is not None
    finally:
        db.close()


def test_explain_shows_sql(sql: SQLStorage) -> None:
    text = sql.query("ex").where(a__gt=1).order_by("-b").explain()
    assert text.startswith("SELECT pk, data FROM")
    assert "ORDER BY" in text and "-- parameters: [" in text


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    import threading

    with doqu.connect("sqlite://") as db:
        db.save({"pk": "main"}, collection="t")
        out: list[object] = []
        thread = threading.Thread(target=lambda: out.append(db.get("t", "main")))
        thread.start()
        thread.join()
        assert out == [{"pk": "main"}]


def test_a_killed_connection_is_replaced(sql: SQLStorage) -> None:
    if sql.dialect == "sqlite":
        pytest.skip("SQLite connections cannot be killed from outside")
    sql.save({"pk": "a"}, collection="kill")
    if sql.dialect == "postgresql":
        killer = f"SELECT pg_terminate_backend({_raw(sql, 'SELECT pg_backend_pid()')[0][0]:d})"
    else:
        killer = f"KILL {_raw(sql, 'SELECT CONNECTION_ID()')[0][0]:d}"
    other = doqu.connect(sql.url)
    assert isinstance(other, SQLStorage)
    try:
        _raw(other, killer)
    finally:
        other.close()
    # The next calls notice the dead connection, replace it and succeed.
    assert sql.get("kill", "a") == {"pk": "a"}
    sql.save({"pk": "b"}, collection="kill")
    assert sql.query("kill").count() == 2


class _LosesCommit:
    """A DB-API connection whose next ``COMMIT`` is applied, then reported as a lost
    connection (the reply never arrived), or fails before it is sent."""

    def __init__(self, real: Any, *, applied: bool) -> None:
        self._real = real
        self.applied = applied
        self.armed = True

    def cursor(self) -> Any:
        outer = self
        real = self._real.cursor()

        class Cursor:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def execute(self, sql: str, *args: Any) -> Any:
                if sql == "COMMIT" and outer.armed:
                    outer.armed = False
                    if outer.applied:
                        real.execute(sql, *args)
                    raise sqlite3.OperationalError("server closed the connection unexpectedly")
                return real.execute(sql, *args)

        return Cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("applied", [True, False])
def test_a_connection_lost_during_commit_is_never_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    """Losing the connection during ``COMMIT`` leaves the outcome unknown: doqu raises
    ``StorageError`` saying so instead of running the transaction again (an increment
    must not count twice); the store holds the write exactly once or not at all."""
    db = doqu.connect(f"sqlite:///{tmp_path}/c.db")
    assert isinstance(db, SQLStorage)
    try:
        counter = db.dict("counter")
        counter.increment("n")
        lossy = _LosesCommit(db._conn(), applied=applied)
        real_conn = db._conn
        monkeypatch.setattr(db, "_conn", lambda: lossy if lossy.armed else real_conn())
        monkeypatch.setattr(db._engine.dialect, "is_disconnect", lambda *a: True)
        with pytest.raises(StorageError, match="may or may not have been applied"):
            counter.increment("n")
        monkeypatch.undo()
        assert db.dict("counter")["n"] == (2 if applied else 1)
        assert counter.increment("n") == (3 if applied else 2)
    finally:
        db.close()


class Scored(Document):
    """Declared types that fix each indexed field's kind: bare expressions reach the index."""

    score: int = 0
    label: str = ""
    note: str | None = None

    class Meta:
        collection = "scored"
        indexes = ["score", "label"]  # noqa: RUF012


def _typed_plan(db: SQLStorage, sql: str, params: list[Any]) -> str:
    if db.dialect == "postgresql":
        return _pg_plan(db, sql, params)
    cur = db._conn().cursor()
    try:
        return "\n".join(str(row[3]) for row in cur.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        cur.close()


def test_typed_fields_use_the_index_for_every_shape(sql: SQLStorage) -> None:
    """On a model-bound query, a declared fixed-kind field is compared, sorted, counted and
    listed by the bare indexed expression: no kind tests, no full scan, no sort step.

    MariaDB's filters search its typed index columns (its sort keys and values() stay
    the mixed forms: those columns are not exact for every value)."""
    sql.save_many([Scored(pk=f"p{i:04d}", score=i % 500, label=f"l{i:04d}") for i in range(3000)])
    q = Scored.objects(sql)
    typed = sql.collection(Scored)._typed
    table = sql._statements(typed)["table"]
    shapes = {
        "filter": sql._select_sql(typed, q.where(score__gt=490)._spec),
        "filtered count": sql._select_sql(typed, q.where(score__lt=5)._spec, what="count(*)"),
        "range": sql._select_sql(typed, q.where(label__startswith="l01")._spec),
        "order window": sql._select_sql(typed, q.order_by("score")[1000:1020]._spec),
        "order desc": sql._select_sql(typed, q.order_by("-label")[1000:1020]._spec),
    }
    if sql.dialect == "mysql":
        cur = sql._conn().cursor()
        try:
            cur.execute("ANALYZE TABLE " + table)
            cur.fetchall()
            for what in ("filter", "filtered count", "range"):
                stmt, params = shapes[what]
                cur.execute("EXPLAIN " + stmt, params)
                names = [d[0] for d in cur.description]
                plan = [dict(zip(names, row)) for row in cur.fetchall()]
                assert plan[0]["type"] in ("ref", "range", "index_merge"), (what, plan)
                assert str(plan[0]["key"]).startswith("doqu_i_"), (what, plan)
        finally:
            cur.close()
        shapes = {}
    else:
        tr = sql._translator(typed)
        shapes["values"] = tr.finish(tr.values_sql(table, ("score",), tr.where(None)))
    for what, (stmt, params) in shapes.items():
        # SQLite: no kind test at all. PostgreSQL keeps the filters' tests (checked on
        # the rows the index finds); its sort keys and values() have none.
        if sql.dialect == "sqlite" or what in ("order window", "order desc", "values"):
            assert "json_type" not in stmt and "jsonb_typeof" not in stmt, (what, stmt)
        plan = _typed_plan(sql, stmt, params)
        assert "doqu_i_" in plan, (what, plan)
        assert "TEMP B-TREE" not in plan and "Seq Scan" not in plan, (what, plan)
        assert "Sort" not in plan.replace("Sort Key", ""), (what, plan)
    whole = sql._select_sql(typed, q._spec, what="count(*)")[0]
    assert "WHERE" not in whole, whole  # SQLite counts from its smallest index then
    if sql.dialect == "sqlite":
        assert "COVERING INDEX" in _typed_plan(sql, whole, []), whole
    # The answers: what the mixed-kind forms of a query by name give.
    named = sql.query("scored")
    assert q.where(score__gt=490).count() == named.where(score__gt=490).count() == 54
    assert [d.pk for d in q.order_by("score", "pk")[1000:1003]] == [
        d["pk"] for d in named.order_by("score", "pk")[1000:1003]
    ]
    assert sorted(q.values("score")) == sorted(named.values("score")) == list(range(500))
    # Queries by name keep the mixed-kind forms: the collection may hold anything.
    stmt = sql._select_sql(sql.collection("scored")._typed, named.where(score__gt=3)._spec)[0]
    assert "json_type" in stmt.lower() or "jsonb_typeof" in stmt, stmt


class Badge(Document):
    code: str
    n: int = 0

    class Meta:
        collection = "badges"
        unique = ["code"]  # noqa: RUF012


def test_big_batches_insert_replace_and_clash_alike(sql: SQLStorage) -> None:
    """Batches past COPY_MIN_ROWS (PostgreSQL writes them through COPY and one upsert)
    insert new keys, replace stored ones, keep the last of a repeated pk, leave the
    version alone when nothing changed, and refuse a unique clash writing nothing."""
    from doqu.ext.sql._storage import COPY_MIN_ROWS

    n = COPY_MIN_ROWS * 3
    first = [Badge(pk=f"b{i:04d}", code=f"c{i}", n=i) for i in range(n)]
    assert sql.save_many(first) == [b.pk for b in first]
    assert Badge.objects(sql).count() == n
    version = sql.version(Badge)
    assert sql.save_many(first) == [b.pk for b in first]  # the very same data
    if sql.dialect != "mysql":  # MariaDB with a unique index deletes and inserts again
        assert sql.version(Badge) == version
    changed = [Badge(pk=f"b{i:04d}", code=f"c{i}", n=i + 1) for i in range(0, n, 2)]
    repeated = [Badge(pk="b0000", code="c0", n=-1), Badge(pk="new", code="fresh")]
    sql.save_many(changed + repeated + [Badge(pk=f"x{i:04d}", code=f"x{i}") for i in range(n)])
    assert sql.version(Badge) != version
    assert sql.get(Badge, "b0000").n == -1 and sql.get(Badge, "b0002").n == 3
    assert sql.get(Badge, "b0001").n == 1 and sql.get(Badge, "new").code == "fresh"
    total = Badge.objects(sql).count()
    assert total == 2 * n + 1
    clash = [Badge(pk=f"y{i:04d}", code=f"y{i}") for i in range(n)] + [Badge(pk="z", code="c5")]
    with pytest.raises(doqu.DuplicateKey) as caught:
        sql.save_many(clash)
    assert caught.value.fields == ("code",) and caught.value.value == "c5"
    assert Badge.objects(sql).count() == total  # nothing of the batch written
