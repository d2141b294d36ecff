"""``memory://?persist=PATH``: snapshots that survive process exits and ``kill -9``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import doqu
from doqu import ConfigError, StorageError

ROOT = Path(__file__).resolve().parent.parent


def _python(script: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


WRITER = """
import sys, doqu
db = doqu.connect("memory://?persist=" + sys.argv[1])
db.save_many([{"pk": f"k{i}", "i": i, "s": "é\\n\\"x\\""} for i in range(50)], collection="c")
db.save({"pk": "meta", "ok": True}, collection="m")
if sys.argv[2] == "close":
    db.close()
else:  # flush, then leave without closing anything
    db.flush()
    db.save({"pk": "lost", "x": 1}, collection="m")
    import os
    os._exit(0)
"""

READER = """
import json, sys, doqu
with doqu.connect("memory://?persist=" + sys.argv[1]) as db:
    print(json.dumps({
        "count": db.query("c").count(),
        "big": db.query("c").where(i__gte=40).count(),
        "s": db.get("c", "k7")["s"],
        "m": sorted(d["pk"] for d in db.query("m")),
        "collections": db.collections(),
    }))
"""


@pytest.mark.parametrize("how", ["close", "flush-then-exit"])
def test_survives_process_exit(tmp_path: Path, how: str) -> None:
    snap = tmp_path / "snap.json"
    _python(WRITER, str(snap), how)
    got = json.loads(_python(READER, str(snap)))
    assert got == {
        "count": 50,
        "big": 10,
        "s": 'é\n"x"',
        "m": ["meta"],
        "collections": ["c", "m"],
    }
    json.loads(snap.read_text(encoding="utf-8"))  # a plain JSON file


def test_reopen_in_process_and_version(tmp_path: Path) -> None:
    url = f"memory://?persist={tmp_path / 'v.json'}"
    with doqu.connect(url) as db:
        db.save({"pk": "a", "n": 1}, collection="c")
        before = db.version("c")
    assert (tmp_path / "v.json").exists()
    with doqu.connect(url) as db:
        assert db.get("c", "a") == {"pk": "a", "n": 1}
        assert db.version("c") == before
        db.save({"pk": "b"}, collection="c")
        assert db.version("c") != before
    with doqu.connect(url) as db:
        assert db.query("c").count() == 2
        db.clear()
    with doqu.connect(url) as db:
        assert db.collections() == []


def test_missing_snapshot_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    with doqu.connect(f"memory://?persist={path}") as db:
        assert db.collections() == []
        assert not path.exists()
        db.flush()
        assert path.exists()


def test_unknown_options(tmp_path: Path) -> None:
    for url in (f"memory://?persist={tmp_path / 'x.json'}&fsync=no", "memory://?bogus=1"):
        with pytest.raises(ConfigError):
            doqu.connect(url)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"collections": 5}', "", "\x00\x01"])
def test_corrupt_snapshot_names_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StorageError) as info:
        doqu.connect(f"memory://?persist={path}")
    assert str(path) in str(info.value)


CHURNER = """
import sys, doqu
db = doqu.connect("memory://?persist=" + sys.argv[1])
docs = [{"pk": f"d{i:05d}", "i": i, "pad": "x" * 120} for i in range(4000)]
gen = 0
while True:
    gen += 1
    for d in docs:
        d["gen"] = gen
    db.save_many(docs, collection="big")
    db.save({"pk": "state", "gen": gen}, collection="meta")
    if gen % 2 == 0:  # odd generations are written but never flushed
        print("flushing", gen, flush=True)
        db.flush()
        print("flushed", gen, flush=True)
"""


def _read_snapshot(path: Path) -> tuple[int, set[int], int]:
    with doqu.connect(f"memory://?persist={path}") as db:
        state = db.get("meta", "state")["gen"]
        gens = set(db.query("big").values("gen"))
        count = db.query("big").count()
    return state, gens, count


@pytest.mark.slow
def test_kill_9_keeps_last_flushed_snapshot(tmp_path: Path) -> None:
    """``kill -9`` at random points, some during a flush: the file holds the last flush."""
    rng = random.Random(int(os.environ.get("DOQU_KILL_SEED", "7")))
    path = tmp_path / "snap.json"
    during_flush = 0
    for run in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHURNER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        acked = 0
        try:
            target = "flushing" if run % 2 else "flushed"
            want = rng.randint(1, 2)  # generations to see before the kill
            seen = 0
            for line in proc.stdout:
                word, gen = line.split()
                if word == "flushed":
                    acked = int(gen)
                if word == target:
                    seen += 1
                    if seen >= want:
                        break
            if target == "flushing":  # wait for the temp file: kill while it is being written
                deadline = time.monotonic() + 5
                while not list(tmp_path.glob(".doqu-*.tmp")) and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0, 0.01))
            else:
                time.sleep(rng.uniform(0, 0.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        leftovers = list(tmp_path.glob(".doqu-*.tmp"))
        during_flush += bool(leftovers)  # a temp file left behind: killed inside a flush
        for tmp in leftovers:
            tmp.unlink()
        state, gens, count = _read_snapshot(path)
        assert state % 2 == 0, "only flushed generations may be on disk"
        assert state >= acked, f"run {run}: acknowledged flush {acked}, file holds {state}"
        assert gens == {state}, "a snapshot is one consistent state"
        assert count == 4000
    assert during_flush >= 5, "too few kills landed inside a flush to prove anything"
