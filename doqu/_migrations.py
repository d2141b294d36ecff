"""``migrate``: rewrite a versioned model's older documents at its current version.

Documents are read in pk order, a batch at a time; each one below the version is
upgraded (:func:`doqu._versions.upgraded`), validated and written back by
compare-and-swap, so a rerun after a crash continues where it stopped and never
upgrades a stored document twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._encoding import finalizer, stored_dump
from ._errors import ConfigError
from ._tree import Cond, QuerySpec
from ._versions import VERSION_KEY, stamp, version_of

if TYPE_CHECKING:
    from ._document import Document
    from ._storage import Storage

__all__ = ["MAX_ATTEMPTS", "MigrationReport", "migrate"]

#: Writes tried per document while other writers keep changing it.
MAX_ATTEMPTS = 20


@dataclass
class MigrationReport:
    """What :func:`migrate` did (or, with ``dry_run``, would do)."""

    #: Documents rewritten at the current version (would be, with ``dry_run``).
    upgraded: int = 0
    #: Documents already at the current version.
    current: int = 0
    #: ``(pk, error)`` of each document that could not be upgraded (left as it is).
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no document failed."""
        return not self.failed


def migrate(
    storage: Storage,
    model: type[Document],
    *,
    batch: int = 1000,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
) -> MigrationReport:
    """Rewrite every document of *model*'s collection below the current version.

    Documents are read in pk order, *batch* at a time; each older one is
    upgraded, validated and written back by compare-and-swap (a document
    another writer changed meanwhile is read again). A rerun after a crash
    finds the documents already written at the current version and leaves
    them alone, so no upgrade runs twice on a stored document.
    ``progress(n)`` is called with the number of documents looked at so far.
    """
    current = version_of(model)
    if current is None:
        raise ConfigError(f"{model.__name__} has no Meta.version: nothing to migrate")
    if type(batch) is not int or batch < 1:
        raise ConfigError(f"batch takes a positive int, not {batch!r}")
    if not dry_run:
        storage._check_writable("migrate")
    collection = storage.collection(model)
    finalize = finalizer(model)
    report = MigrationReport()
    seen = 0
    last: str | None = None
    while True:
        node = None if last is None else Cond(("pk",), "gt", last)
        rows = list(collection.select(QuerySpec(node, order=((("pk",), False),), limit=batch)))
        if not rows:
            return report
        for pk, data in rows:
            for _attempt in range(MAX_ATTEMPTS):
                if data.get(VERSION_KEY, 1) == current:
                    report.current += 1
                    break
                try:
                    new = finalize(stamp(model, stored_dump(collection.load(pk, data))))
                except Exception as exc:  # the user's upgrade failed: named, left as is
                    error = getattr(exc, "error", None) or exc
                    report.failed.append((pk, f"{type(error).__name__}: {error}"))
                    break
                if dry_run or collection.swap(pk, data, new):
                    report.upgraded += 1
                    break
                again = collection.fetch([pk]).get(pk)
                if again is None:
                    break  # deleted meanwhile
                data = again
            else:
                report.failed.append((pk, "another writer kept changing it; run migrate again"))
        seen += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(seen)
