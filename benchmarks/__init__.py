"""Ratio benchmarks: doqu against raw drivers and peer libraries, measured in one run.

Run ``python -m benchmarks --help`` from the repository root. Every case runs
doqu and its baseline alternately in the same process and reports the median
of the per-round ratios (doqu ÷ baseline) against the case's target; see
``docs/performance.rst``.
"""

from __future__ import annotations

from .harness import Group

__all__ = ["ALL_BACKENDS", "all_groups"]

ALL_BACKENDS = ("sqlite", "postgresql", "mysql", "mongodb", "tinydb")


def all_groups() -> list[Group]:
    """Every group of cases, in table order."""
    from . import mapping, mongo, rss, sql, tinydb_cases

    return [
        *sql.GROUPS[:1],
        *mapping.GROUPS,
        rss.GROUPS[0],
        *sql.GROUPS[1:],
        rss.GROUPS[1],
        *tinydb_cases.GROUPS,
        *mongo.GROUPS,
    ]
