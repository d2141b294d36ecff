"""``python -m benchmarks [--quick] [--backends …] [--json out.json]``: run and print the table.

``python -m benchmarks --scale [--scale-ns 10000,100000] [--backends sqlite]`` runs the
index cases at several N instead and prints their ratios side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import ALL_BACKENDS, all_groups
from .harness import Config, Group, Recorder, format_table, run_groups
from .scale import SCALE_BACKENDS, SCALE_NS, format_scale, run_scale, scale_cases, scale_json

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
    p.add_argument(
        "--scale",
        action="store_true",
        help="the index cases (count, values, sorted window) at several N, side by side",
    )
    p.add_argument(
        "--scale-ns",
        metavar="N,N,…",
        help=f"the sizes of --scale (default {','.join(str(n) for n in SCALE_NS)})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    return p.parse_args(argv)


def run(config: Config, backends: Sequence[str], groups: Sequence[Group] | None = None) -> Recorder:
    """Run the groups (default: all) of the selected backends; every case gets a row."""
    return run_groups(config, all_groups() if groups is None else groups, backends)


def _sizes(text: str | None) -> list[int]:
    if not text:
        return list(SCALE_NS)
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--scale-ns wants positive sizes, not {text!r}")
    return sizes


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
    }


def _write(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")


def main_scale(args: argparse.Namespace, backends: list[str]) -> int:
    """``--scale``: the index cases at each N, then one table with N side by side."""
    try:
        ns = _sizes(args.scale_ns)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    chosen = [b for b in backends if b in SCALE_BACKENDS]
    if not chosen:
        print(f"--scale has cases for {','.join(SCALE_BACKENDS)} only", file=sys.stderr)
        return 2
    config = Config(
        n=ns[0],
        quick=args.quick,
        rounds=args.rounds or (3 if args.quick else 5),
        pg_url=args.pg_url,
        verbose=args.verbose,
    )
    started = time.monotonic()
    print(
        f"doqu benchmarks --scale: N = {', '.join(f'{n:,}' for n in ns)};"
        f" {config.rounds} rounds after {config.warmup} warm-up; backends {','.join(chosen)}",
        flush=True,
    )
    results = run_scale(config, chosen, ns)
    cases = scale_cases(chosen)
    elapsed = time.monotonic() - started
    print()
    print(format_scale(cases, ns, results))
    print(f"\n{len(cases)} cases at {len(ns)} sizes; {elapsed:.0f} s")
    if args.json:
        _write(
            args.json,
            {
                "scale": True,
                "ns": ns,
                "rounds": config.rounds,
                "backends": chosen,
                "seconds": round(elapsed, 1),
                **_environment(),
                "cases": scale_json(cases, ns, results),
            },
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 even when targets are missed)."""
    args = _parse(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown:
        print(f"unknown backends: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.scale:
        return main_scale(args, backends)
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
        _write(
            args.json,
            {
                "n": n,
                "quick": args.quick,
                "rounds": config.rounds,
                "backends": backends,
                "seconds": round(elapsed, 1),
                **_environment(),
                "cases": [r.as_json() for r in results],
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
