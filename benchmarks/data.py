"""Documents of a realistic shape (strings, ints, a bool, a nested object, a list).

Generated deterministically, so doqu and every baseline store the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from doqu import Document

__all__ = [
    "AGE_CUTOFF",
    "RANK_CUTOFF",
    "Address",
    "Person",
    "RankedPerson",
    "dict_batches",
    "make_dicts",
    "make_keys",
    "make_people",
]

#: ``age > AGE_CUTOFF`` matches about 49% of the documents (ages 18..99).
AGE_CUTOFF = 50
#: ``rank > RANK_CUTOFF`` matches 2.7% of the documents (ranks 0..999).
RANK_CUTOFF = 972

_FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Ines", "José"]
_LAST = ["Smith", "Okafor", "Müller", "Tanaka", "Rossi", "Nguyen", "Silva", "Kowalski"]
_CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Quito", "Pune", "Perth", "Graz"]
_TAGS = ["admin", "beta", "vip", "new", "churn-risk", "newsletter", "mobile", "eu", "us"]


class Address(BaseModel):
    """An embedded object."""

    street: str
    city: str
    zip: str


class Person(Document):
    """The benchmark document: no declared index."""

    name: str
    email: str
    age: int
    rank: int
    active: bool
    tags: list[str]
    address: Address

    class Meta:
        collection = "bench_people"


class RankedPerson(Document):
    """The same shape with an index on ``rank`` (the selective query, the index cases)."""

    name: str
    email: str
    age: int
    rank: int
    active: bool
    tags: list[str]
    address: Address

    class Meta:
        collection = "bench_ranked"
        indexes = ("rank",)


def make_dicts(n: int, seed: int = 8, start: int = 0) -> list[dict[str, Any]]:
    """*n* documents as plain JSON dicts (without a pk); *start* numbers their emails."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        out.append(
            {
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "age": rng.randint(18, 99),
                "rank": rng.randrange(1000),
                "active": rng.random() < 0.8,
                "tags": rng.sample(_TAGS, rng.randint(0, 4)),
                "address": {
                    "street": f"{rng.randint(1, 400)} {rng.choice(_LAST)} Street",
                    "city": rng.choice(_CITIES),
                    "zip": f"{rng.randint(10000, 99999)}",
                },
            }
        )
    return out


def dict_batches(n: int, batch: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """*n* documents in lists of at most *batch* (the first is ``make_dicts(batch)``).

    For the large cases: a million dicts at once would take gigabytes.
    """
    for start in range(0, n, batch):
        yield make_dicts(min(batch, n - start), seed=8 + start, start=start)


def make_people(dicts: list[dict[str, Any]], model: type[Document] = Person) -> list[Any]:
    """Validated models from :func:`make_dicts` output, pk unset."""
    return [model.model_validate(d) for d in dicts]


def make_keys(n: int, prefix: str = "") -> list[str]:
    """*n* distinct 32-character keys that sort in order (like doqu's generated pks)."""
    return [f"{prefix}{i:032x}"[-32:] for i in range(n)]
