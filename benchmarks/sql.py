"""SQL cases: SQLite against raw ``sqlite3`` and SQLModel; PostgreSQL and MariaDB against
their raw drivers."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import random
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import doqu

from .data import (
    AGE_CUTOFF,
    RANK_CUTOFF,
    Person,
    RankedPerson,
    make_dicts,
    make_keys,
    make_people,
)
from .harness import Case, Config, Group, Recorder, Side
from .peer_models import sqlmodel_person

__all__ = ["GROUPS", "doqu_save_side", "get_ops"]

SQL = "doqu.ext.sql:SQLStorage"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

SQLITE = (
    Case("sqlite.save_many.raw", "sqlite", "save_many, SQLite file", "sqlite3 executemany", 1.5),
    Case(
        "sqlite.save_many.sqlmodel",
        "sqlite",
        "save_many, SQLite file",
        "SQLModel add_all + commit",
        0.125,
    ),
    Case("sqlite.get", "sqlite", "get by pk, SQLite", "sqlite3 select + json.loads", 2.0),
    Case(
        "sqlite.where",
        "sqlite",
        f"where(age__gt={AGE_CUTOFF}) as models, SQLite",
        "json_extract query + json.loads",
        2.0,
    ),
    Case(
        "sqlite.where_indexed",
        "sqlite",
        f"where(rank__gt={RANK_CUTOFF}) indexed 2.7%, SQLite",
        "same query + expression index",
        2.0,
    ),
)
POSTGRESQL = (
    Case("postgresql.get", "postgresql", "get by pk, PostgreSQL", "psycopg 3 select", 1.5),
    Case(
        "postgresql.save_many",
        "postgresql",
        "save_many, PostgreSQL",
        "psycopg 3 executemany upsert",
        1.5,
    ),
)
MYSQL = (
    Case("mysql.get", "mysql", "get by pk, MariaDB", "PyMySQL select + json.loads", None),
    Case("mysql.save_many", "mysql", "save_many, MariaDB", "PyMySQL executemany upsert", None),
)


def get_ops(config: Config) -> int:
    """How many gets a get-by-pk case times (10,000 on a full run)."""
    return max(100, min(10_000, config.n if not config.quick else config.n // 5))


def doqu_save_side(db: doqu.Storage, people: list[Any]) -> Side:
    """``db.save_many(people)`` into an emptied collection, fresh pks each time."""

    def prepare() -> Callable[[], object]:
        db.clear(type(people[0]))
        for p in people:
            p.pk = None
        return lambda: db.save_many(people)

    return Side(prepare, ops=len(people))


def _const(thunk: Callable[[], object]) -> Callable[[], Callable[[], object]]:
    return lambda: thunk


def _doqu_get_side(db: doqu.Storage, model: type[Any], pks: list[str]) -> Side:
    get = db.get

    def run() -> None:
        for pk in pks:
            get(model, pk)

    return Side(_const(run), ops=len(pks))


# ---------------------------------------------------------------------- SQLite
def _sqlite_raw(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    for table in ("raw_people", "raw_ranked"):
        con.execute(f"CREATE TABLE {table} (pk TEXT PRIMARY KEY, data TEXT NOT NULL)")
    return con


def _raw_save_side(con: sqlite3.Connection, table: str, keys: list[str], dicts: list[Any]) -> Side:
    sql = f"INSERT OR REPLACE INTO {table} (pk, data) VALUES (?, ?)"
    dumps = json.dumps

    def run() -> None:
        con.execute("BEGIN")
        con.executemany(sql, [(k, dumps(d)) for k, d in zip(keys, dicts)])
        con.execute("COMMIT")

    def prepare() -> Callable[[], object]:
        con.execute(f"DELETE FROM {table}")
        return run

    return Side(prepare, ops=len(keys))


def _sqlmodel_side(path: str, dicts: list[dict[str, Any]]) -> Side:
    from sqlalchemy import create_engine, event
    from sqlmodel import Session

    model = sqlmodel_person()
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_con: Any, _: Any) -> None:
        dbapi_con.execute("PRAGMA journal_mode=WAL")
        dbapi_con.execute("PRAGMA synchronous=NORMAL")

    table = model.__table__

    def prepare() -> Callable[[], object]:
        table.drop(engine, checkfirst=True)
        table.create(engine)
        rows = [model(**d) for d in dicts]

        def run() -> None:
            with Session(engine) as session:
                session.add_all(rows)
                session.commit()

        return run

    return Side(prepare, ops=len(dicts))


def _plan_problem(path: str, sql: str, params: Any = ()) -> str | None:
    """Why the plan of *sql* on the file at *path* does not use an index (None if it does)."""
    con = sqlite3.connect(path)
    try:
        try:
            rows = con.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        except sqlite3.ProgrammingError as exc:
            # Placeholders without values: a SQLite plan does not depend on them.
            found = re.search(r"uses (\d+)", str(exc))
            if not found:
                raise
            nulls = (None,) * int(found.group(1))
            rows = con.execute(f"EXPLAIN QUERY PLAN {sql}", nulls).fetchall()
    except sqlite3.Error as exc:
        return f"cannot check the plan of {sql[:200]!r}: {exc}"
    finally:
        con.close()
    plan = " / ".join(str(r[-1]) for r in rows)
    if "USING INDEX" in plan or "USING COVERING INDEX" in plan:
        return None
    return f"plan does not use the index: {plan}"


def _explained_sql(query: doqu.Query[Any]) -> tuple[str, Any]:
    """The SQL doqu runs for *query* and its parameters, from ``Query.explain()``.

    The SQL backend answers ``"<sql>\n-- parameters: <repr>"``.
    """
    text = query.explain().strip()
    sql, _, tail = text.partition("\n-- parameters:")
    params: Any = ()
    if tail.strip():
        try:
            params = ast.literal_eval(tail.strip())
        except (ValueError, SyntaxError):
            params = ()
    return sql.strip(), params


def run_sqlite(config: Config, rec: Recorder) -> None:
    """Every SQLite case, on files in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="doqu-bench-") as tmp:
        n = config.n
        dicts = make_dicts(n)
        keys = make_keys(n)
        db_path = os.path.join(tmp, "doqu.sqlite3")
        raw_path = os.path.join(tmp, "raw.sqlite3")
        db = doqu.connect(f"sqlite:///{db_path}")
        con = _sqlite_raw(raw_path)
        try:
            people = make_people(dicts)
            save = doqu_save_side(db, people)
            rec.measure(
                "sqlite.save_many.raw",
                save,
                _raw_save_side(con, "raw_people", keys, dicts),
                n=n,
            )
            try:
                sqlmodel_side = _sqlmodel_side(os.path.join(tmp, "sqlmodel.sqlite3"), dicts)
            except ImportError as exc:
                rec.unavailable("sqlite.save_many.sqlmodel", f"sqlmodel not installed ({exc})")
            else:
                rec.measure("sqlite.save_many.sqlmodel", save, sqlmodel_side, n=n)

            # Both tables now hold the same n documents.
            if db.query(Person).count() != n:
                db.clear(Person)
                db.save_many(people)
            if con.execute("SELECT count(*) FROM raw_people").fetchone()[0] != n:
                _raw_save_side(con, "raw_people", keys, dicts).prepare()()
            ops = get_ops(config)
            rng = random.Random(1)
            picks = [rng.randrange(n) for _ in range(ops)]
            doqu_pks = [people[i].pk for i in picks]
            raw_pks = [keys[i] for i in picks]
            loads = json.loads

            def raw_gets() -> None:
                execute = con.execute
                for pk in raw_pks:
                    loads(execute("SELECT data FROM raw_people WHERE pk = ?", (pk,)).fetchone()[0])

            rec.measure(
                "sqlite.get",
                _doqu_get_side(db, Person, doqu_pks),
                Side(_const(raw_gets), ops=ops),
                n=n,
                note=f"{ops:,} gets",
            )

            where = Person.objects(db).where(age__gt=AGE_CUTOFF)
            age_sql = "SELECT pk, data FROM raw_people WHERE json_extract(data, '$.age') > ?"

            def raw_where() -> object:
                return [(pk, loads(d)) for pk, d in con.execute(age_sql, (AGE_CUTOFF,))]

            hits = sum(1 for _ in raw_where())
            rec.measure(
                "sqlite.where",
                Side(_const(lambda: list(where))),
                Side(_const(raw_where)),
                n=n,
                note=f"{hits:,} rows",
            )

            db.save_many(make_people(dicts, RankedPerson))
            _raw_save_side(con, "raw_ranked", keys, dicts).prepare()()
            con.execute("CREATE INDEX raw_ranked_rank ON raw_ranked (json_extract(data, '$.rank'))")
            con.execute("ANALYZE")
            ranked = RankedPerson.objects(db).where(rank__gt=RANK_CUTOFF)
            rank_sql = "SELECT pk, data FROM raw_ranked WHERE json_extract(data, '$.rank') > ?"

            def raw_ranked() -> object:
                return [(pk, loads(d)) for pk, d in con.execute(rank_sql, (RANK_CUTOFF,))]

            hits = sum(1 for _ in raw_ranked())

            def check() -> str | None:
                baseline = _plan_problem(raw_path, rank_sql, (RANK_CUTOFF,))
                if baseline:
                    return f"baseline {baseline}"
                sql, params = _explained_sql(ranked)
                return _plan_problem(db_path, sql, params)

            rec.measure(
                "sqlite.where_indexed",
                Side(_const(lambda: list(ranked))),
                Side(_const(raw_ranked)),
                n=n,
                note=f"{hits:,} rows ({hits / n:.1%})",
                check=check,
            )
        finally:
            db.close()
            con.close()


# ------------------------------------------------------------ server databases
class RawSQL:
    """The raw-driver baseline on a server: a (pk, JSON) table, gets and bulk upserts."""

    def __init__(self, backend: str, conn: Any) -> None:
        self.backend = backend
        self.conn = conn
        self.cur = conn.cursor()
        if backend == "postgresql":
            self.cur.execute("CREATE TABLE raw_people (pk TEXT PRIMARY KEY, data JSONB NOT NULL)")
            self.get_sql = "SELECT data FROM raw_people WHERE pk = %s"
            self.put_sql = (
                "INSERT INTO raw_people (pk, data) VALUES (%s, %s)"
                " ON CONFLICT (pk) DO UPDATE SET data = EXCLUDED.data"
            )
        else:
            self.cur.execute(
                "CREATE TABLE raw_people (pk VARCHAR(255) PRIMARY KEY, data JSON NOT NULL)"
            )
            self.get_sql = "SELECT data FROM raw_people WHERE pk = %s"
            self.put_sql = (
                "INSERT INTO raw_people (pk, data) VALUES (%s, %s)"
                " ON DUPLICATE KEY UPDATE data = VALUES(data)"
            )

    def save_side(self, keys: list[str], dicts: list[dict[str, Any]]) -> Side:
        """Bulk upsert of ``json.dumps`` of every dict, in one transaction."""
        cur, conn, sql, dumps = self.cur, self.conn, self.put_sql, json.dumps
        if self.backend == "postgresql":
            from psycopg.types.json import Jsonb

            def run() -> None:
                with conn.transaction():
                    cur.executemany(sql, [(k, Jsonb(d)) for k, d in zip(keys, dicts)])

        else:

            def run() -> None:
                conn.begin()
                cur.executemany(sql, [(k, dumps(d)) for k, d in zip(keys, dicts)])
                conn.commit()

        def prepare() -> Callable[[], object]:
            cur.execute("TRUNCATE TABLE raw_people")
            return run

        return Side(prepare, ops=len(keys))

    def get_side(self, keys: list[str]) -> Side:
        """One select per key; the JSON decoded into a dict."""
        cur, sql, loads = self.cur, self.get_sql, json.loads
        if self.backend == "postgresql":

            def run() -> None:
                for k in keys:
                    cur.execute(sql, (k,)).fetchone()

        else:

            def run() -> None:
                for k in keys:
                    cur.execute(sql, (k,))
                    loads(cur.fetchone()[0])

        return Side(_const(run), ops=len(keys))


@contextlib.contextmanager
def _pg(config: Config) -> Iterator[tuple[str, Any]]:
    import psycopg
    import sqlalchemy as sa

    base = config.pg_url or os.environ.get("DOQU_BENCH_PG_URL") or DEFAULT_PG_URL
    schema = f"doqu_bench_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    dsn = admin.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True, options=f"-csearch_path={schema}")
    try:
        yield url, conn
    finally:
        conn.close()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextlib.contextmanager
def _mysql(config: Config) -> Iterator[tuple[str, Any]]:
    import pymysql
    import sqlalchemy as sa

    base = config.mysql_url or os.environ.get("DOQU_BENCH_MYSQL_URL") or DEFAULT_MYSQL_URL
    name = f"doqu_bench_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    u = admin.url.set(database=name)
    conn = pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=name,
        autocommit=True,
        charset="utf8mb4",
    )
    try:
        yield u.render_as_string(hide_password=False), conn
    finally:
        conn.close()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


def _run_server(config: Config, rec: Recorder, backend: str) -> None:
    opener = _pg if backend == "postgresql" else _mysql
    keys_ = [c.key for c in (POSTGRESQL if backend == "postgresql" else MYSQL)]
    try:
        ctx = opener(config)
        url, conn = ctx.__enter__()
    except Exception as exc:
        for key in keys_:
            rec.unavailable(key, f"server not reachable: {type(exc).__name__}: {exc}"[:200])
        return
    try:
        n = config.n
        dicts = make_dicts(n)
        keys = make_keys(n)
        raw = RawSQL(backend, conn)
        db = doqu.connect(url)
        try:
            people = make_people(dicts)
            rec.measure(
                f"{backend}.save_many",
                doqu_save_side(db, people),
                raw.save_side(keys, dicts),
                n=n,
            )
            if db.query(Person).count() != n:
                db.clear(Person)
                db.save_many(people)
            raw.save_side(keys, dicts).prepare()()
            ops = get_ops(config)
            rng = random.Random(2)
            picks = [rng.randrange(n) for _ in range(ops)]
            rec.measure(
                f"{backend}.get",
                _doqu_get_side(db, Person, [people[i].pk for i in picks]),
                raw.get_side([keys[i] for i in picks]),
                n=n,
                note=f"{ops:,} gets",
            )
        finally:
            db.close()
    finally:
        ctx.__exit__(None, None, None)


GROUPS = (
    Group("sqlite", SQLITE, (SQL,), run_sqlite),
    Group(
        "postgresql",
        POSTGRESQL,
        (SQL, "psycopg"),
        lambda c, r: _run_server(c, r, "postgresql"),
    ),
    Group("mysql", MYSQL, (SQL, "pymysql"), lambda c, r: _run_server(c, r, "mysql")),
)
