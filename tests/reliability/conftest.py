"""Shared pieces of the reliability battery: fresh stores, child processes, the counts.

Every test here adds what it actually checked to :data:`COUNTS`; the
``pytest_terminal_summary`` hook prints the totals at the end of the run, so a
CI log shows how many kill points, increments and hostile cases were tried and
that none was lost or let through.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from doqu.testing import servers

ROOT = Path(__file__).resolve().parents[2]

# When a hypothesis test fails, hypothesis imports its patch writer, which imports
# libcst, which warns (DeprecationWarning from mypy_extensions) at import; under
# ``filterwarnings = error`` that warning aborts the whole session (INTERNALERROR)
# instead of reporting the failure. Import it once here, warnings silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401

#: ``COUNTS[topic][backend][name]``: what the battery checked, filled in as tests run.
COUNTS: dict[str, dict[str, Counter[str]]] = {}

#: Backends whose store is a file a crash can tear.
CRASH_BACKENDS = ("sqlite", "tinydb", "memory-persist")
#: Backends several processes can share.
SHARED_BACKENDS = ("sqlite", "postgresql", "mysql", "mongodb", "tinydb")
#: Backends with a server whose connection can be killed from the server side.
SQL_SERVERS = ("postgresql", "mysql")


def count(topic: str, backend: str, **numbers: int) -> None:
    """Add *numbers* to the registry under *topic* and *backend*."""
    COUNTS.setdefault(topic, {}).setdefault(backend, Counter()).update(numbers)


def _chosen(config: pytest.Config, among: tuple[str, ...]) -> list[str]:
    wanted = [b for b in config.getoption("backends").split(",") if b]
    return [b for b in among if b in wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, among in (
        ("crash_backend", CRASH_BACKENDS),
        ("shared_backend", SHARED_BACKENDS),
        ("sql_server", SQL_SERVERS),
    ):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, _chosen(metafunc.config, among))


@contextlib.contextmanager
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL for a fresh, empty store that other processes can open too."""
    with servers.fresh_store_url(
        backend, tmp_path, lambda: request.getfixturevalue("mongo_base_url")
    ) as url:
        yield url


def python(script: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c script args…`` with doqu importable; stdout and stderr piped."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def finish(children: list[subprocess.Popen[str]], timeout: float = 240) -> list[str]:
    """Wait for *children*; each must exit 0. Returns their standard outputs.

    If one fails or hangs, the others are killed (and reaped) before the error is raised.
    """
    outs = []
    try:
        for child in children:
            out, err = child.communicate(timeout=timeout)
            assert child.returncode == 0, f"child failed ({child.returncode}):\n{err}"
            outs.append(out)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate()
    return outs


def _line(topic: str, per_backend: dict[str, Counter[str]]) -> str:
    parts = []
    for backend, numbers in sorted(per_backend.items()):
        shown = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in numbers.items())
        parts.append(f"{backend}: {shown}")
    return f"reliability {topic}: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for topic in sorted(COUNTS):
        terminalreporter.write_line(_line(topic, COUNTS[topic]))


# ----------------------------------------------------------------- server faults
class Killer:
    """Kills every connection of one test store from the server side, by an admin connection."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        parts = urlsplit(url)
        if backend == "postgresql":
            base = os.environ.get("DOQU_TEST_PG_URL", servers.DEFAULT_PG_URL)
            self.tag = f"doqu_rel_{os.getpid()}"
            sep = "&" if parts.query else ""
            self.url = url + f"{sep}application_name={self.tag}"
        else:
            base = os.environ.get("DOQU_TEST_MYSQL_URL", servers.DEFAULT_MYSQL_URL)
            self.tag = parts.path.lstrip("/")
            self.url = url
        self.admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")

    def kill(self) -> int:
        """Kill the store's connections; return how many were killed."""
        with self.admin.connect() as conn:
            if self.backend == "postgresql":
                rows = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :tag AND pid <> pg_backend_pid()"
                    ),
                    {"tag": self.tag},
                ).all()
                return sum(bool(ok) for (ok,) in rows)
            ids = conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist"
                    " WHERE db = :tag AND id <> CONNECTION_ID()"
                ),
                {"tag": self.tag},
            ).all()
            for (cid,) in ids:
                conn.exec_driver_sql(f"KILL {int(cid)}")
            return len(ids)

    def close(self) -> None:
        self.admin.dispose()


@pytest.fixture
def killer(sql_server: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Killer]:
    with fresh_url(sql_server, tmp_path, request) as url:
        k = Killer(sql_server, url)
        try:
            yield k
        finally:
            k.close()


@pytest.fixture
def mongo_restartable() -> Iterator[servers.MongoServer]:
    """A MongoDB-protocol server of the test's own, to stop and start again."""
    server = servers.MongoServer()
    try:
        server.start()
    except RuntimeError as exc:
        server.close()  # its log file too
        servers.unavailable(f"no MongoDB-protocol server: {exc}")
        raise
    try:
        yield server
    finally:
        server.close()
