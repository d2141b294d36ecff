"""Four processes on one store: no lost increment, one creator per key, no lost update.

Run on every backend several processes can share (SQLite and TinyDB files,
PostgreSQL, MariaDB, MongoDB). The children start together (they wait for one
wall-clock instant) so their calls really overlap.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import doqu

from .conftest import count, finish, fresh_url, python

PROCESSES = 4
INCREMENTS = 500
RACED_KEYS = 40
UPDATE_ROUNDS = 40
UPDATE_DOCS = 10

PRELUDE = """
    import sys, time
    import doqu

    url, start_at, me = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    db = doqu.connect(url)
    db.query("warm").count()  # connected and prepared before the start
    time.sleep(max(0.0, start_at - time.time()))
"""

INCREMENTER = (
    PRELUDE
    + f"""
    counters = db.dict("counters")
    for _ in range({INCREMENTS}):
        counters.increment("n")
    db.close()
"""
)

RACER = (
    PRELUDE
    + f"""
    for i in range({RACED_KEYS}):
        doc, created = db.get_or_create("racy", defaults={{"by": me}}, key=f"k{{i}}")
        print(i, doc["pk"], int(created), doc["by"], flush=True)
    db.close()
"""
)

UPDATER = (
    PRELUDE
    + f"""
    for _ in range({UPDATE_ROUNDS}):
        print(db.query("upd").where(k__gte=2 * me).update(n__inc=1, last=me), flush=True)
    db.close()
"""
)


@pytest.fixture
def shared_url(
    shared_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    with fresh_url(shared_backend, tmp_path, request) as url:
        with doqu.connect(url) as db:
            # The collections exist before the children race on their contents; racing
            # to create a collection is tested on its own below.
            for name in ("warm", "counters", "racy", "upd"):
                db.query(name).count()
        yield url


def _race(script: str, url: str) -> list[str]:
    start_at = time.time() + 2.0  # the children need about a second to import and connect
    children = [python(script, url, str(start_at), str(me)) for me in range(PROCESSES)]
    return finish(children)


FIRST_USE = (
    PRELUDE
    + """
    from doqu import Document

    class Member(Document):
        name: str
        email: str | None = None

        class Meta:
            collection = "members"
            indexes = ["name"]
            unique = ["email"]

    db.save(Member(pk=f"p{me}", name=f"n{me}", email=f"{me}@example.org"))
    db.dict("fresh_counters").increment("n")
    db.close()
"""
)


@pytest.mark.slow
def test_four_processes_create_a_new_collection_at_once(
    shared_backend: str, shared_url: str
) -> None:
    """The first use of a collection (table and indexes) by four processes at once."""
    _race(FIRST_USE, shared_url)
    with doqu.connect(shared_url) as db:
        members = db.query("members").count()
        counted = db.dict("fresh_counters")["n"]
    count("concurrency", shared_backend, first_use_racers=PROCESSES, first_use_writes=members)
    assert members == PROCESSES
    assert counted == PROCESSES


@pytest.mark.slow
def test_four_processes_lose_no_increment(shared_backend: str, shared_url: str) -> None:
    _race(INCREMENTER, shared_url)
    with doqu.connect(shared_url) as db:
        total = db.dict("counters")["n"]
    count(
        "concurrency",
        shared_backend,
        increments_made=PROCESSES * INCREMENTS,
        increments_counted=total,
        increments_lost=PROCESSES * INCREMENTS - total,
    )
    assert total == PROCESSES * INCREMENTS == 2000


@pytest.mark.slow
def test_four_racing_get_or_create_create_exactly_one(shared_backend: str, shared_url: str) -> None:
    outs = _race(RACER, shared_url)
    seen: dict[int, list[tuple[str, int, int]]] = {}
    for out in outs:
        for line in out.splitlines():
            i, pk, created, by = line.split()
            seen.setdefault(int(i), []).append((pk, int(created), int(by)))
    assert sorted(seen) == list(range(RACED_KEYS))
    creators = sum(created for answers in seen.values() for _, created, _ in answers)
    with doqu.connect(shared_url) as db:
        stored = list(db.query("racy"))
    count(
        "concurrency",
        shared_backend,
        get_or_create_races=RACED_KEYS,
        racers_each=PROCESSES,
        documents_created=creators,
        duplicates=len(stored) - RACED_KEYS,
    )
    for i, answers in seen.items():
        assert len(answers) == PROCESSES
        assert sum(created for _, created, _ in answers) == 1, f"key k{i}: {answers}"
        assert len({pk for pk, _, _ in answers}) == 1, f"key k{i}: different pks {answers}"
        assert len({by for _, _, by in answers}) == 1, f"key k{i}: different documents {answers}"
    assert len(stored) == RACED_KEYS
    assert creators == RACED_KEYS


@pytest.mark.slow
def test_concurrent_query_updates_lose_no_increment(shared_backend: str, shared_url: str) -> None:
    with doqu.connect(shared_url) as db:
        db.save_many(
            [{"pk": f"d{k}", "k": k, "n": 0} for k in range(UPDATE_DOCS)], collection="upd"
        )
        db.save({"pk": "outside", "k": -1, "n": 0}, collection="upd")
    outs = _race(UPDATER, shared_url)
    reported = sum(int(n) for out in outs for n in out.split())
    # Process p bumps every document with k >= 2p, UPDATE_ROUNDS times.
    expected = {
        f"d{k}": UPDATE_ROUNDS * sum(1 for p in range(PROCESSES) if k >= 2 * p)
        for k in range(UPDATE_DOCS)
    }
    expected["outside"] = 0
    with doqu.connect(shared_url) as db:
        got = {d["pk"]: d["n"] for d in db.query("upd")}
    made = sum(expected.values())
    count(
        "concurrency",
        shared_backend,
        update_increments_made=made,
        update_increments_counted=sum(got.values()),
        update_increments_lost=made - sum(got.values()),
    )
    assert got == expected
    assert reported == made
