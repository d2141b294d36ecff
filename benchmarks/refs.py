"""Reference cases: books with an author, iterated with ``prefetch("author")``.

N books (``BenchBook``: a title and ``author: Ref[BenchAuthor]``) refer to 1,000
authors, book *i* to author ``i % 1000``, on SQLite and PostgreSQL. The doqu side
is ``[(b, b.author.doc) for b in BenchBook.objects(db).prefetch("author")]``
(streaming: one read of the distinct authors per batch of 1,000 books). Its
baselines:

* the raw driver on doqu's own tables, two queries: every book, then the
  distinct authors by pk (SQLite ``IN (SELECT value FROM json_each(?))`` with one
  JSON array, PostgreSQL ``= ANY(%s)``), each row validated by pydantic from its
  JSON text and the pairs built by hand: the floor of returning the models;
* SQLModel tables of the same data (``Book.author_id`` a foreign key, ``Book.author``
  a ``Relationship``), loaded by ``select(Book).options(selectinload(Book.author))``
  in a fresh session, every ``book.author.name`` read.

Both sides return the same (title, author name) pairs; a check says so. A row
shown for information times ``list(q)`` first instead (it reads every book ahead,
so one author read in all) against the same raw floor.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from typing import Any

import doqu
from doqu import Document, Ref

from .harness import Case, Config, Group, Recorder, Side
from .sql import pg_schema, validated

__all__ = ["AUTHORS", "GROUPS", "BenchAuthor", "BenchBook"]

SQL = "doqu.ext.sql:SQLStorage"
#: The number of distinct authors (fewer when N is smaller).
AUTHORS = 1000

_WORDS = ["Dune", "Sea", "Glass", "Winter", "Iron", "Orchard", "Signal", "Harbor", "Lantern"]
_NAMES = ["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "José"]


class BenchAuthor(Document):
    """The referred document."""

    name: str

    class Meta:
        collection = "bench_authors"


class BenchBook(Document):
    """The referring document: its author stored as the author's pk."""

    title: str
    author: Ref[BenchAuthor]

    class Meta:
        collection = "bench_books"


_TITLE = 'prefetch("author"), 1,000 authors'
#: Shown only: ``list(query)`` reads every row ahead, so one author read in all.
_LIST_TITLE = 'list(q.prefetch("author")), 1,000 authors'


def _cases(backend: str, label: str, raw: str) -> tuple[tuple[Case, ...], tuple[Case, ...]]:
    title = f"{_TITLE}, {label}"
    return (
        (
            Case(f"{backend}.prefetch.raw", backend, title, raw, 1.5),
            Case(f"{backend}.prefetch_list.raw", backend, f"{_LIST_TITLE}, {label}", raw, None),
        ),
        (
            Case(
                f"{backend}.prefetch.sqlmodel",
                backend,
                title,
                "SQLModel selectinload(Book.author)",
                1.0,
            ),
        ),
    )


SQLITE_RAW, SQLITE_SQLMODEL = _cases(
    "sqlite", "SQLite", "sqlite3 2 queries (json_each) + validate_json"
)
POSTGRESQL_RAW, POSTGRESQL_SQLMODEL = _cases(
    "postgresql", "PostgreSQL", "psycopg 3 2 queries (= ANY) + validate_json"
)


def _authors(n: int) -> int:
    return max(1, min(AUTHORS, n))


def _author_name(i: int) -> str:
    return f"{_NAMES[i % len(_NAMES)]} Writer {i}"


def _book_title(i: int) -> str:
    return f"The {_WORDS[i % len(_WORDS)]} of {_WORDS[(i // 7) % len(_WORDS)]} {i}"


def _fill_doqu(db: doqu.Storage, n: int) -> None:
    """*n* books and their authors into doqu (``save_many``); book *i* by author ``i % 1000``."""
    count = _authors(n)
    authors = [BenchAuthor(pk=f"author-{i:04d}", name=_author_name(i)) for i in range(count)]
    db.save_many(authors)
    books = [
        BenchBook(pk=f"{i:032x}", title=_book_title(i), author=authors[i % count]) for i in range(n)
    ]
    for start in range(0, n, 10_000):
        db.save_many(books[start : start + 10_000])


def _doqu_side(db: doqu.Storage, *, stream: bool = True) -> Callable[[], list[tuple[Any, Any]]]:
    """The books paired with their authors: streaming (a comprehension), or ``list(q)`` first."""
    query = BenchBook.objects(db).prefetch("author")

    def streamed() -> list[tuple[Any, Any]]:
        return [(b, b.author.doc) for b in query]

    def listed() -> list[tuple[Any, Any]]:
        return [(b, b.author.doc) for b in list(query)]

    return streamed if stream else listed


def _pairs(result: list[tuple[Any, Any]]) -> list[tuple[str, str]]:
    return sorted((book.title, author.name) for book, author in result)


def _measure(
    rec: Recorder,
    key: str,
    mine: Callable[[], list[tuple[Any, Any]]],
    base: Callable[[], list[tuple[Any, Any]]],
    n: int,
) -> None:
    """Time one listing against the other; check both give the same (title, name) pairs."""

    def check() -> str | None:
        got, want = mine(), base()
        if len(got) != n or _pairs(got) != _pairs(want):
            return f"doqu and the baseline answer differently ({len(got):,} vs {len(want):,})"
        return None

    note = f"{n:,} books, book i by author i % {_authors(n):,}"
    rec.measure(key, Side(lambda: mine), Side(lambda: base), n=n, note=note, check=check)


def _streamed(rec: Recorder, key: str, db: doqu.Storage, base: Callable[[], Any], n: int) -> None:
    """*key*: doqu streaming its prefetch (batches of 1,000 books) against *base*."""
    _measure(rec, key, _doqu_side(db), base, n)


def _raw_cases(
    rec: Recorder, backend: str, db: doqu.Storage, raw: Callable[[], Any], n: int
) -> None:
    """The two rows against the raw driver: streaming, and ``list(q)`` (one author read)."""
    _streamed(rec, f"{backend}.prefetch.raw", db, raw, n)
    _measure(rec, f"{backend}.prefetch_list.raw", _doqu_side(db, stream=False), raw, n)


def _tables() -> tuple[str, str]:
    """doqu's tables of the two collections (``doqu_c_<name>`` for a lower-case name)."""
    return "doqu_c_bench_books", "doqu_c_bench_authors"


def _sqlmodel_fill(engine: Any, n: int) -> tuple[Any, Any]:
    """The same books and authors as SQLModel tables (fresh), integer ids."""
    from sqlalchemy import insert

    from .peer_models import sqlmodel_library

    author_model, book_model = sqlmodel_library()
    tables = [author_model.__table__, book_model.__table__]
    for table in reversed(tables):
        table.drop(engine, checkfirst=True)
    for table in tables:
        table.create(engine)
    count = _authors(n)
    with engine.begin() as c:
        c.execute(
            insert(author_model.__table__),
            [{"id": i + 1, "name": _author_name(i)} for i in range(count)],
        )
        c.execute(
            insert(book_model.__table__),
            [{"id": i + 1, "title": _book_title(i), "author_id": i % count + 1} for i in range(n)],
        )
    return author_model, book_model


def _sqlmodel_side(engine: Any, author_model: Any, book_model: Any) -> Callable[[], Any]:
    from sqlalchemy.orm import selectinload
    from sqlmodel import Session, select

    statement = select(book_model).options(selectinload(book_model.author))

    def run() -> list[tuple[Any, Any]]:
        with Session(engine) as session:
            books = session.exec(statement).all()
            out = []
            for book in books:
                author = book.author
                author.name  # noqa: B018 - touched, as the doqu side's author.doc
                out.append((book, author))
            return out

    return run


# ---------------------------------------------------------------------- SQLite
def _sqlite_raw(
    con: sqlite3.Connection, books: str, authors: str
) -> Callable[[], list[tuple[Any, Any]]]:
    books_sql = f'SELECT pk, data FROM "{books}"'
    authors_sql = f'SELECT pk, data FROM "{authors}" WHERE pk IN (SELECT value FROM json_each(?))'
    dumps = json.dumps

    def run() -> list[tuple[Any, Any]]:
        listed = [validated(BenchBook, pk, data) for pk, data in con.execute(books_sql)]
        wanted = list(dict.fromkeys(b.author.pk for b in listed))
        by_pk = {
            pk: validated(BenchAuthor, pk, data)
            for pk, data in con.execute(authors_sql, (dumps(wanted),))
        }
        return [(b, by_pk[b.author.pk]) for b in listed]

    return run


def _sqlite_db(tmp: str, n: int) -> tuple[doqu.Storage, str]:
    path = os.path.join(tmp, "doqu.sqlite3")
    db = doqu.connect(f"sqlite:///{path}")
    _fill_doqu(db, n)
    return db, path


def run_sqlite_raw(config: Config, rec: Recorder) -> None:
    """doqu's prefetch against two raw ``sqlite3`` queries on the same file."""
    with tempfile.TemporaryDirectory(prefix="doqu-bench-refs-") as tmp:
        db, path = _sqlite_db(tmp, config.n)
        con = sqlite3.connect(path, isolation_level=None)
        try:
            _raw_cases(rec, "sqlite", db, _sqlite_raw(con, *_tables()), config.n)
        finally:
            con.close()
            db.close()


def run_sqlite_sqlmodel(config: Config, rec: Recorder) -> None:
    """doqu's prefetch against SQLModel's ``selectinload`` on a file of the same data."""
    from sqlalchemy import create_engine, event

    with tempfile.TemporaryDirectory(prefix="doqu-bench-refs-") as tmp:
        db, _ = _sqlite_db(tmp, config.n)
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'sqlmodel.sqlite3')}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_con: Any, _: Any) -> None:
            dbapi_con.execute("PRAGMA journal_mode=WAL")
            dbapi_con.execute("PRAGMA synchronous=NORMAL")

        try:
            peer = _sqlmodel_side(engine, *_sqlmodel_fill(engine, config.n))
            _streamed(rec, "sqlite.prefetch.sqlmodel", db, peer, config.n)
        finally:
            db.close()
            engine.dispose()


# ------------------------------------------------------------------ PostgreSQL
def _pg_raw(conn: Any, books: str, authors: str) -> Callable[[], list[tuple[Any, Any]]]:
    cur = conn.cursor()
    books_sql = f'SELECT pk, data::text FROM "{books}"'
    authors_sql = f'SELECT pk, data::text FROM "{authors}" WHERE pk = ANY(%s)'

    def run() -> list[tuple[Any, Any]]:
        listed = [validated(BenchBook, pk, data) for pk, data in cur.execute(books_sql)]
        wanted = list(dict.fromkeys(b.author.pk for b in listed))
        by_pk = {
            pk: validated(BenchAuthor, pk, data) for pk, data in cur.execute(authors_sql, (wanted,))
        }
        return [(b, by_pk[b.author.pk]) for b in listed]

    return run


def _run_pg(config: Config, rec: Recorder, keys: list[str], peer: bool) -> None:
    try:
        ctx = pg_schema(config)
        url, conn = ctx.__enter__()
    except Exception as exc:
        for key in keys:
            rec.unavailable(key, f"server not reachable: {type(exc).__name__}: {exc}"[:200])
        return
    try:
        db = doqu.connect(url)
        try:
            _fill_doqu(db, config.n)
            if not peer:
                raw = _pg_raw(conn, *_tables())
                _raw_cases(rec, "postgresql", db, raw, config.n)
                return
            from sqlalchemy import create_engine

            engine = create_engine(url)
            try:
                side = _sqlmodel_side(engine, *_sqlmodel_fill(engine, config.n))
                _streamed(rec, "postgresql.prefetch.sqlmodel", db, side, config.n)
            finally:
                engine.dispose()
        finally:
            db.close()
    finally:
        ctx.__exit__(None, None, None)


def run_postgresql_raw(config: Config, rec: Recorder) -> None:
    """doqu's prefetch against two raw psycopg 3 queries on doqu's tables."""
    _run_pg(config, rec, [c.key for c in POSTGRESQL_RAW], peer=False)


def run_postgresql_sqlmodel(config: Config, rec: Recorder) -> None:
    """doqu's prefetch against SQLModel's ``selectinload``, same data, same schema."""
    _run_pg(config, rec, [c.key for c in POSTGRESQL_SQLMODEL], peer=True)


GROUPS = (
    Group("sqlite", SQLITE_RAW, (SQL,), run_sqlite_raw),
    Group("sqlite", SQLITE_SQLMODEL, (SQL, "sqlmodel"), run_sqlite_sqlmodel),
    Group("postgresql", POSTGRESQL_RAW, (SQL, "psycopg"), run_postgresql_raw),
    Group("postgresql", POSTGRESQL_SQLMODEL, (SQL, "psycopg", "sqlmodel"), run_postgresql_sqlmodel),
)
