"""SQL-specific tests: indexes in the plan, hostile input, limits, streaming, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import resource
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import doqu
from doqu import Document, DuplicateKey, InvalidDocument, Q, QueryError, StorageError
from doqu.ext.sql import SQLStorage

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


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_compared_literally(sql: SQLStorage, value: str) -> None:
    from doqu._evaluator import matches
    from doqu._tree import make_cond

    docs = [
        {"pk": "plain", "s": "plain", "tags": ["x"]},
        {"pk": "semi", "s": "x' OR 1=1 --", "tags": ["'; DROP TABLE x; --", "/* c */"]},
        {"pk": "pct", "s": "%s %% ? :p $1", "tags": ["-- comment"]},
    ]
    sql.save_many(docs, collection="hostile")
    rows = [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]
    for field in ("s", "tags", "pk"):
        for lookup in LOOKUPS:
            cond = make_cond(f"{field}__{lookup}", value)
            want = sorted(pk for pk, data in rows if matches(cond, pk, data))
            got = sorted(d["pk"] for d in sql.query("hostile").where(Q(**{cond_key(cond): value})))
            assert got == want, (field, lookup, value)
        for lookup in ("in", "nin", "all", "any"):
            cond = make_cond(f"{field}__{lookup}", [value, "plain"])
            want = sorted(pk for pk, data in rows if matches(cond, pk, data))
            q = sql.query("hostile").where(Q(**{cond_key(cond): [value, "plain"]}))
            assert sorted(d["pk"] for d in q) == want, (field, lookup, value)
    if "\x00" not in value:
        # Regular expressions: the value's punctuation escaped, matched literally.
        pattern = "".join("\\" + c if not c.isalnum() and c != " " else c for c in value)
        got = [d["pk"] for d in sql.query("hostile").where(s__matches=pattern)]
        assert got == [d["pk"] for d in docs if value in d["s"]]
    assert sql.query("hostile").count() == 3
    assert "hostile" in sql.collections()


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
