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

__all__ = [
    "GROUPS",
    "doqu_save_side",
    "explained_sql",
    "get_ops",
    "pg_schema",
    "plan_problem",
    "text_dumps",
    "validated",
]

SQL = "doqu.ext.sql:SQLStorage"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

ORJSON = "orjson"

SQLITE = (
    Case(
        "sqlite.save_many.sqlmodel",
        "sqlite",
        "save_many, SQLite file",
        "SQLModel add_all + commit",
        0.125,
    ),
    # Shown only: the targeted raw floor is orjson (SQLITE_ORJSON).
    Case(
        "sqlite.save_many.raw",
        "sqlite",
        "save_many, SQLite file",
        "sqlite3 executemany + json.dumps",
        None,
    ),
    Case("sqlite.get", "sqlite", "get by pk, SQLite", "sqlite3 select + json.loads", 2.0),
    Case(
        "sqlite.get.validate",
        "sqlite",
        "get by pk as a model, SQLite",
        "sqlite3 select + model_validate_json",
        1.3,
    ),
    Case(
        "sqlite.where",
        "sqlite",
        f"where(age__gt={AGE_CUTOFF}) as models, SQLite",
        "json_extract query + json.loads",
        None,
    ),
    Case(
        "sqlite.where.validate",
        "sqlite",
        f"where(age__gt={AGE_CUTOFF}) as models, SQLite",
        "json_extract query + model_validate_json",
        1.3,
    ),
)
#: The raw floor of writing and reading JSON text: orjson (a group of its own, so
#: that without orjson these rows say "unavailable" and the others still run).
SQLITE_ORJSON = (
    Case(
        "sqlite.save_many.orjson",
        "sqlite",
        "save_many, SQLite file",
        "sqlite3 executemany + orjson.dumps",
        1.5,
    ),
    Case(
        "sqlite.where.orjson",
        "sqlite",
        f"where(age__gt={AGE_CUTOFF}) as models, SQLite",
        "json_extract query + orjson.loads",
        2.0,
    ),
    Case(
        "sqlite.where_indexed",
        "sqlite",
        f"where(rank__gt={RANK_CUTOFF}) indexed 2.7%, SQLite",
        "same query + expression index, orjson",
        2.0,
    ),
)
POSTGRESQL = (
    Case(
        "postgresql.save_many.copy",
        "postgresql",
        "save_many, PostgreSQL",
        "psycopg 3 COPY into a fresh table",
        1.5,
    ),
    Case(
        "postgresql.save_many",
        "postgresql",
        "save_many, PostgreSQL",
        "psycopg 3 executemany upsert",
        None,
    ),
    Case("postgresql.get", "postgresql", "get by pk, PostgreSQL", "psycopg 3 select", 1.5),
    Case(
        "postgresql.get.validate",
        "postgresql",
        "get by pk as a model, PostgreSQL",
        "psycopg 3 select + model_validate_json",
        1.3,
    ),
)
MYSQL = (
    Case("mysql.get", "mysql", "get by pk, MariaDB", "PyMySQL select + json.loads", None),
    Case("mysql.save_many", "mysql", "save_many, MariaDB", "PyMySQL executemany upsert", None),
)


def text_dumps() -> Callable[[Any], str]:
    """The fastest JSON text encoder at hand: orjson's if installed, else the stdlib's.

    orjson gives bytes; SQLite's JSON functions and COPY want text, hence the decode.
    """
    try:
        import orjson
    except ImportError:
        return json.dumps
    dumps = orjson.dumps
    return lambda obj: dumps(obj).decode()


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


def _raw_save_side(
    con: sqlite3.Connection,
    table: str,
    keys: list[str],
    dicts: list[Any],
    dumps: Callable[[Any], str] = json.dumps,
) -> Side:
    """``INSERT OR REPLACE`` of ``dumps(dict)`` for every key, one transaction."""
    sql = f"INSERT OR REPLACE INTO {table} (pk, data) VALUES (?, ?)"

    def run() -> None:
        con.execute("BEGIN")
        con.executemany(sql, [(k, dumps(d)) for k, d in zip(keys, dicts)])
        con.execute("COMMIT")

    def prepare() -> Callable[[], object]:
        con.execute(f"DELETE FROM {table}")
        return run

    return Side(prepare, ops=len(keys))


def validated(model: type[Any], pk: str, text: str | bytes) -> Any:
    """The raw floor of returning a validated model: pydantic parses the JSON text itself."""
    doc = model.model_validate_json(text)
    doc.pk = pk
    return doc


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


def plan_problem(path: str, sql: str, params: Any = ()) -> str | None:
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


def explained_sql(query: doqu.Query[Any]) -> tuple[str, Any]:
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


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _same_rows(
    db: doqu.Storage, con: sqlite3.Connection, people: list[Any], keys: list[str], dicts: list[Any]
) -> None:
    """After the save cases: both sides hold the n documents, as compact JSON text."""
    model = type(people[0])
    if db.query(model).count() != len(people):
        db.clear(model)
        db.save_many(people)
    # Untimed: the raw table is refilled with compact text, as doqu stores it.
    _raw_save_side(con, "raw_people", keys, dicts, _compact).prepare()()


def run_sqlite(config: Config, rec: Recorder) -> None:
    """The SQLite cases that need no orjson, on files in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="doqu-bench-") as tmp:
        n = config.n
        dicts = make_dicts(n)
        keys = make_keys(n)
        db_path = os.path.join(tmp, "doqu.sqlite3")
        db = doqu.connect(f"sqlite:///{db_path}")
        con = _sqlite_raw(os.path.join(tmp, "raw.sqlite3"))
        try:
            people = make_people(dicts)
            save = doqu_save_side(db, people)
            try:
                sqlmodel_side = _sqlmodel_side(os.path.join(tmp, "sqlmodel.sqlite3"), dicts)
            except ImportError as exc:
                rec.unavailable("sqlite.save_many.sqlmodel", f"sqlmodel not installed ({exc})")
            else:
                rec.measure("sqlite.save_many.sqlmodel", save, sqlmodel_side, n=n)
            rec.measure(
                "sqlite.save_many.raw",
                save,
                _raw_save_side(con, "raw_people", keys, dicts),
                n=n,
            )

            _same_rows(db, con, people, keys, dicts)
            ops = get_ops(config)
            rng = random.Random(1)
            picks = [rng.randrange(n) for _ in range(ops)]
            doqu_get = _doqu_get_side(db, Person, [people[i].pk for i in picks])
            raw_pks = [keys[i] for i in picks]
            get_sql = "SELECT data FROM raw_people WHERE pk = ?"
            loads = json.loads

            def raw_gets() -> None:
                execute = con.execute
                for pk in raw_pks:
                    loads(execute(get_sql, (pk,)).fetchone()[0])

            def raw_model_gets() -> None:
                execute = con.execute
                for pk in raw_pks:
                    validated(Person, pk, execute(get_sql, (pk,)).fetchone()[0])

            note = f"{ops:,} gets"
            rec.measure("sqlite.get", doqu_get, Side(_const(raw_gets), ops=ops), n=n, note=note)
            rec.measure(
                "sqlite.get.validate",
                doqu_get,
                Side(_const(raw_model_gets), ops=ops),
                n=n,
                note=note,
            )

            where = Person.objects(db).where(age__gt=AGE_CUTOFF)
            doqu_where = Side(_const(lambda: list(where)))

            def raw_where() -> list[Any]:
                return [(pk, loads(d)) for pk, d in con.execute(AGE_SQL, (AGE_CUTOFF,))]

            def raw_where_models() -> list[Any]:
                return [validated(Person, pk, d) for pk, d in con.execute(AGE_SQL, (AGE_CUTOFF,))]

            note = f"{len(raw_where()):,} rows"
            rec.measure("sqlite.where", doqu_where, Side(_const(raw_where)), n=n, note=note)
            rec.measure(
                "sqlite.where.validate",
                doqu_where,
                Side(_const(raw_where_models)),
                n=n,
                note=note,
            )
        finally:
            db.close()
            con.close()


AGE_SQL = "SELECT pk, data FROM raw_people WHERE json_extract(data, '$.age') > ?"
RANK_SQL = "SELECT pk, data FROM raw_ranked WHERE json_extract(data, '$.rank') > ?"


def run_sqlite_orjson(config: Config, rec: Recorder) -> None:
    """The SQLite cases against the orjson floor (raw text written and read by orjson)."""
    import orjson

    dumps, loads = text_dumps(), orjson.loads
    with tempfile.TemporaryDirectory(prefix="doqu-bench-orjson-") as tmp:
        n = config.n
        dicts = make_dicts(n)
        keys = make_keys(n)
        db_path = os.path.join(tmp, "doqu.sqlite3")
        raw_path = os.path.join(tmp, "raw.sqlite3")
        db = doqu.connect(f"sqlite:///{db_path}")
        con = _sqlite_raw(raw_path)
        try:
            people = make_people(dicts)
            rec.measure(
                "sqlite.save_many.orjson",
                doqu_save_side(db, people),
                _raw_save_side(con, "raw_people", keys, dicts, dumps),
                n=n,
            )
            if db.query(Person).count() != n:
                db.clear(Person)
                db.save_many(people)
            if con.execute("SELECT count(*) FROM raw_people").fetchone()[0] != n:
                _raw_save_side(con, "raw_people", keys, dicts, dumps).prepare()()

            where = Person.objects(db).where(age__gt=AGE_CUTOFF)

            def raw_where() -> list[Any]:
                return [(pk, loads(d)) for pk, d in con.execute(AGE_SQL, (AGE_CUTOFF,))]

            rec.measure(
                "sqlite.where.orjson",
                Side(_const(lambda: list(where))),
                Side(_const(raw_where)),
                n=n,
                note=f"{len(raw_where()):,} rows",
            )

            db.save_many(make_people(dicts, RankedPerson))
            _raw_save_side(con, "raw_ranked", keys, dicts, dumps).prepare()()
            con.execute("CREATE INDEX raw_ranked_rank ON raw_ranked (json_extract(data, '$.rank'))")
            con.execute("ANALYZE")
            ranked = RankedPerson.objects(db).where(rank__gt=RANK_CUTOFF)

            def raw_ranked() -> list[Any]:
                return [(pk, loads(d)) for pk, d in con.execute(RANK_SQL, (RANK_CUTOFF,))]

            hits = len(raw_ranked())

            def check() -> str | None:
                baseline = plan_problem(raw_path, RANK_SQL, (RANK_CUTOFF,))
                if baseline:
                    return f"baseline {baseline}"
                sql, params = explained_sql(ranked)
                return plan_problem(db_path, sql, params)

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

    def model_get_side(self, keys: list[str]) -> Side:
        """One select of the JSON text per key, validated into a model by pydantic."""
        cur = self.cur
        sql = "SELECT data::text FROM raw_people WHERE pk = %s"

        def run() -> None:
            for k in keys:
                validated(Person, k, cur.execute(sql, (k,)).fetchone()[0])

        return Side(_const(run), ops=len(keys))

    def copy_side(self, keys: list[str], dicts: list[dict[str, Any]]) -> Side:
        """PostgreSQL's bulk floor: ``COPY … FROM STDIN`` of (pk, JSON text) rows.

        Into a fresh table of the same shape (primary key, ``jsonb``) every round,
        created untimed; the JSON text by orjson when it is installed.
        """
        cur, conn, dumps = self.cur, self.conn, text_dumps()

        def run() -> None:
            with conn.transaction(), cur.copy("COPY raw_copy (pk, data) FROM STDIN") as copy:
                write = copy.write_row
                for k, d in zip(keys, dicts):
                    write((k, dumps(d)))

        def prepare() -> Callable[[], object]:
            cur.execute("DROP TABLE IF EXISTS raw_copy")
            cur.execute("CREATE TABLE raw_copy (pk TEXT PRIMARY KEY, data JSONB NOT NULL)")
            return run

        return Side(prepare, ops=len(keys))


def encoder_note() -> str:
    """Which JSON encoder :func:`text_dumps` uses, for a row's note."""
    return "orjson" if text_dumps() is not json.dumps else "json.dumps (orjson not installed)"


@contextlib.contextmanager
def pg_schema(config: Config) -> Iterator[tuple[str, Any]]:
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
    opener = pg_schema if backend == "postgresql" else _mysql
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
            save = doqu_save_side(db, people)
            if backend == "postgresql":
                rec.measure(
                    "postgresql.save_many.copy",
                    save,
                    raw.copy_side(keys, dicts),
                    n=n,
                    note=f"JSON text by {encoder_note()}",
                )
            rec.measure(f"{backend}.save_many", save, raw.save_side(keys, dicts), n=n)
            if db.query(Person).count() != n:
                db.clear(Person)
                db.save_many(people)
            raw.save_side(keys, dicts).prepare()()
            ops = get_ops(config)
            rng = random.Random(2)
            picks = [rng.randrange(n) for _ in range(ops)]
            doqu_get = _doqu_get_side(db, Person, [people[i].pk for i in picks])
            raw_keys = [keys[i] for i in picks]
            note = f"{ops:,} gets"
            rec.measure(f"{backend}.get", doqu_get, raw.get_side(raw_keys), n=n, note=note)
            if backend == "postgresql":
                rec.measure(
                    "postgresql.get.validate",
                    doqu_get,
                    raw.model_get_side(raw_keys),
                    n=n,
                    note=note,
                )
        finally:
            db.close()
    finally:
        ctx.__exit__(None, None, None)


GROUPS = (
    Group("sqlite", SQLITE_ORJSON, (SQL, ORJSON), run_sqlite_orjson),
    Group("sqlite", SQLITE, (SQL,), run_sqlite),
    Group(
        "postgresql",
        POSTGRESQL,
        (SQL, "psycopg"),
        lambda c, r: _run_server(c, r, "postgresql"),
    ),
    Group("mysql", MYSQL, (SQL, "pymysql"), lambda c, r: _run_server(c, r, "mysql")),
)
