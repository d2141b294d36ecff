"""Memory cases: iterating a large query must stream (RSS growth under a budget).

Each measurement runs in fresh subprocesses (``python -m benchmarks.rss``): one
fills the collection, another iterates over every document as models while
sampling its resident set size from ``/proc/self/status``. Growth is the peak
during iteration minus the size just before it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from .harness import Case, Config, Group, Recorder

__all__ = ["GROUPS", "main"]

SQL = "doqu.ext.sql:SQLStorage"
BUDGET_MB = 100.0
BATCH = 10_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SQLITE = (
    Case(
        "sqlite.iterate_rss", "sqlite", "iterate all rows as models, SQLite", "-", BUDGET_MB, "rss"
    ),
)
POSTGRESQL = (
    Case(
        "postgresql.iterate_rss",
        "postgresql",
        "iterate all rows as models, PostgreSQL",
        "-",
        BUDGET_MB,
        "rss",
    ),
)


def rows_for(config: Config) -> int:
    """Rows to iterate: 1,000,000 on a full run, 10 x N otherwise."""
    return 1_000_000 if config.n >= 100_000 and not config.quick else 10 * config.n


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _populate(url: str, rows: int) -> dict[str, Any]:
    import doqu

    from .data import Person, make_dicts, make_people

    dicts = make_dicts(min(rows, BATCH))
    start = time.perf_counter()
    with doqu.connect(url) as db:
        db.clear(Person)
        done = 0
        while done < rows:
            batch = make_people(dicts[: min(BATCH, rows - done)])
            db.save_many(batch)
            done += len(batch)
    return {"rows": done, "seconds": time.perf_counter() - start}


def _iterate(url: str, rows: int) -> dict[str, Any]:
    import doqu

    from .data import Person

    with doqu.connect(url) as db:
        query = Person.objects(db)
        expected = query.count()
        before = _rss_mb()
        try:  # reset the peak ("VmHWM"), so it covers the iteration only
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            hwm = True
        except OSError:
            hwm = False
        peak = before
        seen = 0
        start = time.perf_counter()
        for _ in query:
            seen += 1
            if seen % 5_000 == 0:
                peak = max(peak, _rss_mb())
        seconds = time.perf_counter() - start
        peak = max(peak, _rss_mb())
        if hwm:
            peak = max(peak, _rss_mb("VmHWM"))
    return {
        "rows": seen,
        "expected": expected,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "seconds": seconds,
    }


def _child(action: str, url: str, rows: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.rss", action, url, str(rows)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{action} in a subprocess failed: {last}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _measure(rec: Recorder, key: str, url: str, rows: int) -> None:
    try:
        filled = _child("populate", url, rows)
        got = _child("iterate", url, rows)
    except Exception as exc:
        rec.error(key, exc)
        return
    growth = got["rss_peak_mb"] - got["rss_before_mb"]
    note = f"{got['rows']:,} rows, filled in {filled['seconds']:.0f} s"
    if got["rows"] != rows:
        note += f"; expected {rows:,}"
    rec.record_rss(key, growth, got["rows"], got["seconds"], note)


def run_sqlite(config: Config, rec: Recorder) -> None:
    """Fill a SQLite file with the rows, then iterate in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="doqu-bench-rss-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'rss.sqlite3')}"
        _measure(rec, "sqlite.iterate_rss", url, rows_for(config))


def run_postgresql(config: Config, rec: Recorder) -> None:
    """The same on PostgreSQL, in a schema of its own."""
    from .sql import pg_schema

    try:
        ctx = pg_schema(config)
        url, _ = ctx.__enter__()
    except Exception as exc:
        rec.unavailable("postgresql.iterate_rss", f"server not reachable: {exc}"[:200])
        return
    try:
        _measure(rec, "postgresql.iterate_rss", url, rows_for(config))
    finally:
        ctx.__exit__(None, None, None)


GROUPS = (
    Group("sqlite", SQLITE, (SQL,), run_sqlite),
    Group("postgresql", POSTGRESQL, (SQL, "psycopg"), run_postgresql),
)


def main(argv: Sequence[str]) -> int:
    """``python -m benchmarks.rss populate|iterate URL ROWS``: print one JSON line."""
    action, url, rows = argv[0], argv[1], int(argv[2])
    result = _populate(url, rows) if action == "populate" else _iterate(url, rows)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
