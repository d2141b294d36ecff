"""MongoDB backend specifics: literal operands, the filters it generates, limits, errors.

The behaviour every backend shares is in the conformance and differential suites;
these tests look at what only MongoDB has (native filters, 16 MiB, the driver).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.errors import AutoReconnect

import doqu
from doqu import Document, DuplicateKey, InvalidDocument, Q, QueryError, StorageError
from doqu._evaluator import UpdateTypeError
from doqu.ext import mongodb
from doqu.ext.mongodb import MongoStorage, to_filter
from doqu.testing import servers


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the test server (only when the mongodb backend is chosen)."""
    if "mongodb" not in request.config.getoption("backends").split(","):
        pytest.skip("the mongodb backend is not selected (--backends)")
    base = request.getfixturevalue("mongo_base_url")
    with servers.mongo_database_url(base) as fresh:
        yield fresh


@pytest.fixture
def mdb(url: str) -> Iterator[MongoStorage]:
    storage = doqu.connect(url)
    assert isinstance(storage, MongoStorage)
    try:
        yield storage
    finally:
        storage.close()


@pytest.fixture
def raw(url: str) -> Iterator[Any]:
    """The same database through plain pymongo, to look behind doqu's back."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
    try:
        yield client.get_default_database()
    finally:
        client.close()


def pks(q: Any) -> set[str]:
    return {item["pk"] for item in q}


def filter_of(q: Any) -> Any:
    return json.loads(q.explain())["filter"]


# ------------------------------------------------------------------ injection
def test_operator_object_as_value_is_literal(mdb: MongoStorage) -> None:
    mdb.save_many(
        [{"pk": "a", "name": "ann"}, {"pk": "b", "name": ""}, {"pk": "c"}], collection="p"
    )
    q = mdb.query("p")
    assert pks(q.where(name={"$gt": ""})) == set()
    assert pks(q.where(name__in=[{"$exists": True}])) == set()
    assert pks(q.where(name__in=[{"$exists": True}, "ann"])) == {"a"}
    assert pks(q.where(name__ne={"$gt": ""})) == {"a", "b", "c"}
    assert pks(q.where(name__contains={"$ne": None})) == set()
    # The operator never reaches the server as query syntax.
    assert "$gt" not in q.where(name={"$gt": ""}).explain()
    assert "$exists" not in q.where(name__in=[{"$exists": True}]).explain()


def test_dollar_strings_are_plain_values(mdb: MongoStorage) -> None:
    mdb.save_many([{"pk": "a", "v": "$where"}, {"pk": "b", "v": "$$ROOT"}], collection="p")
    q = mdb.query("p")
    assert pks(q.where(v="$where")) == {"a"}
    assert pks(q.where(v__in=["$$ROOT"])) == {"b"}
    assert pks(q.where(v__startswith="$")) == {"a", "b"}
    assert pks(q.where(v__contains="$$")) == {"b"}


@pytest.mark.parametrize(
    "text", [".*", "a.c", "(x)", "[ab]", "a+", "^a", "b$", "\\", "a|b", "{2}", "?", "\n", "\x00"]
)
def test_regex_metacharacters_are_literal(mdb: MongoStorage, text: str) -> None:
    mdb.save_many(
        [
            {"pk": "hit", "s": f"<{text}>"},
            {"pk": "miss", "s": "abc aac ab b x xx"},
            {"pk": "list", "s": [f"<{text}>"]},
        ],
        collection="r",
    )
    q = mdb.query("r")
    assert pks(q.where(s__contains=text)) == {"hit"}
    assert pks(q.where(s__icontains=text)) == {"hit"}
    assert pks(q.where(s__startswith="<" + text)) == {"hit"}
    assert pks(q.where(s__endswith=text + ">")) == {"hit"}
    assert pks(q.where(s__istartswith="<" + text)) == {"hit"}
    assert pks(q.where(s__iendswith=text + ">")) == {"hit"}
    assert pks(q.where(s__contains=f"<{text}>")) == {"hit", "list"}


@pytest.mark.parametrize("field", ["$where", "a.$gt", "a$b", "a..b", "", "a b", "_id.$x", "1a"])
def test_bad_field_paths_are_refused(mdb: MongoStorage, field: str) -> None:
    q = mdb.query("p")
    with pytest.raises(QueryError):
        q.where(**{field: 1})
    with pytest.raises(QueryError):
        q.order_by(field)
    with pytest.raises(QueryError):
        q.values(field)


@pytest.mark.parametrize("key", ["$set", "a.b", "a\x00b"])
def test_keys_mongodb_cannot_store_are_refused(mdb: MongoStorage, raw: Any, key: str) -> None:
    for doc in ({key: 1}, {"o": {key: 1}}, {"l": [{key: 1}]}):
        with pytest.raises(InvalidDocument):
            mdb.save({"pk": "x", **doc}, collection="k")
    assert raw["k"].count_documents({}) == 0


def test_user_field_named_id_is_refused_and_never_matches(mdb: MongoStorage) -> None:
    with pytest.raises(InvalidDocument):
        mdb.save({"pk": "x", "_id": 1}, collection="k")
    mdb.save({"pk": "x", "v": 1}, collection="k")
    # "_id" is no user field: it is missing in every document, as the evaluator says.
    assert pks(mdb.query("k").where(_id="x")) == set()
    assert pks(mdb.query("k").where(_id__exists=False)) == {"x"}
    assert mdb.query("k").values("_id") == []


# ------------------------------------------------------------ generated filters
CASES: list[tuple[dict[str, Any], Any]] = [
    ({"n": 3}, {"n": {"$eq": 3, "$not": {"$type": "array"}}}),
    ({"n": None}, {"n": {"$type": "null", "$not": {"$type": "array"}}}),
    ({"n": [1, 2]}, {"n": {"$eq": [1, 2], "$not": {"$elemMatch": {"$eq": [1, 2]}}}}),
    ({"n": {"b": 1, "a": 2}}, {"n": {"$eq": {"a": 2, "b": 1}, "$not": {"$type": "array"}}}),
    ({"n__ne": 3}, {"$nor": [{"n": {"$eq": 3, "$not": {"$type": "array"}}}]}),
    ({"n__gt": 3}, {"n": {"$gt": 3, "$not": {"$type": "array"}}}),
    ({"n__lte": "x"}, {"n": {"$lte": "x", "$not": {"$type": "array"}}}),
    ({"n__between": (1, 5)}, {"n": {"$gte": 1, "$lte": 5, "$not": {"$type": "array"}}}),
    ({"n__in": [1, "a"]}, {"n": {"$in": [1, "a"], "$not": {"$type": "array"}}}),
    ({"n__exists": True}, {"n": {"$exists": True}}),
    ({"n__exists": False}, {"$nor": [{"n": {"$exists": True}}]}),
    ({"t__contains": 5}, {"t": {"$elemMatch": {"$eq": 5}}}),
    (
        {"t__contains": "a.b"},
        {
            "$or": [
                {"t": {"$elemMatch": {"$eq": "a.b"}}},
                {"t": {"$regex": "a\\.b", "$not": {"$type": "array"}}},
            ]
        },
    ),
    ({"s__startswith": "a*"}, {"s": {"$regex": "^a\\*", "$not": {"$type": "array"}}}),
    ({"s__endswith": "é"}, {"s": {"$regex": "é\\z", "$not": {"$type": "array"}}}),
    ({"s__istartswith": "Aé"}, {"s": {"$regex": "^[aA]é", "$not": {"$type": "array"}}}),
    (
        {"s__matches": "^a.b$"},
        {"s": {"$regex": "^a.b\\z", "$options": "s", "$not": {"$type": "array"}}},
    ),
    ({"t__size": 2}, {"t": {"$size": 2}}),
    (
        {"t__all": [1, 2]},
        {"$and": [{"t": {"$elemMatch": {"$eq": 1}}}, {"t": {"$elemMatch": {"$eq": 2}}}]},
    ),
    ({"pk": "p1"}, {"_id": {"$eq": "p1"}}),
    (
        {"o__x": 1},
        {
            "$and": [
                {"o": {"$not": {"$type": "array"}}},
                {"o.x": {"$eq": 1, "$not": {"$type": "array"}}},
            ]
        },
    ),
]


@pytest.mark.parametrize(("conditions", "expected"), CASES)
def test_explain_shows_the_native_filter(
    mdb: MongoStorage, conditions: dict[str, Any], expected: Any
) -> None:
    q = mdb.query("p").where(**conditions)
    assert filter_of(q) == expected
    list(q)  # and the server accepts it


def test_every_lookup_has_a_native_translation() -> None:
    from doqu._tree import LOOKUPS, make_cond

    operands = {
        "between": (1, 2), "in": [1], "nin": [1], "exists": True, "isnull": True,
        "all": [1], "any": [1], "size": 1, "matches": "a",
    }  # fmt: skip
    for lookup in LOOKUPS:
        cond = make_cond(f"f__{lookup}", operands.get(lookup, "a"))
        out = to_filter(cond)
        assert out and out != mongodb.NEVER, lookup
        assert "$where" not in json.dumps(out) and "$function" not in json.dumps(out)


def test_ordered_queries_explain_the_pipeline(mdb: MongoStorage) -> None:
    q = mdb.query("p").where(n__gt=1).order_by("-n", "pk")[2:5]
    plan = json.loads(q.explain())
    stages = [next(iter(stage)) for stage in plan["pipeline"]]
    assert stages == ["$match", "$project", "$addFields", "$sort", "$skip", "$limit", "$project"]
    assert plan["pipeline"][0]["$match"] == {"n": {"$gt": 1, "$not": {"$type": "array"}}}
    by_pk = json.loads(mdb.query("p").order_by("-pk")[:3].explain())
    assert by_pk["sort"] == {"_id": -1} and by_pk["limit"] == 3


def test_mixed_kind_order(mdb: MongoStorage) -> None:
    values: dict[str, Any] = {
        "a": [0], "b": True, "c": "B", "d": 2, "e": None, "f": {"x": 1}, "g": "a", "h": 1.5,
    }  # fmt: skip
    mdb.save_many([{"pk": k, "v": v} for k, v in values.items()] + [{"pk": "m"}], collection="o")
    got = [d["pk"] for d in mdb.query("o").order_by("v", "pk")]
    # missing/null, numbers, strings by code point, then arrays/bools/objects tied (by pk).
    assert got == ["e", "m", "h", "d", "c", "g", "a", "b", "f"]
    got = [d["pk"] for d in mdb.query("o").order_by("-v", "pk")]
    assert got == ["a", "b", "f", "g", "c", "d", "h", "e", "m"]


def test_embedded_object_equality_ignores_key_order(mdb: MongoStorage, raw: Any) -> None:
    mdb.save({"pk": "x", "o": {"y": 1, "x": {"b": 2, "a": [{"d": 1, "c": 0}]}}}, collection="e")
    q = mdb.query("e")
    assert pks(q.where(o={"x": {"a": [{"c": 0, "d": 1.0}], "b": 2}, "y": 1})) == {"x"}
    assert pks(q.where(o__x__a__contains={"d": 1, "c": 0})) == {"x"}
    # Stored with sorted keys, like PostgreSQL's JSONB.
    assert list(raw["e"].find_one({"_id": "x"})["o"]) == ["x", "y"]


def test_arrays_are_not_walked(mdb: MongoStorage) -> None:
    mdb.save_many(
        [{"pk": "list", "o": [{"x": 1}], "n": [1, 2]}, {"pk": "obj", "o": {"x": 1}, "n": 1}],
        collection="w",
    )
    q = mdb.query("w")
    assert pks(q.where(o__x=1)) == {"obj"}
    assert pks(q.where(n=1)) == {"obj"}
    assert pks(q.where(n__gte=1)) == {"obj"}
    assert pks(q.where(o__x__exists=False)) == {"list"}
    assert sorted(q.values("o.x")) == [1]


def test_values_keeps_bools_apart_from_numbers(mdb: MongoStorage) -> None:
    mdb.save_many(
        [{"pk": "a", "v": True}, {"pk": "b", "v": 1}, {"pk": "c", "v": [1.0, None, [1]]}],
        collection="v",
    )
    got = mdb.query("v").values("v")
    assert sorted(json.dumps(v) for v in got) == ["1", "[1]", "true"]


# ------------------------------------------------------------------- limits
def test_document_over_16_mib_is_refused_and_nothing_written(mdb: MongoStorage, raw: Any) -> None:
    big = "x" * (16 * 1024 * 1024)
    mdb.save({"pk": "small", "v": 1}, collection="big")
    with pytest.raises(InvalidDocument, match="16 MiB"):
        mdb.save({"pk": "huge", "v": big}, collection="big")
    with pytest.raises(InvalidDocument, match="16 MiB"):
        mdb.save_many([{"pk": "ok", "v": 2}, {"pk": "huge", "v": big}], collection="big")
    with pytest.raises(InvalidDocument, match="16 MiB"):
        mdb.query("big").update(v=big)
    assert sorted(d["_id"] for d in raw["big"].find()) == ["small"]
    assert mdb.get("big", "small") == {"pk": "small", "v": 1}


# --------------------------------------------------------------- uniqueness
class Person(Document):
    name: str
    email: str | None = None

    class Meta:
        collection = "people"
        indexes = ("name",)
        unique = ("email",)


def test_unique_index_and_duplicate_key(mdb: MongoStorage, raw: Any) -> None:
    mdb.save(Person(pk="a", name="ann", email="a@x"))
    mdb.save_many([Person(pk="n1", name="no"), Person(pk="n2", name="no")])  # nulls exempt
    with pytest.raises(DuplicateKey):
        mdb.save(Person(pk="b", name="bob", email="a@x"))
    with pytest.raises(DuplicateKey):
        mdb.save_many(
            [Person(pk="c", name="cy", email="c@x"), Person(pk="d", email="a@x", name="d")]
        )
    assert sorted(d["_id"] for d in raw["people"].find()) == ["a", "n1", "n2"]
    with pytest.raises(DuplicateKey):
        Person.objects(mdb).where(pk="n1").update(email="a@x")
    assert mdb.get(Person, "n1").email is None
    index_keys = [list(ix["key"]) for ix in raw["people"].list_indexes()]
    assert ["name"] in index_keys and ["email"] in index_keys


def test_get_or_create_is_keyed_and_idempotent(mdb: MongoStorage) -> None:
    doc, created = mdb.get_or_create(Person, name="ann", defaults={"email": "a@x"})
    again, created_again = mdb.get_or_create(Person, name="ann")
    assert created and not created_again and again.pk == doc.pk


# ------------------------------------------------------------ update & swap
def test_update_of_a_document_written_by_another_tool(mdb: MongoStorage, raw: Any) -> None:
    raw["f"].insert_one({"_id": "x", "o": {"y": 1, "x": 2}, "n": 1})
    assert mdb.query("f").update(n__inc=1) == 1
    assert mdb.get("f", "x") == {"pk": "x", "o": {"x": 2, "y": 1}, "n": 2}
    assert mdb.query("f").where(o={"x": 2, "y": 1}).update(n__inc=1) == 1
    assert mdb.get("f", "x")["n"] == 3


def test_increment_is_native_and_checks_kinds(mdb: MongoStorage) -> None:
    d = mdb.dict("counters")
    assert d.increment("hits") == 1
    assert d.increment("hits", 2.5) == 3.5
    d["s"] = "text"
    with pytest.raises(UpdateTypeError):
        d.increment("s")
    assert d["s"] == "text"


def test_big_integers_come_back_as_int(mdb: MongoStorage) -> None:
    mdb.save({"pk": "x", "n": 2**62, "l": [2**40]}, collection="i")
    doc = mdb.get("i", "x")
    assert type(doc["n"]) is int and type(doc["l"][0]) is int


def test_every_write_changes_the_version(mdb: MongoStorage, url: str) -> None:
    seen = [mdb.version("vv")]
    mdb.save({"pk": "a", "n": 1}, collection="vv")
    seen.append(mdb.version("vv"))
    mdb.query("vv").update(n__inc=1)
    seen.append(mdb.version("vv"))
    with doqu.connect(url) as other:  # another client sees the same token
        assert other.version("vv") == seen[-1]
        other.delete("vv", "a")
    seen.append(mdb.version("vv"))
    assert len(set(seen)) == len(seen)
    assert mdb.collections() == []


def test_collections_lists_only_doqu_collections_with_documents(
    mdb: MongoStorage, raw: Any
) -> None:
    raw["foreign"].insert_one({"_id": 1})
    mdb.save({"pk": "a"}, collection="mine")
    mdb.save({"pk": "b"}, collection="gone")
    mdb.delete("gone", "b")
    assert mdb.collections() == ["mine"]
    mdb.clear()
    assert mdb.collections() == [] and raw["foreign"].count_documents({}) == 1


# ---------------------------------------------------------- URLs and errors
def test_database_from_url_and_options_pass_through(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with doqu.connect(url + "?appname=doqu-test&maxPoolSize=3") as db:
        assert isinstance(db, MongoStorage) and db.database_name == name
        assert db._client.options.pool_options.max_pool_size == 3
    base = url.rsplit("/", 1)[0]
    with doqu.connect(base + "/") as db:
        assert isinstance(db, MongoStorage) and db.database_name == "doqu"
    with pytest.raises(doqu.ConfigError):
        doqu.connect(base + "/bad.name")
    with pytest.raises(doqu.ConfigError):
        doqu.connect(base + "/", maxPoolSize=-1)


def test_unreachable_server_raises_storage_error() -> None:
    with doqu.connect("mongodb://127.0.0.1:1/x", serverSelectionTimeoutMS=200) as db:
        with pytest.raises(StorageError) as info:
            db.save({"pk": "a"}, collection="c")
        assert isinstance(info.value.__cause__, pymongo.errors.PyMongoError)
        with pytest.raises(StorageError):
            list(db.query("c"))


def test_reads_retry_once_after_a_lost_connection(mdb: MongoStorage) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise AutoReconnect("connection reset")
        return "ok"

    assert mdb._run("read", flaky, read=True) == "ok" and len(calls) == 2
    calls.clear()
    with pytest.raises(StorageError) as info:
        mdb._run("write", flaky)
    assert isinstance(info.value.__cause__, AutoReconnect) and len(calls) == 1


def test_query_stream_retries_before_the_first_row(
    mdb: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    mdb.save({"pk": "a"}, collection="c")
    real = MongoStorage._cursor
    failures = [AutoReconnect("reset")]

    def cursor(self: MongoStorage, *args: Any) -> Any:
        if failures:
            raise failures.pop()
        yield from real(self, *args)

    monkeypatch.setattr(MongoStorage, "_cursor", cursor)
    assert [d["pk"] for d in mdb.query("c")] == ["a"]


def test_reconnect_and_close(mdb: MongoStorage) -> None:
    mdb.save({"pk": "a"}, collection="c")
    old = mdb._client
    mdb.reconnect()
    assert mdb._client is not old
    assert mdb.get("c", "a") == {"pk": "a"}
    mdb.close()
    with pytest.raises(StorageError):
        mdb.get("c", "a")


def test_missing_pymongo_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymongo", None)
    monkeypatch.delitem(sys.modules, "doqu.ext.mongodb")
    with pytest.raises(doqu.ConfigError, match=r"doqu\[mongo\]"):
        doqu.connect("mongodb://127.0.0.1:1/x")
    with pytest.raises(doqu.ConfigError, match=r"doqu\[mongo\]"):
        importlib.import_module("doqu.ext.mongodb")


def test_q_objects_translate_with_nor_and_or(mdb: MongoStorage) -> None:
    mdb.save_many([{"pk": "a", "n": 1}, {"pk": "b", "n": 5}, {"pk": "c"}], collection="q")
    q = mdb.query("q").where(Q(n__lt=2) | ~Q(n__exists=True))
    assert pks(q) == {"a", "c"}
    assert set(filter_of(q)) == {"$or"}
