"""``kill -9`` a writer at many points: the store opens and holds every acknowledged write.

A child process streams writes of all four kinds (``save``, ``save_many``,
``Query.update``, the mapping view's ``increment``) and prints one line per
write that returned. The parent kills it with ``SIGKILL`` after a varying
number of acknowledgements, or in the middle of a large ``save_many``; then it
reopens the store and checks every acknowledged write. On ``memory://?persist=``
only what a completed ``flush()`` covered is acknowledged.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import doqu

from .conftest import count, fresh_url, python

KILL_POINTS = 22
BIG_BATCH = 1000

WRITER = """
    import sys
    import doqu

    url, start, mode, every = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    big = int(sys.argv[5])
    db = doqu.connect(url)
    docs = db.query("docs")
    counters = db.dict("counters")
    buffered = url.startswith("memory:")  # acknowledged only once a flush() returned
    pending = []

    def ack(line):
        pending.append(line)
        if not buffered:
            print(pending.pop(), flush=True)
        elif len(pending) >= every:
            db.flush()
            print("\\n".join(pending), flush=True)
            pending.clear()

    if docs.where(pk__in=["u0", "u1"]).count() < 2:  # only one writer runs at a time
        db.save_many([{"pk": "u0", "v": 0}, {"pk": "u1", "v": 0}], collection="docs")
        if buffered:
            db.flush()
    print("ready", flush=True)
    n = start
    while True:
        n += 1
        if mode == "big":
            print(f"begin b{n} {big}", flush=True)
            db.save_many(
                [{"pk": f"b{n}-{j}", "batch": f"b{n}", "v": n, "pad": "x" * 50}
                 for j in range(big)],
                collection="docs",
            )
            ack(f"many b{n} {big} {n}")
            continue
        kind = n % 4
        if kind == 0:
            db.save({"pk": f"s{n}", "v": n}, collection="docs")
            ack(f"save s{n} {n}")
        elif kind == 1:
            db.save_many(
                [{"pk": f"m{n}-{j}", "batch": f"m{n}", "v": n} for j in range(5)],
                collection="docs",
            )
            ack(f"many m{n} 5 {n}")
        elif kind == 2:
            changed = docs.where(pk__in=["u0", "u1"]).update(v=n)
            assert changed == 2, changed
            ack(f"upd u {n}")
        else:
            ack(f"inc k {counters.increment('k')}")
"""


@dataclass
class Acked:
    """What the children acknowledged, over every kill point so far."""

    saves: dict[str, int] = field(default_factory=dict)
    batches: dict[str, tuple[int, int]] = field(default_factory=dict)
    begun: dict[str, int] = field(default_factory=dict)
    last_begun: str = ""
    update: int = 0
    increment: int = 0
    writes: int = 0

    def take(self, line: str) -> None:
        if not line.endswith("\n"):
            return  # cut short by the kill: not (yet) an acknowledgement
        word, name, *rest = line.split()
        if word == "begin":
            self.begun[name] = int(rest[0])
            self.last_begun = name
            return
        self.writes += 1
        if word == "save":
            self.saves[name] = int(rest[0])
        elif word == "many":
            self.batches[name] = (int(rest[0]), int(rest[1]))
        elif word == "upd":
            self.update = max(self.update, int(rest[0]))
        elif word == "inc":
            self.increment = max(self.increment, int(rest[0]))
        else:
            raise AssertionError(f"unexpected line {line!r}")


def _check_file(backend: str, path: Path) -> None:
    """The file itself is whole: SQLite passes its integrity check, JSON parses."""
    if backend == "sqlite":
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
    else:
        json.loads(path.read_text(encoding="utf-8"))


def _verify(url: str, acked: Acked, point: int) -> tuple[int, list[str]]:
    """Reopen the store and check every acknowledged write: (checks made, what was lost)."""
    where = f"after kill point {point}"
    lost: list[str] = []
    with doqu.connect(url) as db:
        docs = db.query("docs")
        stored = {d["pk"]: d for d in docs}  # every document parses
        lost += [
            f"{where}: save {pk}"
            for pk, v in acked.saves.items()
            if stored.get(pk, {}).get("v") != v
        ]
        for batch, (size, v) in acked.batches.items():
            got = [d for d in stored.values() if d.get("batch") == batch and d["v"] == v]
            if len(got) != size:
                lost.append(f"{where}: batch {batch} holds {len(got)} of {size}")
        for batch, size in acked.begun.items():  # begun, maybe killed inside: all or nothing
            held = docs.where(batch=batch).count()
            if held not in (0, size):
                lost.append(f"{where}: torn save_many {batch}: {held} of {size}")
        for pk in ("u0", "u1"):
            if stored[pk]["v"] < acked.update:
                lost.append(f"{where}: update of {pk}: {stored[pk]['v']} < {acked.update}")
        if acked.increment and db.dict("counters")["k"] < acked.increment:
            lost.append(f"{where}: increment: {db.dict('counters')['k']} < {acked.increment}")
    checks = len(acked.saves) + sum(s for s, _ in acked.batches.values()) + len(acked.begun) + 3
    return checks, lost


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write(
    crash_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(f"doqu-crash-{crash_backend}")
    acked = Acked()
    survived = mid_batch = checked = 0
    problems: list[str] = []
    with fresh_url(crash_backend, tmp_path, request) as url:
        path = Path(url.split("persist=")[-1] if "persist=" in url else url.split(":///", 1)[1])
        for point in range(1, KILL_POINTS + 1):
            big = point % 2 == 0
            every = rng.randint(1, 6)
            child = python(
                WRITER,
                url,
                str(point * 1_000_000),
                "big" if big else "small",
                str(every),
                str(BIG_BATCH),
            )
            assert child.stdout is not None and child.stderr is not None
            first = child.stdout.readline()
            assert first == "ready\n", child.stderr.read()
            if big:
                # Time one whole batch (begin to begin), then kill at a uniformly drawn
                # moment of the next one: every phase of a save_many, its final write
                # included, gets its chance.
                begins: list[float] = []
                for line in child.stdout:
                    acked.take(line)
                    if line.startswith("begin"):
                        begins.append(time.monotonic())
                        if len(begins) == 2:
                            break
                assert len(begins) == 2, child.stderr.read()
                time.sleep(rng.uniform(0.0, begins[1] - begins[0]))
            else:
                want = rng.randint(1, 40)
                for got, line in enumerate(child.stdout, 1):
                    acked.take(line)
                    if got >= want:
                        break
                time.sleep(rng.uniform(0.0, 0.005))
            child.send_signal(signal.SIGKILL)
            # Read through the text wrapper: communicate() would read the raw pipe and
            # skip what the iteration above has already buffered (from mid-line on).
            rest, err = child.stdout.read(), child.stderr.read()
            child.stdout.close()
            child.stderr.close()
            assert child.wait(60) == -signal.SIGKILL, err
            for line in rest.splitlines(keepends=True):  # printed before the kill landed
                acked.take(line)
            mid_batch += big and acked.last_begun not in acked.batches
            _check_file(crash_backend, path)
            checks, lost = _verify(url, acked, point)
            checked += checks
            problems += lost
            survived += not lost
    count(
        "crashes",
        crash_backend,
        kill_points_survived=survived,
        killed_in_a_large_batch=mid_batch,
        acknowledged_writes=acked.writes,
        checks_of_acknowledged_writes=checked,
        lost=len(problems),
    )
    assert not problems, problems[:10]
    assert survived >= 20
    assert acked.saves and acked.batches and acked.update and acked.increment
