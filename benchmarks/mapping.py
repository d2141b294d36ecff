"""Mapping view cases (SQLite): ``db.dict()`` against diskcache, sqlitedict and a plain dict."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, MutableMapping
from typing import Any

import doqu

from .harness import Case, Config, Group, Recorder, Side
from .sql import get_ops

__all__ = ["GROUPS"]

COLLECTION = "bench_kv"
COUNTERS = "bench_counters"
#: The rewrite rows write the same values in every round: after the warm-up, each
#: set rewrites the value the store holds (the targeted ``set`` rows write new ones).
_REWRITES = "values as stored"
#: The sqlitedict peer: write-ahead log, as doqu's SQLite files (and diskcache's).
_WAL = "sqlitedict (WAL)"

CASES = (
    Case("sqlite.dict.get.diskcache", "sqlite", "db.dict() get, SQLite", "diskcache Cache", 1.0),
    Case(
        "sqlite.dict.set_new.diskcache",
        "sqlite",
        "db.dict() set new values, SQLite",
        "diskcache Cache",
        0.5,
    ),
    # Shown only: rewriting the value the store already holds.
    Case(
        "sqlite.dict.set.diskcache",
        "sqlite",
        "db.dict() set values as stored",
        "diskcache Cache",
        None,
    ),
    Case(
        "sqlite.dict.increment.diskcache",
        "sqlite",
        "db.dict() increment, SQLite",
        "diskcache Cache.incr",
        1.0,
    ),
    Case("sqlite.dict.get.sqlitedict", "sqlite", "db.dict() get, SQLite", _WAL, 0.1),
    Case(
        "sqlite.dict.set_new.sqlitedict",
        "sqlite",
        "db.dict() set new values, SQLite",
        _WAL,
        0.3,
    ),
    Case("sqlite.dict.set.sqlitedict", "sqlite", "db.dict() set values as stored", _WAL, None),
    # Shown only: sqlitedict's default rollback journal.
    Case(
        "sqlite.dict.set_new.sqlitedict_delete",
        "sqlite",
        "db.dict() set new values, SQLite",
        "sqlitedict (journal DELETE)",
        None,
    ),
    Case(
        "sqlite.dict.mirror",
        "sqlite",
        "db.dict(cache='mirror', autosync=False) get",
        "plain dict get",
        10.0,
    ),
)


def _value(i: int) -> dict[str, Any]:
    return {"count": i, "label": f"item {i}", "flags": [i % 2 == 0, i % 3 == 0]}


def _gets(mapping: MutableMapping[str, Any] | dict[str, Any], keys: list[str]) -> Side:
    def run() -> None:
        for k in keys:
            mapping[k]

    return Side(lambda: run, ops=len(keys))


def _sets(mapping: MutableMapping[str, Any], keys: list[str], values: list[Any]) -> Side:
    def run() -> None:
        for k, v in zip(keys, values):
            mapping[k] = v

    return Side(lambda: run, ops=len(keys))


def _new_sets(mapping: MutableMapping[str, Any], keys: list[str]) -> Side:
    """Sets of values no round has written before (each round's are made untimed)."""
    rounds = iter(range(1, 1 << 30))

    def prepare() -> Callable[[], object]:
        base = next(rounds) * 1_000_000_000
        return _sets(mapping, keys, [_value(base + i) for i in range(len(keys))]).prepare()

    return Side(prepare, ops=len(keys))


def _increments(increment: Callable[[str], object], keys: list[str]) -> Side:
    def run() -> None:
        for k in keys:
            increment(k)

    return Side(lambda: run, ops=len(keys))


def run_mapping(config: Config, rec: Recorder) -> None:
    """Fill each store with N items, then time gets and sets of random keys."""
    n = config.n
    keys = [f"key:{i:08d}" for i in range(n)]
    values = [_value(i) for i in range(n)]
    ops = get_ops(config)
    rng = random.Random(3)
    get_keys = [keys[rng.randrange(n)] for _ in range(ops)]
    set_keys = [keys[rng.randrange(n)] for _ in range(ops)]
    set_values = [_value(-i) for i in range(ops)]
    slow = max(20, ops // 20)  # sqlitedict does a few thousand ops/s: time fewer

    with tempfile.TemporaryDirectory(prefix="doqu-bench-kv-") as tmp:
        db = doqu.connect(f"sqlite:///{os.path.join(tmp, 'doqu.sqlite3')}")
        try:
            db.save_many(
                [{"pk": k, "value": v} for k, v in zip(keys, values)], collection=COLLECTION
            )
            db.save_many([{"pk": k, "value": 0} for k in keys], collection=COUNTERS)
            view = db.dict(COLLECTION)
            counters = db.dict(COUNTERS)
            _diskcache(rec, tmp, keys, values, view, counters, get_keys, set_keys, set_values, n)
            _sqlitedict(rec, tmp, keys, values, view, get_keys, set_keys, set_values, n, slow)

            mirror = db.dict(COLLECTION, cache="mirror", autosync=False)
            plain = {k: mirror[k] for k in keys}
            reads = get_keys * 10
            rec.measure(
                "sqlite.dict.mirror",
                _gets(mirror, reads),
                _gets(plain, reads),
                n=n,
                note=f"{len(reads):,} reads",
            )
        finally:
            db.close()


def _diskcache(
    rec: Recorder,
    tmp: str,
    keys: list[str],
    values: list[Any],
    view: MutableMapping[str, Any],
    counters: Any,
    get_keys: list[str],
    set_keys: list[str],
    set_values: list[Any],
    n: int,
) -> None:
    try:
        from diskcache import Cache
    except ImportError as exc:
        for case in CASES:
            if case.key.endswith(".diskcache"):
                rec.unavailable(case.key, f"diskcache not installed ({exc})")
        return
    cache = Cache(os.path.join(tmp, "diskcache"))
    try:
        with cache.transact():
            for k, v in zip(keys, values):
                cache[k] = v
                cache[f"counter:{k}"] = 0
        note = f"{len(get_keys):,} ops"
        rec.measure(
            "sqlite.dict.get.diskcache",
            _gets(view, get_keys),
            _gets(cache, get_keys),
            n=n,
            note=note,
        )
        rec.measure(
            "sqlite.dict.set_new.diskcache",
            _new_sets(view, set_keys),
            _new_sets(cache, set_keys),
            n=n,
            note=note,
        )
        rec.measure(
            "sqlite.dict.set.diskcache",
            _sets(view, set_keys, set_values),
            _sets(cache, set_keys, set_values),
            n=n,
            note=f"{note}, {_REWRITES}",
        )
        incr = cache.incr
        cache_keys = [f"counter:{k}" for k in set_keys]
        rec.measure(
            "sqlite.dict.increment.diskcache",
            _increments(counters.increment, set_keys),
            _increments(incr, cache_keys),
            n=n,
            note=f"{note} of 1 on stored ints",
        )
    finally:
        cache.close()


def _sqlitedict(
    rec: Recorder,
    tmp: str,
    keys: list[str],
    values: list[Any],
    view: MutableMapping[str, Any],
    get_keys: list[str],
    set_keys: list[str],
    set_values: list[Any],
    n: int,
    slow: int,
) -> None:
    try:
        from sqlitedict import SqliteDict
    except ImportError as exc:
        for case in CASES:
            if ".sqlitedict" in case.key:
                rec.unavailable(case.key, f"sqlitedict not installed ({exc})")
        return
    note = f"{len(get_keys):,} doqu ops, {slow:,} sqlitedict ops"
    for journal in ("WAL", "DELETE"):
        path = os.path.join(tmp, f"sqlitedict-{journal.lower()}.sqlite3")
        with SqliteDict(path, tablename="kv", autocommit=False, journal_mode=journal) as fill:
            for k, v in zip(keys, values):
                fill[k] = v
            fill.commit()
        # autocommit=True: every set is durable when it returns, as with doqu's view.
        store = SqliteDict(path, tablename="kv", autocommit=True, journal_mode=journal)
        try:
            if journal == "DELETE":
                rec.measure(
                    "sqlite.dict.set_new.sqlitedict_delete",
                    _new_sets(view, set_keys),
                    _new_sets(store, set_keys[:slow]),
                    n=n,
                    note=note,
                )
                continue
            rec.measure(
                "sqlite.dict.get.sqlitedict",
                _gets(view, get_keys),
                _gets(store, get_keys[:slow]),
                n=n,
                note=note,
            )
            rec.measure(
                "sqlite.dict.set_new.sqlitedict",
                _new_sets(view, set_keys),
                _new_sets(store, set_keys[:slow]),
                n=n,
                note=note,
            )
            rec.measure(
                "sqlite.dict.set.sqlitedict",
                _sets(view, set_keys, set_values),
                _sets(store, set_keys[:slow], set_values[:slow]),
                n=n,
                note=f"{note}, {_REWRITES}",
            )
        finally:
            store.close()


GROUPS = (
    Group("sqlite", CASES, ("doqu.ext.sql:SQLStorage", "doqu._mapping:MappingView"), run_mapping),
)
