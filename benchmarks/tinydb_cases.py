"""TinyDB case: ``db.get`` on the ``tinydb://`` backend against plain TinyDB ``get(doc_id=…)``."""

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
        "tinydb.get",
        "tinydb",
        "get by pk, TinyDB backend",
        "plain TinyDB get(doc_id)",
        0.01,
    ),
)


def run_tinydb(config: Config, rec: Recorder) -> None:
    """Both stores hold the same N documents; time gets of random keys."""
    from tinydb import TinyDB

    n = config.n
    dicts = make_dicts(n)
    ops = get_ops(config)
    base_ops = 5  # plain TinyDB re-reads the whole file on every get
    rng = random.Random(4)
    picks = [rng.randrange(n) for _ in range(ops)]
    with tempfile.TemporaryDirectory(prefix="doqu-bench-tinydb-") as tmp:
        plain = TinyDB(os.path.join(tmp, "plain.json"))
        db = doqu.connect(f"tinydb:///{os.path.join(tmp, 'doqu.json')}")
        try:
            table = plain.table("people")
            ids = table.insert_multiple(dicts)
            people = make_people(dicts)
            db.save_many(people)
            pks = [people[i].pk for i in picks]
            doc_ids = [ids[i] for i in picks[:base_ops]]
            get = db.get

            def doqu_gets() -> None:
                for pk in pks:
                    get(Person, pk)

            def plain_gets() -> None:
                for i in doc_ids:
                    table.get(doc_id=i)

            rec.measure(
                "tinydb.get",
                Side(lambda: doqu_gets, ops=len(pks)),
                Side(lambda: plain_gets, ops=len(doc_ids)),
                n=n,
                note=f"{len(pks):,} doqu gets, {len(doc_ids)} TinyDB gets",
            )
        finally:
            db.close()
            plain.close()


GROUPS = (Group("tinydb", CASES, ("doqu.ext.tinydb:TinyDBStorage", "tinydb"), run_tinydb),)
