"""The ``db`` fixture: every test that takes it runs on every backend.

Each test gets a fresh store: a new in-memory storage, new SQLite/TinyDB files,
a new PostgreSQL schema, a new MariaDB database or a new MongoDB database.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import doqu
from doqu.testing import servers

settings.register_profile(
    "doqu",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "doqu"))

BACKENDS = [
    "memory",
    "memory-persist",
    "sqlite",
    "sqlite-memory",
    "postgresql",
    "mysql",
    "tinydb",
    "mongodb",
]
_MODULES = {
    "sqlite": "doqu.ext.sql",
    "sqlite-memory": "doqu.ext.sql",
    "postgresql": "doqu.ext.sql",
    "mysql": "doqu.ext.sql",
    "tinydb": "doqu.ext.tinydb",
    "mongodb": "doqu.ext.mongodb",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("DOQU_TEST_BACKENDS", ",".join(BACKENDS)),
        help="comma-separated backends for the db fixture (default: all)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = [b for b in metafunc.config.getoption("backends").split(",") if b]
        metafunc.parametrize("backend", chosen, scope="session")


@pytest.fixture(scope="session")
def mongo_base_url() -> Iterator[str]:
    """A MongoDB-protocol server: ``$DOQU_TEST_MONGO_URL`` or a SecantusDB we start."""
    given = os.environ.get("DOQU_TEST_MONGO_URL")
    if given:
        yield given
        return
    try:
        cm = servers.mongo_server()
        url = cm.__enter__()
    except RuntimeError as exc:
        servers.unavailable(f"no MongoDB-protocol server: {exc}")
        return
    try:
        yield url
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL for a fresh, empty store of *backend*."""
    module = _MODULES.get(backend)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not built yet")
    if backend not in BACKENDS:
        raise pytest.UsageError(f"unknown backend {backend!r}")
    with servers.fresh_store_url(
        backend, tmp_path, lambda: request.getfixturevalue("mongo_base_url")
    ) as url:
        yield url


@pytest.fixture
def cli_url(backend: str, db_url: str, tmp_path: Path) -> str:
    """The backend's fresh store, made persistent where it lives in one process only
    (so that a command run in-process and a later ``connect()`` see the same data)."""
    if db_url == "memory://":
        return f"memory://?persist={tmp_path / 'cli.json'}"
    if db_url == "sqlite://":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return db_url


@pytest.fixture
def db(db_url: str) -> Iterator[doqu.Storage]:
    """A connected storage on a fresh store; closed after the test."""
    storage = doqu.connect(db_url)
    try:
        yield storage
    finally:
        storage.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from doqu.testing.differential import CASES

    if CASES:
        counts = ", ".join(f"{scheme}: {n}" for scheme, n in sorted(CASES.items()))
        terminalreporter.write_line(f"differential cases checked against the evaluator: {counts}")
