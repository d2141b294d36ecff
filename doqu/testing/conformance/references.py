"""References: ``Ref[T]`` round trips, queries by reference, and ``prefetch`` in batches.

``prefetch`` must cost one read for the page of results plus one per target
collection and depth, on every backend: a test counts the backend's calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ..._document import Document
from ..._errors import InvalidDocument, NotFound, NotLoaded, QueryError
from ..._refs import Ref
from ..._storage import Storage
from ..aio import sync_storage
from ._common import _pks


class Publisher(Document):
    """The target of a reference two levels down."""

    name: str

    class Meta:
        collection = "publishers"


class Author(Document):
    """A referred document that refers on (to its publisher)."""

    name: str
    publisher: Ref[Publisher] | None = None

    class Meta:
        collection = "authors"


class Tag(Document):
    """The target of a list of references."""

    label: str

    class Meta:
        collection = "tags"


class Credit(BaseModel):
    """An embedded model holding a reference."""

    role: str
    who: Ref[Author]


class Book(Document):
    """Every shape of reference: plain, optional (by a forward name), list, embedded."""

    title: str
    author: Ref[Author]
    editor: Ref["Author"] | None = None  # noqa: UP037 - a forward reference by name
    tags: list[Ref[Tag]] = []  # noqa: RUF012
    credits: list[Credit] = []  # noqa: RUF012

    class Meta:
        collection = "books"
        indexes = ["author"]  # noqa: RUF012


def _library(db: Storage) -> dict[str, Any]:
    ace, bee = Publisher(pk="ace", name="Ace"), Publisher(pk="bee", name="Bee")
    frank = Author(pk="frank", name="Frank", publisher=ace)
    ursula = Author(pk="ursula", name="Ursula", publisher="bee")
    sf, classic = Tag(pk="sf", label="sf"), Tag(pk="classic", label="classic")
    db.save_many([ace, bee])
    db.save_many([frank, ursula])
    db.save_many([sf, classic])
    books = [
        Book(pk="dune", title="Dune", author=frank, tags=[sf, classic],
             credits=[Credit(role="cover", who=ursula)]),
        Book(pk="children", title="Children of Dune", author="frank", editor=ursula, tags=[sf]),
        Book(pk="earthsea", title="Earthsea", author=ursula, tags=["classic"]),
    ]  # fmt: skip
    db.save_many(books)
    return {"frank": frank, "ursula": ursula, "sf": sf, "classic": classic, "ace": ace}


def test_reference_round_trips(db: Storage) -> None:
    """Every shape stores the target's pk, reads back as a Ref, dumps and validates as pk."""
    lib = _library(db)
    raw = {d["pk"]: d for d in db.query("books")}
    assert raw["dune"]["author"] == "frank" and raw["dune"]["tags"] == ["sf", "classic"]
    assert raw["dune"]["credits"] == [{"role": "cover", "who": "ursula"}]
    assert raw["children"]["editor"] == "ursula" and raw["dune"]["editor"] is None
    dune = db.get(Book, "dune")
    assert isinstance(dune.author, Ref) and dune.author.pk == "frank"
    assert dune.author == lib["frank"] and dune.author == Ref(Author, "frank")
    assert dune.author != Ref(Author, "ursula") and dune.author != lib["ursula"]
    assert [t.pk for t in dune.tags] == ["sf", "classic"]
    assert dune.credits[0].who.pk == "ursula"
    assert dune.model_dump(mode="json")["author"] == "frank"
    assert dune.model_dump()["tags"] == ["sf", "classic"]
    schema = Book.model_json_schema()["properties"]
    assert schema["author"]["type"] == "string"
    assert Book.model_validate_json(dune.model_dump_json()).author.pk == "frank"
    with pytest.raises(NotLoaded, match="prefetch"):
        _ = dune.author.doc
    assert not dune.author.loaded
    assert dune.author.fetch(db).name == "Frank" and dune.author.doc is not None
    with pytest.raises(ValidationError):
        Book(title="x", author=lib["sf"])  # a Tag is no Author
    with pytest.raises(ValidationError):
        Book(title="x", author=3)
    before = db.query("books").count()
    with pytest.raises(InvalidDocument, match="not saved yet"):
        db.save(Book(title="x", author=Author(name="nobody")))
    assert db.query("books").count() == before
    assert db.dict(Book)["dune"].author.pk == "frank"  # the mapping view keeps refs as refs


def test_queries_by_reference(db: Storage) -> None:
    """A document or a Ref as an operand is its pk, for every lookup and both styles."""
    lib = _library(db)
    q = Book.objects(db)
    assert _pks(q.where(author=lib["frank"])) == {"dune", "children"}
    assert _pks(q.where(author="ursula")) == {"earthsea"}
    assert _pks(q.where(Book.author == lib["ursula"])) == {"earthsea"}
    assert _pks(q.where(author__in=[lib["ursula"], Ref(Author, "nobody")])) == {"earthsea"}
    assert _pks(q.where(tags__contains=lib["sf"])) == {"dune", "children"}
    assert _pks(q.where(tags__all=[lib["sf"], lib["classic"]])) == {"dune"}
    assert _pks(q.where(editor=None)) == {"dune", "earthsea"}
    assert _pks(q.where(credits__size=1)) == {"dune"}
    assert _pks(q.where(author__ne=lib["frank"])) == {"earthsea"}
    assert sorted(q.values("author")) == ["frank", "ursula"]
    with pytest.raises(QueryError, match="not saved"):
        q.where(author=Author(name="nobody"))


def test_prefetch_levels_lists_and_sharing(db: Storage) -> None:
    """One level, two levels, lists and references in embedded models; targets shared."""
    _library(db)
    q = Book.objects(db).order_by("pk")
    books = list(q.prefetch("author", "editor", "tags", "author__publisher", "credits__who"))
    by_pk = {b.pk: b for b in books}
    dune, children = by_pk["dune"], by_pk["children"]
    assert dune.author.doc is not None and dune.author.doc.name == "Frank"
    assert dune.author.doc is children.author.doc  # one object per target in a result
    assert [t.doc.label for t in dune.tags if t.doc] == ["sf", "classic"]
    assert dune.author.doc.publisher is not None
    assert dune.author.doc.publisher.doc is not None and dune.author.doc.publisher.doc.name == "Ace"
    assert dune.editor is None and children.editor is not None
    assert children.editor.doc is by_pk["earthsea"].author.doc  # editor and author: Ursula
    assert dune.credits[0].who.doc is children.editor.doc
    # It composes with filters, slices and streaming iteration.
    page = Book.objects(db).where(author="frank").order_by("-pk")[0:1].prefetch("author")
    assert [(b.pk, b.author.doc.name if b.author.doc else None) for b in page] == [
        ("dune", "Frank")
    ]
    for book in Book.objects(db).prefetch("tags"):
        assert all(t.doc is not None for t in book.tags)
    got = db.get(Book, "earthsea", prefetch=["author", "author__publisher"])
    assert got.author.doc is not None and got.author.doc.publisher is not None
    assert got.author.doc.publisher.doc is not None
    many = db.get_many(Book, ["children", "dune"], prefetch=["author"])
    assert many[0].author.doc is many[1].author.doc
    with pytest.raises(QueryError, match="did you mean 'author'"):
        Book.objects(db).prefetch("auther")
    with pytest.raises(QueryError, match="no reference"):
        Book.objects(db).prefetch("title")
    with pytest.raises(QueryError, match="'raise' or 'none'"):
        Book.objects(db).prefetch("author", missing="skip")  # type: ignore[arg-type]


def test_prefetch_dangling_references(db: Storage) -> None:
    """A target that is gone: NotFound naming the dangling pks, or None with missing="none"."""
    _library(db)
    db.delete(Author, "ursula")
    db.delete(Tag, "classic")
    q = Book.objects(db).order_by("pk")
    with pytest.raises(NotFound) as caught:
        list(q.prefetch("author"))
    assert caught.value.collection == "authors" and caught.value.pks == ["ursula"]
    with pytest.raises(NotFound):
        db.get(Book, "earthsea", prefetch=["author"])
    books = {b.pk: b for b in q.prefetch("author", "tags", missing="none")}
    assert books["earthsea"].author.doc is None and books["earthsea"].author.loaded
    assert books["dune"].author.doc is not None
    assert [t.doc is None for t in books["dune"].tags] == [False, True]
    # Nothing automatic happens to referrers; a query finds them.
    assert _pks(Book.objects(db).where(author="ursula")) == {"earthsea"}


_CALLS = ("_select", "_select_stored", "_fetch", "_fetch_stored", "_fetch_one", "_count")


@contextlib.contextmanager
def _counting(db: Storage) -> Iterator[list[str]]:
    """Record each call of the backend's read primitives (the outermost only)."""
    calls: list[str] = []
    depth = [0]
    db = sync_storage(db)  # through the async API: the backend storage doing the reads
    cls = type(db)
    originals = {name: cls.__dict__.get(name) for name in _CALLS}

    def wrap(orig: Callable[..., Any], label: str) -> Callable[..., Any]:
        def counted(self: Storage, coll: Any, *args: Any) -> Any:
            if self is not db:
                return orig(self, coll, *args)
            if depth[0] == 0:
                calls.append(f"{label} {coll.name}")
            depth[0] += 1
            try:
                out = orig(self, coll, *args)
                return iter(list(out)) if isinstance(out, Iterator) else out
            finally:
                depth[0] -= 1

        return counted

    for name in _CALLS:
        setattr(cls, name, wrap(getattr(cls, name), name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def test_prefetch_costs_one_read_per_collection_and_depth(db: Storage) -> None:
    """1,000 books of 1,000 distinct authors with 5 publishers: three reads, not 1,001."""
    db.save_many([Publisher(pk=f"p{i}", name=f"P{i}") for i in range(5)])
    db.save_many([Author(pk=f"a{i:04d}", name=f"A{i}", publisher=f"p{i % 5}") for i in range(1000)])
    db.save_many([Book(pk=f"b{i:04d}", title=f"B{i}", author=f"a{i:04d}") for i in range(1000)])
    with _counting(db) as calls:
        books = list(Book.objects(db).prefetch("author", "author__publisher"))
        assert len(books) == 1000 and all(b.author.doc is not None for b in books)
        collections = [c.split()[-1] for c in calls]
        assert collections == ["books", "authors", "publishers"], calls
        calls.clear()
        many = db.get_many(Book, [f"b{i:04d}" for i in range(0, 1000, 2)], prefetch=["author"])
        assert len(many) == 500 and [c.split()[-1] for c in calls] == ["books", "authors"], calls
