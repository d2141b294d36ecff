"""Index cases: the query shapes that must keep the index at scale, SQLite and PostgreSQL.

``RankedPerson`` declares ``rank: int`` with ``Meta.indexes = ("rank",)`` and
``age: int`` without an index. On a model-bound query (``Model.objects(db)``)
a field whose declared type fixes its kind is compared, sorted and listed by
the bare indexed expression, so ``count()``, ``where(rank__gt=…).count()``,
``values("rank")`` and ``order_by("rank")[1000:1020]`` meet the index. The raw
side is the same query on a ``(pk, data)`` table with the same expression
index. ``python -m benchmarks --scale`` runs these cases at several N (see
:mod:`benchmarks.scale`); each N's databases are built once for all its cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import doqu

from .data import RANK_CUTOFF, RankedPerson, dict_batches, make_people
from .harness import Case, Config, Group, Recorder, repeated, reps_for
from .sql import explained_sql, pg_schema, plan_problem, text_dumps, validated

__all__ = ["GROUPS", "POSTGRESQL", "SQLITE", "window"]

SQL = "doqu.ext.sql:SQLStorage"
OFFSET, WINDOW = 1000, 20
_WINDOW_TEXT = f'order_by("rank")[{OFFSET}:{OFFSET + WINDOW}]'
_RAW_WINDOW = f"LIMIT {WINDOW} OFFSET {OFFSET} + model_validate_json"


def _cases(backend: str, label: str, extract: str) -> tuple[Case, ...]:
    def expr(field: str) -> str:
        return extract.format(field=field)

    return (
        Case(f"{backend}.count", backend, f"count(), {label}", "SELECT count(*)", 1.5),
        Case(
            f"{backend}.count_where",
            backend,
            f"where(rank__gt={RANK_CUTOFF}).count() indexed, {label}",
            f"count(*) WHERE {expr('rank')} > ?",
            2.0,
        ),
        Case(
            f"{backend}.values",
            backend,
            f'values("rank") indexed, {label}',
            f"DISTINCT {expr('rank')}",
            2.0,
        ),
        Case(
            f"{backend}.values_unindexed",
            backend,
            f'values("age") not indexed, {label}',
            f"DISTINCT {expr('age')}",
            None,
        ),
        Case(
            f"{backend}.order_window",
            backend,
            f"{_WINDOW_TEXT} indexed, {label}",
            _RAW_WINDOW,
            2.0,
        ),
    )


SQLITE = _cases("sqlite", "SQLite", "json_extract(data, '$.{field}')")
POSTGRESQL = _cases("postgresql", "PostgreSQL", "data->'{field}'")


def window(n: int) -> int:
    """The offset of the sorted window: 1000, or half of a collection too small for it."""
    return OFFSET if n >= OFFSET + WINDOW else n // 2


def _keys(start: int, count: int) -> list[str]:
    return [f"{i:032x}" for i in range(start, start + count)]


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _fill(db: doqu.Storage, n: int, write_raw: Callable[[list[str], list[Any]], None]) -> None:
    """The same *n* documents into doqu (``save_many`` per batch) and the raw table."""
    done = 0
    for batch in dict_batches(n):
        db.save_many(make_people(batch, RankedPerson))
        write_raw(_keys(done, len(batch)), batch)
        done += len(batch)


def _measure(
    rec: Recorder,
    key: str,
    mine: Callable[[], Any],
    base: Callable[[], Any],
    n: int,
    *,
    same: Callable[[Any, Any], bool] = lambda a, b: bool(a == b),
    plans: Callable[[], str | None] | None = None,
    note: str = "",
) -> None:
    """Time *mine* against *base*, each repeated to fill a round; check they agree."""
    reps = reps_for(base)

    def check() -> str | None:
        if not same(mine(), base()):
            return "doqu and the baseline answer differently"
        return plans() if plans else None

    extra = f"{reps:,} calls" if reps > 1 else ""
    rec.measure(
        key,
        repeated(mine, reps),
        repeated(base, reps),
        n=n,
        note="; ".join(x for x in (note, extra) if x),
        check=check,
    )


def _as_set(a: Any, b: Any) -> bool:
    return sorted(a) == sorted(b)


def _ranks(a: Any, b: Any) -> bool:
    return [d.rank for d in a] == [d.rank for d in b]


# ---------------------------------------------------------------------- SQLite
def _traced(db: doqu.Storage, fn: Callable[[], object]) -> list[str] | None:
    """The SQL text doqu's SQLite connection runs for *fn()* (``None``: cannot trace).

    Reaches for the backend's DB-API connection (``_conn``, private) only to
    check query plans, never while timing.
    """
    conn = getattr(db, "_conn", None)
    if conn is None:
        return None
    dbapi = conn()
    seen: list[str] = []
    dbapi.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        dbapi.set_trace_callback(None)
    return seen


def _sqlite_plans(
    db: doqu.Storage,
    db_path: str,
    raw_path: str,
    fn: Callable[[], object],
    raw_sql: str,
    *params: Any,
) -> Callable[[], str | None]:
    """A check that both the baseline's query and doqu's use an index."""

    def check() -> str | None:
        problem = plan_problem(raw_path, raw_sql, params)
        if problem:
            return f"baseline {problem}"
        seen = _traced(db, fn)
        if seen is None:
            return None
        mine = [s for s in seen if s.lstrip().upper().startswith("SELECT") and "doqu_c_" in s]
        if not mine:
            return "doqu ran no SELECT on the collection"
        for sql in mine:
            problem = plan_problem(db_path, sql)
            if problem:
                return problem
        return None

    return check


def run_sqlite(config: Config, rec: Recorder) -> None:
    """Fill a SQLite file each (doqu, raw) with N ranked documents, then every case."""
    n = config.n
    with tempfile.TemporaryDirectory(prefix="doqu-bench-index-") as tmp:
        db_path = os.path.join(tmp, "doqu.sqlite3")
        raw_path = os.path.join(tmp, "raw.sqlite3")
        db = doqu.connect(f"sqlite:///{db_path}")
        con = sqlite3.connect(raw_path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE raw_ranked (pk TEXT PRIMARY KEY, data TEXT NOT NULL)")
            # Before the rows, as doqu creates its index with the collection.
            con.execute("CREATE INDEX raw_ranked_rank ON raw_ranked (json_extract(data, '$.rank'))")

            def write_raw(keys: list[str], dicts: list[Any]) -> None:
                con.execute("BEGIN")
                con.executemany(
                    "INSERT INTO raw_ranked (pk, data) VALUES (?, ?)",
                    [(k, _compact(d)) for k, d in zip(keys, dicts)],
                )
                con.execute("COMMIT")

            _fill(db, n, write_raw)
            _sqlite_cases(rec, db, con, db_path, raw_path, n)
        finally:
            db.close()
            con.close()


def _sqlite_cases(
    rec: Recorder, db: doqu.Storage, con: sqlite3.Connection, db_path: str, raw_path: str, n: int
) -> None:
    objects = RankedPerson.objects

    def scalar(sql: str, *params: Any) -> Callable[[], Any]:
        return lambda: con.execute(sql, params).fetchone()[0]

    def column(sql: str) -> Callable[[], list[Any]]:
        return lambda: [row[0] for row in con.execute(sql)]

    _measure(
        rec,
        "sqlite.count",
        lambda: objects(db).count(),
        scalar("SELECT count(*) FROM raw_ranked"),
        n,
    )
    count_sql = "SELECT count(*) FROM raw_ranked WHERE json_extract(data, '$.rank') > ?"

    def count_where() -> int:
        return objects(db).where(rank__gt=RANK_CUTOFF).count()

    _measure(
        rec,
        "sqlite.count_where",
        count_where,
        scalar(count_sql, RANK_CUTOFF),
        n,
        plans=_sqlite_plans(db, db_path, raw_path, count_where, count_sql, RANK_CUTOFF),
    )

    def values_of(field: str) -> Callable[[], list[Any]]:
        return lambda: objects(db).values(field)

    for field, key, indexed in (
        ("rank", "sqlite.values", True),
        ("age", "sqlite.values_unindexed", False),
    ):
        sql = f"SELECT DISTINCT json_extract(data, '$.{field}') FROM raw_ranked"
        mine = values_of(field)
        plans = _sqlite_plans(db, db_path, raw_path, mine, sql) if indexed else None
        _measure(rec, key, mine, column(sql), n, same=_as_set, plans=plans)

    offset = window(n)
    window_sql = (
        "SELECT pk, data FROM raw_ranked ORDER BY json_extract(data, '$.rank')"
        f" LIMIT {WINDOW} OFFSET ?"
    )

    def mine_window() -> list[Any]:
        return list(objects(db).order_by("rank")[offset : offset + WINDOW])

    def raw_window() -> list[Any]:
        return [validated(RankedPerson, pk, d) for pk, d in con.execute(window_sql, (offset,))]

    _measure(
        rec,
        "sqlite.order_window",
        mine_window,
        raw_window,
        n,
        same=_ranks,
        plans=_sqlite_plans(db, db_path, raw_path, mine_window, window_sql, offset),
        note="" if offset == OFFSET else f"[{offset}:{offset + WINDOW}] at this N",
    )


# ------------------------------------------------------------------ PostgreSQL
def _pg_plan(cur: Any, sql: str, params: Any = ()) -> str | None:
    """Why PostgreSQL's plan of *sql* uses no index (``None`` if it does)."""
    plan = " / ".join(str(r[0]).strip() for r in cur.execute(f"EXPLAIN {sql}", params))
    return None if "Index" in plan else f"plan does not use the index: {plan}"


def _table_of(query: doqu.Query[Any]) -> str:
    found = re.search(r'FROM ("[^"]+")', query.explain())
    if not found:
        raise RuntimeError(f"no table in {query.explain()!r}")
    return found.group(1)


@contextlib.contextmanager
def _pg_filled(config: Config) -> Iterator[tuple[doqu.Storage, Any]]:
    with pg_schema(config) as (url, conn):
        db = doqu.connect(url)
        try:
            cur = conn.cursor()
            cur.execute("CREATE TABLE raw_ranked (pk TEXT PRIMARY KEY, data JSONB NOT NULL)")
            # The two indexes doqu builds for an indexed field (a count reads the smaller).
            cur.execute("CREATE INDEX raw_ranked_rank ON raw_ranked ((data->'rank'))")
            cur.execute(
                "CREATE INDEX raw_ranked_rank_s ON raw_ranked ((data->>'rank') COLLATE \"C\")"
            )
            dumps = text_dumps()

            def write_raw(keys: list[str], dicts: list[Any]) -> None:
                with conn.transaction(), cur.copy("COPY raw_ranked (pk, data) FROM STDIN") as cp:
                    for k, d in zip(keys, dicts):
                        cp.write_row((k, dumps(d)))

            _fill(db, config.n, write_raw)
            # As autovacuum would in time: statistics, and the visibility map that
            # lets a count read the index only. The same for both tables.
            for table in ("raw_ranked", _table_of(RankedPerson.objects(db))):
                cur.execute(f"VACUUM ANALYZE {table}")
            yield db, cur
        finally:
            db.close()


def run_postgresql(config: Config, rec: Recorder) -> None:
    """The same cases on PostgreSQL, in a schema of its own."""
    keys = [c.key for c in POSTGRESQL]
    try:
        ctx = _pg_filled(config)
        db, cur = ctx.__enter__()
    except Exception as exc:
        for key in keys:
            rec.unavailable(key, f"server not reachable: {type(exc).__name__}: {exc}"[:200])
        return
    try:
        _pg_cases(rec, db, cur, config.n)
    finally:
        ctx.__exit__(None, None, None)


def _pg_cases(rec: Recorder, db: doqu.Storage, cur: Any, n: int) -> None:
    objects = RankedPerson.objects

    def scalar(sql: str, *params: Any) -> Callable[[], Any]:
        return lambda: cur.execute(sql, params).fetchone()[0]

    def column(sql: str) -> Callable[[], list[Any]]:
        return lambda: [row[0] for row in cur.execute(sql)]

    _measure(
        rec,
        "postgresql.count",
        lambda: objects(db).count(),
        scalar("SELECT count(*) FROM raw_ranked"),
        n,
    )
    count_sql = "SELECT count(*) FROM raw_ranked WHERE (data->'rank') > %s::jsonb"
    cutoff = json.dumps(RANK_CUTOFF)

    def count_plans() -> str | None:
        problem = _pg_plan(cur, count_sql, (cutoff,))
        if problem:
            return f"baseline {problem}"
        sql, params = explained_sql(objects(db).where(rank__gt=RANK_CUTOFF))
        return _pg_plan(cur, sql.replace("SELECT pk, data", "SELECT count(*)", 1), params)

    _measure(
        rec,
        "postgresql.count_where",
        lambda: objects(db).where(rank__gt=RANK_CUTOFF).count(),
        scalar(count_sql, cutoff),
        n,
        plans=count_plans,
    )

    def values_of(field: str) -> Callable[[], list[Any]]:
        return lambda: objects(db).values(field)

    for field, key in (("rank", "postgresql.values"), ("age", "postgresql.values_unindexed")):
        _measure(
            rec,
            key,
            values_of(field),
            column(f"SELECT DISTINCT data->'{field}' FROM raw_ranked"),
            n,
            same=_as_set,
        )

    offset = window(n)
    window_sql = (
        f"SELECT pk, data::text FROM raw_ranked ORDER BY (data->'rank') LIMIT {WINDOW} OFFSET %s"
    )

    def mine_window() -> list[Any]:
        return list(objects(db).order_by("rank")[offset : offset + WINDOW])

    def raw_window() -> list[Any]:
        return [validated(RankedPerson, pk, d) for pk, d in cur.execute(window_sql, (offset,))]

    def window_plans() -> str | None:
        problem = _pg_plan(cur, window_sql, (offset,))
        if problem:
            return f"baseline {problem}"
        return _pg_plan(cur, *explained_sql(objects(db).order_by("rank")[offset : offset + WINDOW]))

    _measure(
        rec,
        "postgresql.order_window",
        mine_window,
        raw_window,
        n,
        same=_ranks,
        plans=window_plans,
        note="" if offset == OFFSET else f"[{offset}:{offset + WINDOW}] at this N",
    )


GROUPS = (
    Group("sqlite", SQLITE, (SQL,), run_sqlite),
    Group("postgresql", POSTGRESQL, (SQL, "psycopg"), run_postgresql),
)
