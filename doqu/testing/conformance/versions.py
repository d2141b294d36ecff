"""Schema versions: older documents upgraded on read and by ``migrate``; newer ones refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from ..._document import Document
from ..._errors import CorruptDocument
from ..._storage import Storage


class Member(Document):
    """Version 4: ``name`` (v1) became ``full_name`` (v2), ``age`` came (v3), ``tags`` (v4)."""

    full_name: str
    age: int
    tags: list[str] = Field(default_factory=list)

    class Meta:
        collection = "members"
        version = 4


@Member.migration(from_version=1)
def _rename(doc: dict[str, Any]) -> dict[str, Any]:
    doc["full_name"] = doc.pop("name")
    return doc


@Member.migration(from_version=2)
def _age(doc: dict[str, Any]) -> dict[str, Any]:
    doc.setdefault("age", 0)
    doc.get("extra", {}).pop("old", None)  # in place, inside a nested value
    return doc


@Member.migration(from_version=3)
def _tags(doc: dict[str, Any]) -> dict[str, Any]:
    doc["tags"] = [t.strip() for t in doc.pop("tag_text", "").split(",") if t.strip()]
    return doc


STORED: list[dict[str, Any]] = [  # as models of versions 1, 2 and 3 left them (v1: none)
    {"pk": "v1", "name": "Ann"},
    {"pk": "v2", "full_name": "Bo", "extra": {"old": 1}, "_v": 2},
    {"pk": "v3", "full_name": "Cy", "age": 30, "tag_text": "a, b", "_v": 3},
]
EXPECTED = {
    "v1": ("Ann", 0, []),
    "v2": ("Bo", 0, []),
    "v3": ("Cy", 30, ["a", "b"]),
    "v4": ("Di", 40, ["x"]),
}


def _members(db: Storage) -> dict[str, tuple[str, int, list[str]]]:
    return {m.pk: (m.full_name, m.age, m.tags) for m in db.query(Member)}  # type: ignore[misc]


def test_older_documents_are_upgraded_on_read(db: Storage) -> None:
    db.save_many(STORED, collection="members")
    db.save(Member(pk="v4", full_name="Di", age=40, tags=["x"]))
    assert db.get("members", "v4")["_v"] == 4  # stored with its version
    assert _members(db) == EXPECTED
    assert [m.pk for m in db.get_many(Member, ["v3", "v1"])] == ["v3", "v1"]
    assert db.get(Member, "v1").full_name == "Ann"
    assert db.dict(Member)["v2"].full_name == "Bo"
    assert db.get("members", "v1") == {"pk": "v1", "name": "Ann"}  # left as it was stored
    # An update reads the stored document as the model's, and writes it current.
    assert db.query(Member).where(pk="v1").update(age__inc=5) == 1
    assert db.get("members", "v1") == {
        "pk": "v1",
        "full_name": "Ann",
        "age": 5,
        "tags": [],
        "_v": 4,
    }


def test_migrate_rewrites_older_documents_once(db: Storage) -> None:
    db.save_many(STORED, collection="members")
    db.save(Member(pk="v4", full_name="Di", age=40, tags=["x"]))
    dry = db.migrate(Member, dry_run=True)
    assert (dry.upgraded, dry.current, dry.failed) == (3, 1, [])
    assert db.get("members", "v1") == {"pk": "v1", "name": "Ann"}  # nothing written
    report = db.migrate(Member, batch=2)
    assert (report.upgraded, report.current, report.failed) == (3, 1, [])
    stored = {d["pk"]: d for d in db.query("members")}
    assert {pk: d["_v"] for pk, d in stored.items()} == {"v1": 4, "v2": 4, "v3": 4, "v4": 4}
    assert "name" not in stored["v1"] and "tag_text" not in stored["v3"]
    assert _members(db) == EXPECTED
    again = db.migrate(Member)
    assert (again.upgraded, again.current) == (0, 4)


def test_a_document_newer_than_the_model_is_refused(db: Storage) -> None:
    db.save({"pk": "new", "full_name": "Ed", "age": 1, "_v": 5}, collection="members")
    with pytest.raises(CorruptDocument, match="version 5, newer than Member's version 4"):
        db.get(Member, "new")
    report = db.migrate(Member)
    assert report.upgraded == 0 and [pk for pk, _ in report.failed] == ["new"]
    assert db.get("members", "new")["_v"] == 5  # never downgraded
