"""The async API under cancellation, concurrency and server faults.

- A task cancelled at random points inside ``save_many``, ``Query.update`` and
  ``get_or_create`` leaves each write whole or absent, and the storage (and its
  connection pool) usable.
- 100 tasks share one storage's pool: every answer right, every connection back.
- Four processes each make 500 async increments of one counter: none lost.
- A server connection killed in the middle of ``async for``: ``StorageError``,
  never a silently short stream, and the next call works.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import doqu
from doqu import AsyncStorage, StorageError
from doqu.testing import servers

from .conftest import Killer, count, fresh_url
from .test_concurrency import PROCESSES, _race

POINTS = 20
BATCH = 2000
#: Documents of the update runs (fewer: the MongoDB test server updates slowly).
UPDATED = 200


@pytest.fixture
def async_url(shared_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_url(shared_backend, tmp_path, request) as url:
        yield url


def _run(url: str, body: Callable[[AsyncStorage], Coroutine[Any, Any, Any]]) -> Any:
    async def main() -> Any:
        async with doqu.connect_async(url) as db:
            return await body(db)

    return asyncio.run(main())


def _checked_out(db: AsyncStorage) -> int:
    """Connections the storage's SQL pool has lent out (0 where there is no such pool)."""
    engine = getattr(db.storage, "_engine", None)
    return 0 if engine is None else int(engine.pool.checkedout())


async def _cancel_after(delay: float, work: Coroutine[Any, Any, Any]) -> bool:
    """Run *work*, cancelling it after *delay* seconds; whether it was cancelled."""
    task = asyncio.ensure_future(work)
    await asyncio.sleep(delay)
    if task.done():
        task.result()
        return False
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


async def _timed(work: Coroutine[Any, Any, Any]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


@pytest.mark.slow
def test_cancelled_writes_leave_nothing_half_written(shared_backend: str, async_url: str) -> None:
    rng = random.Random(19)

    async def body(db: AsyncStorage) -> dict[str, int]:
        tally = {"cancelled": 0, "completed": 0}

        def batch(tag: str) -> list[dict[str, Any]]:
            return [{"pk": f"{tag}-{i:05d}", "tag": tag, "n": 0} for i in range(BATCH)]

        # How long each call takes here, so the cancellations land inside it.
        await db.save_many(batch("probe")[:UPDATED], collection="u")
        spans = {
            "save_many": await _timed(db.save_many(batch("probe"), collection="c")),
            "update": await _timed(db.query("u").update(n__inc=1)),
            "get_or_create": await _timed(db.get_or_create("g", key="probe")),
        }
        for point in range(POINTS):
            # save_many: the batch is written whole or not at all.
            tag = f"s{point}"
            hit = await _cancel_after(
                rng.uniform(0, spans["save_many"]), db.save_many(batch(tag), collection="c")
            )
            stored = await db.query("c").where(tag=tag).count()
            assert stored in (0, BATCH), f"save_many cut at {point}: {stored} of {BATCH}"
            assert hit or stored == BATCH
            tally["cancelled" if hit else "completed"] += 1
            # Query.update: each document is updated whole or not at all (n is 1 or 2,
            # and the counter moves with the mark).
            hit = await _cancel_after(
                rng.uniform(0, spans["update"]),
                db.query("u").where(n=1).update(n__inc=1, mark=point),
            )
            rows = await db.query("u").to_list()
            assert len(rows) == UPDATED and {r["n"] for r in rows} <= {1, 2}
            assert all((r["n"] == 2) == (r.get("mark") == point) for r in rows)
            assert hit or all(r["n"] == 2 for r in rows)
            await db.query("u").update(n=1, mark__unset=True)
            # get_or_create: one document for the key, whether the creator finished or not.
            key = f"k{point}"
            hit = await _cancel_after(
                rng.uniform(0, spans["get_or_create"]), db.get_or_create("g", key=key)
            )
            assert await db.query("g").where(key=key).count() in (0, 1)
            doc, _ = await db.get_or_create("g", key=key)
            assert doc["key"] == key and await db.query("g").where(key=key).count() == 1
            # And the storage, its pool included, is as good as new.
            assert _checked_out(db) == 0
            pk = await db.save({"after": point}, collection="after")
            assert (await db.get("after", pk))["after"] == point
        tally["connections_lent_at_end"] = _checked_out(db)
        return tally

    tally = _run(async_url, body)
    count("async", shared_backend, **tally)
    assert tally["connections_lent_at_end"] == 0


@pytest.mark.slow
def test_a_hundred_tasks_share_the_pool(shared_backend: str, async_url: str) -> None:
    async def body(db: AsyncStorage) -> int:
        async def one(i: int) -> None:
            pk = await db.save({"pk": f"t{i:03d}", "i": i, "tags": [i % 7]}, collection="t")
            assert (await db.get("t", pk))["i"] == i
            assert await db.query("t").where(i=i).count() == 1
            await db.query("t").where(i=i).update(i__inc=1000)
            counters = db.dict("counters")
            await counters.increment("n")
            assert (await db.query("t").where(i=i + 1000).first() or {}).get("pk") == pk

        await asyncio.gather(*(one(i) for i in range(100)))
        assert await db.query("t").count() == 100
        assert await db.dict("counters").get("n") == 100
        streamed = [d["i"] async for d in db.query("t").order_by("i")]
        assert streamed == [1000 + i for i in range(100)]
        return _checked_out(db)

    lent = _run(async_url, body)
    count("async", shared_backend, concurrent_tasks=100, connections_lent_at_end=lent)
    assert lent == 0


ASYNC_INCREMENTER = """
    import asyncio, sys, time
    import doqu

    url, start_at, me = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

    async def main():
        async with doqu.connect_async(url) as db:
            await db.query("warm").count()  # connected and prepared before the start
            await asyncio.sleep(max(0.0, start_at - time.time()))
            counters = db.dict("counters")
            for _ in range(500):
                await counters.increment("n")

    asyncio.run(main())
"""


@pytest.mark.slow
def test_four_processes_lose_no_async_increment(shared_backend: str, async_url: str) -> None:
    with doqu.connect(async_url) as db:
        for name in ("warm", "counters"):
            db.query(name).count()
    _race(ASYNC_INCREMENTER, async_url)
    with doqu.connect(async_url) as db:
        total = db.dict("counters")["n"]
    count("async", shared_backend, async_increments_made=PROCESSES * 500, counted=total)
    assert total == PROCESSES * 500


@pytest.mark.slow
def test_a_connection_killed_mid_async_stream_raises_and_recovers(
    sql_server: str, killer: Killer
) -> None:
    total = 3000

    async def body(db: AsyncStorage) -> tuple[str, int]:
        await db.save_many([{"pk": f"r{i:05d}", "i": i} for i in range(total)], collection="s")
        seen = 0
        outcome = "complete"
        try:
            async for _ in db.query("s").order_by("i"):
                seen += 1
                if seen == 10:
                    # Every connection of the store, the stream's too (from a thread:
                    # the admin connection is a sync one).
                    await asyncio.get_running_loop().run_in_executor(None, killer.kill)
        except StorageError:
            outcome = "StorageError"
        assert outcome == "StorageError" or seen == total, f"stream ended silently at {seen}"
        assert await db.query("s").count() == total  # and the storage works again
        return outcome, _checked_out(db)

    outcome, lent = _run(killer.url, body)
    raised = int(outcome == "StorageError")
    count("async", sql_server, streams_killed=1, streams_raised=raised, streams_cut_silently=0)
    assert lent == 0


@pytest.mark.slow
def test_a_mongodb_server_killed_mid_async_stream_raises_and_recovers(
    mongo_restartable: servers.MongoServer,
) -> None:
    server = mongo_restartable
    url = f"{server.url}stream?serverSelectionTimeoutMS=1000&journal=true"
    total = 3000
    pad = "x" * 12_000  # 36 MB in all: more than one 16 MB batch of the cursor

    async def body(db: AsyncStorage) -> str:
        docs = [{"pk": f"r{i:05d}", "i": i, "pad": pad} for i in range(total)]
        for start in range(0, total, 500):
            await db.save_many(docs[start : start + 500], collection="s")
        seen = 0
        outcome = "complete"
        try:
            async for _ in db.query("s").order_by("i"):
                seen += 1
                if seen == 10:
                    server.stop(kill=True)  # the cursor's next batch has nowhere to come from
        except StorageError as exc:
            assert exc.__cause__ is not None
            outcome = "StorageError"
        assert outcome == "StorageError" or seen == total, f"stream ended silently at {seen}"
        with pytest.raises(StorageError):
            await db.query("s").count()  # down: an error, never an answer
        server.start()
        assert await db.query("s").count() == total  # and back, with every document
        return outcome

    outcome = _run(url, body)
    count("async", "mongodb", streams_killed=1, streams_raised=int(outcome == "StorageError"))
    assert outcome == "StorageError"
