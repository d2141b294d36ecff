"""The benchmarks run and print their table (the only benchmark code in the test suite).

Timings are never checked here: ``python -m benchmarks`` is run on a tiny N, and
the tests only check that every SQLite case gets a row with a ratio column, and
that ``--scale`` at two tiny sizes prints and writes every index case at each.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _sql_backend_ready() -> bool:
    try:
        module = importlib.import_module("doqu.ext.sql")
    except ImportError:
        return False
    return hasattr(module, "SQLStorage")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "benchmarks", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _sqlite_groups() -> list[Any]:
    from benchmarks import all_groups

    return [g for g in all_groups() if g.backend == "sqlite"]


def _measured_or_missing(rows: dict[str, dict[str, Any]], groups: list[Any]) -> None:
    """Every row has a ratio, unless its group needs a module that is not installed."""
    from benchmarks.harness import missing

    for group in groups:
        reason = missing(group)
        for case in group.cases:
            row = rows[case.key]
            if reason is not None:
                assert row["status"] == "unavailable", (case.key, row)
                continue
            assert row["status"] == "ok", (case.key, row["note"])
            assert row["ratio"] is not None, case.key


def test_quick_sqlite_run_prints_every_case(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _bench(
        "--quick", "--backends", "sqlite", "--n", "1000", "--rounds", "1", "--json", str(out)
    )

    groups = _sqlite_groups()
    cases = [c for g in groups for c in g.cases]
    assert len(cases) >= 24
    keys = {c.key for c in cases}
    # The honest baselines and the index cases are among them.
    assert {
        "sqlite.save_many.orjson",
        "sqlite.get.validate",
        "sqlite.where.validate",
        "sqlite.dict.increment.diskcache",
        "sqlite.count",
        "sqlite.count_where",
        "sqlite.values",
        "sqlite.values_unindexed",
        "sqlite.order_window",
    } <= keys
    table = proc.stdout[proc.stdout.rindex("case ") :]
    header = table.splitlines()[0]
    assert "ratio" in header and "target" in header
    for case in cases:
        assert any(case.title in line and case.baseline in line for line in table.splitlines())

    payload = json.loads(out.read_text())
    by_key = {c["key"]: c for c in payload["cases"]}
    assert set(by_key) == keys
    for row in by_key.values():
        assert {"ratio", "target", "met", "status"} <= set(row)
    if _sql_backend_ready():
        _measured_or_missing(by_key, groups)


def test_scale_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = ["--scale", "--scale-ns", "200,400", "--backends", "sqlite", "--rounds", "1"]
    proc = _bench(*args, "--json", str(out))

    from benchmarks import indexes

    cases = indexes.SQLITE
    table = proc.stdout[proc.stdout.rindex("case ") :]
    header = table.splitlines()[0]
    assert "N=200" in header and "N=400" in header
    for case in cases:
        assert any(case.title in line for line in table.splitlines())

    payload = json.loads(out.read_text())
    assert payload["scale"] is True and payload["ns"] == [200, 400]
    by_key = {c["key"]: c for c in payload["cases"]}
    assert set(by_key) == {c.key for c in cases}
    if _sql_backend_ready():
        for key, row in by_key.items():
            assert set(row["by_n"]) == {"200", "400"}, key
            for n, result in row["by_n"].items():
                assert result["status"] == "ok", (key, n, result["note"])
                assert result["n"] == int(n)
                assert row["ratios"][n] is not None
