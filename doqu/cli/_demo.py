"""``doqu demo``: load the shipped sample dataset and take a short tour of queries."""

from __future__ import annotations

import datetime
import gzip
import importlib.util
import json
import time
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import click
from pydantic import BaseModel, Field
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from doqu import Document, Q, Storage

from ._app import cli
from ._common import dump_json, open_storage, out_stream, progress, stderr_console
from ._transfer import iter_batches

__all__ = ["TOUR", "Address", "Person", "Pet", "demo", "load_people", "sample_documents"]

DEFAULT_DEMO_URL = "sqlite:///doqu-demo.db"
DATASET = "people.jsonl.gz"


class Address(BaseModel):
    """Where a person lives (an embedded model)."""

    street: str
    city: str
    country: str
    zip: str | None = None


class Pet(BaseModel):
    """A pet (list of embedded models)."""

    kind: str
    name: str


class Person(Document):
    """A person of the sample dataset; extra fields (nickname, manager) are kept."""

    name: str
    email: str
    age: int
    role: str
    active: bool = True
    score: float = 0.0
    joined: datetime.date
    tags: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    address: Address
    pets: list[Pet] = Field(default_factory=list)

    class Meta:
        collection = "demo_people"
        indexes = ("age", "address.city", "email")


def sample_documents() -> Iterator[dict[str, Any]]:
    """The shipped dataset, one plain document (with its ``"pk"``) at a time."""
    with (files("doqu") / "data" / DATASET).open("rb") as raw, gzip.open(raw, "rt") as fh:
        for line in fh:
            yield json.loads(line)


def load_people(db: Storage, console: Console) -> int:
    """Empty the demo collection and load the dataset into it; return how many."""
    db.clear(Person)
    loaded = 0
    with progress(console) as bar:
        task = bar.add_task("loading people", total=None)
        for chunk in iter_batches(sample_documents(), 500):
            db.save_many([Person.model_validate(doc) for doc in chunk])
            loaded += len(chunk)
            bar.update(task, completed=loaded)
    return loaded


#: The tour: (what it shows, a Python expression run with ``db``, ``Person`` and ``Q``).
TOUR: list[tuple[str, str]] = [
    ("how many documents", "Person.objects(db).count()"),
    (
        "nested paths and lookups",
        'Person.objects(db).where(age__gte=30, address__city="Paris").count()',
    ),
    (
        "lists: contains, order_by and a slice (LIMIT in the database)",
        'Person.objects(db).where(address__country="JP", tags__contains="vip")'
        '.order_by("-age", "name")[:5]',
    ),
    (
        "where_not and all-of-a-list",
        'Person.objects(db).where(languages__all=["python", "rust"])'
        '.where_not(role="engineer").count()',
    ),
    (
        "Q objects combined with | and ~",
        "Person.objects(db).where(Q(age__lt=18) | Q(age__gt=85) & ~Q(active=False))"
        '.order_by("age", "name")[:5]',
    ),
    (
        "regular expressions and missing-or-null fields",
        'Person.objects(db).where(email__matches="^(zoe|yara)\\\\.", manager__isnull=True).count()',
    ),
    (
        "distinct values (list elements one by one)",
        'sorted(Person.objects(db).where(address__city="Lisbon").values("languages"))',
    ),
    ("a document by pk", 'db.get(Person, "p00042")'),
    (
        "update inside the database: increment and add to a list",
        'Person.objects(db).where(address__city="Oslo")'
        '.update(score__inc=1.5, tags__add_to_set="nordic")',
    ),
    ("...and the change is there", 'Person.objects(db).where(tags__contains="nordic").count()'),
    (
        "get_or_create: atomic find-or-insert",
        'db.get_or_create(Person, email="new@example.com", defaults={"name": "New Person",'
        ' "age": 30, "role": "engineer", "joined": "2026-11-23",'
        ' "address": {"street": "1 Main St", "city": "Paris", "country": "FR"}})',
    ),
    (
        "...a second time finds it",
        'db.get_or_create(Person, email="new@example.com")[1]',
    ),
]

#: Shown when the mapping view (``db.dict``) is available.
MAPPING_STEP = (
    "the mapping view: a dict over a collection, with atomic increments",
    'db.dict("demo_counters").increment("demo runs")',
)


def tour() -> list[tuple[str, str]]:
    """The tour's steps (with the mapping view when this doqu has it)."""
    steps = list(TOUR)
    if importlib.util.find_spec("doqu._mapping") is not None:
        steps.append(MAPPING_STEP)
    return steps


def _people_table(people: list[Person]) -> Table:
    table = Table("pk", "name", "age", "city", "tags", "languages")
    for p in people:
        table.add_row(
            p.pk or "",
            p.name,
            str(p.age),
            p.address.city,
            ", ".join(p.tags),
            ", ".join(p.languages),
        )
    return table


def show(console: Console, result: Any) -> None:
    """Print what a step returned: people as a table, anything else as Python would."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Person):
        console.print(_people_table([result[0]]))
        console.print(f"created: {result[1]}")
        return
    if isinstance(result, Person):
        console.print(_people_table([result]))
        return
    if not isinstance(result, (str, bytes, dict)) and hasattr(result, "__iter__"):
        items = list(result)
        if items and all(isinstance(i, Person) for i in items):
            console.print(_people_table(items))
            return
        console.print(dump_json(items))
        return
    console.print(repr(result))


@cli.command(short_help="Load a sample dataset and tour the queries.")
@click.argument("url", required=False, default=DEFAULT_DEMO_URL)
def demo(url: str) -> None:
    """Load the sample dataset into URL (default: sqlite:///doqu-demo.db) and tour queries.

    Loads 3000 people (nested addresses, lists, optional fields) into the
    collection demo_people, replacing what the demo left there before, then
    prints each query as Python code and what came back.
    """
    console = Console(file=out_stream(), highlight=False, soft_wrap=True)
    started = time.perf_counter()
    with open_storage(url) as db:
        count = load_people(db, stderr_console())
        took = time.perf_counter() - started
        console.print(f"Loaded {count} people into {url} (collection demo_people) in {took:.1f}s")
        console.print()
        namespace: dict[str, Any] = {"db": db, "Person": Person, "Q": Q}
        for title, code in tour():
            console.print(f"# {title}", style="dim")
            if console.is_terminal:
                console.print(Syntax(f">>> {code}", "python", word_wrap=True))
            else:
                console.print(f">>> {code}", soft_wrap=True, markup=False)
            show(console, eval(code, namespace))  # the code is this module's own constant text
            console.print()
    console.print("Look around yourself, e.g.:")
    console.print(f"  doqu find {url} demo_people --where address.city=Paris --limit 5")
    console.print(f"  doqu values {url} demo_people role")
