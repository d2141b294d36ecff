"""``python -m benchmarks [--quick] [--backends …] [--json out.json]``: run and print the table."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import ALL_BACKENDS, all_groups
from .harness import Config, Group, Recorder, format_table

FULL_N = 100_000
QUICK_N = 10_000


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="doqu against raw drivers and peer libraries, as ratios from one run.",
    )
    p.add_argument("--quick", action="store_true", help=f"N={QUICK_N:,}, fewer rounds")
    p.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help=f"comma-separated, from {','.join(ALL_BACKENDS)} (default: all)",
    )
    p.add_argument("--json", metavar="PATH", help="write every case and its ratio here")
    p.add_argument("--n", type=int, help="documents per case (overrides --quick's and the default)")
    p.add_argument("--rounds", type=int, help="measured rounds per case (default 7, quick 3)")
    p.add_argument("--mongo-url", default=os.environ.get("DOQU_BENCH_MONGO_URL"))
    p.add_argument("--pg-url", default=os.environ.get("DOQU_BENCH_PG_URL"))
    p.add_argument("--mysql-url", default=os.environ.get("DOQU_BENCH_MYSQL_URL"))
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    return p.parse_args(argv)


def _missing(group: Group) -> str | None:
    for need in group.requires:
        module, _, attr = need.partition(":")
        try:
            loaded = importlib.import_module(module)
        except Exception as exc:  # any import failure makes the group unavailable
            return f"{module} cannot be imported ({type(exc).__name__}: {exc})"[:200]
        if attr and not hasattr(loaded, attr):
            return f"{module} has no {attr} yet"
    return None


def run(config: Config, backends: Sequence[str]) -> Recorder:
    """Run the groups of the selected backends; every case gets a row."""
    groups = [g for g in all_groups() if g.backend in backends]
    rec = Recorder(config, [c for g in groups for c in g.cases])
    for group in groups:
        keys = [c.key for c in group.cases]
        reason = _missing(group)
        if reason:
            for key in keys:
                rec.unavailable(key, reason)
            continue
        try:
            group.run(config, rec)
        except Exception as exc:
            for key in rec.pending(keys):
                rec.error(key, exc)
    return rec


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 even when targets are missed)."""
    args = _parse(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown:
        print(f"unknown backends: {', '.join(unknown)}", file=sys.stderr)
        return 2
    n = args.n or (QUICK_N if args.quick else FULL_N)
    config = Config(
        n=n,
        quick=args.quick,
        rounds=args.rounds or (3 if args.quick else 7),
        mongo_url=args.mongo_url,
        pg_url=args.pg_url,
        mysql_url=args.mysql_url,
        verbose=args.verbose,
    )
    started = time.monotonic()
    print(
        f"doqu benchmarks: N={n:,}, {config.rounds} rounds after {config.warmup} warm-up,"
        f" backends {','.join(backends)}; ratio = median of per-round doqu/baseline",
        flush=True,
    )
    rec = run(config, backends)
    results = rec.ordered()
    elapsed = time.monotonic() - started
    print()
    print(format_table(results))
    measured = [r for r in results if r.met is not None]
    met = sum(1 for r in measured if r.met)
    print(f"\n{met}/{len(measured)} targets met; {len(results)} cases; {elapsed:.0f} s")
    if args.json:
        payload: dict[str, Any] = {
            "n": n,
            "quick": args.quick,
            "rounds": config.rounds,
            "backends": backends,
            "seconds": round(elapsed, 1),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "cases": [r.as_json() for r in results],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
