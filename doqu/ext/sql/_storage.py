"""``SQLStorage``: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy 2.

SQLAlchemy parses the URL, imports the driver, pools connections and tells
disconnects apart; statements are rendered by :mod:`._dialects` and run on the
DB-API connection directly (hot paths use statement text cached per
collection: building SQL per call costs 5-18x a raw ``sqlite3`` get).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import random
import re
import threading
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, unquote

from ...backend import (
    PK_INDEX,
    READ_ONLY,
    CollectionInfo,
    ConfigError,
    DuplicateKey,
    Finalize,
    InvalidDocument,
    Node,
    Path,
    QuerySpec,
    Row,
    Storage,
    StorageError,
    UpdateOp,
    apply_update,
    canonical,
    check_json,
    compile_regex,
    encode_document,
    flag,
    json_equal,
    local,
    missing_driver,
    query_options,
    resolve,
    rlock,
    shown_url,
    sleep,
    strip_query,
    unknown_option,
    wait,
)
from ._dialects import (
    STRING_PREFIX,
    MySQLTranslator,
    PostgresTranslator,
    SQLiteTranslator,
    Translator,
    exact_numbers,
    holds_nul,
)

__all__ = ["SQLStorage"]

_BEGIN = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN"}

Data = dict[str, Any]
T = TypeVar("T")
#: Makes the ``DuplicateKey`` of a write from the driver's unique violation.
Clash = Callable[[BaseException], Exception]

META = "doqu_collections"
#: Queries with a limit up to this many rows are fetched at once; others stream.
FETCH_ALL_LIMIT = 1000
#: Bound parameters per ``IN (…)`` list (SQLite allows 32766 per statement).
CHUNK = 10000
#: PostgreSQL: a batch of this many rows or more is written through COPY and one upsert
#: (measured here: 1.1x faster at 100 rows, 2x at 1,000 and at 100,000 than executemany).
COPY_MIN_ROWS = 64
PG_MAX_DOCUMENT = 255 * 1024 * 1024
SQLITE_MAX_DOCUMENT = 1_000_000_000

#: URL parameters of SQLAlchemy's sqlite3 dialect; with ``uri=true`` also SQLite's own.
_SQLITE_PARAMS: tuple[str, ...] = (
    "cached_statements",
    "check_same_thread",
    "detect_types",
    "isolation_level",
    "timeout",
    "uri",
)
_SQLITE_URI_PARAMS = ("cache", "immutable", "mode", "nolock", "psow", "vfs")
#: URL parameters SQLAlchemy's MySQL dialects gather into PyMySQL's ``ssl`` argument.
_MYSQL_SSL_PARAMS = (
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_check_hostname",
    "ssl_cipher",
    "ssl_key",
)
#: ``create_engine`` keywords it takes itself (the rest go to the dialect, pool and engine).
_ENGINE_KEYWORDS = (
    "connect_args",
    "creator",
    "empty_in_strategy",
    "enable_from_linting",
    "future",
    "module",
    "plugins",
    "pool",
    "poolclass",
    "strategy",
)
#: How a driver error names what clashed: a doqu unique index, or the primary key.
_UNIQUE_INDEX = re.compile(r"doqu_i_([0-9a-f]{16})")
_PK_CLASH = re.compile(r"_pkey\b|\.pk\b|'PRIMARY'")


def _index_ident(coll: CollectionInfo, unique: bool, paths: tuple[Path, ...]) -> str:
    """The hash that names an index ``doqu_i_<ident>`` (and MariaDB's unique column)."""
    return hashlib.sha1(f"{coll.name}|{unique}|{paths}".encode()).hexdigest()[:16]


class _Every:
    """A container holding every name (a URL SQLAlchemy cannot parse: it says why)."""

    def __contains__(self, name: object) -> bool:
        return True


def _engine_keywords(url: str) -> Container[str]:
    """The keywords ``sqlalchemy.create_engine`` takes for *url* (as it sorts them out)."""
    import sqlalchemy as sa
    from sqlalchemy import util
    from sqlalchemy.engine import create

    try:
        sa_url = sa.engine.make_url(url)
        if sa_url.get_backend_name() == "postgresql":
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        dialect: Any = sa_url._get_entrypoint().get_dialect_cls(sa_url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError):
        return _Every()
    names = set(util.get_cls_kwargs(dialect)) | set(util.get_func_kwargs(dialect.import_dbapi))
    translate: Mapping[str, str] = getattr(create, "_pool_translate_kwargs", {})
    for pool in (sa.pool.QueuePool, sa.pool.StaticPool, dialect.get_pool_class(sa_url)):
        names |= {translate.get(k, k) for k in util.get_cls_kwargs(pool)}
    names |= set(util.get_cls_kwargs(sa.engine.Engine)) | set(_ENGINE_KEYWORDS)
    return names - {"dbapi", "dialect", "self"}


#: The asyncio driver of each SQL backend for the async API (:func:`doqu.connect_async`).
#: asyncmy over aiomysql for MariaDB/MySQL: about 2x the point reads and 5x the scan
#: rate here (docs/architecture.rst, "Async"), same errors and wire protocol.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg_async",
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
}


async def _copy_async(conn: Any, rows: Any) -> None:
    """``COPY doqu_stage`` on psycopg's ``AsyncConnection`` (the transaction in progress)."""
    async with conn.cursor() as cur, cur.copy("COPY doqu_stage (pk, data) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)


def _table_name(name: str) -> str:
    # SQLite (and MySQL on some systems) fold table-name case: keep mixed-case names apart.
    if name == name.lower():
        return f"doqu_c_{name}"
    return f"doqu_c_{name.lower()}${hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _sqlite_json_eq(a: str | None, b: str | None) -> int | None:
    if not isinstance(a, str) or not isinstance(b, str):
        return None
    try:  # called on every kind: SQLite need not check the kind first
        return int(json_equal(json.loads(a), json.loads(b)))
    except ValueError:
        return 0


def _sqlite_canonical(text: str | None) -> str | None:
    # Unique indexes on arrays/objects: one text for JSON-equal values ([1] and [1.0]).
    if not isinstance(text, str):
        return None
    return canonical(json.loads(text))


def _sqlite_regexp(pattern: str | None, text: str | None) -> int | None:
    if pattern is None or not isinstance(text, str):
        return None
    return int(compile_regex(pattern).search(text) is not None)


def _sqlite_instr(text: str | None, sub: str | None) -> int | None:
    # Python's str.find: SQLite's instr() and length() stop at an embedded NUL.
    if not isinstance(text, str) or not isinstance(sub, str):
        return None
    return text.find(sub) + 1


def _sqlite_endswith(text: str | None, suffix: str | None) -> int | None:
    if not isinstance(text, str) or not isinstance(suffix, str):
        return None
    return int(text.endswith(suffix))


class SQLStorage(Storage):
    """Documents in SQL tables: one table per collection (pk + JSON document).

    URLs: ``sqlite:///path.db``, ``sqlite://`` (in memory, shared by threads),
    ``postgresql://…`` / ``postgresql+psycopg://…`` (psycopg 3, JSONB) and
    ``mysql+pymysql://…`` / ``mariadb+pymysql://…`` (JSON). Extra keyword
    options go to :func:`sqlalchemy.create_engine`, extra URL parameters to the
    driver (libpq's ``sslmode``, PyMySQL's ``charset``, …).
    """

    scheme = "sqlite"
    stores_text = True
    accepted_options: ClassVar[Mapping[str, str]] = READ_ONLY

    @classmethod
    def _driver_options(cls, url: str, *, query: bool) -> tuple[Container[str], str]:
        scheme = url.split("://", 1)[0].lower()
        backend = scheme.split("+", 1)[0]
        try:
            if not query:
                return _engine_keywords(url), "sqlalchemy.create_engine() keywords"
            if backend == "sqlite":
                names = _SQLITE_PARAMS
                if flag("uri", query_options(url).get("uri", "false")):
                    names += _SQLITE_URI_PARAMS
                return names, f"the sqlite3 driver's URL parameters ({', '.join(names)})"
            if backend == "postgresql":
                import psycopg.pq

                keys = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}
                return keys, (
                    "libpq connection parameters (sslmode, connect_timeout, options,"
                    " target_session_attrs, …)"
                )
            if backend in ("mysql", "mariadb"):
                import pymysql  # type: ignore[import-untyped]

                signature = inspect.signature(pymysql.connections.Connection.__init__)
                keys = set(signature.parameters) - {"self"} | set(_MYSQL_SSL_PARAMS)
                return keys, "PyMySQL connect() parameters (charset, connect_timeout, ssl_ca, …)"
        except ModuleNotFoundError as exc:
            raise missing_driver(scheme, exc) from exc
        return (), ""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        scheme = url.split("://", 1)[0].lower()
        try:
            import sqlalchemy as sa
            from sqlalchemy import event
        except ModuleNotFoundError as exc:
            raise missing_driver(scheme, exc) from exc
        ours = self.accepted_options
        options = {k: v for k, v in options.items() if k not in ours}
        try:
            sa_url = sa.engine.make_url(strip_query(url, ours))
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"not a valid SQL URL: {url!r}") from exc
        backend = sa_url.get_backend_name()
        if backend == "postgresql":
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        elif backend in ("mysql", "mariadb"):
            if sa_url.get_driver_name() != "pymysql":
                raise ConfigError(f"MySQL/MariaDB URLs use PyMySQL (mysql+pymysql://), not {url!r}")
        elif backend != "sqlite":
            raise ConfigError(f"no SQL dialect for {url!r}")
        if self.asynchronous:  # the same dialect, on its asyncio driver
            sa_url = sa_url.set(drivername=_ASYNC_DRIVERS[backend])
        self.dialect = backend if backend != "mariadb" else "mysql"
        self.memory = backend == "sqlite" and sa_url.database in (None, "", ":memory:")
        if self.read_only and backend == "sqlite" and not self.memory:
            sa_url = self._read_only_file(sa_url)
        kwargs: dict[str, Any] = {"pool_pre_ping": True, **options}
        if self.asynchronous:
            # Each call checks a connection out: a ping, and a rollback when it goes back,
            # would be two more round trips per call. Neither is needed: connections
            # are in autocommit (a transaction ends itself), and a call that finds its
            # connection dropped retries once on a new one (_run, _tx).
            kwargs = {"pool_pre_ping": False, "pool_reset_on_return": None, **options}
        if not self.asynchronous and not self.memory and "poolclass" not in options:
            # Each thread keeps one connection for as long as it lives (a thread pool's
            # workers, FastAPI's 40): the pool never makes one wait for another's.
            kwargs.setdefault("max_overflow", -1)
        if self.memory:
            # One connection shared by every thread, or each would see its own empty database.
            kwargs.setdefault("poolclass", sa.pool.StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        try:
            if self.asynchronous:
                from sqlalchemy.ext.asyncio import create_async_engine

                # Its sync engine runs doqu's one implementation; in the greenlet of each
                # call, the adapted driver awaits through doqu.backend.wait.
                self._engine = create_async_engine(sa_url, **kwargs).sync_engine
            else:
                self._engine = sa.create_engine(sa_url, **kwargs)
        except ModuleNotFoundError as exc:
            raise missing_driver(scheme, exc) from exc
        except (sa.exc.ArgumentError, TypeError) as exc:
            # A keyword this engine's pool or dialect does not take (pool_size on sqlite://).
            bad = re.search(r"Invalid argument\(s\) '([^']+)'", str(exc))
            if bad is not None:
                raise unknown_option(type(self), url, bad.group(1), query=False) from exc
            raise ConfigError(f"bad options for {shown_url(url)}: {exc}") from exc
        self._dbapi: Any = self._engine.dialect.dbapi
        self._max_document = SQLITE_MAX_DOCUMENT if self.dialect == "sqlite" else PG_MAX_DOCUMENT
        event.listen(self._engine, "connect", self._on_connect)
        # The connection in use: each thread keeps one (sync); each call checks one out
        # of the pool and gives it back when it ends (async, see _call_done).
        self._local = local(self.asynchronous)
        self._held: list[Any] = []
        self._held_lock = threading.Lock()
        # SQLite in memory has one connection: its transactions must not interleave.
        self._tx_lock: AbstractContextManager[Any] = (
            rlock(self.asynchronous) if self.memory else nullcontext()
        )
        self._sql: dict[str, dict[str, str]] = {}
        self._meta_ready = False
        #: Read-only: collections whose table does not exist (they read as empty), and
        #: the MariaDB index columns that do exist, by collection.
        self._absent: set[str] = set()
        self._columns: dict[str, set[str]] = {}
        q = '"' if self.dialect != "mysql" else "`"
        self._q = q
        self._meta = f"{q}{META}{q}"

    def _read_only_file(self, sa_url: Any) -> Any:
        """The URL opening an existing SQLite file, never creating one.

        ``mode=rw`` (not ``ro``) with ``PRAGMA query_only`` on each connection: as
        read-only, but the last connection to close still removes the ``-wal`` and
        ``-shm`` files of a WAL database, which a ``mode=ro`` one would leave behind.
        """
        query = dict(sa_url.query)
        database = str(sa_url.database)
        if flag("uri", query.get("uri", "false")):  # already a SQLite URI filename
            path = unquote(database.split("?", 1)[0].removeprefix("file:"))
            uri = database
        else:
            path = os.path.abspath(database)
            uri = "file:" + quote(path)
        if not os.path.isfile(path):
            raise ConfigError(f"{shown_url(self.url)}: no such database file (read_only)")
        if query.get("mode") != "ro":
            query["mode"] = "rw"
        query["uri"] = "true"
        return sa_url.set(database=uri, query=query)

    # ------------------------------------------------------------ connections
    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        if self.dialect == "sqlite":
            dbapi_conn.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
            for name, n, fn in (
                ("doqu_json_eq", 2, _sqlite_json_eq),
                ("doqu_canonical", 1, _sqlite_canonical),
                ("doqu_regexp", 2, _sqlite_regexp),
                ("doqu_instr", 2, _sqlite_instr),
                ("doqu_endswith", 2, _sqlite_endswith),
            ):
                dbapi_conn.create_function(name, n, fn, deterministic=True)
            cur = dbapi_conn.cursor()
            if self.read_only:
                cur.execute("PRAGMA query_only = ON")  # SQLite refuses any write too
            elif not self.memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
        elif self.dialect == "postgresql":
            dbapi_conn.autocommit = True
            if self.read_only:  # the server refuses any write too
                dbapi_conn.execute("SET default_transaction_read_only = on")
        else:
            dbapi_conn.autocommit(True)
            cur = dbapi_conn.cursor()
            if self.read_only:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("SELECT @@max_allowed_packet")
            (packet,) = cur.fetchone()
            cur.close()
            # Leave room for the statement around the document.
            self._max_document = int(packet) - 64 * 1024

    def _conn(self) -> Any:
        """This thread's DB-API connection (checked out of the pool once, then kept)."""
        fairy = getattr(self._local, "fairy", None)
        if fairy is None or fairy.dbapi_connection is None:
            self._check_open()
            try:
                fairy = self._engine.raw_connection()
            except Exception as exc:
                raise StorageError(f"cannot connect to {self._shown_url()}: {exc}") from exc
            self._local.fairy = fairy
            if self.asynchronous:
                return fairy.dbapi_connection  # given back by _call_done
            with self._held_lock:
                self._held = [(t, f) for t, f in self._held if t.is_alive() and f.dbapi_connection]
                self._held.append((threading.current_thread(), fairy))
        return fairy.dbapi_connection

    def _call_done(self, cancelled: bool) -> None:
        fairy = getattr(self._local, "fairy", None)
        if fairy is None:
            return
        self._local.fairy = None
        with contextlib.suppress(Exception):
            if cancelled and self.dialect != "sqlite":
                # Cancelled inside a round trip: the protocol state is unknown, so the
                # connection is closed (the server rolls back) and the pool opens another.
                fairy.invalidate()
            else:
                fairy.close()

    def _shown_url(self) -> str:
        return str(self._engine.url.render_as_string(hide_password=True))

    def _release_all(self) -> None:
        with self._held_lock:
            held, self._held = self._held, []
        for _, fairy in held:
            with contextlib.suppress(Exception):
                fairy.close()
        self._local = local(self.asynchronous)

    def _wrap(self, exc: BaseException, what: str, clash: Clash | None = None) -> BaseException:
        """Turn a driver error into a doqu error (the caller chains it).

        A unique violation becomes what *clash* makes of it (the ``DuplicateKey`` of
        the write that was refused); without *clash* it is a ``StorageError``.
        """
        if isinstance(exc, self._dbapi.IntegrityError) and clash is not None:
            return clash(exc)
        fairy = getattr(self._local, "fairy", None)
        dialect: Any = self._engine.dialect
        if fairy is not None and dialect.is_disconnect(exc, fairy, None):
            with contextlib.suppress(Exception):
                fairy.invalidate()
            self._local.fairy = None
        return StorageError(f"{what} failed on {self._shown_url()}: {exc}")

    def _run(self, what: str, fn: Callable[[Any], T], clash: Clash | None = None) -> T:
        """Run *fn(cursor)* outside a transaction (one statement, autocommit)."""
        for attempt in (0, 1):
            conn = self._conn()
            try:
                cur = conn.cursor()
                try:
                    return fn(cur)
                finally:
                    cur.close()
            except self._dbapi.Error as exc:
                err = self._wrap(exc, what, clash)
                if attempt == 0 and getattr(self._local, "fairy", None) is None:
                    continue  # the connection dropped: one retry on a fresh one
                raise err from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _clash_index(self, coll: CollectionInfo, exc: BaseException) -> tuple[Path, ...] | None:
        """The unique index a driver's error names (:data:`PK_INDEX`: the pk), if known."""
        text = str(exc)
        found = _UNIQUE_INDEX.search(text)
        if found is not None:
            for paths in coll.unique:
                if _index_ident(coll, True, paths) == found.group(1):
                    return paths
            return None
        return PK_INDEX if _PK_CLASH.search(text) else None

    def _clash(self, coll: CollectionInfo, rows: Callable[[], Sequence[tuple[str, Any]]]) -> Clash:
        """What turns a unique violation writing ``rows()`` into its ``DuplicateKey``."""

        def duplicate(exc: BaseException) -> Exception:
            return self._duplicate(coll, rows(), self._clash_index(coll, exc))

        return duplicate

    def _conflict(self, exc: BaseException) -> bool:
        """A deadlock or serialization failure: the database rolled back, a rerun is safe."""
        if getattr(exc, "sqlstate", None) in ("40001", "40P01"):  # psycopg
            return True
        args: tuple[Any, ...] = getattr(exc, "args", ())
        return bool(args) and args[0] in (1213, 1205)  # MariaDB/MySQL deadlock, lock wait

    def _tx(self, what: str, fn: Callable[[Any], T], clash: Clash | None = None) -> T:
        """Run *fn(cursor)* in one transaction (SQLite: ``BEGIN IMMEDIATE``).

        A transaction the database aborted as a deadlock victim or for a
        serialization failure is rerun (a few times, with jittered backoff), and
        so is one that lost its connection before ``COMMIT`` was sent (once, on
        a new connection). A connection lost *during* ``COMMIT`` leaves the
        outcome unknown: that raises ``StorageError`` saying so, and nothing is
        run twice (an increment applied and then rerun would count twice).
        """
        begin = _BEGIN.get(self.dialect, "START TRANSACTION")
        reconnected = False
        conflicts = 0
        while True:
            conn = self._conn()
            with self._tx_lock:
                cur = conn.cursor()
                committing = False
                try:
                    cur.execute(begin)
                    result = fn(cur)
                    committing = True
                    cur.execute("COMMIT")
                    return result
                except BaseException as exc:
                    if self._abandon(exc):
                        raise
                    with contextlib.suppress(Exception):
                        cur.execute("ROLLBACK")
                    if not isinstance(exc, self._dbapi.Error):
                        raise
                    if self._conflict(exc) and conflicts < 10:
                        conflicts += 1
                        sleep(random.uniform(0, 0.002 * 2**conflicts))
                        continue
                    err = self._wrap(exc, what, clash)
                    lost = getattr(self._local, "fairy", None) is None
                    if lost and committing:
                        raise StorageError(
                            f"{what}: the connection to {self._shown_url()} was lost while"
                            " committing; the write may or may not have been applied"
                            f" ({exc})"
                        ) from exc
                    if lost and not reconnected and not isinstance(err, DuplicateKey):
                        reconnected = True
                        continue
                    raise err from exc
                finally:
                    with contextlib.suppress(Exception):
                        cur.close()

    def _abandon(self, exc: BaseException) -> bool:
        """Async API, a server: a call cancelled inside a round trip leaves its connection
        mid-protocol. It is closed, not rolled back (the server rolls the open
        transaction back when the connection goes); whether this happened."""
        if isinstance(exc, Exception) or not self.asynchronous or self.dialect == "sqlite":
            return False
        fairy = getattr(self._local, "fairy", None)
        self._local.fairy = None
        if fairy is not None:
            with contextlib.suppress(Exception):
                fairy.invalidate()
        return True

    # -------------------------------------------------------------- statements
    def _translator(self, coll: CollectionInfo | None = None) -> Translator:
        kinds = coll.kinds if coll is not None else None
        if self.dialect == "sqlite":
            return SQLiteTranslator(kinds=kinds)
        if self.dialect == "postgresql":
            return PostgresTranslator(kinds=kinds)
        indexed: dict[Path, tuple[str, str]] = {}
        if coll is not None:
            # MariaDB matches no JSON expression to an index: queries name the index columns
            # (read-only: those the table has; it may predate the model's indexes).
            have = self._columns.get(coll.name, set()) if self.read_only else None
            for paths in coll.indexes:
                for path in paths:
                    cols = MySQLTranslator.index_columns(path)
                    if have is None or have.issuperset(cols):
                        indexed[path] = cols
        return MySQLTranslator(indexed, kinds)

    def _quote(self, name: str) -> str:
        return f"{self._q}{name}{self._q}"

    def _statements(self, coll: CollectionInfo) -> dict[str, str]:
        sql = self._sql.get(coll.name)
        if sql is None:
            sql = self._build_statements(coll)
            self._sql[coll.name] = sql
        return sql

    def _build_statements(self, coll: CollectionInfo) -> dict[str, str]:
        t = self._quote(_table_name(coll.name))
        p = "?" if self.dialect == "sqlite" else "%s"
        data = "%s::jsonb" if self.dialect == "postgresql" else p
        out = {
            "table": t,
            # Text, not psycopg's parsed JSONB: models are validated straight from it.
            "get": f"SELECT pk, {'data::text' if self.dialect == 'postgresql' else 'data'}"
            f" FROM {t} WHERE pk = {p}",
            "get_for_update": f"SELECT data FROM {t} WHERE pk = {p}",
            "insert": f"INSERT INTO {t} (pk, data) VALUES ({p}, {data})",
            "update": f"UPDATE {t} SET data = {data} WHERE pk = {p}",
            "delete": f"DELETE FROM {t} WHERE pk = {p}",
            "bump": f"UPDATE {self._meta} SET version = version + 1 WHERE name = {p}",
        }
        # A row already holding the very data is left alone: no page written, no dead
        # tuple, and (the count of changed rows being 0) no version bump.
        if self.dialect == "sqlite":
            out["put"] = out["insert"] + (
                " ON CONFLICT (pk) DO UPDATE SET data = excluded.data"
                " WHERE data IS NOT excluded.data"
            )
        elif self.dialect == "postgresql":
            out["put"] = out["insert"] + (
                " ON CONFLICT (pk) DO UPDATE SET data = EXCLUDED.data"
                f" WHERE {t}.data IS DISTINCT FROM EXCLUDED.data"
            )
            out["get_for_update"] += " FOR UPDATE"
        else:
            # ON DUPLICATE KEY fires on any unique index: only safe without unique indexes.
            if not coll.unique:
                out["put"] = out["insert"] + " ON DUPLICATE KEY UPDATE data = VALUES(data)"
            out["get_for_update"] += " FOR UPDATE"
        return out

    # ------------------------------------------------------------------ schema
    def _table_columns(self, cur: Any, name: str) -> list[str] | None:
        """The columns of table *name* (quoted on MariaDB), ``None`` if there is no such table."""
        if self.dialect == "sqlite":
            cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name])
            return [] if cur.fetchone() else None
        if self.dialect == "postgresql":
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", [self._quote(name)])
            return [] if cur.fetchone()[0] else None
        cur.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            [name],
        )
        cols = [self._quote(str(row[0])) for row in cur.fetchall()]
        return cols or None

    def _look_up(self, coll: CollectionInfo) -> None:
        """Read-only: note whether the collection's table exists (and its index columns)."""
        name = _table_name(coll.name)
        cols = self._run(f"looking up {coll.name!r}", lambda cur: self._table_columns(cur, name))
        if cols is None:
            self._absent.add(coll.name)
            return
        self._columns[coll.name] = set(cols)
        self._absent.discard(coll.name)

    def _gone(self, coll: CollectionInfo) -> bool:
        """Read-only: whether the collection has no table (looked up again: it may appear)."""
        if coll.name not in self._absent:
            return False
        self._look_up(coll)
        return coll.name in self._absent

    def _meta_found(self, cur: Any) -> bool:
        """Read-only: whether the ``doqu_collections`` table exists (once seen, it stays)."""
        if not self._meta_ready:
            self._meta_ready = self._table_columns(cur, META) is not None
        return self._meta_ready

    def _ensure_meta(self, cur: Any) -> None:
        if self._meta_ready:
            return
        name_type = {"sqlite": "TEXT", "postgresql": 'text COLLATE "C"'}.get(
            self.dialect, "VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin"
        )
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self._meta}"
            f" (name {name_type} PRIMARY KEY, version BIGINT NOT NULL)"
        )
        self._meta_ready = True

    def _index_sql(self, coll: CollectionInfo, table: str) -> list[str]:
        out: list[str] = []
        for unique, specs in ((False, coll.indexes), (True, coll.unique)):
            for paths in specs:
                ident = _index_ident(coll, unique, paths)
                name = f"doqu_i_{ident}"
                kw = "UNIQUE INDEX" if unique else "INDEX"
                if self.dialect == "sqlite":
                    cols: list[str] = []
                    for path in paths:
                        jp = SQLiteTranslator.json_path(path)
                        j = f"json_extract(data, {jp})"
                        if unique:
                            t = f"json_type(data, {jp})"
                            # null/missing → NULL (exempt, SQL NULLs are distinct); kinds apart;
                            # arrays and objects by canonical text ([1] = [1.0], keys sorted).
                            cols.append(
                                f"(CASE {t} WHEN 'null' THEN NULL WHEN 'integer' THEN 'n'"
                                f" WHEN 'real' THEN 'n' ELSE {t} END)"
                            )
                            j = (
                                f"(CASE WHEN {t} IN ('array', 'object')"
                                f" THEN doqu_canonical({j}) ELSE {j} END)"
                            )
                        cols.append(j)
                    out.append(
                        f"CREATE {kw} IF NOT EXISTS {self._quote(name)} ON {table}"
                        f" ({', '.join(cols)})"
                    )
                elif self.dialect == "postgresql":
                    exprs = [PostgresTranslator.json_expr(path) for path in paths]
                    if unique:
                        exprs = [f"(NULLIF({e}, 'null'::jsonb))" for e in exprs]
                    out.append(
                        f"CREATE {kw} IF NOT EXISTS {self._quote(name)} ON {table}"
                        f" ({', '.join(exprs)})"
                    )
                    if not unique:
                        # String ranges compare the text COLLATE "C" (code point order).
                        texts = [
                            f'({PostgresTranslator.json_expr(path, text=True)} COLLATE "C")'
                            for path in paths
                        ]
                        out.append(
                            f"CREATE INDEX IF NOT EXISTS {self._quote(name + '_s')} ON {table}"
                            f" ({', '.join(texts)})"
                        )
                elif unique:
                    col = self._quote(f"doqu_u_{ident}")
                    parts = [self._mysql_unique_part(path) for path in paths]
                    out.append(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} CHAR(64)"
                        f" CHARACTER SET ascii AS (SHA2(CONCAT({', CHAR(1), '.join(parts)}), 256))"
                        " VIRTUAL"
                    )
                    out.append(f"CREATE {kw} IF NOT EXISTS {self._quote(name)} ON {table} ({col})")
                else:
                    # Typed generated columns per path (NULL unless the value has the kind),
                    # one index per kind; the translator names these columns in queries.
                    for path in paths:
                        names = MySQLTranslator.index_columns(path)
                        gen = MySQLTranslator.column_exprs(path)
                        ctypes = ("DOUBLE", f"VARBINARY({STRING_PREFIX})")
                        for col, ctype, expr in zip(names, ctypes, gen):
                            out.append(
                                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {ctype}"
                                f" AS ({expr}) VIRTUAL"
                            )
                    for i, suffix in enumerate(("n", "s")):
                        keys = [MySQLTranslator.index_columns(path)[i] for path in paths]
                        out.append(
                            f"CREATE INDEX IF NOT EXISTS {self._quote(f'{name}_{suffix}')}"
                            f" ON {table} ({', '.join(keys)})"
                        )
        return out

    @staticmethod
    def _mysql_unique_part(path: Path) -> str:
        """A unique index part: ``NULL`` if null/missing, else a text equal for equal values.

        Numbers become their exact integer value when they have one (``1`` = ``1.0``, and
        an integral double beyond 2**53 equals that integer); arrays and objects are
        ``JSON_NORMALIZE``d (numbers as decimals, keys sorted).
        """
        j = MySQLTranslator().loc(path).j
        t, u = f"JSON_TYPE({j})", f"JSON_UNQUOTE({j})"
        d = f"CAST({u} AS DOUBLE)"
        number = (
            f"CASE WHEN {u} REGEXP '^-?[0-9]+$' THEN CONCAT('n', {u})"
            f" WHEN {d} = FLOOR({d}) AND {d} >= -9223372036854775808e0"
            f" AND {d} < 9223372036854775808e0 THEN CONCAT('n', CAST({d} AS SIGNED))"
            f" ELSE JSON_NORMALIZE({j}) END"
        )
        return (
            f"(CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN NULL"
            f" WHEN {t} {MySQLTranslator._KINDS['number']} THEN {number}"
            f" ELSE JSON_NORMALIZE({j}) END)"
        )

    def _prepare(self, coll: CollectionInfo) -> None:
        self._sql.pop(coll.name, None)
        sql = self._statements(coll)
        table = sql["table"]
        if self.read_only:
            self._look_up(coll)  # no DDL: the table is there or reads as empty
            return
        if self.dialect == "sqlite":
            create = "(pk TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL)"
            register = f"INSERT OR IGNORE INTO {self._meta} (name, version) VALUES (?, 0)"
        elif self.dialect == "postgresql":
            create = '(pk text COLLATE "C" PRIMARY KEY, data jsonb NOT NULL)'
            register = (
                f"INSERT INTO {self._meta} (name, version) VALUES (%s, 0) ON CONFLICT DO NOTHING"
            )
        else:
            collation = "utf8mb4_nopad_bin"
            create = (
                f"(pk VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation} PRIMARY KEY,"
                " data JSON NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            register = f"INSERT IGNORE INTO {self._meta} (name, version) VALUES (%s, 0)"

        def run(cur: Any) -> None:
            self._ensure_meta(cur)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} {create}")
            cur.execute(register, [coll.name])
            for stmt in self._index_sql(coll, table):
                cur.execute(stmt)

        def duplicate(exc: BaseException) -> Exception:
            index = self._clash_index(coll, exc)
            # "already exists": PostgreSQL's catalog met a concurrent CREATE (retried below).
            if index is None or index == PK_INDEX or "already exists" in str(exc):
                return StorageError(f"creating {coll.name!r} failed on {self._shown_url()}: {exc}")
            return self._duplicate(coll, [], index)  # stored documents already clash

        for attempt in range(5):
            try:
                self._run(f"creating {coll.name!r}", run, duplicate)
                return
            except StorageError as exc:
                # Processes creating the same table or index at once (PostgreSQL's
                # IF NOT EXISTS is not atomic): the loser retries, then sees it exists.
                if attempt == 4 or (
                    "already exists" not in str(exc) and "duplicate key" not in str(exc)
                ):
                    raise

    # -------------------------------------------------------------- documents
    def _encode(self, pk: str, data: Data) -> str:
        return self._check_text(pk, encode_document(data))

    def _check_text(self, pk: str, text: str) -> str:
        """Refuse what this dialect cannot store: NUL (PostgreSQL, SQLite) and oversize text."""
        if self.dialect != "mysql" and "\\u0000" in text and holds_nul(json.loads(text)):
            # PostgreSQL refuses NUL in JSONB; SQLite's JSON functions cut strings at NUL.
            raise InvalidDocument(
                f"document {pk!r}: {self.dialect} cannot store or query the NUL character"
                " (\\u0000) in JSON strings"
            )
        if len(text) * (1 if text.isascii() else 4) > self._max_document and (
            len(text.encode("utf-8")) > self._max_document
        ):
            raise InvalidDocument(
                f"document {pk!r} is {len(text.encode('utf-8'))} bytes: over this"
                f" {self.dialect} server's limit of {self._max_document} bytes"
            )
        if self.dialect != "sqlite":
            # Floats from 1e16 up with all their digits: PostgreSQL's numeric and MariaDB's
            # JSON_NORMALIZE/JSON_EQUALS would read 1.152921504606847e+18 as not 2**60.
            return exact_numbers(text)
        return text

    def _decode(self, raw: Any) -> Data:
        if isinstance(raw, (str, bytes)):
            out: Data = json.loads(raw)
            return out
        return raw  # type: ignore[no-any-return]  # psycopg decodes JSONB itself

    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> bool:
        return self._put_params(coll, [(pk, self._encode(pk, data)) for pk, data in rows])

    def _put_text(self, coll: CollectionInfo, rows: Sequence[tuple[str, str]]) -> bool:
        if self.dialect == "sqlite" and len(rows) > 1:
            # One look at the whole batch; a document that needs more gets _check_text.
            texts = [text for _, text in rows]
            if "\\u0000" not in "\n".join(texts) and max(map(len, texts)) * 4 <= self._max_document:
                return self._put_params(coll, list(rows))
        check = self._check_text
        return self._put_params(coll, [(pk, check(pk, text)) for pk, text in rows])

    def _put_params(self, coll: CollectionInfo, params: list[tuple[str, str]]) -> bool:
        """Write the rows; ``False`` if every one already held its data (then the
        collection's version is not bumped)."""
        sql = self._statements(coll)

        def run(cur: Any) -> bool:
            if self.dialect == "postgresql" and len(params) >= COPY_MIN_ROWS:
                if not self._copy_put(cur, sql, params):
                    return False
            elif "put" in sql:
                if len(params) == 1:
                    cur.execute(sql["put"], params[0])
                else:
                    cur.executemany(sql["put"], params)
                if cur.rowcount == 0:  # -1 (not known) bumps
                    return False
            else:
                pks = list(dict.fromkeys(pk for pk, _ in params))
                self._delete_pks(cur, sql["table"], pks)
                last = dict(params)  # a pk given twice: the last one wins
                cur.executemany(sql["insert"], list(last.items()))
            cur.execute(sql["bump"], [coll.name])
            return True

        return self._tx(f"saving to {coll.name!r}", run, self._clash(coll, lambda: params))

    def _copy_put(self, cur: Any, sql: dict[str, str], params: list[tuple[str, str]]) -> bool:
        """PostgreSQL: the batch through ``COPY`` into a staging table, then one upsert.

        Whether any row changed. ``COPY`` cannot upsert, and the rows it sends
        (text, in one stream) cost the server far less than as many ``INSERT``
        statements: they go to a temporary table, emptied at commit, and one
        ``INSERT … SELECT … ON CONFLICT`` writes them, leaving a row already
        holding its data alone (as ``executemany`` of the upsert does).
        """
        last = dict(params)  # a pk given twice: the last one wins, as in executemany
        cur.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS doqu_stage (pk text, data text)"
            " ON COMMIT DELETE ROWS"
        )
        if self.asynchronous:
            wait(_copy_async(self._conn().driver_connection, last.items()))
        else:
            with cur.copy("COPY doqu_stage (pk, data) FROM STDIN") as copy:
                for row in last.items():
                    copy.write_row(row)
        table = sql["table"]
        cur.execute(
            f"INSERT INTO {table} (pk, data) SELECT pk, data::jsonb FROM doqu_stage"
            f" ON CONFLICT (pk) DO UPDATE SET data = EXCLUDED.data"
            f" WHERE {table}.data IS DISTINCT FROM EXCLUDED.data"
        )
        return bool(cur.rowcount != 0)

    def _in_list(self, n: int) -> str:
        p = "?" if self.dialect == "sqlite" else "%s"
        return ", ".join([p] * n)

    def _delete_pks(self, cur: Any, table: str, pks: Sequence[str]) -> int:
        gone = 0
        for i in range(0, len(pks), CHUNK):
            part = pks[i : i + CHUNK]
            cur.execute(f"DELETE FROM {table} WHERE pk IN ({self._in_list(len(part))})", part)
            gone += cur.rowcount
        return gone

    def _fetch(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Data]:
        decode = self._decode
        return {pk: decode(raw) for pk, raw in self._fetch_stored(coll, pks).items()}

    def _fetch_one(self, coll: CollectionInfo, pk: str) -> Any:
        # The hot path: a cached statement on the thread's DB-API connection, no SQLAlchemy.
        if self._absent and self._gone(coll):
            return None
        sql = self._sql.get(coll.name) or self._statements(coll)
        try:
            conn = self._conn()
            if self.dialect == "mysql":
                cur = conn.cursor()
                cur.execute(sql["get"], (pk,))
                row = cur.fetchone()
                cur.close()
            else:  # sqlite3 and psycopg connections run a statement themselves
                row = conn.execute(sql["get"], (pk,)).fetchone()
        except self._dbapi.Error:  # the slow path names the fault, and retries once
            found = self._run(f"reading {coll.name!r}", lambda c: self._fetch_many(c, sql, [pk]))
            return found.get(pk)
        return None if row is None else row[1]

    def _fetch_stored(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Any]:
        """The stored JSON as the driver gives it: text, or dicts from psycopg's JSONB."""
        if len(pks) == 1:
            raw = self._fetch_one(coll, pks[0])
            return {} if raw is None else {pks[0]: raw}
        if self._absent and self._gone(coll):
            return {}
        sql = self._statements(coll)
        return self._run(f"reading {coll.name!r}", lambda c: self._fetch_many(c, sql, pks))

    def _fetch_many(self, cur: Any, sql: dict[str, str], pks: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dialect == "postgresql":
            # One array parameter: one statement text whatever the count (psycopg parses
            # a long IN list on every call), and the text a model validates straight.
            cur.execute(
                f"SELECT pk, data::text FROM {sql['table']} WHERE pk = ANY(%s)", [list(pks)]
            )
            return dict(cur.fetchall())
        for i in range(0, len(pks), CHUNK):
            part = list(pks[i : i + CHUNK])
            cur.execute(
                f"SELECT pk, data FROM {sql['table']} WHERE pk IN ({self._in_list(len(part))})",
                part,
            )
            for pk, raw in cur.fetchall():
                out[pk] = raw
        return out

    def _remove(self, coll: CollectionInfo, pks: Sequence[str]) -> int:
        sql = self._statements(coll)

        def run(cur: Any) -> int:
            if len(pks) == 1:
                cur.execute(sql["delete"], list(pks))
                gone = int(cur.rowcount)
            else:
                gone = self._delete_pks(cur, sql["table"], pks)
            if gone:
                cur.execute(sql["bump"], [coll.name])
            return gone

        return self._tx(f"deleting from {coll.name!r}", run)

    # ----------------------------------------------------------------- queries
    def _select_sql(
        self, coll: CollectionInfo, spec: QuerySpec, what: str = "pk, data"
    ) -> tuple[str, list[Any]]:
        tr = self._translator(coll)
        table = self._statements(coll)["table"]
        where = tr.where(spec.node)
        # No "WHERE 1": SQLite counts a whole table from its smallest index only without one.
        sql = f"SELECT {what} FROM {table}" + ("" if where == tr.true else f" WHERE {where}")
        if spec.order:
            keys: list[str] = []
            for path, descending in spec.order:
                keys.extend(tr.sort_keys(tr.loc(path), descending))
            sql += " ORDER BY " + ", ".join(keys)
        if spec.limit is not None or spec.offset:
            if spec.limit is not None:
                limit = str(int(spec.limit))
            else:
                limit = {"sqlite": "-1", "postgresql": "ALL"}.get(
                    self.dialect, "18446744073709551615"
                )
            sql += f" LIMIT {limit} OFFSET {int(spec.offset):d}"
        return tr.finish(sql)

    def _select(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        return self._rows(coll, spec, decode=True)

    def _select_stored(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[tuple[str, Any]]:
        return self._rows(coll, spec, decode=False)

    def _rows(self, coll: CollectionInfo, spec: QuerySpec, *, decode: bool) -> Iterator[Any]:
        if spec.limit == 0 or (self._absent and self._gone(coll)):
            return iter(())
        what_sql = "pk, data::text" if self.dialect == "postgresql" and not decode else "pk, data"
        sql, params = self._select_sql(coll, spec, what=what_sql)
        what = f"querying {coll.name!r}"
        small = spec.limit is not None and spec.limit <= FETCH_ALL_LIMIT
        if self.asynchronous:
            # A call that holds its connection reads on it (a second one, from a pool
            # that many such calls share, could never come); a stream has its own, as
            # the call that opened it gives its connection back when it ends.
            if not small and getattr(self._local, "fairy", None) is None:
                return self._stream_server(sql, params, what, decode)
            small = True
        elif self.dialect == "sqlite":
            return self._stream_sqlite(sql, params, what, decode)
        if small:
            rows = self._run(what, lambda c: (c.execute(sql, params), c.fetchall())[1])
            if not decode:
                return iter(rows)
            return iter([(pk, self._decode(raw)) for pk, raw in rows])
        return self._stream_server(sql, params, what, decode)

    def _stream_sqlite(
        self, sql: str, params: list[Any], what: str, decode: bool = True
    ) -> Iterator[Row]:
        # Writes on the same connection while this cursor is open are fine in SQLite.
        try:
            cur = self._conn().cursor()
            cur.execute(sql, params)
        except self._dbapi.Error as exc:
            raise self._wrap(exc, what) from exc
        return self._drain(cur, what, None, decode)

    def _drain(
        self,
        cur: Any,
        what: str,
        finish: Callable[[BaseException | None], None] | None,
        decode: bool = True,
    ) -> Iterator[Row]:
        loads = json.loads
        failed: BaseException | None = None
        try:
            while True:
                try:
                    batch = cur.fetchmany(500)
                except self._dbapi.Error as exc:
                    raise self._wrap(exc, what) from exc
                if not batch:
                    return
                if not decode:
                    yield from batch
                    continue
                for pk, raw in batch:
                    yield pk, (loads(raw) if isinstance(raw, (str, bytes)) else raw)
        except GeneratorExit:  # closed early: the cursor and connection are fine
            raise
        except BaseException as exc:
            failed = exc
            raise
        finally:
            try:
                if failed is None or isinstance(failed, Exception) or not self.asynchronous:
                    cur.close()
            finally:
                if finish is not None:
                    finish(failed)

    def _stream_server(
        self, sql: str, params: list[Any], what: str, decode: bool = True
    ) -> Iterator[Row]:
        # A dedicated connection: a server-side cursor keeps it busy until the end.
        try:
            fairy = self._engine.raw_connection()
        except Exception as exc:
            raise StorageError(f"cannot connect to {self._shown_url()}: {exc}") from exc
        conn: Any = fairy.dbapi_connection
        try:
            if self.asynchronous:  # the adapted drivers' cursors that fetch as they go
                if self.dialect == "postgresql":
                    conn.autocommit = False
                    cur = conn.cursor(f"doqu_{id(fairy):x}")
                else:
                    cur = conn.cursor(server_side=True)
            elif self.dialect == "postgresql":
                conn.autocommit = False
                cur = conn.cursor(name=f"doqu_{id(fairy):x}")
                cur.itersize = 500
            else:
                import pymysql.cursors  # type: ignore[import-untyped]

                cur = conn.cursor(pymysql.cursors.SSCursor)
            cur.execute(sql, params)
        except BaseException as exc:
            self._finish_stream(fairy, exc)
            if isinstance(exc, self._dbapi.Error):
                raise StorageError(f"{what} failed: {exc}") from exc
            raise
        return self._drain(cur, what, lambda exc: self._finish_stream(fairy, exc), decode)

    def _finish_stream(self, fairy: Any, exc: BaseException | None = None) -> None:
        conn = fairy.dbapi_connection
        if exc is not None and not isinstance(exc, Exception) and self.asynchronous:
            with contextlib.suppress(Exception):
                fairy.invalidate()  # cancelled mid-fetch: see _abandon
            return
        try:
            if self.dialect == "postgresql" and conn is not None:
                conn.rollback()
                conn.autocommit = True
        except Exception:
            fairy.invalidate()
        fairy.close()

    def _count(self, coll: CollectionInfo, node: Node | None) -> int:
        if self._absent and self._gone(coll):
            return 0
        sql, params = self._select_sql(coll, QuerySpec(node), what="count(*)")

        def run(cur: Any) -> int:
            cur.execute(sql, params)
            return int(cur.fetchone()[0])

        return self._run(f"counting {coll.name!r}", run)

    def _distinct(self, coll: CollectionInfo, node: Node | None, path: Path) -> list[Any]:
        if self._absent and self._gone(coll):
            return []
        tr = self._translator(coll)
        where = tr.where(node)
        sql, params = tr.finish(tr.values_sql(self._statements(coll)["table"], path, where))

        def run(cur: Any) -> list[Any]:
            cur.execute(sql, params)
            return list(cur.fetchall())

        rows = self._run(f"values() of {coll.name!r}", run)
        if path in coll.kinds and self.dialect != "mysql":
            # One kind of scalar, DISTINCT in the database (numbers by value): as it is.
            return [row[-1] for row in rows]
        seen: dict[str, Any] = {}
        for row in rows:
            if self.dialect == "sqlite":
                k, v = row
                if k in ("true", "false"):
                    v = k == "true"
                elif k in ("array", "object"):
                    v = json.loads(v)
            else:
                v = self._decode(row[0]) if self.dialect == "mysql" else row[0]
            # The database merged what it sees as equal; merge JSON-equal spellings too.
            seen.setdefault(canonical(v), v)
        return list(seen.values())

    def _delete_where(self, coll: CollectionInfo, node: Node | None) -> int:
        tr = self._translator(coll)
        sql = self._statements(coll)
        stmt, params = tr.finish(f"DELETE FROM {sql['table']} WHERE {tr.where(node)}")

        def run(cur: Any) -> int:
            cur.execute(stmt, params)
            gone = int(cur.rowcount)
            if gone:
                cur.execute(sql["bump"], [coll.name])
            return gone

        return self._tx(f"deleting from {coll.name!r}", run)

    def _update_where(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        """A locked read-modify-write in one transaction: all or nothing, atomic per document."""
        sql = self._statements(coll)
        # Lock in pk order, so overlapping updates queue instead of deadlocking.
        select, params = self._select_sql(coll, QuerySpec(node, order=((("pk",), False),)))
        if self.dialect != "sqlite":
            select += " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE already excludes other writers

        changes: list[tuple[str, str]] = []

        def run(cur: Any) -> int:
            cur.execute(select, params)
            changes.clear()
            for pk, raw in cur.fetchall():
                old = self._decode(raw)
                new = finalize(apply_update(old, ops))
                if not json_equal(old, new):
                    changes.append((self._encode(pk, new), pk))
            if changes:
                cur.executemany(sql["update"], changes)
                cur.execute(sql["bump"], [coll.name])
            return len(changes)

        written = self._clash(coll, lambda: [(pk, text) for text, pk in changes])
        return self._tx(f"updating {coll.name!r}", run, written)

    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        sql = self._statements(coll)
        text = None if new is None else self._encode(pk, new)

        def run(cur: Any) -> bool:
            cur.execute(sql["get_for_update"], [pk])
            row = cur.fetchone()
            if expected is None:
                if row is not None:
                    return False
            elif row is None or not json_equal(self._decode(row[0]), expected):
                return False
            if new is None:
                if row is None:
                    return True
                cur.execute(sql["delete"], [pk])
            elif row is None:
                cur.execute(sql["insert"], [pk, text])
            else:
                cur.execute(sql["update"], [text, pk])
            cur.execute(sql["bump"], [coll.name])
            return True

        rows = [] if new is None else [(pk, new)]
        try:
            return self._tx(f"writing {pk!r} to {coll.name!r}", run, self._clash(coll, rows.copy))
        except DuplicateKey:
            # Another writer inserted this pk between our read and our insert.
            if expected is None and self._fetch(coll, [pk]):
                return False
            raise

    def _increment(self, coll: CollectionInfo, pk: str, path: Path, by: int | float) -> Any:
        """One locked read-modify-write transaction (no compare-and-swap retries)."""
        sql = self._statements(coll)
        ops = (UpdateOp("inc", path, by),)
        written: list[tuple[str, str]] = []

        def run(cur: Any) -> Any:
            cur.execute(sql["get_for_update"], [pk])
            row = cur.fetchone()
            new = apply_update({} if row is None else self._decode(row[0]), ops)
            new = check_json(new)
            text = self._encode(pk, new)
            written[:] = [(pk, text)]
            if row is None:
                cur.execute(sql["insert"], [pk, text])
            else:
                cur.execute(sql["update"], [text, pk])
            cur.execute(sql["bump"], [coll.name])
            return resolve(pk, new, path)

        while True:
            try:
                return self._tx(
                    f"incrementing {pk!r} in {coll.name!r}", run, self._clash(coll, lambda: written)
                )
            except DuplicateKey:
                # Another process created the document first: increment that one.
                if not self._fetch(coll, [pk]):
                    raise

    def _version(self, coll: CollectionInfo) -> Any:
        p = "?" if self.dialect == "sqlite" else "%s"

        def run(cur: Any) -> int:
            if self.read_only and not self._meta_found(cur):
                return 0
            cur.execute(f"SELECT version FROM {self._meta} WHERE name = {p}", [coll.name])
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

        return self._run("reading the version", run)

    def _names(self) -> list[str]:
        def run(cur: Any) -> list[str]:
            if not self.read_only:
                self._ensure_meta(cur)
            elif not self._meta_found(cur):
                return []
            cur.execute(f"SELECT name FROM {self._meta}")
            names = [row[0] for row in cur.fetchall()]
            out = []
            for name in names:
                table = self._quote(_table_name(name))
                try:
                    cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
                except self._dbapi.Error:
                    continue  # the table was dropped behind our back
                if cur.fetchone() is not None:
                    out.append(name)
            return out

        return self._run("listing collections", run)

    def _drop(self, coll: CollectionInfo) -> None:
        sql = self._statements(coll)

        def run(cur: Any) -> None:
            cur.execute(f"DELETE FROM {sql['table']}")
            cur.execute(sql["bump"], [coll.name])

        self._tx(f"clearing {coll.name!r}", run)

    def _explain(self, coll: CollectionInfo, spec: QuerySpec) -> str:
        sql, params = self._select_sql(coll, spec)
        return f"{sql}\n-- parameters: {params!r}"

    # -------------------------------------------------------------- lifecycle
    def _reconnect(self) -> None:
        if self.memory:
            return  # the database lives in its one connection: reopening would empty it
        self._release_all()
        self._engine.dispose()
        self._meta_ready = False

    def _close(self) -> None:
        self._release_all()
        self._engine.dispose()
