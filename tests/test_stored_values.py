"""Values every backend stores alike: datetimes by the instant, ``-0.0``, NUL and odd keys.

Each test runs on every backend (the ``db`` fixture) and through each write path
that can carry the value: ``save`` of a model (the fast paths of plain-typed
models and the general one), ``save`` of a plain dict, ``save_many``,
``get_or_create``, ``Query.update`` and the mapping view.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, Field

from doqu import Document, InvalidDocument, QueryError, Storage

UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))
MINUS5 = timezone(timedelta(hours=-5))


class Stamp(Document):
    at: datetime
    note: str = ""

    class Meta:
        collection = "stamps"
        indexes = ("at",)


class Slot(BaseModel):
    start: datetime


class Agenda(Document):
    slots: list[Slot] = Field(default_factory=list)
    first: Slot | None = None


class Reading(Document):
    """Plain types only: the exact-type check and MongoDB's direct stored form apply."""

    value: float = 0.0
    values: list[float] = Field(default_factory=list)
    marks: dict[str, float] = Field(default_factory=dict)
    label: str = ""


def _pks(q: Any) -> list[str]:
    return [d["pk"] if isinstance(d, dict) else d.pk for d in q]


# ------------------------------------------------------------------- datetimes
def test_mixed_offsets_order_and_compare_by_the_instant(db: Storage) -> None:
    a = Stamp(pk="a", at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC))  # 10:00Z
    b = Stamp(pk="b", at=datetime(2026, 1, 1, 11, 0, tzinfo=PLUS2))  # 09:00Z
    c = Stamp(pk="c", at=datetime(2026, 1, 1, 4, 30, tzinfo=MINUS5))  # 09:30Z
    db.save_many([a, b, c])
    assert _pks(Stamp.objects(db).order_by("at")) == ["b", "c", "a"]
    assert _pks(Stamp.objects(db).order_by("-at")) == ["a", "c", "b"]
    cut = datetime(2026, 1, 1, 9, 15, tzinfo=UTC)
    assert _pks(Stamp.objects(db).where(at__lt=cut)) == ["b"]
    assert sorted(_pks(Stamp.objects(db).where(at__gte=cut))) == ["a", "c"]
    # An operand in another offset is the same instant.
    same = datetime(2026, 1, 1, 4, 0, tzinfo=MINUS5)  # 09:00Z
    assert _pks(Stamp.objects(db).where(at=same)) == ["b"]
    assert _pks(Stamp.objects(db).where(at__between=(same, cut))) == ["b"]
    assert _pks(Stamp.objects(db).where(at__in=[same, datetime(2030, 1, 1, tzinfo=UTC)])) == ["b"]
    back = db.get(Stamp, "b")
    assert back.at == b.at  # the same instant, read back in UTC
    assert back.at.utcoffset() == timedelta(0)
    assert db.get("stamps", "b")["at"] == "2026-01-01T09:00:00.000000Z"


def test_fractional_seconds_sort_after_whole_seconds(db: Storage) -> None:
    t0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    stamps = [
        Stamp(pk="half", at=t0 + timedelta(seconds=0.5)),
        Stamp(pk="whole", at=t0),
        Stamp(pk="next", at=t0 + timedelta(seconds=1)),
        Stamp(pk="micro", at=t0 + timedelta(microseconds=1)),
    ]
    db.save_many(stamps)
    assert _pks(Stamp.objects(db).order_by("at")) == ["whole", "micro", "half", "next"]
    assert _pks(Stamp.objects(db).where(at__gt=t0).order_by("at")) == ["micro", "half", "next"]
    assert db.get("stamps", "whole")["at"] == "2026-03-01T12:00:00.000000Z"


def test_naive_datetimes_stay_as_given_in_the_fixed_form(db: Storage) -> None:
    naive = datetime(2026, 5, 6, 7, 8, 9)
    db.save(Stamp(pk="n", at=naive))
    assert db.get("stamps", "n")["at"] == "2026-05-06T07:08:09.000000"
    assert db.get(Stamp, "n").at == naive
    assert _pks(Stamp.objects(db).where(at=naive)) == ["n"]


def test_datetimes_in_embedded_models_lists_and_extras(db: Storage) -> None:
    at = datetime(2026, 1, 1, 11, 0, tzinfo=PLUS2)
    doc = Agenda(pk="g", slots=[Slot(start=at)], first=Slot(start=at), when=at)
    db.save(doc)
    stored = db.get("agenda", "g")
    assert stored["slots"] == [{"start": "2026-01-01T09:00:00.000000Z"}]
    assert stored["first"] == {"start": "2026-01-01T09:00:00.000000Z"}
    assert stored["when"] == "2026-01-01T09:00:00.000000Z"
    assert _pks(Agenda.objects(db).where(first__start=at)) == ["g"]
    assert _pks(Agenda.objects(db).where(slots__contains={"start": at})) == ["g"]


def test_datetimes_through_update_get_or_create_and_the_view(db: Storage) -> None:
    at = datetime(2026, 1, 1, 11, 0, tzinfo=PLUS2)
    doc, created = db.get_or_create(Stamp, at=at)
    assert created
    assert db.get("stamps", doc.pk)["at"] == "2026-01-01T09:00:00.000000Z"
    again, created = db.get_or_create(Stamp, at=at.astimezone(UTC))
    assert not created and again.pk == doc.pk
    later = datetime(2026, 1, 1, 12, 0, tzinfo=PLUS2)
    assert Stamp.objects(db).where(pk=doc.pk).update(at=later) == 1
    assert db.get("stamps", doc.pk)["at"] == "2026-01-01T10:00:00.000000Z"
    view = db.dict(Stamp)
    view["v"] = Stamp(at=at)
    assert db.get("stamps", "v")["at"] == "2026-01-01T09:00:00.000000Z"


# ------------------------------------------------------------------ minus zero
def _positive_zero(value: Any) -> bool:
    return value == 0 and math.copysign(1.0, value) > 0


def test_minus_zero_is_stored_as_zero_everywhere(db: Storage) -> None:
    db.save(Reading(pk="m", value=-0.0, values=[1.5, -0.0], marks={"z": -0.0}))
    db.save_many([Reading(pk=f"b{i}", value=-0.0) for i in range(3)])
    db.save({"pk": "d", "v": -0.0, "l": [-0.0, {"k": -0.0}]}, collection="plain")
    db.get_or_create("plain", defaults={"w": -0.0}, name="goc")
    got = db.get("reading", "m")
    assert _positive_zero(got["value"]) and _positive_zero(got["values"][1])
    assert _positive_zero(got["marks"]["z"])
    assert all(_positive_zero(db.get(Reading, f"b{i}").value) for i in range(3))
    plain = db.get("plain", "d")
    assert _positive_zero(plain["v"]) and _positive_zero(plain["l"][0])
    assert _positive_zero(plain["l"][1]["k"])
    assert _positive_zero(db.query("plain").where(name="goc").first()["w"])  # type: ignore[index]
    db.query("plain").where(pk="d").update(v=-0.0, l__push=-0.0)
    plain = db.get("plain", "d")
    assert _positive_zero(plain["v"]) and _positive_zero(plain["l"][-1])
    view = db.dict("view")
    view["z"] = -0.0
    view["l"] = [-0.0]
    assert _positive_zero(view["z"]) and _positive_zero(view["l"][0])
    assert _positive_zero(db.get("view", "z")["value"])
    # -0.0 and 0.0 are one number: either finds both.
    assert db.query("reading").where(value=0.0).count() == 4
    assert db.query("reading").where(value=-0.0).count() == 4


# ------------------------------------------------------- NUL and odd object keys
HOSTILE = [
    ("a NUL in a string", {"s": "a\x00b"}),
    ("a NUL in a list", {"l": ["ok", "\x00"]}),
    ("a NUL in a key", {"o": {"a\x00": 1}}),
    ("a key starting with $", {"o": {"$gt": 1}}),
    ("a top-level key starting with $", {"$where": 1}),
    ("a key holding a dot", {"o": {"a.b": 1}}),
    ("a nested key holding a dot", {"o": [{"x": {"k.": 1}}]}),
]


@pytest.mark.parametrize(("what", "data"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_unstorable_values_are_refused_on_every_path(
    db: Storage, what: str, data: dict[str, Any]
) -> None:
    db.save({"pk": "keep", "s": "fine"}, collection="hostile")
    with pytest.raises(InvalidDocument):
        db.save({"pk": "bad", **data}, collection="hostile")
    with pytest.raises(InvalidDocument):
        db.save_many([{"pk": "ok2", "s": "x"}, {"pk": "bad", **data}], collection="hostile")
    with pytest.raises(InvalidDocument):
        db.get_or_create("hostile", defaults=data, name="new")
    top, value = next(iter(data.items()))
    if not top.startswith("$"):
        with pytest.raises(QueryError):  # refused before anything runs, as any bad update
            db.query("hostile").where(pk="keep").update(**{top: value})
    view = db.dict("hostile_view")
    with pytest.raises(InvalidDocument):
        view["k"] = data
    assert _pks(db.query("hostile")) == ["keep"]
    assert db.get("hostile", "keep") == {"pk": "keep", "s": "fine"}
    assert len(view) == 0


@pytest.mark.parametrize(
    "reading",
    [
        Reading(label="a\x00b"),
        Reading(marks={"$x": 1.0}),
        Reading(marks={"a.b": 1.0}),
        Reading(marks={"\x00": 1.0}),
        Reading(label="fine", extra_key={"$set": 1}),
        Reading(label="fine", **{"a.b": 1}),
    ],
    ids=["nul-field", "dollar-key", "dot-key", "nul-key", "extra-dollar", "extra-dot"],
)
def test_plain_typed_models_refuse_them_too(db: Storage, reading: Reading) -> None:
    """The fast paths (exact-type check, MongoDB's direct stored form) refuse the same."""
    with pytest.raises(InvalidDocument):
        db.save(reading)
    with pytest.raises(InvalidDocument):
        db.save_many([Reading(label="ok"), reading])
    assert db.query(Reading).count() == 0


def test_values_that_only_look_odd_are_stored(db: Storage) -> None:
    """Texts the fast scans look at twice, but that are fine, are stored as they are."""
    values = {
        "price": "$5",
        "dotted": "a.b",
        "quoted": 'x.y":',
        "slash": "\\u0000",
        "neg": -0.05,
        "zero_text": "-0.0",
        "marks": {"a_b": 1.5, "cost$": 2.0},
    }
    db.save({"pk": "odd", **values}, collection="odd")
    assert db.get("odd", "odd") == {"pk": "odd", **values}
    db.save(Reading(pk="r", label="$x.y", marks={"x$": -0.5}, values=[-0.01]))
    back = db.get(Reading, "r")
    assert back.label == "$x.y" and back.marks == {"x$": -0.5} and back.values == [-0.01]


def test_operands_with_nul_or_odd_keys_match_nothing(db: Storage) -> None:
    """Query operands are compared, never stored: they may hold what no document holds."""
    db.save({"pk": "a", "s": "ab", "o": {"k": 1}}, collection="ops")
    assert db.query("ops").where(s="a\x00b").count() == 0
    assert db.query("ops").where(o={"$gt": 1}).count() == 0
    assert db.query("ops").where_not(s="a\x00b").count() == 1
