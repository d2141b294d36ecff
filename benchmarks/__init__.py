"""Ratio benchmarks: doqu against raw drivers and peer libraries, measured in one run.

Run ``python -m benchmarks --help`` from the repository root. Every case runs
doqu and its baseline alternately in the same process and reports the median
of the per-round ratios (doqu ÷ baseline) against the case's target; see
``docs/performance.rst``. ``python -m benchmarks --scale`` runs the index cases
(:mod:`benchmarks.indexes`) at several N and prints their ratios side by side.
"""

from __future__ import annotations

from .harness import Group

__all__ = ["ALL_BACKENDS", "all_groups"]

ALL_BACKENDS = ("sqlite", "postgresql", "mysql", "mongodb", "tinydb")


def all_groups() -> list[Group]:
    """Every group of cases, in table order."""
    from . import aio, indexes, mapping, mongo, refs, rss, sql, tinydb_cases

    sqlite_orjson, sqlite, postgresql, mysql = sql.GROUPS
    aio_pg, aio_mongo, aio_codec = aio.GROUPS
    refs_sqlite, refs_sqlite_peer, refs_pg, refs_pg_peer = refs.GROUPS
    return [
        sqlite_orjson,
        sqlite,
        indexes.GROUPS[0],
        refs_sqlite,
        refs_sqlite_peer,
        *mapping.GROUPS,
        rss.GROUPS[0],
        postgresql,
        indexes.GROUPS[1],
        refs_pg,
        refs_pg_peer,
        mysql,
        rss.GROUPS[1],
        aio_pg,
        *tinydb_cases.GROUPS,
        *mongo.GROUPS,
        aio_mongo,
        aio_codec,
    ]
