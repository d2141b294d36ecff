"""Peer libraries' models of the benchmark document, defined where they are used.

No ``from __future__ import annotations`` here: the peers (pydantic-based or not)
resolve the annotations of these function-local classes at class creation.
"""

import asyncio
from collections.abc import Callable
from typing import Any, Optional

__all__ = [
    "Decode",
    "Encode",
    "beanie_codec",
    "beanie_person",
    "mongoengine_codec",
    "odmantic_codec",
    "sqlmodel_library",
    "sqlmodel_person",
]

Encode = Callable[[Any], dict[str, Any]]
Decode = Callable[[dict[str, Any]], Any]


def beanie_codec(dicts: list[dict[str, Any]]) -> tuple[list[Any], Encode, Decode]:
    import beanie
    from beanie.odm.utils.dump import get_dict
    from beanie.odm.utils.init import Initializer
    from pydantic import BaseModel
    from pymongo import AsyncMongoClient

    class BeanieAddress(BaseModel):
        street: str
        city: str
        zip: str

    class BeaniePerson(beanie.Document):
        name: str
        email: str
        age: int
        rank: int
        active: bool
        tags: list[str]
        address: BeanieAddress

        class Settings:
            name = "bench_people"

    class Offline(Initializer):  # type: ignore[misc]
        """init_beanie without a server: the codec needs no connection."""

        async def _load_cached_info(self) -> None:
            self._database_major_version = 7
            self._existing_collections = []

    async def init() -> None:
        client: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
        await Offline(database=client["bench"], document_models=[BeaniePerson], skip_indexes=True)

    asyncio.run(init())
    docs = [BeaniePerson(id=beanie.PydanticObjectId(), **d) for d in dicts]

    def encode(doc: Any) -> dict[str, Any]:
        return get_dict(doc, to_db=True, keep_nulls=True)  # what Document.insert() sends

    return docs, encode, BeaniePerson.model_validate


_BEANIE_PERSON: Any = None


def beanie_person() -> Any:
    """Beanie's Document of the benchmark document for a server (defined once per process).

    Its collection is ``beanie_people``, apart from doqu's ``bench_people`` in the same
    database; ``init_beanie`` binds it to a client.
    """
    global _BEANIE_PERSON
    if _BEANIE_PERSON is None:
        import beanie
        from pydantic import BaseModel

        class BeanieServerAddress(BaseModel):
            street: str
            city: str
            zip: str

        class BeanieServerPerson(beanie.Document):
            name: str
            email: str
            age: int
            rank: int
            active: bool
            tags: list[str]
            address: BeanieServerAddress

            class Settings:
                name = "beanie_people"

        _BEANIE_PERSON = BeanieServerPerson
    return _BEANIE_PERSON


def odmantic_codec(dicts: list[dict[str, Any]]) -> tuple[list[Any], Encode, Decode]:
    import odmantic

    class OdmanticAddress(odmantic.EmbeddedModel):
        street: str
        city: str
        zip: str

    class OdmanticPerson(odmantic.Model):
        name: str
        email: str
        age: int
        rank: int
        active: bool
        tags: list[str]
        address: OdmanticAddress

    docs = [OdmanticPerson(**{**d, "address": OdmanticAddress(**d["address"])}) for d in dicts]
    return docs, lambda doc: doc.model_dump_doc(), OdmanticPerson.model_validate_doc


def mongoengine_codec(dicts: list[dict[str, Any]]) -> tuple[list[Any], Encode, Decode]:
    import mongoengine as me
    from bson import ObjectId

    class EngineAddress(me.EmbeddedDocument):
        street = me.StringField(required=True)
        city = me.StringField(required=True)
        zip = me.StringField(required=True)

    class EnginePerson(me.Document):
        meta = {"collection": "bench_people"}  # noqa: RUF012 - MongoEngine's API
        name = me.StringField(required=True)
        email = me.StringField(required=True)
        age = me.IntField(required=True)
        rank = me.IntField(required=True)
        active = me.BooleanField(required=True)
        tags = me.ListField(me.StringField())
        address = me.EmbeddedDocumentField(EngineAddress, required=True)

    docs = [
        EnginePerson(id=ObjectId(), **{**d, "address": EngineAddress(**d["address"])})
        for d in dicts
    ]

    def encode(doc: Any) -> dict[str, Any]:
        doc.validate()  # Document.save() validates, then sends to_mongo()
        return doc.to_mongo()  # type: ignore[no-any-return]

    return docs, encode, EnginePerson._from_son


_SQLMODEL: Any = None


def sqlmodel_person() -> Any:
    """The SQLModel table class of the benchmark document (defined once per process)."""
    global _SQLMODEL
    if _SQLMODEL is None:
        from sqlalchemy import JSON, Column
        from sqlmodel import Field, SQLModel

        class SQLModelPerson(SQLModel, table=True):
            __tablename__ = "sqlmodel_people"
            id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
            name: str
            email: str
            age: int
            rank: int
            active: bool
            tags: list[str] = Field(sa_column=Column(JSON))
            address: dict[str, Any] = Field(sa_column=Column(JSON))

        _SQLMODEL = SQLModelPerson
    return _SQLMODEL


_SQLMODEL_LIBRARY: tuple[Any, Any] | None = None


def sqlmodel_library() -> tuple[Any, Any]:
    """SQLModel tables of the reference cases: ``(Author, Book)``, defined once per process.

    ``Book.author_id`` is a foreign key to ``Author.id`` and ``Book.author`` its
    ``Relationship`` (what ``selectinload(Book.author)`` loads).
    """
    global _SQLMODEL_LIBRARY
    if _SQLMODEL_LIBRARY is None:
        from sqlmodel import Field, Relationship, SQLModel

        class SQLModelAuthor(SQLModel, table=True):
            __tablename__ = "sqlmodel_authors"
            id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
            name: str

        class SQLModelBook(SQLModel, table=True):
            __tablename__ = "sqlmodel_books"
            id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
            title: str
            author_id: int = Field(foreign_key="sqlmodel_authors.id")
            author: SQLModelAuthor = Relationship()

        _SQLMODEL_LIBRARY = (SQLModelAuthor, SQLModelBook)
    return _SQLMODEL_LIBRARY
