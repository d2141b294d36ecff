"""MongoDB cases: the backend against raw pymongo on one server, and the CPU cost of
turning a model into a MongoDB document and back, against Beanie, ODMantic and MongoEngine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import doqu

from . import peer_models
from .data import AGE_CUTOFF, Person, make_dicts, make_keys, make_people
from .harness import Case, Config, Group, Recorder, Side
from .peer_models import Decode, Encode
from .sql import doqu_save_side

__all__ = ["GROUPS", "doqu_codec"]

#: Documents per case when the benchmark starts its own SecantusDB server.
MAX_N_SECANTUS = 20_000

SERVER = (
    Case(
        "mongodb.save_many",
        "mongodb",
        "save_many, MongoDB backend",
        "pymongo insert_many",
        1.3,
    ),
    Case(
        "mongodb.where",
        "mongodb",
        f"where(age__gt={AGE_CUTOFF}) as models, MongoDB",
        "pymongo find",
        1.3,
    ),
)
CODEC = (
    Case("mongodb.codec.beanie", "mongodb", "encode+decode for MongoDB (CPU)", "Beanie", 1.0),
    Case("mongodb.codec.odmantic", "mongodb", "encode+decode for MongoDB (CPU)", "ODMantic", 0.5),
    Case(
        "mongodb.codec.mongoengine",
        "mongodb",
        "encode+decode for MongoDB (CPU)",
        "MongoEngine",
        0.25,
    ),
)


# ------------------------------------------------------------------- server
@contextlib.contextmanager
def _server(config: Config) -> Iterator[str]:
    if config.mongo_url:
        yield config.mongo_url
        return
    from doqu.testing.servers import mongo_server

    with mongo_server() as url:
        yield url


def run_server(config: Config, rec: Recorder) -> None:
    """save_many and a filtered fetch, doqu against pymongo on the same server."""
    import pymongo

    try:
        ctx = _server(config)
        base = ctx.__enter__()
    except Exception as exc:
        for case in SERVER:
            rec.unavailable(case.key, f"no MongoDB server: {exc}"[:200])
        return
    name = f"doqu_bench_{os.getpid()}"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
    try:
        coll = client[name]["raw_people"]
        # A full 100k-document round against a SecantusDB server (pure Python) takes
        # minutes; the per-document ratio is the same at 20k, so cap N there.
        n = config.n if config.mongo_url else min(config.n, MAX_N_SECANTUS)
        dicts = make_dicts(n)
        keys = make_keys(n)
        db = doqu.connect(url)
        try:
            people = make_people(dicts)

            def raw_insert() -> None:
                coll.insert_many([{"_id": k, **d} for k, d in zip(keys, dicts)])

            def raw_prepare() -> Callable[[], object]:
                coll.delete_many({})
                return raw_insert

            # A pure-Python server swings from round to round (0.9-1.7 within one
            # case): against it, twice the rounds (and one) for a steadier median.
            rounds = config.rounds if config.mongo_url else 2 * config.rounds + 1
            rec.measure(
                "mongodb.save_many",
                doqu_save_side(db, people),
                Side(raw_prepare, ops=n),
                n=n,
                rounds=rounds,
                note=f"{rounds} rounds",
            )
            if db.query(Person).count() != n:
                db.clear(Person)
                db.save_many(people)
            if coll.count_documents({}) != n:
                raw_prepare()()
            where = Person.objects(db).where(age__gt=AGE_CUTOFF)
            spec = {"age": {"$gt": AGE_CUTOFF}}
            hits = coll.count_documents(spec)
            rec.measure(
                "mongodb.where",
                Side(lambda: lambda: list(where)),
                Side(lambda: lambda: list(coll.find(spec))),
                n=n,
                rounds=rounds,
                note=f"{hits:,} rows, {rounds} rounds",
            )
        finally:
            db.close()
    finally:
        with contextlib.suppress(Exception):
            client.drop_database(name)
        client.close()
        ctx.__exit__(None, None, None)


# -------------------------------------------------------------------- codec
def doqu_codec() -> tuple[Encode, Decode, str]:
    """doqu's model ↔ MongoDB document path, as the MongoDB backend runs it.

    Returns ``(encode, decode, where)``, *where* naming the functions used. To
    write, the core validates the model again and, for a model of plain types
    like this one, builds the stored form straight from it (``_encoding.sorted_rows``:
    values checked, keys sorted; the backend puts ``_id`` first); other models
    are serialized to checked JSON text (``_encoding.encode_rows``) that the
    backend parses once (``mongodb._stored._mongo_from_text``). To read,
    ``_from_mongo`` then ``_encoding.load`` (pydantic's validator). Private
    functions, on purpose: this case isolates the CPU cost that
    ``save_many``/``where`` pay per document.
    """
    from doqu import _encoding
    from doqu.ext.mongodb import _stored

    encode_rows, sorted_rows, load = _encoding.encode_rows, _encoding.sorted_rows, _encoding.load
    name = Person.__doqu_collection__.name
    from_text, from_mongo = _stored._mongo_from_text, _stored._from_mongo
    limit = _stored.MAX_DOCUMENT_BYTES

    def encode(doc: Any) -> dict[str, Any]:
        rows = sorted_rows([doc], limit)
        if rows is not None:
            pk, data = rows[0]
            return {"_id": pk, **data}
        pk, text = encode_rows([doc], text=True)[0]
        return from_text(pk, text)

    def decode(raw: dict[str, Any]) -> Any:
        pk, data = from_mongo(raw)
        return load(Person, name, pk, data)

    where = (
        "_encoding.sorted_rows (else encode_rows + mongodb._mongo_from_text)"
        " / mongodb._from_mongo + _encoding.load"
    )
    return encode, decode, where


def _codec_side(docs: list[Any], encode: Encode, decode: Decode) -> Side:
    def run() -> None:
        for doc in docs:
            decode(encode(doc))

    return Side(lambda: run, ops=len(docs))


def run_codec(config: Config, rec: Recorder) -> None:
    """Encode and decode the same documents with doqu and each peer ODM."""
    n = min(config.n, 2_000 if config.quick else 10_000)
    dicts = make_dicts(n)
    encode, decode, where = doqu_codec()
    people = make_people(dicts)
    for p, k in zip(people, make_keys(n)):
        p.pk = k
    mine = _codec_side(people, encode, decode)
    peers = {
        "mongodb.codec.beanie": peer_models.beanie_codec,
        "mongodb.codec.odmantic": peer_models.odmantic_codec,
        "mongodb.codec.mongoengine": peer_models.mongoengine_codec,
    }
    for key, build in peers.items():
        try:
            docs, enc, dec = build(dicts)
        except ImportError as exc:
            rec.unavailable(key, f"not installed: {exc}")
            continue
        except Exception as exc:
            rec.error(key, exc)
            continue
        rec.measure(key, mine, _codec_side(docs, enc, dec), n=n, note=where)


GROUPS = (
    Group("mongodb", SERVER, ("doqu.ext.mongodb:MongoStorage", "pymongo"), run_server),
    Group("mongodb", CODEC, ("pydantic",), run_codec),
)
