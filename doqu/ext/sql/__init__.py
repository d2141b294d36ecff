"""``doqu.ext.sql``: SQLite, PostgreSQL (JSONB) and MariaDB/MySQL (JSON) via SQLAlchemy 2."""

from __future__ import annotations

from ._storage import SQLStorage

__all__ = ["SQLStorage"]
