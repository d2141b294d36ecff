"""The server goes away: the next call recovers or raises ``StorageError``, nothing is lost.

PostgreSQL and MariaDB connections are killed from the server side
(``pg_terminate_backend``, ``KILL``) before each kind of call, and once in the
middle of a streaming query. A dedicated MongoDB test server is stopped and
started again (same port, same storage) under a connected storage. A server
that is down when doqu connects gives one clear ``StorageError``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

import doqu
from doqu import StorageError
from doqu.testing import servers

from .conftest import Killer, count

Outcome = tuple[str, Any]
Check = Callable[[Any], None]


def _attempt(call: Callable[[], Any]) -> Outcome:
    """``("ok", result)`` or ``("error", exc)`` for a ``StorageError``; anything else fails."""
    try:
        return "ok", call()
    except StorageError as exc:
        assert exc.__cause__ is not None, "a StorageError chains the driver's exception"
        return "error", exc


class Model:
    """What the store must hold: the acknowledged writes, applied in order."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.counter = 0


def _calls(db: doqu.Storage, model: Model) -> list[tuple[str, Callable[[], Any], Check]]:
    """(name, call, check) for each kind of call; ``check(result)`` verifies or records it."""
    q = db.query("faults")

    def saved(pk: str, v: int) -> Check:
        def check(returned: Any) -> None:
            assert returned == pk
            model.docs[pk] = {"pk": pk, "v": v}

        return check

    def many(returned: Any) -> None:
        assert returned == [f"m{i}" for i in range(50)]
        for i in range(50):
            model.docs[f"m{i}"] = {"pk": f"m{i}", "v": i}

    def got(doc: Any) -> None:
        assert doc == model.docs["m7"]

    def counted(n: Any) -> None:
        assert n == len(model.docs)

    def listed(pks: Any) -> None:
        assert pks == sorted(model.docs)

    def distinct(values: Any) -> None:
        assert values == sorted({d["v"] for d in model.docs.values()})

    def updated(n: Any) -> None:
        assert n == sum(1 for d in model.docs.values() if d["v"] >= 40)
        for d in model.docs.values():
            if d["v"] >= 40:
                d["v"] += 1000

    def incremented(value: Any) -> None:
        model.counter += 1
        assert value == model.counter

    def created(result: Any) -> None:
        doc, was_created = result
        assert was_created and doc["key"] == "g" and doc["v"] == 7
        model.docs[doc["pk"]] = doc

    def save_many() -> list[str]:
        return db.save_many([{"pk": f"m{i}", "v": i} for i in range(50)], collection="faults")

    return [
        ("save", lambda: db.save({"pk": "s1", "v": 1}, collection="faults"), saved("s1", 1)),
        ("save_many", save_many, many),
        ("get", lambda: db.get("faults", "m7"), got),
        ("count", q.count, counted),
        ("iterate", lambda: sorted(d["pk"] for d in q), listed),
        ("values", lambda: sorted(q.values("v")), distinct),
        ("update", lambda: q.where(v__gte=40).update(v__inc=1000), updated),
        ("increment", lambda: db.dict("faults_counter").increment("n"), incremented),
        ("get_or_create", lambda: db.get_or_create("faults", defaults={"v": 7}, key="g"), created),
        ("save again", lambda: db.save({"pk": "s2", "v": 2}, collection="faults"), saved("s2", 2)),
    ]


def _run_with_faults(
    db: doqu.Storage,
    model: Model,
    fault: Callable[[], None],
    backend: str,
    before: frozenset[str] | None = None,
) -> tuple[int, int]:
    """Inject *fault* before each kind of call (or those named in *before*).

    Returns how many faulted calls recovered at once and how many raised
    ``StorageError`` (the call after such an error must work again).
    """
    recovered = errors = 0
    for name, call, check in _calls(db, model):
        if before is not None and name not in before:
            kind, result = "ok", call()
        else:
            fault()
            kind, result = _attempt(call)
            if kind == "error":
                errors += 1
                kind, result = _attempt(call)
                assert kind == "ok", f"{backend} {name}: still failing after one error: {result}"
            else:
                recovered += 1
        try:
            check(result)
        except AssertionError as exc:
            raise AssertionError(f"{backend} {name}: wrong answer {result!r}") from exc
    return recovered, errors


def _check_store(db: doqu.Storage, model: Model) -> int:
    stored = {d["pk"]: d for d in db.query("faults")}
    assert stored == model.docs, "the store holds exactly the acknowledged writes"
    assert db.dict("faults_counter")["n"] == model.counter
    return len(stored)


@pytest.mark.slow
def test_a_killed_sql_connection_recovers_or_raises_storage_error(
    sql_server: str, killer: Killer
) -> None:
    model = Model()
    with doqu.connect(killer.url) as db:
        db.query("faults").count()  # connected, so there is a connection to kill
        killed = 0

        def fault() -> None:
            nonlocal killed
            killed += killer.kill()

        recovered, errors = _run_with_faults(db, model, fault, sql_server)
        assert killed >= len(_calls(db, model)), "each call had a connection to lose"
        checked = _check_store(db, model)
    with doqu.connect(killer.url) as db:
        assert _check_store(db, model) == checked  # and a new connection sees the same
    count(
        "server faults",
        sql_server,
        connections_killed=killed,
        calls_recovered=recovered,
        calls_raised_storage_error=errors,
        acknowledged_documents_checked=checked,
    )


@pytest.mark.slow
def test_a_connection_killed_mid_stream_never_ends_the_stream_early(
    sql_server: str, killer: Killer
) -> None:
    total = 3000
    with doqu.connect(killer.url) as db:
        db.save_many([{"pk": f"r{i:05d}", "i": i} for i in range(total)], collection="stream")
        seen = 0
        outcome = "complete"
        try:
            for _ in db.query("stream").order_by("i"):
                seen += 1
                if seen == 10:
                    assert killer.kill() >= 1
        except StorageError:
            outcome = "StorageError"
        assert outcome == "StorageError" or seen == total, f"stream ended silently after {seen}"
        assert db.query("stream").count() == total  # and the storage works again
    count("server faults", sql_server, streams_killed=1, streams_cut_silently=0)


# Restarting the test server takes seconds: restart it before a few kinds of call.
MONGO_RESTARTS = {
    "stop": frozenset({"save_many", "iterate", "update", "increment"}),
    "kill": frozenset({"get", "get_or_create"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_restarted_mongodb_server_recovers_or_raises_storage_error(
    mongo_restartable: servers.MongoServer, how: str
) -> None:
    server = mongo_restartable
    # A kill -9 keeps only journaled writes (as on MongoDB itself, where w=1 without
    # j=true may lose the last ~100 ms of acknowledged writes on a crash).
    journal = "&journal=true" if how == "kill" else ""
    url = f"{server.url}faults?serverSelectionTimeoutMS=1000{journal}"
    model = Model()
    restarts = down_errors = 0
    with doqu.connect(url) as db:
        db.query("faults").count()

        def fault() -> None:
            nonlocal restarts, down_errors
            server.stop(kill=how == "kill")
            # While it is down, a call is a StorageError, never an answer.
            kind, _ = _attempt(lambda: db.query("faults").count())
            assert kind == "error"
            down_errors += 1
            server.start()
            restarts += 1

        before = MONGO_RESTARTS[how]
        recovered, errors = _run_with_faults(db, model, fault, f"mongodb ({how})", before)
        checked = _check_store(db, model)
    count(
        "server faults",
        f"mongodb-{how}",
        server_restarts=restarts,
        errors_while_down=down_errors,
        calls_recovered=recovered,
        calls_raised_storage_error=errors,
        acknowledged_documents_checked=checked,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.mark.parametrize("scheme", ["postgresql", "mysql", "mongodb"])
def test_a_server_down_at_connect_time_is_one_clear_storage_error(scheme: str) -> None:
    port = _closed_port()
    url = {
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{port}/x?connect_timeout=3",
        "mysql": f"mysql+pymysql://root@127.0.0.1:{port}/x?connect_timeout=3",
        "mongodb": f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=1000",
    }[scheme]
    started = time.monotonic()
    # Connecting is lazy (no round trip); the first call that needs the server says why.
    db = doqu.connect(url)
    try:
        for call in (
            lambda: db.save({"pk": "a"}, collection="c"),
            lambda: db.get("c", "a"),
            lambda: db.query("c").count(),
        ):
            with pytest.raises(StorageError) as info:
                call()
            message = str(info.value)
            assert "127.0.0.1" in message and str(port) in message, message
            assert info.value.__cause__ is not None
    finally:
        db.close()
    assert time.monotonic() - started < 30
    count("server faults", f"{scheme}-down", clear_errors=3)
