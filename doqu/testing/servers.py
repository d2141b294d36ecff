"""Test servers and per-test database namespaces for doqu's suites.

Used by doqu's own ``tests/conftest.py`` and available to third-party backends.
Server URLs come from ``DOQU_TEST_PG_URL``, ``DOQU_TEST_MYSQL_URL`` and
``DOQU_TEST_MONGO_URL``; without ``DOQU_TEST_MONGO_URL`` a SecantusDB
(MongoDB wire protocol) server is started on a free port. When ``CI=true``, an
unreachable server is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_MYSQL_URL",
    "DEFAULT_PG_URL",
    "MongoServer",
    "fresh_store_url",
    "in_ci",
    "require_sql_server",
    "mongo_database_url",
    "mongo_server",
    "mysql_database_url",
    "pg_schema_url",
    "unavailable",
]

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
_counter = itertools.count()


def in_ci() -> bool:
    """Whether we run in CI, where a missing server fails instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI) a test whose server cannot be reached."""
    import pytest

    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


_server_errors: dict[str, str] = {}


def require_sql_server(name: str, url: str) -> None:
    """Skip (or in CI fail) unless the SQL server at *url* answers; remembered per name."""
    if name in _server_errors:
        unavailable(_server_errors[name])
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:
        _server_errors[name] = f"{name} server at {url} is unreachable: {exc}"
        unavailable(_server_errors[name])


@contextlib.contextmanager
def fresh_store_url(
    backend: str, directory: Path, mongo_base_url: Callable[[], str] | None = None
) -> Iterator[str]:
    """A URL for a fresh, empty store of *backend*, cleaned up afterwards.

    *backend* is one of ``memory``, ``memory-persist``, ``sqlite``,
    ``sqlite-memory``, ``tinydb`` (files go in *directory*), ``postgresql``
    (a new schema), ``mysql`` (a new database) or ``mongodb`` (a new database on
    the server *mongo_base_url()* names).
    """
    with contextlib.ExitStack() as stack:
        if backend == "memory":
            yield "memory://"
        elif backend == "memory-persist":
            yield f"memory://?persist={directory / 'snap.json'}"
        elif backend == "sqlite":
            yield f"sqlite:///{directory / 'test.db'}"
        elif backend == "sqlite-memory":
            yield "sqlite://"
        elif backend == "tinydb":
            yield f"tinydb:///{directory / 'test.json'}"
        elif backend == "postgresql":
            base = os.environ.get("DOQU_TEST_PG_URL", DEFAULT_PG_URL)
            require_sql_server("PostgreSQL", base)
            yield stack.enter_context(pg_schema_url(base))
        elif backend == "mysql":
            base = os.environ.get("DOQU_TEST_MYSQL_URL", DEFAULT_MYSQL_URL)
            require_sql_server("MariaDB/MySQL", base)
            yield stack.enter_context(mysql_database_url(base))
        elif backend == "mongodb":
            if mongo_base_url is None:
                raise ValueError("a mongodb store needs mongo_base_url")
            yield stack.enter_context(mongo_database_url(mongo_base_url()))
        else:
            raise ValueError(f"unknown backend {backend!r}")


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@contextlib.contextmanager
def pg_schema_url(base: str) -> Iterator[str]:
    """A URL whose connections see only a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = _unique("doqu_t")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        parts = urlsplit(base)
        extra = f"options={quote(f'-csearch_path={schema}')}"
        query = f"{parts.query}&{extra}" if parts.query else extra
        yield urlunsplit(parts._replace(query=query))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextlib.contextmanager
def mysql_database_url(base: str) -> Iterator[str]:
    """A URL naming a fresh MariaDB/MySQL database, dropped afterwards."""
    import sqlalchemy as sa

    name = _unique("doqu_t")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        parts = urlsplit(base)
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


@contextlib.contextmanager
def mongo_database_url(base: str) -> Iterator[str]:
    """A URL naming a fresh MongoDB database, dropped afterwards."""
    import pymongo

    name = _unique("doqu_t")
    parts = urlsplit(base)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=5000
        )
        try:
            client.drop_database(name)
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MongoServer:
    """A SecantusDB server (MongoDB wire protocol) that can be stopped and started again.

    It keeps its port and storage folder across restarts, so a test can take the
    server away under a connected client and bring it back with the same data::

        with MongoServer() as server:     # started
            url = server.url
            server.stop(kill=True)        # SIGKILL, as a crash would
            server.start()                # same port, same storage path

    With *replica_set*, the server runs as a one-node replica set (transactions).
    Raises ``RuntimeError`` when the server cannot be started.
    """

    def __init__(self, timeout: float = 30.0, *, replica_set: bool = False) -> None:
        self.timeout = timeout
        self.replica_set = replica_set
        self.port = _free_port()
        self.storage = tempfile.mkdtemp(prefix="doqu-mongo-")
        self.url = f"mongodb://127.0.0.1:{self.port}/"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = open(os.path.join(self.storage, "server.log"), "w+b")  # noqa: SIM115

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the server (if it is not running) and wait until it answers; return the URL."""
        import pymongo

        if self.running:
            return self.url
        exe = shutil.which("secantusd-py")
        if exe is None:
            raise RuntimeError("secantusd-py is not installed (the test extra: docs/install.rst)")
        cmd = [exe, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", self.storage]
        proc = self._proc = subprocess.Popen(
            [*cmd, *([] if self.replica_set else ["--standalone"]), "--log-level", "WARNING"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if proc.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(
                    f"secantusd-py exited: {self._log.read()[-2000:].decode(errors='replace')}"
                )
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                self.url, serverSelectionTimeoutMS=500
            )
            try:
                client.admin.command("ping")
                return self.url
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    self.stop(kill=True)
                    raise RuntimeError(f"secantusd-py did not answer on {self.url}") from None
                time.sleep(0.2)
            finally:
                # An unclosed client warns in __del__, which fails tests under -W error.
                client.close()

    def stop(self, kill: bool = False) -> None:
        """Stop the server: ``SIGTERM`` (``SIGKILL`` after 10 s), or at once with *kill*."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self) -> None:
        """Stop the server and remove its storage."""
        try:
            self.stop()
        finally:
            self._log.close()
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> MongoServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def mongo_server(timeout: float = 30.0) -> Iterator[str]:
    """Start a SecantusDB server (MongoDB wire protocol) on a free port; yield its URL.

    Raises ``RuntimeError`` when it cannot be started.
    """
    import pymongo

    exe = shutil.which("secantusd-py")
    if exe is None:
        raise RuntimeError("secantusd-py is not installed (the test extra: docs/install.rst)")
    port = _free_port()
    storage = tempfile.mkdtemp(prefix="doqu-mongo-")
    log = open(os.path.join(storage, "server.log"), "w+b")  # noqa: SIM115 - closed below
    cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage]
    proc = subprocess.Popen(
        [*cmd, "--standalone", "--log-level", "WARNING"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"mongodb://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(
                    f"secantusd-py exited: {log.read()[-2000:].decode(errors='replace')}"
                )
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=500
            )
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"secantusd-py did not answer on {url}") from None
                time.sleep(0.2)
            finally:
                # An unclosed client warns in __del__, which fails tests under -W error.
                client.close()
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(storage, ignore_errors=True)
