"""Async API cases: ``doqu.connect_async`` against raw async drivers, doqu's sync API
and Beanie, and the CPU per document of doqu's MongoDB encoding against Beanie's.

Every async side runs on one event loop per group (the pools and clients are
bound to it); the timed thunk is ``loop.run_until_complete(…)`` of the whole
batch. Concurrent gets are :data:`TASKS` tasks under ``asyncio.gather``, each
doing its share of the gets one after another. Their targets are throughput
targets turned into the table's time ratio: "at least 0.8x the baseline's
throughput" is ``doqu/op <= 1.25 x base/op``, "at least 3x" is ``<= 1/3``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import doqu

from . import peer_models
from .data import Person, make_dicts, make_keys, make_people
from .harness import Case, Config, Group, Recorder, Side
from .mongo import MAX_N_SECANTUS, _server
from .sql import SQL, doqu_save_side, get_ops, pg_schema, validated

__all__ = ["GROUPS", "POOL", "TASKS", "async_save_side", "concurrent_side", "doqu_mongo_codec"]

#: Tasks running the gets at once.
TASKS = 100
#: Connections of doqu's pool (``pool_size``, no overflow) and of the raw pool alike.
POOL = 10
#: Gets per round against a SecantusDB server the benchmark starts (pure Python, about
#: 0.5 ms a get): 20 per task is enough for the ratio, and keeps 15 rounds short.
MAX_GETS_SECANTUS = 2_000

POSTGRESQL = (
    Case(
        "postgresql.async.get.raw",
        "postgresql",
        f"{TASKS} concurrent gets, async, PostgreSQL",
        "psycopg_pool async select + validate",
        1.25,  # >= 0.8x the raw pool's throughput
    ),
    Case(
        "postgresql.async.get.sync",
        "postgresql",
        f"{TASKS} concurrent gets, async, PostgreSQL",
        "doqu sync, the gets one after another",
        1 / 3,  # >= 3x the sync API's throughput
    ),
    Case(
        "postgresql.async.save_many",
        "postgresql",
        "save_many, async, PostgreSQL",
        "doqu sync save_many",
        1.2,
    ),
)
MONGODB = (
    Case(
        "mongodb.async.get.beanie",
        "mongodb",
        f"{TASKS} concurrent gets, async, MongoDB",
        "Beanie Document.get",
        1.25,  # >= 0.8x Beanie's throughput
    ),
    Case(
        "mongodb.async.save_many.beanie",
        "mongodb",
        "save_many, async, MongoDB",
        "Beanie insert_many",
        1.2,
    ),
)
CODEC = (
    Case(
        "mongodb.codec.encode.beanie",
        "mongodb",
        "encode for MongoDB, per document (CPU)",
        "Beanie get_dict (Encoder, to_db)",
        0.5,
    ),
    Case(
        "mongodb.codec.decode.beanie",
        "mongodb",
        "decode from MongoDB, per document (CPU)",
        "Beanie parse_obj (model_validate)",
        0.5,
    ),
)


# ------------------------------------------------------------------ helpers
def concurrent_side(
    loop: asyncio.AbstractEventLoop,
    get: Callable[[Any], Awaitable[object]],
    keys: list[Any],
    tasks: int = TASKS,
) -> Side:
    """``asyncio.gather`` of *tasks* tasks, each awaiting ``get(key)`` for its share of *keys*."""

    async def worker(share: list[Any]) -> None:
        for key in share:
            await get(key)

    async def gather() -> None:
        await asyncio.gather(*(worker(keys[i::tasks]) for i in range(tasks)))

    return Side(lambda: lambda: loop.run_until_complete(gather()), ops=len(keys))


def async_save_side(
    loop: asyncio.AbstractEventLoop, adb: doqu.AsyncStorage, people: list[Any]
) -> Side:
    """``await adb.save_many(people)`` into an emptied collection, fresh pks each time."""
    model = type(people[0])

    def prepare() -> Callable[[], object]:
        loop.run_until_complete(adb.clear(model))
        for p in people:
            p.pk = None
        return lambda: loop.run_until_complete(adb.save_many(people))

    return Side(prepare, ops=len(people))


def _sync_get_side(db: doqu.Storage, pks: list[str]) -> Side:
    get = db.get

    def run() -> None:
        for pk in pks:
            get(Person, pk)

    return Side(lambda: run, ops=len(pks))


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _picks(n: int, ops: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(ops)]


# --------------------------------------------------------------- PostgreSQL
def _raw_pool(conn: Any) -> Any:
    """A psycopg_pool ``AsyncConnectionPool`` of :data:`POOL` autocommit connections to
    the benchmark's schema (not opened yet: :meth:`open` it on the loop)."""
    from psycopg.conninfo import make_conninfo
    from psycopg_pool import AsyncConnectionPool

    password = conn.info.password
    dsn = make_conninfo(conn.info.dsn, **({"password": password} if password else {}))
    return AsyncConnectionPool(
        dsn, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}, open=False
    )


def run_postgresql(config: Config, rec: Recorder) -> None:
    """save_many async vs sync; concurrent gets vs a raw async pool and vs sync gets."""
    keys_ = [c.key for c in POSTGRESQL]
    try:
        ctx = pg_schema(config)
        url, conn = ctx.__enter__()
    except Exception as exc:
        for key in keys_:
            rec.unavailable(key, f"server not reachable: {type(exc).__name__}: {exc}"[:200])
        return
    try:
        with _event_loop() as loop:
            _run_postgresql(config, rec, loop, url, conn)
    finally:
        ctx.__exit__(None, None, None)


def _run_postgresql(
    config: Config, rec: Recorder, loop: asyncio.AbstractEventLoop, url: str, conn: Any
) -> None:
    from doqu.ext.sql._storage import _table_name

    n = config.n
    people = make_people(make_dicts(n))
    db = doqu.connect(url)
    adb = doqu.connect_async(url, pool_size=POOL, max_overflow=0)
    pool: Any = None
    try:
        rec.measure(
            "postgresql.async.save_many",
            async_save_side(loop, adb, people),
            doqu_save_side(db, people),
            n=n,
        )
        if db.query(Person).count() != n:
            db.clear(Person)
            db.save_many(people)
        ops = get_ops(config)
        pks = [people[i].pk for i in _picks(n, ops, seed=4)]
        doqu_gets = concurrent_side(loop, lambda pk: adb.get(Person, pk), pks)
        note = f"{ops:,} gets by {TASKS} tasks, pool {POOL}"
        rec.measure(
            "postgresql.async.get.sync",
            doqu_gets,
            _sync_get_side(db, pks),
            n=n,
            note=f"{note}; target >= 3x throughput",
        )
        try:
            pool = _raw_pool(conn)
        except ImportError as exc:
            rec.unavailable("postgresql.async.get.raw", f"psycopg_pool not installed ({exc})")
            return
        loop.run_until_complete(pool.open(wait=True))
        sql = f'SELECT pk, data::text FROM "{_table_name(Person.__doqu_collection__.name)}"'
        sql += " WHERE pk = %s"

        async def raw_get(pk: str) -> None:
            async with pool.connection() as c:
                cur = await c.execute(sql, (pk,))
                row = await cur.fetchone()
                validated(Person, row[0], row[1])

        rec.measure(
            "postgresql.async.get.raw",
            doqu_gets,
            concurrent_side(loop, raw_get, pks),
            n=n,
            note=f"{note}; target >= 0.8x throughput",
        )
    finally:
        if pool is not None:
            with contextlib.suppress(Exception):
                loop.run_until_complete(pool.close())
        loop.run_until_complete(adb.close())
        db.close()


# ------------------------------------------------------------------ MongoDB
def run_mongodb(config: Config, rec: Recorder) -> None:
    """save_many and concurrent gets, doqu's async API against Beanie on one server."""
    import pymongo

    try:
        ctx = _server(config)
        base = ctx.__enter__()
    except Exception as exc:
        for case in MONGODB:
            rec.unavailable(case.key, f"no MongoDB server: {exc}"[:200])
        return
    try:
        probe: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(base, serverSelectionTimeoutMS=5_000) as probe:
            probe.admin.command("ping")
    except Exception as exc:
        for case in MONGODB:
            rec.unavailable(case.key, f"server not reachable: {type(exc).__name__}: {exc}"[:200])
        ctx.__exit__(None, None, None)
        return
    try:
        with _event_loop() as loop:
            _run_mongodb(config, rec, loop, base)
    finally:
        ctx.__exit__(None, None, None)


def _run_mongodb(config: Config, rec: Recorder, loop: asyncio.AbstractEventLoop, base: str) -> None:
    import beanie
    from pymongo import AsyncMongoClient

    name = f"doqu_bench_async_{os.getpid()}"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    beanie_model = peer_models.beanie_person()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    adb = doqu.connect_async(url)
    try:
        loop.run_until_complete(
            beanie.init_beanie(database=client[name], document_models=[beanie_model])
        )
        # As in benchmarks.mongo: N capped, and more rounds, on a pure-Python server.
        n = config.n if config.mongo_url else min(config.n, MAX_N_SECANTUS)
        rounds = config.rounds if config.mongo_url else 2 * config.rounds + 1
        dicts = make_dicts(n)
        people = make_people(dicts)
        peers = [beanie_model(**d) for d in dicts]

        def beanie_prepare() -> Callable[[], object]:
            loop.run_until_complete(beanie_model.delete_all())
            return lambda: loop.run_until_complete(beanie_model.insert_many(peers))

        rec.measure(
            "mongodb.async.save_many.beanie",
            async_save_side(loop, adb, people),
            Side(beanie_prepare, ops=n),
            n=n,
            rounds=rounds,
            note=f"{rounds} rounds",
        )
        # Untimed: both collections hold the n documents, their keys known.
        loop.run_until_complete(adb.clear(Person))
        for p in people:
            p.pk = None
        pks = loop.run_until_complete(adb.save_many(people))
        ids = _beanie_fill(loop, beanie_model, peers)
        ops = get_ops(config) if config.mongo_url else min(get_ops(config), MAX_GETS_SECANTUS)
        picks = _picks(n, ops, seed=5)
        get = adb.get
        rec.measure(
            "mongodb.async.get.beanie",
            concurrent_side(loop, lambda pk: get(Person, pk), [pks[i] for i in picks]),
            concurrent_side(loop, beanie_model.get, [ids[i] for i in picks]),
            n=n,
            rounds=rounds,
            note=f"{ops:,} gets by {TASKS} tasks, {rounds} rounds; target >= 0.8x throughput",
        )
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.drop_database(name))
        loop.run_until_complete(adb.close())
        loop.run_until_complete(client.close())


def _beanie_fill(loop: asyncio.AbstractEventLoop, model: Any, docs: list[Any]) -> list[Any]:
    """Empty Beanie's collection, insert *docs*; their ids in order."""
    loop.run_until_complete(model.delete_all())
    result = loop.run_until_complete(model.insert_many(docs))
    return list(result.inserted_ids)


# -------------------------------------------------------------------- codec
def doqu_mongo_codec() -> tuple[Callable[[list[Any]], list[dict[str, Any]]], Callable[..., Any]]:
    """doqu's CPU work per batch and per document on MongoDB, without I/O.

    ``encode(docs)`` is ``save_many``'s: ``Storage._encode_batch`` (``_encoding.sorted_rows``
    for a plain-typed model, else ``encode_rows`` to checked JSON text) then the
    backend's stored form (``{"_id": pk, **data}``, or ``mongodb._mongo_from_text``).
    ``decode(raw)`` is a read's: ``mongodb._from_mongo`` then ``_encoding.load``.
    """
    from doqu import _encoding
    from doqu.ext.mongodb import _stored

    sorted_rows, encode_rows, load = _encoding.sorted_rows, _encoding.encode_rows, _encoding.load
    from_text, from_mongo = _stored._mongo_from_text, _stored._from_mongo
    limit = _stored.MAX_DOCUMENT_BYTES
    name = Person.__doqu_collection__.name

    def encode(docs: list[Any]) -> list[dict[str, Any]]:
        rows = sorted_rows(docs, limit)
        if rows is not None:
            return [{"_id": pk, **data} for pk, data in rows]
        return [from_text(pk, text) for pk, text in encode_rows(docs, text=True)]

    def decode(raw: dict[str, Any]) -> Any:
        pk, data = from_mongo(raw)
        return load(Person, name, pk, data)

    return encode, decode


def run_codec(config: Config, rec: Recorder) -> None:
    """Encode, then decode, the same documents with doqu and with Beanie, in-process."""
    from beanie.odm.utils.parsing import parse_obj

    n = min(config.n, 2_000 if config.quick else 10_000)
    dicts = make_dicts(n)
    people = make_people(dicts)
    for p, k in zip(people, make_keys(n)):
        p.pk = k
    docs, beanie_encode, _ = peer_models.beanie_codec(dicts)
    model = type(docs[0])
    encode, decode = doqu_mongo_codec()
    where = "doqu: sorted_rows + {_id, **data} / _from_mongo + _encoding.load"
    rec.measure(
        "mongodb.codec.encode.beanie",
        Side(lambda: lambda: encode(people), ops=n),
        Side(lambda: lambda: [beanie_encode(d) for d in docs], ops=n),
        n=n,
        note=where,
    )
    mine, theirs = encode(people), [beanie_encode(d) for d in docs]
    rec.measure(
        "mongodb.codec.decode.beanie",
        Side(lambda: lambda: [decode(raw) for raw in mine], ops=n),
        Side(lambda: lambda: [parse_obj(model, raw) for raw in theirs], ops=n),
        n=n,
        note=where,
    )


ASYNC = "doqu:connect_async"
GROUPS = (
    Group("postgresql", POSTGRESQL, (SQL, ASYNC, "psycopg", "greenlet"), run_postgresql),
    Group(
        "mongodb",
        MONGODB,
        ("doqu.ext.mongodb:MongoStorage", ASYNC, "pymongo:AsyncMongoClient", "beanie"),
        run_mongodb,
    ),
    Group("mongodb", CODEC, ("doqu.ext.mongodb:MongoStorage", "beanie"), run_codec),
)
