"""Write ``people.jsonl.gz``: the sample dataset ``doqu demo`` loads.

Deterministic (a fixed seed, no clock): running it again writes the same bytes.
Run from anywhere: ``python doqu/data/make_people.py``.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

COUNT = 3000
SEED = 20261123
OUT = Path(__file__).with_name("people.jsonl.gz")

FIRST = [
    "Ada",
    "Alan",
    "Amara",
    "Ana",
    "Anders",
    "Ann",
    "Aiko",
    "Bea",
    "Ben",
    "Bruno",
    "Carla",
    "Chen",
    "Chiara",
    "Cy",
    "Dara",
    "David",
    "Dmitri",
    "Elena",
    "Emil",
    "Emma",
    "Fatima",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jamal",
    "Jana",
    "Jonas",
    "Kai",
    "Karim",
    "Lea",
    "Leo",
    "Lina",
    "Luca",
    "Maya",
    "Mei",
    "Mateo",
    "Nadia",
    "Nia",
    "Noah",
    "Olga",
    "Omar",
    "Paula",
    "Pedro",
    "Priya",
    "Rafael",
    "Rosa",
    "Sami",
    "Sara",
    "Sofia",
    "Taro",
    "Tess",
    "Theo",
    "Una",
    "Vera",
    "Wen",
    "Yara",
    "Youssef",
    "Zoe",
]
LAST = [
    "Abe",
    "Almeida",
    "Berg",
    "Bianchi",
    "Boateng",
    "Chen",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Hansen",
    "Ito",
    "Jansen",
    "Kaur",
    "Kim",
    "Kowalski",
    "Lambert",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Mueller",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Varga",
    "Wagner",
    "Wang",
    "Weber",
    "Yilmaz",
    "Zhang",
]
# (city, country, weight): a skewed distribution, as real data is.
CITIES = (
    ("Paris", "FR", 14), ("Lyon", "FR", 5), ("Berlin", "DE", 12), ("Munich", "DE", 4),
    ("Madrid", "ES", 8), ("Lisbon", "PT", 6), ("Rome", "IT", 7), ("Milan", "IT", 5),
    ("Amsterdam", "NL", 6), ("Oslo", "NO", 3), ("Warsaw", "PL", 4), ("Tokyo", "JP", 8),
    ("Osaka", "JP", 3), ("Seoul", "KR", 4), ("Lagos", "NG", 4), ("Nairobi", "KE", 3),
    ("Toronto", "CA", 5), ("Austin", "US", 5), ("Boston", "US", 4), ("São Paulo", "BR", 5),
)  # fmt: skip
STREETS = [
    "Main",
    "Oak",
    "Station",
    "Harbour",
    "River",
    "Mill",
    "Park",
    "Church",
    "Market",
    "Garden",
    "Hill",
    "Lake",
]
KINDS = ["St", "Ave", "Rd", "Way", "Lane"]
TAGS = [
    "admin",
    "beta",
    "early-adopter",
    "newsletter",
    "vip",
    "remote",
    "mentor",
    "speaker",
    "volunteer",
    "night-owl",
    "contributor",
    "reviewer",
]
LANGUAGES = [
    "python",
    "rust",
    "go",
    "typescript",
    "java",
    "kotlin",
    "sql",
    "c",
    "haskell",
    "elixir",
]
PET_KINDS = ("cat", "dog", "rabbit", "parrot", "fish", "tortoise")
PET_NAMES = [
    "Miso",
    "Pixel",
    "Biscuit",
    "Luna",
    "Pepper",
    "Nori",
    "Olive",
    "Ziggy",
    "Mochi",
    "Rex",
    "Tofu",
    "Juniper",
]
ROLES = ("engineer", "designer", "manager", "analyst", "researcher", "support", "sales")


def person(rng: random.Random, n: int) -> dict[str, Any]:
    """One realistic person: nested address, lists, optional and schemaless fields."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, _ = rng.choices(CITIES, weights=[c[2] for c in CITIES])[0]
    doc: dict[str, Any] = {
        "pk": f"p{n:05d}",
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{n}@example.com",
        "age": max(16, min(90, round(rng.gauss(38, 13)))),
        "role": rng.choice(ROLES),
        "active": rng.random() < 0.8,
        "score": round(rng.uniform(0, 100), 1),
        "joined": f"{rng.randint(2012, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "tags": sorted(rng.sample(TAGS, rng.choice((0, 1, 1, 2, 2, 3, 4)))),
        "languages": rng.sample(LANGUAGES, rng.randint(1, 4)),
        "address": {
            "street": f"{rng.randint(1, 250)} {rng.choice(STREETS)} {rng.choice(KINDS)}",
            "city": city,
            "country": country,
            "zip": f"{rng.randint(1000, 99999):05d}",
        },
        "pets": [
            {"kind": rng.choice(PET_KINDS), "name": rng.choice(PET_NAMES)}
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2)))
        ],
    }
    # Schemaless extras: present on some documents only, as in real data.
    if rng.random() < 0.3:
        doc["nickname"] = first[:3].lower() + rng.choice(("", "y", "o", "z"))
    if rng.random() < 0.1:
        doc["manager"] = None
    elif rng.random() < 0.4:
        doc["manager"] = f"p{rng.randint(0, COUNT - 1):05d}"
    return doc


def main() -> None:
    """Write the dataset (gzip with no timestamp, so the bytes are reproducible)."""
    rng = random.Random(SEED)
    lines = [json.dumps(person(rng, n), ensure_ascii=False) for n in range(COUNT)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with (
        OUT.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(data)
    print(f"wrote {COUNT} documents to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
