"""``doqu migrate`` killed with ``kill -9`` at 10 points, then run again to the end.

The upgrade counts itself in each document it upgrades (``applied``): after the
last run every document is at the current version and was upgraded exactly once
(as stored), whatever the kills interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import doqu

from .conftest import count

DOCS = 10_000
KILLS = 10

MODELS = """
    from doqu import Document

    class Person(Document):
        full_name: str
        applied: int = 0

        class Meta:
            collection = "people"
            version = 2

    @Person.migration(from_version=1)
    def _split(doc):
        doc["full_name"] = doc.pop("name")
        doc["applied"] = doc.get("applied", 0) + 1  # the side effect the test counts
        return doc
"""


def _migrate(url: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-m", "doqu", "migrate", url, "crashmodels:Person", "--batch", "250"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_migrate_killed_at_ten_points_upgrades_each_document_once(tmp_path: Path) -> None:
    (tmp_path / "crashmodels.py").write_text(textwrap.dedent(MODELS))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with doqu.connect(url) as db:
        db.save_many(
            [{"pk": f"p{i:05d}", "name": f"n{i}"} for i in range(DOCS)], collection="people"
        )
    rng = random.Random(25)
    killed = 0
    with doqu.connect(url) as watcher:
        upgraded = watcher.query("people").where(_v=2)
        for _ in range(KILLS):
            done = upgraded.count()
            # Killed once it has written some of what is left: mid-run, at a random point.
            target = done + rng.randint(1, max(1, (DOCS - done) // 4))
            child = _migrate(url, tmp_path)
            while child.poll() is None and upgraded.count() < target:
                time.sleep(0.002)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                killed += 1
            child.communicate(timeout=120)
    final = _migrate(url, tmp_path)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert out.strip().endswith("0 failed")
    with doqu.connect(url) as db:
        docs = list(db.query("people"))
    count("migrate", "sqlite", killed=killed, documents=len(docs))
    assert len(docs) == DOCS
    assert all(d["_v"] == 2 and d["applied"] == 1 and "name" not in d for d in docs)
    assert killed == KILLS, f"only {killed} kills landed inside a run"
