"""TinyDB cases: ``db.get`` on the ``tinydb://`` backend against TinyDB itself.

The peer is TinyDB with ``CachingMiddleware``: it keeps the file in memory, as
the backend does, but never looks at the file again, so it does not see what
other processes write (the backend checks the file on every call). Plain
TinyDB, which re-reads the whole file on every get, is shown for information.
"""

from __future__ import annotations

import os
import random
import tempfile

import doqu

from .data import Person, make_dicts, make_people
from .harness import Case, Config, Group, Recorder, Side
from .sql import get_ops

__all__ = ["GROUPS"]

CASES = (
    Case(
        "tinydb.get.caching",
        "tinydb",
        "get by pk, TinyDB backend",
        "TinyDB CachingMiddleware (blind to other processes' writes)",
        1.5,
    ),
    Case(
        "tinydb.get",
        "tinydb",
        "get by pk, TinyDB backend",
        "plain TinyDB get(doc_id)",
        None,
    ),
)


def run_tinydb(config: Config, rec: Recorder) -> None:
    """The three stores hold the same N documents; time gets of random keys."""
    from tinydb import TinyDB
    from tinydb.middlewares import CachingMiddleware
    from tinydb.storages import JSONStorage

    n = config.n
    dicts = make_dicts(n)
    ops = get_ops(config)
    base_ops = 5  # plain TinyDB re-reads the whole file on every get
    rng = random.Random(4)
    picks = [rng.randrange(n) for _ in range(ops)]
    with tempfile.TemporaryDirectory(prefix="doqu-bench-tinydb-") as tmp:
        plain = TinyDB(os.path.join(tmp, "plain.json"))
        caching = CachingMiddleware(JSONStorage)  # type: ignore[no-untyped-call]
        cached = TinyDB(os.path.join(tmp, "cached.json"), storage=caching)
        db = doqu.connect(f"tinydb:///{os.path.join(tmp, 'doqu.json')}")
        try:
            table = plain.table("people")
            ids = table.insert_multiple(dicts)
            cached_table = cached.table("people")
            cached_ids = cached_table.insert_multiple(dicts)
            cached.storage.flush()  # type: ignore[attr-defined]
            people = make_people(dicts)
            db.save_many(people)
            pks = [people[i].pk for i in picks]
            get = db.get

            def doqu_gets() -> None:
                for pk in pks:
                    get(Person, pk)

            def gets(t: object, doc_ids: list[int]) -> Side:
                tget = t.get  # type: ignore[attr-defined]

                def run() -> None:
                    for i in doc_ids:
                        tget(doc_id=i)

                return Side(lambda: run, ops=len(doc_ids))

            mine = Side(lambda: doqu_gets, ops=len(pks))
            rec.measure(
                "tinydb.get.caching",
                mine,
                gets(cached_table, [cached_ids[i] for i in picks]),
                n=n,
                note=f"{len(pks):,} gets",
            )
            doc_ids = [ids[i] for i in picks[:base_ops]]
            rec.measure(
                "tinydb.get",
                mine,
                gets(table, doc_ids),
                n=n,
                note=f"{len(pks):,} doqu gets, {len(doc_ids)} TinyDB gets",
            )
        finally:
            db.close()
            cached.close()
            plain.close()


GROUPS = (Group("tinydb", CASES, ("doqu.ext.tinydb:TinyDBStorage", "tinydb"), run_tinydb),)
