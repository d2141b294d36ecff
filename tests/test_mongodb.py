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
from doqu.testing.aio import BlockingStorage, open_storage, sync_storage


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
    "text", [".*", "a.c", "(x)", "[ab]", "a+", "^a", "b$", "\\", "a|b", "{2}", "?", "\n"]
)  # (NUL is refused in documents on every backend: tests/test_stored_values.py)
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
    ({"n": 3}, {"n": {"$eq": 3}, "n.0": {"$exists": False}}),
    ({"n": None}, {"n": {"$type": "null"}, "n.0": {"$exists": False}}),
    ({"n": [1, 2]}, {"n": {"$eq": [1, 2], "$not": {"$elemMatch": {"$eq": [1, 2]}}}}),
    ({"n": {"b": 1, "a": 2}}, {"n": {"$eq": {"a": 2, "b": 1}, "$not": {"$type": "array"}}}),
    ({"n__ne": 3}, {"$nor": [{"n": {"$eq": 3}, "n.0": {"$exists": False}}]}),
    ({"n__gt": 3}, {"n": {"$gt": 3}, "n.0": {"$exists": False}}),
    ({"n__lte": "x"}, {"n": {"$lte": "x"}, "n.0": {"$exists": False}}),
    ({"n__between": (1, 5)}, {"n": {"$gte": 1, "$lte": 5}, "n.0": {"$exists": False}}),
    ({"n__in": [1, "a"]}, {"n": {"$in": [1, "a"]}, "n.0": {"$exists": False}}),
    ({"n__in": [1, {"a": 1}]}, {"n": {"$in": [1, {"a": 1}], "$not": {"$type": "array"}}}),
    ({"n__exists": True}, {"n": {"$exists": True}}),
    ({"n__exists": False}, {"$nor": [{"n": {"$exists": True}}]}),
    ({"t__contains": 5}, {"t": {"$elemMatch": {"$eq": 5}}}),
    (
        {"t__contains": "a.b"},
        {
            "$or": [
                {"t": {"$elemMatch": {"$eq": "a.b"}}},
                {"t": {"$regex": "a\\.b"}, "t.0": {"$exists": False}},
            ]
        },
    ),
    ({"s__startswith": "a*"}, {"s": {"$regex": "^a\\*"}, "s.0": {"$exists": False}}),
    ({"s__endswith": "é"}, {"s": {"$regex": "é\\z"}, "s.0": {"$exists": False}}),
    ({"s__istartswith": "Aé"}, {"s": {"$regex": "^[aA]é"}, "s.0": {"$exists": False}}),
    (
        {"s__matches": "^a.b$"},
        {"s": {"$regex": "^a.b\\z", "$options": "s"}, "s.0": {"$exists": False}},
    ),
    ({"t__size": 2}, {"t": {"$size": 2}}),
    (
        {"t__all": [1, 2, 1.0]},
        {
            "$and": [
                {"t.1": {"$exists": True}},
                {"t": {"$elemMatch": {"$eq": 1}}},
                {"t": {"$elemMatch": {"$eq": 2}}},
            ]
        },
    ),
    ({"t__any": [1, "a", 1.0]}, {"t": {"$elemMatch": {"$in": [1, "a"]}}}),
    ({"pk": "p1"}, {"_id": {"$eq": "p1"}}),
    (
        {"o__x": 1},
        {
            "$and": [
                {"o": {"$not": {"$type": "array"}}},
                {"o.x": {"$eq": 1}, "o.x.0": {"$exists": False}},
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


_TRICKY: dict[str, Any] = {
    "num": 60, "small": 3, "str": "abc", "null": None, "list": [60], "empty": [],
    "nested": [[60]], "nulls": [None], "zero": {"0": 60}, "zero-null": {"0": None},
    "zero-str": {"0": "abc"}, "obj": {"a": 1}, "strs": ["abc"],
}  # fmt: skip


@pytest.mark.parametrize(
    "conditions",
    [
        {"n__gt": 50}, {"n__lte": 3}, {"n": 60}, {"n__ne": 60}, {"n": None},
        {"n__isnull": True}, {"n__in": [60, "abc"]}, {"n__in": [{"0": 60}, 3]},
        {"n__nin": [60]}, {"n": {"0": 60}}, {"n__startswith": "ab"}, {"n__between": (1, 70)},
        {"n__contains": "b"}, {"n__gt": "a"},
    ],
)  # fmt: skip
def test_scalar_filters_agree_with_the_evaluator_on_arrays_and_key_zero(
    mdb: MongoStorage, conditions: dict[str, Any]
) -> None:
    """Comparisons never look into arrays, and objects keyed "0" are values like others."""
    docs = [{"pk": k, "n": v} for k, v in _TRICKY.items()] + [{"pk": "missing"}]
    mdb.save_many(docs, collection="tricky")
    ref = doqu.connect("memory://")
    try:
        ref.save_many(docs, collection="tricky")
        expected = pks(ref.query("tricky").where(**conditions))
        assert pks(mdb.query("tricky").where(**conditions)) == expected
        negated = pks(ref.query("tricky").where_not(**conditions))
        assert pks(mdb.query("tricky").where_not(**conditions)) == negated
        assert mdb.query("tricky").where(**conditions).count() == len(expected)
    finally:
        ref.close()


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
    assert plan["pipeline"][0]["$match"] == {"n": {"$gt": 1}, "n.0": {"$exists": False}}
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


def test_save_many_inserts_then_replaces_from_the_first_existing_pk(
    mdb: MongoStorage, raw: Any
) -> None:
    mdb.save_many([{"pk": "b", "v": 0}], collection="s")
    # new, existing, new, and a pk twice: the last one wins, as everywhere
    mdb.save_many(
        [{"pk": "a", "v": 1}, {"pk": "b", "v": 1}, {"pk": "c", "v": 1}, {"pk": "a", "v": 2}],
        collection="s",
    )
    assert {d["_id"]: d["v"] for d in raw["s"].find()} == {"a": 2, "b": 1, "c": 1}
    # A unique clash in either phase undoes the batch.
    mdb.save_many([Person(pk="p1", name="a", email="1@x"), Person(pk="p2", name="b")])
    for batch in (
        [Person(pk="p3", name="c", email="3@x"), Person(pk="p4", name="d", email="1@x")],
        [Person(pk="p3", name="c", email="3@x"), Person(pk="p2", name="B", email="2@x"),
         Person(pk="p5", name="e", email="1@x")],
    ):  # fmt: skip
        with pytest.raises(DuplicateKey):
            mdb.save_many(batch)
        assert {p.pk: (p.name, p.email) for p in mdb.query(Person)} == {
            "p1": ("a", "1@x"), "p2": ("b", None)
        }  # fmt: skip


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


# ------------------------------------------------------- native update operators
def ops_of(**changes: Any) -> tuple[Any, ...]:
    from doqu._tree import parse_update

    return parse_update(changes)


@pytest.mark.parametrize(
    ("data", "changes", "expected"),
    [
        ({"n": 1}, {"n__inc": 2, "s": "x"}, {"$inc": {"n": 2}, "$set": {"s": "x"}}),
        ({"n": 1, "s": "x"}, {"s__unset": True}, {"$unset": {"s": ""}}),
        ({"t": [1]}, {"t__push": {"b": 1, "a": 2}}, {"$push": {"t": {"a": 2, "b": 1}}}),
        ({}, {"t__push": 1}, {"$push": {"t": 1}}),
        ({"t": [1]}, {"t__add_to_set": 2}, {"$addToSet": {"t": 2}}),
        ({"t": [1, "$x"]}, {"t__pull": "$x"}, {"$pull": {"t": "$x"}}),
        ({"o": {"x": 1, "y": 2}}, {"o__x__inc": 1}, {"$inc": {"o.x": 1}}),
        ({"o": {"x": 1, "y": 2}}, {"o__x__unset": True}, {"$unset": {"o.x": ""}}),
        # null fields: $push/$addToSet would fail, the evaluator makes a list.
        ({"t": None}, {"t__push": 1}, {"$set": {"t": [1]}}),
        ({"t": None}, {"t__add_to_set": 1}, {"$set": {"t": [1]}}),
        # a new key in an embedded object, or objects to create: the field's value.
        ({"o": {"z": 1}}, {"o__a": 1}, {"$set": {"o": {"a": 1, "z": 1}}}),
        ({"o": None}, {"o__a__inc": 1}, {"$set": {"o": {"a": 1}}}),
        # $pull of an object or array is a query, not equality.
        ({"t": [{"a": 1, "b": 2}, {"a": 1}]}, {"t__pull": {"a": 1}},
         {"$set": {"t": [{"a": 1, "b": 2}]}}),
        ({"t": [[1, 2], [1]]}, {"t__pull": [1]}, {"$set": {"t": [[1, 2]]}}),
        # operators that change nothing send nothing.
        ({"t": [1.0]}, {"t__add_to_set": 1, "n__inc": 1}, {"$inc": {"n": 1}}),
        ({"t": [True], "n": 1}, {"t__pull": 1, "n__inc": 1}, {"$inc": {"n": 1}}),
        ({"n": 1}, {"o__x__unset": True, "n__inc": 1}, {"$inc": {"n": 1}}),
        # objects another tool wrote unsorted are rewritten sorted.
        ({"o": {"y": 1, "x": 2}, "n": 1}, {"n__inc": 1},
         {"$inc": {"n": 1}, "$set": {"o": {"x": 2, "y": 1}}}),
        ({"o": {"y": 1, "x": 2}}, {"o__y__inc": 1}, {"$set": {"o": {"x": 2, "y": 2}}}),
    ],
)  # fmt: skip
def test_update_operators_map_to_native_ones(
    data: dict[str, Any], changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert mongodb.to_update(data, ops_of(**changes)) == expected


def test_a_field_the_model_changes_is_written_whole() -> None:
    def finalize(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "n": float(d["n"]), "added": True}

    got = mongodb.to_update({"n": 1, "t": []}, ops_of(n__inc=1, t__push=1), finalize)
    assert got == {"$push": {"t": 1}, "$set": {"added": True, "n": 2.0}}


def test_update_sends_native_operators_guarded_by_the_old_document(url: str) -> None:
    from pymongo import monitoring

    class Listener(monitoring.CommandListener):
        def __init__(self) -> None:
            self.updates: list[Any] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "update" and event.command["update"] == "u":
                statements = event.command["updates"]
                self.updates.extend(u for u in statements if "$inc" in u["u"])

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    listener = Listener()
    with doqu.connect(url, event_listeners=[listener]) as db:
        db.save_many([{"pk": "a", "n": 1, "t": ["x"]}, {"pk": "b", "n": 2}], collection="u")
        assert db.query("u").update(n__inc=10, t__push="y") == 2
        assert db.get_many("u", ["a", "b"]) == [
            {"pk": "a", "n": 11, "t": ["x", "y"]},
            {"pk": "b", "n": 12, "t": ["y"]},
        ]
    assert len(listener.updates) == 2  # one bulk, one statement per document
    for statement in listener.updates:
        assert statement["u"]["$inc"] == {"n": 10} and statement["u"]["$push"] == {"t": "y"}
        old = statement["q"]["$expr"]["$eq"][1]["$literal"]
        assert old["_id"] == statement["q"]["_id"] and old["n"] in (1, 2)


def test_update_redoes_a_document_changed_under_it(
    mdb: MongoStorage, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mdb.save_many([{"pk": "a", "n": 1}, {"pk": "b", "n": 1}], collection="r")
    real = MongoStorage._plan
    calls: list[int] = []

    def plan(self: MongoStorage, *args: Any) -> Any:
        out = real(self, *args)
        if not calls:  # another client writes between the read and the bulk
            raw["r"].update_one({"_id": "b"}, {"$set": {"n": 100}})
        calls.append(1)
        return out

    monkeypatch.setattr(MongoStorage, "_plan", plan)
    assert mdb.query("r").update(n__inc=1) == 2
    assert {d["pk"]: d["n"] for d in mdb.query("r")} == {"a": 2, "b": 101}
    assert len(calls) == 2  # b alone was redone (in a transaction: the whole reran)
    # A document that stops matching is left alone.
    calls.clear()

    def plan_and_move(self: MongoStorage, *args: Any) -> Any:
        out = real(self, *args)
        if not calls:
            raw["r"].update_one({"_id": "b"}, {"$set": {"n": -5}})
        calls.append(1)
        return out

    monkeypatch.setattr(MongoStorage, "_plan", plan_and_move)
    assert mdb.query("r").where(n__gt=0).update(n__inc=1) == 1
    assert {d["pk"]: d["n"] for d in mdb.query("r")} == {"a": 3, "b": -5}


def test_invalid_update_result_writes_nothing(mdb: MongoStorage) -> None:
    mdb.save_many([{"pk": "a", "n": 1}, {"pk": "b", "n": "text"}], collection="x")
    version = mdb.version("x")
    with pytest.raises(UpdateTypeError):
        mdb.query("x").update(n__inc=1)
    with pytest.raises(InvalidDocument):
        mdb.query("x").where(pk="a").update(n__inc=2**63 - 1)
    assert mdb.get_many("x", ["a", "b"]) == [{"pk": "a", "n": 1}, {"pk": "b", "n": "text"}]
    assert mdb.version("x") == version


WORKER = """
import sys, time, doqu
url, what, rounds, me, start = sys.argv[1:6]
rounds, start = int(rounds), float(start)
with doqu.connect(url) as db:
    db.query("race").count()  # connected and prepared before the start
    while time.time() < start:
        time.sleep(0.001)
    if what == "inc":
        for _ in range(rounds):
            db.query("race").update(n__inc=1)
    else:
        for i in range(rounds):
            doc, created = db.get_or_create("race", defaults={"by": me}, key=f"k{i}")
            print(i, doc["pk"], int(created), doc["by"])
"""


def run_racers(url: str, what: str, rounds: int, count: int = 4) -> list[str]:
    import subprocess
    import time

    start = str(time.time() + 2.0)  # all racers start together, once connected
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, what, str(rounds), str(i), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        outs.append(out.strip())
    return outs


def test_concurrent_updates_lose_no_increment(mdb: MongoStorage, url: str) -> None:
    mdb.save_many([{"pk": p, "n": 0} for p in "abc"], collection="race")
    run_racers(url, "inc", 25)
    assert {d["pk"]: d["n"] for d in mdb.query("race")} == {"a": 100, "b": 100, "c": 100}


def check_one_creator_per_key(outs: list[str], keys: int) -> None:
    answers: dict[str, list[tuple[str, str, str]]] = {}
    for out in outs:
        for line in out.splitlines():
            i, pk, created, by = line.split()
            answers.setdefault(i, []).append((pk, created, by))
    assert len(answers) == keys
    for i, seen in answers.items():
        assert len(seen) == 4 and [c for _, c, _ in seen].count("1") == 1, (i, seen)
        assert len({(pk, by) for pk, _, by in seen}) == 1, (i, seen)  # one document


def test_racing_get_or_create_creates_exactly_one(mdb: MongoStorage, url: str) -> None:
    check_one_creator_per_key(run_racers(url, "get_or_create", 30), 30)
    assert mdb.query("race").count() == 30


class Strict(Document):
    key: str
    score: int = 0

    class Meta:
        collection = "strict"
        unique = ("score",)


def test_get_or_create_upserts_and_checks_the_key(mdb: MongoStorage, raw: Any) -> None:
    doc, created = mdb.get_or_create(Strict, key="a", defaults={"score": 1})
    assert created and raw["strict"].find_one({"_id": doc.pk}) == {
        "_id": doc.pk, "key": "a", "score": 1
    }  # fmt: skip
    # An existing document is found without building (so invalid defaults pass).
    again, created = mdb.get_or_create(Strict, key="a", defaults={"score": "not a number"})
    assert not created and again.pk == doc.pk
    with pytest.raises(ValueError):  # the model refuses to build
        mdb.get_or_create(Strict, key="b", defaults={"score": "not a number"})
    # A pk taken by a document that does not match.
    with pytest.raises(DuplicateKey):
        mdb.get_or_create(Strict, key="c", defaults={"pk": doc.pk, "score": 7})
    # A unique index clash.
    with pytest.raises(DuplicateKey):
        mdb.get_or_create(Strict, key="d", defaults={"score": 1})
    # The derived key is taken by a document that no longer matches: a fresh key.
    raw["strict"].update_one({"_id": doc.pk}, {"$set": {"key": "moved"}})
    fresh, created = mdb.get_or_create(Strict, key="a", defaults={"score": 2})
    assert created and fresh.pk != doc.pk
    assert mdb.query(Strict).count() == 2


def test_get_or_create_with_nested_and_list_conditions(mdb: MongoStorage) -> None:
    doc, created = mdb.get_or_create("n", o__x=1, tags=["a"], defaults={"z": {"b": 1, "a": 2}})
    assert created and doc == {"pk": doc["pk"], "o": {"x": 1}, "tags": ["a"], "z": {"a": 2, "b": 1}}
    again, created = mdb.get_or_create("n", o__x=1, tags=["a"])
    assert not created and again == doc
    assert mdb.query("n").where(z={"b": 1, "a": 2}).count() == 1  # stored sorted
    other, created = mdb.get_or_create("n", o__x=1, tags=["a", "b"])
    assert created and other["pk"] != doc["pk"]


# ------------------------------------------------------------ network errors
def test_writes_are_not_retried_and_reads_are(
    mdb: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.collection import Collection

    mdb.save({"pk": "a", "n": 1}, collection="c")
    calls: list[str] = []

    def failing(name: str) -> Any:
        real = getattr(Collection, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            if calls.count(name) == 1:
                raise AutoReconnect("connection reset")
            return real(self, *args, **kwargs)

        return call

    monkeypatch.setattr(Collection, "replace_one", failing("replace_one"))
    with pytest.raises(StorageError) as info:
        mdb.save({"pk": "a", "n": 2}, collection="c")
    assert isinstance(info.value.__cause__, AutoReconnect) and calls == ["replace_one"]
    monkeypatch.setattr(Collection, "find", failing("find"))
    assert mdb.get("c", "a") == {"pk": "a", "n": 1}
    assert calls.count("find") == 2
    monkeypatch.setattr(Collection, "bulk_write", failing("bulk_write"))
    with pytest.raises(StorageError) as info:
        mdb.query("c").update(n__inc=1)
    assert isinstance(info.value.__cause__, AutoReconnect)
    assert mdb.get("c", "a") == {"pk": "a", "n": 1}


# ------------------------------------------------------------- transactions
@pytest.fixture(scope="module")
def replica_set_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that runs transactions: ``$DOQU_TEST_MONGO_URL`` if it is a replica
    set or mongos, else a SecantusDB advertising itself as a one-node replica set."""
    import os

    if "mongodb" not in request.config.getoption("backends").split(","):
        pytest.skip("the mongodb backend is not selected (--backends)")
    given = os.environ.get("DOQU_TEST_MONGO_URL")
    if given:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(given)
        try:
            hello = client.admin.command("hello")
        finally:
            client.close()
        if not hello.get("setName") and hello.get("msg") != "isdbgrid":
            pytest.skip("DOQU_TEST_MONGO_URL is a standalone server: no transactions")
        yield given
        return
    try:
        server = servers.MongoServer(replica_set=True).__enter__()
    except RuntimeError as exc:
        servers.unavailable(f"SecantusDB (replica set) did not start: {exc}")
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def tdb(replica_set_url: str) -> Iterator[MongoStorage]:
    with servers.mongo_database_url(replica_set_url) as fresh:
        storage = doqu.connect(fresh)
        assert isinstance(storage, MongoStorage)
        try:
            yield storage
        finally:
            storage.close()


def test_standalone_server_writes_then_bumps(mdb: MongoStorage, url: str) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
    try:
        hello = client.admin.command("hello")
    finally:
        client.close()
    assert mdb._transactional() is bool(hello.get("setName") or hello.get("msg") == "isdbgrid")


def test_writes_and_version_bumps_share_a_transaction(tdb: MongoStorage) -> None:
    from pymongo import monitoring

    class Listener(monitoring.CommandListener):
        def __init__(self) -> None:
            self.seen: list[tuple[str, Any, Any]] = []

        def started(self, event: monitoring.CommandStartedEvent) -> None:
            cmd = event.command
            self.seen.append((event.command_name, cmd.get("txnNumber"), cmd.get("autocommit")))

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    assert tdb._transactional()
    listener = Listener()
    with doqu.connect(tdb.url, event_listeners=[listener]) as db:
        db.save({"pk": "a", "n": 0}, collection="t")  # first use: the counter is made
        listener.seen.clear()
        db.save({"pk": "a", "n": 1}, collection="t")
        writes = [s for s in listener.seen if s[0] in ("update", "commitTransaction")]
        # the replacement and the bump run in one transaction, committed once
        assert [w[0] for w in writes] == ["update", "update", "commitTransaction"]
        assert len({w[1] for w in writes}) == 1 and writes[0][1] is not None
        assert writes[0][2] is False
        v = db.version("t")
        assert db.query("t").update(n__inc=1) == 1 and db.version("t") == v + 1
        assert db.get("t", "a") == {"pk": "a", "n": 2}


@pytest.mark.parametrize("api", ["sync", "async"])
def test_transactions_write_nothing_on_failure(tdb: MongoStorage, api: str) -> None:
    """Through the async API too: ``with_transaction`` reruns its body in a greenlet."""
    with open_storage(tdb.url, api) as db:
        _write_nothing_on_failure(db)  # type: ignore[arg-type]


def _write_nothing_on_failure(tdb: MongoStorage) -> None:
    backend = sync_storage(tdb)
    assert isinstance(backend, MongoStorage)
    if isinstance(tdb, BlockingStorage):  # asked in a call of the async API
        assert tdb.run(tdb.storage._run(backend._transactional))
    else:
        assert backend._transactional()
    tdb.save(Person(pk="a", name="ann", email="a@x"))
    version = tdb.version(Person)
    with pytest.raises(DuplicateKey):
        tdb.save_many(
            [Person(pk="c", name="cy", email="c@x"), Person(pk="d", name="d", email="a@x")]
        )
    assert [p.pk for p in tdb.query(Person)] == ["a"] and tdb.version(Person) == version
    tdb.save_many([Person(pk="b", name="bob"), Person(pk="c", name="cy", email="c@x")])
    with pytest.raises(DuplicateKey):
        tdb.query(Person).where(pk__in=["b", "c"]).update(email="a@x")
    assert tdb.get(Person, "b").email is None
    doc, created = tdb.get_or_create(Person, name="zed", defaults={"email": "z@x"})
    again, created_again = tdb.get_or_create(Person, name="zed")
    assert created and not created_again and again.pk == doc.pk
    d = tdb.dict("counters")
    assert d.increment("hits") == 1 and d.increment("hits", 2) == 3
    assert tdb.query(Person).where(name="zed").delete() == 1


def test_concurrent_updates_in_transactions_lose_no_increment(
    tdb: MongoStorage,
) -> None:
    tdb.save_many([{"pk": p, "n": 0} for p in "ab"], collection="race")
    run_racers(tdb.url, "inc", 10, count=3)
    assert {d["pk"]: d["n"] for d in tdb.query("race")} == {"a": 30, "b": 30}


def test_racing_get_or_create_in_transactions_creates_exactly_one(tdb: MongoStorage) -> None:
    check_one_creator_per_key(run_racers(tdb.url, "get_or_create", 10), 10)
    assert tdb.query("race").count() == 10 and tdb.version("race") == 10


def test_typed_fields_carry_no_array_guards() -> None:
    """A model-bound query on a declared fixed-kind field: the plain filter and sort an
    index serves (no ``field.0`` guards, no aggregation for the order)."""
    from doqu._schema import fixed_kinds
    from doqu._tree import QuerySpec, make_cond
    from doqu.ext.mongodb._filters import _native_order, to_filter
    from doqu.testing.strategies import Typed

    kinds = fixed_kinds(Typed)
    cond = make_cond("i__gt", 3)
    assert to_filter(cond, kinds) == {"i": {"$gt": 3}}
    assert to_filter(cond) == {"i": {"$gt": 3}, "i.0": {"$exists": False}}  # by name
    nested = make_cond("e__x__lt", 3)
    assert to_filter(nested, kinds) == {"e.x": {"$lt": 3}}
    assert "e" in str(to_filter(nested))  # the guards on the way, without the model
    spec = QuerySpec(cond, order=((("s",), True), (("pk",), False)))
    assert _native_order(spec, kinds) == [("s", -1), ("_id", 1)]
    assert _native_order(spec) is None
    tags = QuerySpec(None, order=((("tags",), False),))
    assert _native_order(tags, kinds) is None  # not a fixed kind: the aggregation
