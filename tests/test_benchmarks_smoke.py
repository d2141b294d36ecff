"""The benchmarks run and print their table (the only benchmark code in the test suite).

Timings are never checked here: ``python -m benchmarks`` is run on a tiny N, and
the test only checks that every SQLite case gets a row with a ratio column.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sql_backend_ready() -> bool:
    try:
        module = importlib.import_module("doqu.ext.sql")
    except ImportError:
        return False
    return hasattr(module, "SQLStorage")


def test_quick_sqlite_run_prints_every_case(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--backends", "sqlite"]
    cmd += ["--n", "1000", "--rounds", "1", "--json", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    from benchmarks import all_groups

    cases = [c for g in all_groups() if g.backend == "sqlite" for c in g.cases]
    assert len(cases) >= 11
    table = proc.stdout[proc.stdout.rindex("case ") :]
    header = table.splitlines()[0]
    assert "ratio" in header and "target" in header
    for case in cases:
        assert any(case.title in line and case.baseline in line for line in table.splitlines())

    payload = json.loads(out.read_text())
    by_key = {c["key"]: c for c in payload["cases"]}
    assert set(by_key) == {c.key for c in cases}
    for row in by_key.values():
        assert {"ratio", "target", "met", "status"} <= set(row)
    if _sql_backend_ready():
        errors = {k: r["note"] for k, r in by_key.items() if r["status"] == "error"}
        assert not errors
        assert all(r["ratio"] is not None for r in by_key.values())
