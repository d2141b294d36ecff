"""Stored documents that no longer validate: ``CorruptDocument``, or skipped and reported.

Corrupt data is planted by saving plain dicts into a model's collection (as an
older program version, a migration gone wrong or another tool would). Reads
through the model raise :class:`doqu.CorruptDocument` naming collection and
pk; ``Query.iter(on_corrupt="skip" | callable)`` leaves such documents out and
reports each one, so a scan can finish.
"""

from __future__ import annotations

import logging

import pytest

import doqu
from doqu import CorruptDocument, Document

from .conftest import count


class Account(Document):
    owner: str
    balance: int = 0
    tags: list[str] = []  # noqa: RUF012 - pydantic copies defaults

    class Meta:
        collection = "accounts"


GOOD = 20
CORRUPT = {
    "c-type": {"owner": "ann", "balance": "lots", "tags": []},  # wrong type
    "c-missing": {"balance": 3, "tags": []},  # a required field is gone
    "c-list": {"owner": "bob", "balance": 1, "tags": "not a list"},
    "c-nested": {"owner": {"first": "x"}, "balance": 2, "tags": []},
    "c-null": {"owner": None, "balance": None, "tags": None},
}


def _plant(db: doqu.Storage) -> None:
    db.save_many([Account(pk=f"g{i:02d}", owner=f"o{i}", balance=i) for i in range(GOOD)])
    db.save_many([{"pk": pk, **data} for pk, data in CORRUPT.items()], collection="accounts")


def _names_it(exc: CorruptDocument, pk: str) -> None:
    assert exc.collection == "accounts" and exc.pk == pk
    assert "accounts" in str(exc) and repr(pk) in str(exc)
    assert exc.error is not None and exc.__cause__ is exc.error


def test_reads_of_a_corrupt_document_raise_corrupt_document(db: doqu.Storage, backend: str) -> None:
    _plant(db)
    raised = 0
    for pk in CORRUPT:
        for read in (
            lambda pk=pk: db.get(Account, pk),
            lambda pk=pk: db.get_many(Account, ["g00", pk]),
            lambda pk=pk: db.query(Account).where(pk=pk).first(),
            lambda pk=pk: db.dict(Account)[pk],
        ):
            with pytest.raises(CorruptDocument) as info:
                read()
            _names_it(info.value, pk)
            raised += 1
    with pytest.raises(CorruptDocument) as info:
        list(db.query(Account))  # plain iteration stops at the first one
    assert info.value.pk in CORRUPT
    # The good documents stay readable, and the raw data is still there as stored.
    assert db.get(Account, "g05").balance == 5
    assert db.query("accounts").count() == GOOD + len(CORRUPT)
    assert db.get("accounts", "c-type") == {"pk": "c-type", **CORRUPT["c-type"]}
    count("corrupt data", backend, corrupt_planted=len(CORRUPT), corrupt_reads_raised=raised)


def test_iteration_can_skip_and_report_corrupt_documents(
    db: doqu.Storage, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    _plant(db)
    q = db.query(Account).order_by("pk")
    reported: list[CorruptDocument] = []
    good = list(q.iter(on_corrupt=reported.append))
    assert [a.pk for a in good] == [f"g{i:02d}" for i in range(GOOD)]
    assert sorted(e.pk for e in reported) == sorted(CORRUPT)
    for exc in reported:
        _names_it(exc, exc.pk)
    with caplog.at_level(logging.WARNING, logger="doqu"):
        skipped = list(q.where(balance__gte=0).iter(on_corrupt="skip"))
    assert [a.pk for a in skipped] == [f"g{i:02d}" for i in range(GOOD)]
    warned = [r for r in caplog.records if r.name == "doqu" and r.levelno == logging.WARNING]
    # balance__gte=0 matches three of the corrupt ones (their balance is a number).
    assert sorted(next(p for p in CORRUPT if repr(p) in r.getMessage()) for r in warned) == [
        "c-list",
        "c-missing",
        "c-nested",
    ]
    assert all("accounts" in r.getMessage() for r in warned)
    with pytest.raises(CorruptDocument):
        list(q.iter(on_corrupt="raise"))
    with pytest.raises(ValueError):
        list(q.iter(on_corrupt="ignore"))  # type: ignore[arg-type]
    count(
        "corrupt data",
        backend,
        skipped_and_reported=len(reported) + len(warned),
        good_documents_returned=len(good) + len(skipped),
    )
