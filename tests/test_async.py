"""The async API's own surface, on every backend of the ``db_url`` fixture.

What the conformance suite cannot see through :class:`doqu.testing.aio.BlockingStorage`:
``await q[i]``, ``async for`` (streamed in batches, closed early), mapping views
awaited and iterated, ``Ref.fetch``, ``doc.save(adb)``, the greenlet bridge's
rules, and calls that need more connections than the pool has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import doqu
from doqu import AsyncStorage, CorruptDocument, Document, DuplicateKey, NotFound, Ref
from doqu._async import STREAM_BATCH


class Person(Document):
    name: str
    age: int = 0

    class Meta:
        collection = "people"
        indexes = ["age"]  # noqa: RUF012


class Member(Document):
    email: str

    class Meta:
        unique = ["email"]  # noqa: RUF012


class Book(Document):
    title: str
    author: Ref[Person]


def run(url: str, body: Callable[[AsyncStorage], Coroutine[Any, Any, Any]], **options: Any) -> Any:
    async def main() -> Any:
        async with doqu.connect_async(url, **options) as db:
            return await body(db)

    return asyncio.run(main())


def test_queries(db_url: str) -> None:
    async def body(db: AsyncStorage) -> None:
        n = STREAM_BATCH * 2 + 7  # more than two batches of async for
        await db.save_many([Person(pk=f"p{i:04d}", name=f"n{i}", age=i) for i in range(n)])
        q = Person.objects(db).order_by(Person.age)
        assert [p.age async for p in q] == list(range(n))
        assert (await q[5]).age == 5
        assert (await q.get_item(6)).age == 6
        with pytest.raises(IndexError):
            await q[n]
        assert [p.age for p in await q[10:13].to_list()] == [10, 11, 12]
        assert (await q.where(Person.age >= n - 1).first()) == await db.get(Person, f"p{n - 1:04d}")
        assert await q.where(age__lt=10).count() == 10
        assert await q.where(age__gt=n).exists() is False
        assert await Person.objects(db).where(age__lt=3).values("age") == [0, 1, 2]
        assert await Person.objects(db).where(age__lt=3).update(Person.age.inc(10_000)) == 3
        assert await Person.objects(db).where(age__gte=10_000).delete() == 3
        assert await Person.objects(db).explain() == Person.objects(db).query.explain()
        # Leaving async for early gives the stream back; the storage keeps working.
        async for p in q:
            if p.age > 50:
                break
        assert await db.query("people").count() == n - 3
        assert isinstance(q, doqu.AsyncQuery) and q.collection == "people"
        with pytest.raises(doqu.QueryError):
            Person.objects(db).where(age__gt="x")  # checked when built, as on the sync API

    run(db_url, body)


def test_corrupt_documents_while_streaming(db_url: str) -> None:
    async def body(db: AsyncStorage) -> None:
        await db.save_many(
            [{"pk": f"p{i}", "name": f"n{i}", "age": i} for i in range(5)], collection="people"
        )
        await db.save({"pk": "p2", "name": 2, "age": "old"}, collection="people")
        q = Person.objects(db).order_by("pk")
        seen: list[str] = []
        with pytest.raises(CorruptDocument):
            async for p in q:
                seen.append(p.name)
        assert seen == ["n0", "n1"]  # what came before the bad one is not lost
        errors: list[CorruptDocument] = []
        assert [p.name async for p in q.iter(on_corrupt=errors.append)] == ["n0", "n1", "n3", "n4"]
        assert [e.pk for e in errors] == ["p2"]

    run(db_url, body)


def test_documents_and_references(db_url: str) -> None:
    async def body(db: AsyncStorage) -> None:
        ann = Person(pk="ann", name="Ann", age=31)
        assert await ann.save(db) == "ann"
        book = Book(pk="b", title="T", author=ann)
        await db.save(book)
        loaded = await db.get(Book, "b")
        assert (await loaded.author.fetch(db)).name == "Ann" and loaded.author.doc.name == "Ann"
        fetched = await db.get(Book, "b", prefetch=["author"])
        assert fetched.author.doc == ann
        assert [b.author.doc.name async for b in Book.objects(db).prefetch("author")] == ["Ann"]
        assert [p.pk for p in await db.get_many(Person, ["ann"])] == ["ann"]
        doc, created = await db.get_or_create(Person, name="Bo", defaults={"age": 2})
        assert created and (await db.get_or_create(Person, name="Bo"))[0] == doc
        await ann.delete(db)
        with pytest.raises(NotFound):
            await db.get(Person, "ann")
        assert await db.collections() == ["book", "people"]
        await db.clear()
        assert await db.collections() == []
        assert await db.version("people") is not None
        await db.flush()

    run(db_url, body)


@pytest.mark.parametrize("cache", [None, 10, "mirror"])
def test_mapping_view(db_url: str, cache: int | str | None) -> None:
    async def body(db: AsyncStorage) -> None:
        d = db.dict("settings", cache=cache)
        await d.set("a", 1)
        await d.update({"b": [2]}, c={"x": 3})
        assert await d.get("a") == 1 and await d.get("zz", "dflt") == "dflt"
        assert await d.getitem("b") == [2]
        with pytest.raises(KeyError):
            await d.getitem("zz")
        assert await d.contains("c") and not await d.contains("zz")
        assert await d.increment("n") == 1 and await d.increment("n", 2.5) == 3.5
        assert await d.count() == 4
        assert await d.keys() == ["a", "b", "c", "n"]
        assert [k async for k in d] == ["a", "b", "c", "n"]
        assert dict(await d.items()) == {"a": 1, "b": [2], "c": {"x": 3}, "n": 3.5}
        assert [v async for v in d.values()] == [1, [2], {"x": 3}, 3.5]
        assert await d.pop("a") == 1 and await d.pop("a", None) is None
        assert await d.setdefault("s", "v") == "v" and await d.setdefault("s", "w") == "v"
        await d.delete("s")
        with pytest.raises(KeyError):
            await d.delete("s")
        key, _ = await d.popitem()
        assert not await d.contains(key)
        token = await d.last_updated()
        await db.save({"pk": "other", "value": 9}, collection="settings")  # around the view
        await d.sync()
        assert await d.get("other") == 9 and await d.last_updated() != token
        await d.clear()
        assert await d.count() == 0

    run(db_url, body)


def test_concurrent_duplicate_writes_past_the_pool(db_url: str) -> None:
    """More refused writes at once than the SQL pool has connections: each finds the
    key's holder on its own connection, none waits for a second one."""

    async def write(db: AsyncStorage) -> int:
        try:
            await db.save(Member(email="dup@example.org"))
        except DuplicateKey:
            return 409
        return 201

    async def body(db: AsyncStorage) -> list[int]:
        return list(await asyncio.gather(*(write(db) for _ in range(40))))

    options = (
        {"pool_timeout": 2} if db_url.startswith(("sqlite:///", "postgresql", "mysql")) else {}
    )
    assert sorted(run(db_url, body, **options)) == [201] + [409] * 39


def test_the_bridge() -> None:
    """Async drivers are awaited only inside the async API's calls; outside, a clear error."""
    from doqu.backend import bridged, wait

    async def answer() -> int:
        return 42

    assert not bridged()
    with pytest.raises(RuntimeError, match="outside doqu's async API"):
        wait(answer())

    async def main() -> int:
        from doqu.backend import spawn

        return await spawn(lambda: wait(answer()) + int(bridged()))

    assert asyncio.run(main()) == 43
    with pytest.raises(TypeError, match="connect_async"):
        AsyncStorage(doqu.connect("memory://"))


def test_cancelled_task_gives_back_its_connection(tmp_path: Any) -> None:
    """A task cancelled while it waits for a pool connection leaves the pool whole."""

    async def body(db: AsyncStorage) -> int:
        await db.save({"x": 1}, collection="c")

        async def slow() -> None:
            async for _ in db.query("c"):
                await asyncio.sleep(10)

        streams = [asyncio.ensure_future(slow()) for _ in range(3)]
        await asyncio.sleep(0.2)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        assert await db.query("c").count() == 1
        return int(db.storage._engine.pool.checkedout())  # type: ignore[attr-defined]

    assert run(f"sqlite:///{tmp_path}/c.db", body) == 0


def test_leaving_async_for_early_gives_the_stream_back(db_url: str) -> None:
    """``break`` out of ``async for``: the event loop closes the stream, its connection
    goes back to the pool."""
    if not db_url.startswith(("sqlite:///", "postgresql", "mysql")):
        pytest.skip("no SQL connection pool on this backend")

    async def body(db: AsyncStorage) -> list[int]:
        await db.save_many([{"i": i} for i in range(3 * STREAM_BATCH)], collection="s")
        lent = []
        for _ in range(20):  # more streams than the pool has connections
            async for doc in db.query("s"):
                if doc["i"] >= 0:
                    break
            pool = db.storage._engine.pool  # type: ignore[attr-defined]
            for _ in range(200):  # the loop runs the generator's aclose() soon after
                if not pool.checkedout():
                    break
                await asyncio.sleep(0.01)
            lent.append(int(pool.checkedout()))
        # And one left open when the storage closes: close() closes it.
        async for _ in db.query("s"):
            break
        return lent

    assert run(db_url, body, pool_timeout=2) == [0] * 20


def test_a_task_lock_makes_other_tasks_wait() -> None:
    """``doqu.backend.rlock(True)``: held across a round trip by one call, the other
    calls' tasks wait for it (a thread lock would let them all in, or stop the loop)."""
    from doqu.backend import rlock, spawn, wait

    lock = rlock(True)
    order: list[str] = []

    def call(name: str) -> None:
        with lock:
            with lock:  # reentrant within one call
                order.append(f"{name} in")
                wait(asyncio.sleep(0.01))  # a round trip while holding it
                order.append(f"{name} out")

    async def main() -> None:
        await asyncio.gather(*(spawn(call, n) for n in "abc"))

    asyncio.run(main())
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
