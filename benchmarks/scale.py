"""``python -m benchmarks --scale``: the index cases at several N, side by side.

A query shape that meets the index keeps its ratio (and nearly its time per
call) as N grows; one that throws the index away grows with N. Each N builds
its databases once (doqu's ``save_many`` in batches, the raw table alongside)
and runs every index case of :mod:`benchmarks.indexes` on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .harness import Case, Config, Result, human_time, run_groups

__all__ = ["SCALE_BACKENDS", "SCALE_NS", "format_scale", "run_scale", "scale_json"]

#: The sizes of a ``--scale`` run unless ``--scale-ns`` names others.
SCALE_NS = (10_000, 100_000, 1_000_000)
#: Backends that have index cases.
SCALE_BACKENDS = ("sqlite", "postgresql")

ByN = dict[str, dict[int, Result]]
#: What a check adds to a note (a plan without the index, answers that differ).
_PROBLEM = re.compile(r"plan|differently|cannot")


def scale_cases(backends: Sequence[str]) -> list[Case]:
    """The index cases of *backends*, in table order."""
    from .indexes import GROUPS

    return [c for g in GROUPS if g.backend in backends for c in g.cases]


def run_scale(config: Config, backends: Sequence[str], ns: Sequence[int]) -> ByN:
    """Run the index groups of *backends* once per N; results by case key, then N."""
    from . import indexes

    out: ByN = {}
    for n in ns:
        print(f"\n-- N = {n:,}", flush=True)
        rec = run_groups(replace(config, n=n), indexes.GROUPS, backends)
        for result in rec.ordered():
            out.setdefault(result.key, {})[n] = result
    return out


def _cell(r: Result | None) -> str:
    if r is None:
        return "-"
    if r.status != "ok" or r.ratio is None:
        return r.status
    verdict = "" if r.met is None else (" met" if r.met else " MISSED")
    return f"{r.ratio:.2f}{verdict} ({human_time(r.doqu_per_op)})"


def format_scale(cases: Sequence[Case], ns: Sequence[int], results: ByN) -> str:
    """One line per case: target, then ratio (verdict, doqu's time per call) at each N."""
    widths = [44, 42, 9] + [26] * len(ns)
    head = ["case", "baseline", "target", *(f"N={n:,}" for n in ns)]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    rows = [line(head), "-+-".join("-" * w for w in widths)]
    notes = []
    for case in cases:
        by_n = results.get(case.key, {})
        rows.append(
            line([case.title, case.baseline, case.target_text, *(_cell(by_n.get(n)) for n in ns)])
        )
        for n in ns:
            r = by_n.get(n)
            if r is not None and r.note and (r.status != "ok" or _PROBLEM.search(r.note)):
                notes.append(f"{case.key} at N={n:,}: {r.note}")
    if notes:
        rows += ["", *notes]
    return "\n".join(rows)


def scale_json(cases: Sequence[Case], ns: Sequence[int], results: ByN) -> list[dict[str, Any]]:
    """Per case: its fields, and under ``"by_n"`` the full result at each N."""
    out = []
    for case in cases:
        by_n = results.get(case.key, {})
        out.append(
            {
                "key": case.key,
                "backend": case.backend,
                "case": case.title,
                "baseline": case.baseline,
                "target": case.target,
                "ratios": {str(n): by_n[n].ratio for n in ns if n in by_n},
                "by_n": {str(n): by_n[n].as_json() for n in ns if n in by_n},
            }
        )
    return out
