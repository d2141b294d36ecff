"""What several conformance modules share: the models, the helpers and ``KINDS``.

The models are public (``doqu.testing.conformance.Person`` …); the helpers are
plain functions without fixtures.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..._document import Document
from ..._query import Query
from ..._storage import Storage


# ----------------------------------------------------------------------- models
class Address(BaseModel):
    """An embedded model (any pydantic model)."""

    city: str
    zip: str | None = None


class Person(Document):
    """The API page's model."""

    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    address: Address | None = None

    class Meta:
        collection = "people"
        indexes = ["age", ("name", "age")]  # noqa: RUF012 - read once, at class creation
        unique = ["email"]  # noqa: RUF012


class Color(enum.Enum):
    """An enum field is stored by value."""

    RED = "red"
    BLUE = "blue"


class Event(Document):
    """Fields whose stored form is a JSON string."""

    when: dt.datetime
    day: dt.date
    uid: uuid.UUID
    price: Decimal
    color: Color


class Strict(Document):
    """A model that forbids extra fields."""

    model_config = ConfigDict(extra="forbid")
    name: str


class Measure(Document):
    """A float field (NaN and Infinity validate in pydantic but cannot be stored)."""

    value: float


class Geo(BaseModel):
    """A nested model whose validation is only type checks."""

    lat: float
    lon: float


class Code(BaseModel):
    """A nested model with a constraint."""

    code: str = Field(max_length=3)


class Trip(Document):
    """Nested models, no field that may be null."""

    name: str
    start: Geo
    stops: list[Geo] = []  # noqa: RUF012 - pydantic copies defaults


class Coded(Document):
    """A nested model with a constraint, in a dict."""

    codes: dict[str, Code] = {}  # noqa: RUF012


# ---------------------------------------------------------------------- helpers
def _pk(item: Any) -> str:
    pk = item["pk"] if isinstance(item, Mapping) else item.pk
    assert isinstance(pk, str)
    return pk


def _pks(items: Iterable[Any]) -> set[str]:
    return {_pk(item) for item in items}


def _ordered(items: Iterable[Any]) -> list[str]:
    return [_pk(item) for item in items]


def _store(db: Storage, collection: str, docs: Mapping[str, Mapping[str, Any]]) -> set[str]:
    db.save_many([{"pk": pk, **doc} for pk, doc in docs.items()], collection=collection)
    return set(docs)


def _check(q: Query[Any], expected: set[str], everything: set[str], **conditions: Any) -> None:
    """``where(**c)`` finds exactly *expected*, ``where_not(**c)`` exactly the rest."""
    shown = ", ".join(f"{k}={v!r}" for k, v in conditions.items())
    assert _pks(q.where(**conditions)) == expected, f"where({shown})"
    assert q.where(**conditions).count() == len(expected), f"where({shown}).count()"
    assert _pks(q.where_not(**conditions)) == everything - expected, f"where_not({shown})"


def _values_set(values: list[Any]) -> list[str]:
    return sorted(repr(v) for v in values)


KINDS: dict[str, dict[str, Any]] = {
    "missing": {"other": 1},
    "null": {"v": None},
    "true": {"v": True},
    "false": {"v": False},
    "zero": {"v": 0},
    "one": {"v": 1},
    "onef": {"v": 1.0},
    "half": {"v": 2.5},
    "neg": {"v": -3},
    "empty": {"v": ""},
    "abc": {"v": "abc"},
    "upper": {"v": "ABC"},
    "str1": {"v": "1"},
    "list": {"v": [1, "a", None]},
    "nolist": {"v": []},
    "obj": {"v": {"a": 1}},
}
STRINGS = {"empty", "abc", "upper", "str1"}


def _kinds(db: Storage) -> tuple[Query[dict[str, Any]], set[str]]:
    return db.query("kinds"), _store(db, "kinds", KINDS)
