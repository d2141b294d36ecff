"""The mapping view ``db.dict(...)`` on every backend: dict behaviour, codecs, caches, sync."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import doqu
from doqu import ConfigError, CorruptDocument, Document, QueryError, StorageError

#: Cache options every dict-behaviour test runs with: the plain view and each cache mode.
CACHES = [
    pytest.param({}, id="plain"),
    pytest.param({"cache": 2}, id="lru"),
    pytest.param({"cache": 2, "autosync": False}, id="lru-nosync"),
    pytest.param({"cache": "mirror"}, id="mirror"),
    pytest.param({"cache": "mirror", "autosync": False}, id="mirror-nosync"),
]
#: Backends whose data a second process cannot see.
UNSHARED = {"memory", "memory-persist", "sqlite-memory"}
ROOT = Path(__file__).resolve().parents[1]


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []  # noqa: RUF012 - pydantic copies field defaults

    class Meta:
        collection = "people"


class Pet(Document):
    name: str


# --------------------------------------------------------------------- the API page
def test_api_page_examples(db: doqu.Storage) -> None:
    settings = db.dict("settings")  # a MutableMapping[str, Any] over collection "settings"
    settings["python"] = "rules"
    assert settings["python"] == "rules"
    del settings["python"]
    with pytest.raises(KeyError):
        settings["python"]
    assert settings.increment("visits") == 1  # atomic on the backend; returns the new value
    assert settings.increment("visits") == 2
    people = db.dict(Person)  # MutableMapping[pk, Person]
    people["ann"] = Person(name="Ann", age=31)
    assert people["ann"] == db.get(Person, "ann")
    assert db.query("settings").where(value__gt=1).count() == 1


# --------------------------------------------------------------- dict behaviour
@pytest.mark.parametrize("opts", CACHES)
def test_mutable_mapping_behaviour(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("kv", **opts)
    assert len(d) == 0 and not d and list(d) == [] and d == {}
    d["b"] = 2
    d["a"] = {"x": [1, 2]}
    d["c"] = "three"
    assert len(d) == 3 and bool(d)
    assert sorted(d) == ["a", "b", "c"]
    assert "a" in d and "z" not in d
    assert d["a"] == {"x": [1, 2]}
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert sorted(d.items()) == [("a", {"x": [1, 2]}), ("b", 2), ("c", "three")]
    assert sorted(map(str, d.values())) == ["2", "three", "{'x': [1, 2]}"]
    assert ("b", 2) in d.items() and ("b", 3) not in d.items()
    assert d.get("b") == 2 and d.get("z") is None and d.get("z", 7) == 7
    with pytest.raises(KeyError):
        d["z"]
    with pytest.raises(KeyError):
        del d["z"]
    assert d == {"a": {"x": [1, 2]}, "b": 2, "c": "three"}
    assert d != {"a": {"x": [1, 2]}, "b": 2}

    assert d.pop("b") == 2 and "b" not in d
    assert d.pop("b", "gone") == "gone"
    with pytest.raises(KeyError):
        d.pop("b")
    assert d.setdefault("c", "other") == "three"
    assert d.setdefault("n", [1]) == [1] and d["n"] == [1]
    assert d.setdefault("none") is None and "none" in d and d["none"] is None
    d.update({"u1": 1}, u2=2)
    d.update([("u3", 3)])
    assert d["u1"] == 1 and d["u2"] == 2 and d["u3"] == 3
    d["c"] = "replaced"
    assert d["c"] == "replaced"
    assert len(d) == 7

    expected = dict(d.items())
    key, value = d.popitem()
    assert key not in d and len(d) == 6 and expected[key] == value
    d.clear()
    assert len(d) == 0 and d == {} and db.query("kv").count() == 0
    with pytest.raises(KeyError):
        d.popitem()
    d.clear()  # clearing an empty view is fine


@pytest.mark.parametrize("opts", CACHES[:-1])
def test_values_handed_out_are_copies(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("kv", **opts)
    original = {"list": [1, 2], "obj": {"k": "v"}}
    d["x"] = original
    original["list"].append(3)  # the caller's object is not the stored one
    got = d["x"]
    got["list"].append(99)
    got["obj"]["k"] = "changed"
    assert d["x"] == {"list": [1, 2], "obj": {"k": "v"}}
    assert dict(d.items())["x"] == {"list": [1, 2], "obj": {"k": "v"}}


def test_lean_mirror_hands_out_its_own_objects(db: doqu.Storage) -> None:
    m = db.dict("kv", cache="mirror", autosync=False)
    original = {"list": [1, 2]}
    m["x"] = original
    original["list"].append(3)  # what was stored is a copy of the caller's object
    assert m["x"] is m["x"] == {"list": [1, 2]}  # like a dict: no copy per read
    assert dict(m.items())["x"] is m["x"]
    value = m["x"]
    value["list"].append(3)  # read-only by contract; assigning back stores it
    m["x"] = value
    assert db.dict("kv")["x"] == {"list": [1, 2, 3]}
    value["list"].append(4)  # the assignment stored a copy, again
    assert m["x"] == {"list": [1, 2, 3]}


def test_equality_with_another_view(db: doqu.Storage) -> None:
    a, b = db.dict("one"), db.dict("two", cache="mirror")
    assert a == b
    a.update(x=1, y=[1, "2"])
    assert a != b
    b.update(y=[1, "2"], x=1.0)  # 1 == 1.0, as JSON equality says
    assert a == b and b == a
    assert a != {"x": 1} and a != [("x", 1), ("y", [1, "2"])]


def test_iteration_is_in_key_order_and_streams(
    db: doqu.Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = db.dict("kv")
    keys = ["b", "a", "Z", "é", "aa", "10", "9"]
    d.update((k, i) for i, k in enumerate(keys))
    assert list(d) == sorted(keys)  # code-point order: "10" < "9" < "Z" < "a" < "aa" < "b" < "é"
    fetches: list[Any] = []
    real_fetch = db._fetch
    monkeypatch.setattr(db, "_fetch", lambda *a: fetches.append(a) or real_fetch(*a))
    assert [k for k, _ in d.items()] == sorted(keys)
    assert sorted(d.values()) == list(range(len(keys)))
    assert fetches == []  # items() and values() read everything in one query, not key by key


def test_repr_names_the_collection_and_options(db: doqu.Storage) -> None:
    assert "'settings'" in repr(db.dict("settings"))
    assert "mirror" in repr(db.dict("settings", cache="mirror"))
    assert "Person" in repr(db.dict(Person))


# ------------------------------------------------------------------------ keys
@pytest.mark.parametrize("opts", CACHES)
def test_non_str_keys(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("kv", **opts)
    before = d.last_updated()
    for key in (1, None, 1.5, b"k", ("t",)):
        with pytest.raises(TypeError):
            d[key] = "v"  # type: ignore[index]
        with pytest.raises(TypeError):
            d.update({key: "v", "ok": 1})
        with pytest.raises(TypeError):
            d.setdefault(key, "v")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            d.increment(key)  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            d[key]  # type: ignore[index]
        with pytest.raises(KeyError):
            del d[key]  # type: ignore[arg-type]
        assert key not in d
        assert d.get(key, "dflt") == "dflt"  # type: ignore[arg-type]
        assert d.pop(key, "dflt") == "dflt"  # type: ignore[arg-type]
    assert len(d) == 0 and db.query("kv").count() == 0
    assert d.last_updated() == before


def test_unusual_str_keys(db: doqu.Storage) -> None:
    d = db.dict("kv")
    for key in ("", " ", "a/b", "a.b", "$gt", "x' OR 1=1 --", "ключ", "😀", "k" * 255):
        d[key] = key
    assert len(d) == 9
    for key in list(d):
        assert d[key] == key
    with pytest.raises(ValueError):
        d["k" * 256] = 1
    assert "k" * 256 not in d and len(d) == 9


# ---------------------------------------------------------------------- values
JSON_VALUES = [
    None,
    True,
    False,
    0,
    -5,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.25,
    "",
    "é ✓ 😀 \n\t",
    [],
    {},
    [1, "a", None, [True, {"k": []}]],
    {"nested": {"deep": [1, 2, {"x": "y"}]}, "k": 0, "a b": 1, "x$": 2},
]


@pytest.mark.parametrize("opts", CACHES)
def test_json_values_round_trip(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("kv", **opts)
    d.update((f"k{i}", v) for i, v in enumerate(JSON_VALUES))
    for i, v in enumerate(JSON_VALUES):
        assert d[f"k{i}"] == v
        assert type(d[f"k{i}"]) is type(v)
    d["t"] = (1, (2, "x"))
    assert d["t"] == [1, [2, "x"]]  # tuples come back as lists, as with json
    fresh = db.dict("kv")
    assert dict(fresh.items()) == {
        **{f"k{i}": v for i, v in enumerate(JSON_VALUES)},
        "t": [1, [2, "x"]],
    }


def test_object_keys_no_backend_stores(db: doqu.Storage) -> None:
    """Keys with a leading ``$``, a ``.`` or a NUL are refused everywhere; nothing is written."""
    d = db.dict("kv")
    for key in ("a.b", "$gt", "a\x00"):
        with pytest.raises(doqu.InvalidDocument):
            d["k"] = {key: 1}
        assert "k" not in d
    d["k"] = {"": 1, "a$": 2}
    assert d["k"] == {"": 1, "a$": 2}


BAD_JSON = [
    pytest.param({1, 2}, id="set"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(object(), id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(2**64, id="int65"),
    pytest.param({1: "a"}, id="int-key"),
    pytest.param([1, {2, 3}], id="nested-set"),
    pytest.param({"d": dt.date(2024, 1, 1)}, id="date"),
    pytest.param(decimal.Decimal("1.5"), id="decimal"),
    pytest.param("\ud800", id="lone-surrogate"),
]


@pytest.mark.parametrize("value", BAD_JSON)
def test_json_codec_refuses_what_it_cannot_represent(db: doqu.Storage, value: Any) -> None:
    d = db.dict("kv", cache="mirror")
    before = d.last_updated()
    with pytest.raises(TypeError):
        d["k"] = value
    with pytest.raises(TypeError):
        d.update({"a": 1, "k": value, "z": 2})  # checked before anything is written
    with pytest.raises(TypeError):
        d.setdefault("k", value)
    assert db.query("kv").count() == 0 and len(d) == 0
    assert d.last_updated() == before


def test_json_values_are_visible_to_queries(db: doqu.Storage) -> None:
    d = db.dict("settings")
    d.update(a=1, b=5, c="x", d=[1, 2], e={"k": 9})
    assert sorted(doc["pk"] for doc in db.query("settings").where(value__gt=3)) == ["b"]
    assert [doc["pk"] for doc in db.query("settings").where(value__contains=2)] == ["d"]
    assert [doc["pk"] for doc in db.query("settings").where(value__k=9)] == ["e"]
    assert db.get("settings", "c") == {"pk": "c", "value": "x"}
    db.query("settings").where(value__gte=1).update(value__inc=10)
    assert d["a"] == 11 and d["b"] == 15


def test_documents_written_by_others_read_as_their_value(db: doqu.Storage) -> None:
    db.save({"pk": "k", "value": [1], "extra": True}, collection="kv")
    db.save({"pk": "bare", "other": 1}, collection="kv")
    d = db.dict("kv")
    assert d["k"] == [1]
    assert d["bare"] is None  # no "value" field: reads as None
    assert len(d) == 2


# ---------------------------------------------------------------------- codecs
PICKLED = [
    {1, 2, 3},
    frozenset({"a"}),
    b"\x00\xff bytes",
    (1, (2, 3)),
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    decimal.Decimal("3.14"),
    complex(1, 2),
    float("nan"),
    {1: "int keys", (2, 3): "tuple keys"},
]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cache", [None, "mirror"])
def test_pickle_codec(db: doqu.Storage, compress: bool, cache: str | None) -> None:
    d = db.dict("pickled", codec="pickle", compress=compress, cache=cache)
    for i, v in enumerate(PICKLED):
        d[f"k{i}"] = v
    again = db.dict("pickled", codec="pickle", compress=compress)
    for i, v in enumerate(PICKLED):
        got = again[f"k{i}"]
        if isinstance(v, float):
            assert got != got  # NaN survives pickling
        else:
            assert got == v and type(got) is type(v)
    stored = db.get("pickled", "k0")["value"]
    assert isinstance(stored, str)  # an encoded string (base64 text)
    with pytest.raises(TypeError):
        d["lock"] = threading.Lock()  # unpicklable: nothing written
    assert "lock" not in d and len(d) == len(PICKLED)
    with pytest.raises(TypeError):
        d.increment("n")


class UpperCodec:
    """A text codec: values are str, stored upper-cased."""

    def encode(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("only text")
        return value.upper()

    def decode(self, data: str) -> str:
        assert isinstance(data, str)
        return data.lower()


class ReversedBytesCodec:
    """A binary codec: encode returns bytes, decode receives bytes."""

    binary = True

    def encode(self, value: Any) -> bytes:
        return bytes(reversed(str(value).encode("utf-8")))

    def decode(self, data: bytes) -> str:
        assert isinstance(data, bytes)
        return bytes(reversed(data)).decode("utf-8")


@pytest.mark.parametrize("compress", [False, True])
def test_custom_codecs(db: doqu.Storage, compress: bool) -> None:
    text = db.dict("text", codec=UpperCodec(), compress=compress)
    text["k"] = "hello"
    assert text["k"] == "hello"
    if not compress:
        assert db.get("text", "k")["value"] == "HELLO"  # a text codec's output is stored as is
    with pytest.raises(TypeError):
        text["bad"] = 5  # the codec refused it
    assert "bad" not in text

    binary = db.dict("binary", codec=ReversedBytesCodec(), compress=compress)
    binary["k"] = "héllo"
    assert binary["k"] == "héllo"
    assert isinstance(db.get("binary", "k")["value"], str)

    class BytesWithoutFlag:
        def encode(self, value: Any) -> bytes:
            return b"x"

        def decode(self, data: Any) -> Any:
            return data

    loose = db.dict("loose", codec=BytesWithoutFlag())
    with pytest.raises(TypeError):
        loose["k"] = 1
    assert len(loose) == 0


def test_compress_shrinks_and_hides_values_from_queries(db: doqu.Storage) -> None:
    value = {"text": "abc" * 2000, "n": list(range(50))}
    plain, packed = db.dict("plain"), db.dict("packed", compress=True)
    plain["k"] = packed["k"] = value
    assert packed["k"] == value
    stored = db.get("packed", "k")["value"]
    assert isinstance(stored, str) and len(stored) < 1000
    with pytest.raises(TypeError):
        packed["nan"] = float("nan")  # the JSON codec's rules hold when compressed too
    with pytest.raises(TypeError):
        packed.increment("n")
    assert "nan" not in packed


def test_undecodable_items_raise_corrupt_document(db: doqu.Storage) -> None:
    db.save({"pk": "k", "value": 5}, collection="pickled")
    db.save({"pk": "j", "value": "not base64!"}, collection="pickled")
    d = db.dict("pickled", codec="pickle")
    for key in ("k", "j"):
        with pytest.raises(CorruptDocument) as info:
            d[key]
        assert info.value.pk == key and info.value.collection == "pickled"


def test_options_are_checked(db: doqu.Storage) -> None:
    for bad in (
        {"codec": "yaml"},
        {"codec": object()},
        {"cache": 0},
        {"cache": -1},
        {"cache": True},
        {"cache": "all"},
        {"ttl": 5},
        {"cache": 3, "ttl": 0},
        {"cache": 3, "ttl": "5"},
        {"compress": "yes"},
        {"autosync": "no"},
    ):
        with pytest.raises(ConfigError):
            db.dict("kv", **bad)
    with pytest.raises(ConfigError):
        db.dict(Person, codec="pickle")
    with pytest.raises(ConfigError):
        db.dict(Person, compress=True)
    with pytest.raises(TypeError):
        db.dict("kv", sizes=3)


# ------------------------------------------------------------------- increment
@pytest.mark.parametrize("opts", CACHES)
def test_increment(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("counters", **opts)
    assert d.increment("hits") == 1
    assert d.increment("hits", 5) == 6
    assert d.increment("hits", -10) == -4
    assert d["hits"] == -4 and type(d["hits"]) is int
    assert d.increment("ratio", 0.5) == 0.5
    assert d.increment("ratio", 0.25) == 0.75
    d["text"] = "not a number"
    before = d.last_updated()
    with pytest.raises(TypeError) as info:
        d.increment("text")
    assert isinstance(info.value, QueryError)  # the core's UpdateTypeError is both
    assert d["text"] == "not a number" and d.last_updated() == before
    for by in (True, "1", None, [1]):
        with pytest.raises(TypeError):
            d.increment("hits", by)  # type: ignore[arg-type]
    assert d["hits"] == -4
    assert db.get("counters", "hits") == {"pk": "hits", "value": -4}


def test_increment_is_refused_by_model_views(db: doqu.Storage) -> None:
    with pytest.raises(TypeError):
        db.dict(Person).increment("ann")


@pytest.mark.parametrize("opts", CACHES)
def test_increment_from_threads_is_exact(db: doqu.Storage, opts: dict[str, Any]) -> None:
    d = db.dict("counters", **opts)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                d.increment("n")
                d.get("n")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    d.sync()
    assert d["n"] == 200
    assert db.get("counters", "n")["value"] == 200


# ------------------------------------------------------------------ model views
def test_model_view(db: doqu.Storage) -> None:
    people = db.dict(Person)
    ann = Person(name="Ann", age=31, tags=["x"])
    people["ann"] = ann
    assert ann.pk == "ann"  # set as save() does
    got = people["ann"]
    assert isinstance(got, Person) and got.pk == "ann" and got.name == "Ann"
    assert db.get(Person, "ann") == got
    assert Person.objects(db).where(age__gt=30).count() == 1
    people.update(bob=Person(name="Bob"))
    assert db.get(Person, "bob").name == "Bob"
    assert sorted(people) == ["ann", "bob"]
    assert [p.name for p in people.values()] == ["Ann", "Bob"]
    with pytest.raises(TypeError):
        people["cat"] = Pet(name="Tom")
    with pytest.raises(TypeError):
        people["dict"] = {"name": "Dict"}
    assert "cat" not in people and "dict" not in people
    assert people.pop("bob").name == "Bob"
    assert Person.objects(db).count() == 1
    mirror = db.dict(Person, cache="mirror", autosync=False)
    got = mirror["ann"]
    got.tags.append("changed")
    assert mirror["ann"].tags == ["x"]


# ------------------------------------------------------------- version tokens
def test_last_updated_changes_on_every_write(db: doqu.Storage) -> None:
    d = db.dict("settings")
    seen = [d.last_updated()]

    def changed() -> None:
        now = d.last_updated()
        assert now not in seen
        seen.append(now)

    d["a"] = 1
    changed()
    d["a"] = 2
    changed()
    d.update(b=1, c=2)
    changed()
    d.increment("a")
    changed()
    del d["a"]
    changed()
    d.pop("b")
    changed()
    d.setdefault("z", 0)
    changed()
    db.save({"pk": "x", "value": 1}, collection="settings")
    changed()
    db.delete("settings", "x")
    changed()
    db.query("settings").update(value__inc=1)
    changed()
    db.query("settings").where(value__gte=0).delete()
    changed()
    d["q"] = 1
    changed()
    db.clear("settings")
    changed()
    d["q"] = 1
    changed()
    d.clear()
    changed()
    list(d.items()), len(d), d.get("q"), "q" in d  # reads change nothing
    assert d.last_updated() == seen[-1]
    assert db.dict("settings").last_updated() == db.version("settings")


# ---------------------------------------------------------------------- caches
def _writer(db: doqu.Storage, key: str, value: Any) -> None:
    """Write behind the view's back (same store, another path)."""
    db.save({"pk": key, "value": value}, collection="kv")


@pytest.mark.parametrize("cache", [3, "mirror"])
def test_autosync_sees_other_writers_at_once(db: doqu.Storage, cache: int | str) -> None:
    d = db.dict("kv", cache=cache)
    d["k"] = "old"
    assert d["k"] == "old"
    _writer(db, "k", "new")
    assert d["k"] == "new"
    _writer(db, "fresh", 1)
    assert "fresh" in d and d.get("fresh") == 1
    db.delete("kv", "fresh")
    assert "fresh" not in d
    if cache == "mirror":
        _writer(db, "listed", 2)
        assert len(d) == 2 and sorted(d) == ["k", "listed"]


@pytest.mark.parametrize("cache", [3, "mirror"])
def test_without_autosync_reads_are_local_until_sync(db: doqu.Storage, cache: int | str) -> None:
    d = db.dict("kv", cache=cache, autosync=False)
    d["k"] = "old"
    d["other"] = 1
    assert d["k"] == "old" and d["other"] == 1
    _writer(db, "k", "new")
    assert d["k"] == "old"  # served from the local copy
    d["other"] = 2  # our own writes are seen at once
    assert d["other"] == 2 and d["k"] == "old"
    d.sync()
    assert d["k"] == "new" and d["other"] == 2
    db.delete("kv", "k")
    assert d["k"] == "new"
    d.sync()
    assert "k" not in d


def test_lru_keeps_only_the_last_n(db: doqu.Storage) -> None:
    d = db.dict("kv", cache=1, autosync=False)
    d.update(a="a0", b="b0")
    assert d["a"] == "a0" and d["b"] == "b0"  # b evicted a
    _writer(db, "a", "a1")
    _writer(db, "b", "b1")
    assert d["a"] == "a1"  # not cached any more: read from the store (now caching a)
    assert d["a"] == "a1"
    assert d["b"] == "b1"


def test_lru_ttl(db: doqu.Storage) -> None:
    d = db.dict("kv", cache=10, ttl=0.3, autosync=False)
    d["k"] = "old"
    assert d["k"] == "old"
    _writer(db, "k", "new")
    assert d["k"] == "old"
    time.sleep(0.35)
    assert d["k"] == "new"


def test_mirror_ttl(db: doqu.Storage) -> None:
    d = db.dict("kv", cache="mirror", ttl=0.3, autosync=False)
    d["k"] = "old"
    assert d["k"] == "old"
    _writer(db, "k", "new")
    assert d["k"] == "old"
    time.sleep(0.35)
    assert d["k"] == "new"


def _count_selects(db: doqu.Storage, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = db._select

    def counting(*args: Any) -> Iterator[Any]:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(db, "_select", counting)
    return calls


@pytest.mark.parametrize("autosync", [True, False])
def test_mirror_reloads_only_when_the_version_moved(
    db: doqu.Storage, monkeypatch: pytest.MonkeyPatch, autosync: bool
) -> None:
    d = db.dict("kv")
    d.update(a=1, b=2)
    selects = _count_selects(db, monkeypatch)
    m = db.dict("kv", cache="mirror", autosync=autosync)
    assert m["a"] == 1 and len(selects) == 1  # loaded once
    for _ in range(20):
        assert m["b"] == 2 and "a" in m and len(m) == 2 and sorted(m) == ["a", "b"]
    m.sync()
    assert len(selects) == 1  # nothing changed: no reload
    _writer(db, "a", 10)
    assert m["a"] == (10 if autosync else 1)
    m.sync()
    assert m["a"] == 10 and len(selects) == 2  # one reload for the change


def test_mirror_keeps_its_copy_across_its_own_writes(
    db: doqu.Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = db.dict("kv", cache="mirror")
    m["a"] = 1
    assert m["a"] == 1
    token = m.last_updated()
    selects = _count_selects(db, monkeypatch)
    m["b"] = 2
    m.increment("a")
    del m["b"]
    assert m["a"] == 2 and "b" not in m and len(m) == 1
    if isinstance(token, int):
        # A counter that moved by one per write tells the view the write was its own.
        assert selects == []
    else:
        assert len(selects) <= 3


def test_rewriting_the_same_data_moves_no_version_on_sql(db: doqu.Storage, db_url: str) -> None:
    """SQLite and PostgreSQL leave a row that already holds the data alone: no page
    written, no dead tuple, no version bump (so other processes' caches stay valid)."""
    d = db.dict("kv")
    d["a"] = {"n": 1}
    db.save({"pk": "doc", "value": [1, 2]}, collection="kv")
    token = d.last_updated()
    d["a"] = {"n": 1}
    d.update(a={"n": 1})
    db.save({"pk": "doc", "value": [1, 2]}, collection="kv")
    db.save_many([{"pk": "doc", "value": [1, 2]}, {"pk": "a", "value": {"n": 1}}], collection="kv")
    if db_url.startswith(("sqlite", "postgresql")):
        assert d.last_updated() == token
    d["a"] = {"n": 2}  # a change always moves it
    assert d.last_updated() != token and d["a"] == {"n": 2}
    token = d.last_updated()
    db.save_many([{"pk": "doc", "value": [1, 2]}, {"pk": "new", "value": 0}], collection="kv")
    assert d.last_updated() != token  # one row of the batch changed
    assert dict(d.items()) == {"a": {"n": 2}, "doc": [1, 2], "new": 0}


@pytest.mark.parametrize("cache", [3, "mirror"])
def test_a_write_that_changed_nothing_does_not_hide_another_writer(
    db: doqu.Storage, monkeypatch: pytest.MonkeyPatch, cache: int | str
) -> None:
    """Another writer's one bump, landing while our write left the data as it was,
    is not taken for ours: the cache reloads and sees it."""
    m = db.dict("kv", cache=cache)
    m.update(a=1, b=1)
    assert m["a"] == 1 and m["b"] == 1
    real_text, real_put = db._put_text, db._put
    injected: list[str] = []

    def inject(real: Any) -> Any:
        def put(coll: Any, rows: Any) -> Any:
            moved = real(coll, rows)
            if not injected:
                injected.append("b")
                real_text(coll, [("b", '{"value":2}')]) if db.stores_text else real_put(
                    coll, [("b", {"value": 2})]
                )
            return moved

        return put

    monkeypatch.setattr(db, "_put_text", inject(real_text))
    monkeypatch.setattr(db, "_put", inject(real_put))
    m["a"] = 1  # the same data
    assert injected == ["b"]
    assert m["b"] == 2 and m["a"] == 1


def test_concurrent_readers_and_writers_through_caches(db: doqu.Storage) -> None:
    views = [db.dict("kv", cache="mirror"), db.dict("kv", cache=4), db.dict("kv")]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            view = views[n % len(views)]
            for i in range(30):
                view[f"t{n}-{i % 5}"] = [n, i]
                assert view[f"t{n}-{i % 5}"] == [n, i]
                view.get(f"t{(n + 1) % 4}-0")
            list(view.items())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = {f"t{n}-{j}": [n, 25 + j] for n in range(4) for j in range(5)}
    for view in views:
        view.sync()
        assert dict(view.items()) == expected


def test_closed_storage(db_url: str) -> None:
    db = doqu.connect(db_url)
    plain = db.dict("kv")
    mirror = db.dict("kv", cache="mirror", autosync=False)
    plain["k"] = 1
    assert mirror["k"] == 1
    db.close()
    for view in (plain, mirror):
        with pytest.raises(StorageError):
            view["k"]
        with pytest.raises(StorageError):
            view["k"] = 2
        with pytest.raises(StorageError):
            len(view)
        with pytest.raises(StorageError):
            view.last_updated()


# ------------------------------------------------------------------ processes
_CHILD = r"""
import sys, time
import doqu

url, action, key, arg, start_at = sys.argv[1:6]
time.sleep(max(0.0, float(start_at) - time.time()))
with doqu.connect(url) as db:
    d = db.dict("shared")
    if action == "set":
        d[key] = arg
    else:
        for _ in range(int(arg)):
            d.increment(key)
"""


def _children(db_url: str, action: str, key: str, arg: str, n: int) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    start_at = str(time.time() + 2.0)  # after every child has imported doqu and connected
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, db_url, action, key, arg, start_at],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode:
            failures.append(err[-2000:])
    assert not failures, failures


@pytest.mark.parametrize("autosync", [True, False])
def test_a_mirror_sees_another_process(
    db: doqu.Storage, db_url: str, backend: str, autosync: bool
) -> None:
    if backend in UNSHARED:
        pytest.skip(f"{backend} is not a shared store: another process cannot see its data")
    d = db.dict("shared", cache="mirror", autosync=autosync)
    d["k"] = "mine"
    assert d["k"] == "mine"
    _children(db_url, "set", "k", "theirs", 1)
    if autosync:
        assert d["k"] == "theirs"  # seen on the next read
    else:
        assert d["k"] == "mine"  # the local copy, until sync()
        d.sync()
        assert d["k"] == "theirs"
    assert db.dict("shared")["k"] == "theirs"


@pytest.mark.slow
def test_increment_from_four_processes_is_exact(
    db: doqu.Storage, db_url: str, backend: str
) -> None:
    d = db.dict("shared")
    if backend in UNSHARED:
        # Not shared between processes: four threads of this one do the same work.
        def work() -> None:
            for _ in range(500):
                d.increment("n")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        _children(db_url, "increment", "n", "500", 4)
    assert d["n"] == 2000
