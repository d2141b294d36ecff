"""The TinyDB file backend: file layout, crash safety, multi-process safety, speed paths."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import doqu
from doqu import ConfigError, Document, DuplicateKey, NotFound, StorageError
from doqu.ext import tinydb as backend
from doqu.ext.tinydb import META_TABLE, PK_FIELD, TinyDBStorage

tinydb = pytest.importorskip("tinydb")

ROOT = Path(__file__).resolve().parent.parent


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None

    class Meta:
        collection = "people"
        unique = ["email"]  # noqa: RUF012


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data.json"


@pytest.fixture
def db(path: Path) -> Iterator[doqu.Storage]:
    storage = doqu.connect(f"tinydb:///{path}")
    try:
        yield storage
    finally:
        storage.close()


def _raw(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _run(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# ------------------------------------------------------------------ file layout
def test_plain_tinydb_opens_the_file(db: doqu.Storage, path: Path) -> None:
    ann = Person(pk="ann", name="Ann", age=31, email="ann@example.org")
    db.save(ann)
    db.save({"pk": "x", "city": "Zürich", "tags": ["a", "b"]}, collection="places")
    plain = tinydb.TinyDB(path)
    try:
        assert set(plain.tables()) == {"people", "places", META_TABLE}
        people = plain.table("people").all()
        assert people == [{PK_FIELD: "ann", "name": "Ann", "age": 31, "email": "ann@example.org"}]
        assert people[0].doc_id == 1
        found = plain.table("places").search(tinydb.Query()[PK_FIELD] == "x")
        assert found == [{PK_FIELD: "x", "city": "Zürich", "tags": ["a", "b"]}]
    finally:
        plain.close()


def test_compact_json_with_raw_non_ascii(db: doqu.Storage, path: Path) -> None:
    db.save({"pk": "p", "name": "Émile"}, collection="c")
    text = path.read_text(encoding="utf-8")
    assert "Émile" in text and "\\u" not in text
    assert ": " not in text and ", " not in text


def test_documents_written_by_tinydb_read_with_doc_id_as_pk(path: Path) -> None:
    plain = tinydb.TinyDB(path)
    plain.table("notes").insert_multiple([{"text": "one"}, {"text": "two"}])
    plain.close()
    with doqu.connect(f"tinydb:///{path}") as db:
        assert db.get("notes", "2") == {"pk": "2", "text": "two"}
        db.save({"pk": "new", "text": "three"}, collection="notes")
        assert sorted(db.query("notes").values("text")) == ["one", "three", "two"]
    plain = tinydb.TinyDB(path)
    try:
        docs = plain.table("notes").all()
        assert [d["text"] for d in docs] == ["one", "two", "three"]
        assert [d.doc_id for d in docs] == [1, 2, 3]
    finally:
        plain.close()


def test_a_replaced_document_keeps_its_doc_id(db: doqu.Storage, path: Path) -> None:
    db.save_many([{"pk": "a", "v": 1}, {"pk": "b", "v": 2}], collection="c")
    db.save({"pk": "a", "v": 10}, collection="c")
    assert _raw(path)["c"] == {"1": {PK_FIELD: "a", "v": 10}, "2": {PK_FIELD: "b", "v": 2}}


def test_an_empty_file_is_an_empty_database(path: Path) -> None:
    path.write_bytes(b"")
    with doqu.connect(f"tinydb:///{path}") as db:
        assert db.collections() == []
        db.save({"pk": "a"}, collection="c")
        assert db.collections() == ["c"]


def test_url_forms_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with doqu.connect("tinydb:///rel.json") as db:
        db.save({"pk": "a"}, collection="c")
    assert (tmp_path / "rel.json").exists()
    with doqu.connect(f"file://{tmp_path / 'abs.json'}") as db:
        db.save({"pk": "a"}, collection="c")
    assert (tmp_path / "abs.json").exists()
    with doqu.connect("tinydb:///rel.json", autoflush=False) as db:
        assert isinstance(db, TinyDBStorage) and db.autoflush is False
    with pytest.raises(ConfigError, match="unknown"):
        doqu.connect("tinydb:///rel.json?cache=1")
    with pytest.raises(ConfigError, match="boolean"):
        doqu.connect("tinydb:///rel.json?autoflush=maybe")
    with pytest.raises(ConfigError, match="does not exist"):
        doqu.connect(f"tinydb:///{tmp_path / 'nope' / 'x.json'}")
    with pytest.raises(ConfigError, match="names no file"):
        doqu.connect("tinydb:///")


# ------------------------------------------------------------------ bad files
BAD_FILES = {
    "not json": b'{"people": {"1": {"name": "Ann"}',
    "a list": b"[1, 2, 3]",
    "table not an object": b'{"people": [1, 2]}',
    "doc id not an integer": b'{"people": {"ann": {"name": "Ann"}}}',
    "document not an object": b'{"people": {"1": "Ann"}}',
    "pk not a string": b'{"people": {"1": {"_id": 5}}}',
    "pk twice": b'{"people": {"1": {"_id": "a"}, "2": {"_id": "a"}}}',
    "NaN": b'{"people": {"1": {"x": NaN}}}',
    "damaged bookkeeping": b'{"$doqu": {"1": {"versions": ["x"]}}}',
    "not UTF-8": b'{"people": {"1": {"x": "\xff"}}}',
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_refused_and_left_untouched(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(StorageError, match=str(path)):
        doqu.connect(f"tinydb:///{path}")
    assert path.read_bytes() == content


def test_a_file_damaged_after_connect_is_refused_and_left_untouched(
    db: doqu.Storage, path: Path
) -> None:
    db.save({"pk": "a", "v": 1}, collection="c")
    garbage = b'{"c": {"1": {"_id": "a", "v": 1}'
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match="not a valid JSON file"):
        db.get("c", "a")
    with pytest.raises(StorageError, match=str(path)):
        db.save({"pk": "b"}, collection="c")
    assert path.read_bytes() == garbage


def test_errors_name_the_path_and_chain_the_cause(path: Path) -> None:
    path.write_bytes(b"{oops")
    with pytest.raises(StorageError) as info:
        doqu.connect(f"tinydb:///{path}")
    assert isinstance(info.value.__cause__, ValueError)


# ------------------------------------------------------------------ speed paths
def test_get_and_delete_by_pk_never_scan(db: doqu.Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    db.save_many([{"pk": f"k{i}", "v": i} for i in range(50)], collection="c")

    def scan(*args: Any) -> Any:
        raise AssertionError("scanned the collection")

    monkeypatch.setattr(backend._Table, "rows", scan)
    monkeypatch.setattr(backend, "filter_rows", scan)
    assert db.get("c", "k7") == {"pk": "k7", "v": 7}
    assert [d["v"] for d in db.get_many("c", ["k3", "k1"])] == [3, 1]
    db.delete("c", "k7")
    with pytest.raises(NotFound):
        db.get("c", "k7")


def test_reads_come_from_memory_until_another_writer_changes_the_file(
    db: doqu.Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.save_many([{"pk": f"k{i}", "v": i} for i in range(10)], collection="c")
    parses = []
    real_parse = backend._parse

    def counting_parse(where: str, raw: bytes) -> Any:
        parses.append(where)
        return real_parse(where, raw)

    monkeypatch.setattr(backend, "_parse", counting_parse)
    for i in range(100):
        db.get("c", f"k{i % 10}")
    assert db.query("c").where(v__gte=5).count() == 5
    assert parses == []
    with doqu.connect(f"tinydb:///{path}") as other:
        parses.clear()  # the other storage's own load
        other.save({"pk": "k0", "v": 100}, collection="c")
    assert db.get("c", "k0") == {"pk": "k0", "v": 100}
    assert db.get("c", "k1") == {"pk": "k1", "v": 1}
    assert len(parses) == 1


def test_save_many_is_one_file_write(db: doqu.Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced = []
    real_replace = os.replace

    def counting_replace(src: str, dst: str) -> None:
        replaced.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(backend.os, "replace", counting_replace)
    db.save_many([{"pk": f"k{i}"} for i in range(1000)], collection="c")
    assert len(replaced) == 1
    assert db.query("c").update(v__inc=1) == 1000
    assert len(replaced) == 2
    assert db.query("c").where(pk__lt="k5").delete() > 1
    assert len(replaced) == 3


def test_results_never_alias_the_stored_documents(db: doqu.Storage) -> None:
    db.save({"pk": "a", "o": {"x": [1]}}, collection="c")
    got = db.get("c", "a")
    got["o"]["x"].append(2)
    listed = db.query("c").first()
    assert listed is not None
    listed["o"]["x"].append(3)
    db.query("c").values("o")[0]["x"].append(4)
    assert db.get("c", "a") == {"pk": "a", "o": {"x": [1]}}


def test_saved_data_is_copied(db: doqu.Storage) -> None:
    tags = ["a"]
    db.save({"pk": "a", "tags": tags}, collection="c")
    tags.append("b")
    assert db.get("c", "a")["tags"] == ["a"]


# ------------------------------------------------------------------ writes
def test_duplicate_key_writes_nothing(db: doqu.Storage, path: Path) -> None:
    db.save_many([Person(pk="ann", name="Ann", email="a@x"), Person(pk="cy", name="Cy")])
    before = path.read_bytes()
    with pytest.raises(DuplicateKey):
        db.save(Person(pk="bob", name="Bob", email="a@x"))
    with pytest.raises(DuplicateKey):
        db.save_many([Person(pk="c", name="C", email="c@x"), Person(pk="d", name="D", email="c@x")])
    with pytest.raises(DuplicateKey):
        Person.objects(db).where(pk="cy").update(email="a@x")
    with pytest.raises(DuplicateKey):
        Person.objects(db).update(email="same@x")
    assert path.read_bytes() == before
    db.save(Person(pk="ann", name="Ann", email="new@x"))  # frees a@x
    db.save(Person(pk="bob", name="Bob", email="a@x"))
    assert db.get(Person, "bob").email == "a@x"


def test_no_temporary_files_are_left_and_the_mode_is_kept(db: doqu.Storage, path: Path) -> None:
    db.save({"pk": "a"}, collection="c")
    path.chmod(0o640)
    db.save({"pk": "b"}, collection="c")
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.json", "data.json.lock"]


def test_version_changes_on_writes_by_another_storage(db: doqu.Storage, path: Path) -> None:
    start = db.version("c")
    with doqu.connect(f"tinydb:///{path}") as other:
        other.save({"pk": "a"}, collection="c")
        other.save({"pk": "b"}, collection="d")
    after = db.version("c")
    assert after != start and after > start
    assert db.version("d") == 1
    db.delete("c", "a")
    assert db.version("c") > after
    assert _raw(path)[META_TABLE]["1"]["versions"] == {"c": 2, "d": 1}


def test_a_closed_storage_refuses_use(path: Path) -> None:
    db = doqu.connect(f"tinydb:///{path}")
    db.close()
    with pytest.raises(StorageError, match="closed"):
        db.get("c", "a")


def test_reconnect_reads_the_file_again(db: doqu.Storage, path: Path) -> None:
    db.save({"pk": "a", "v": 1}, collection="c")
    db.reconnect()
    assert db.get("c", "a") == {"pk": "a", "v": 1}


# ------------------------------------------------------------------ write-behind
def test_write_behind_keeps_writes_in_memory_until_flush(path: Path) -> None:
    url = f"tinydb:///{path}?autoflush=false"
    with doqu.connect(url) as db:
        db.save_many([{"pk": f"k{i}", "v": i} for i in range(100)], collection="c")
        db.query("c").update(v__inc=1)
        assert db.get("c", "k5") == {"pk": "k5", "v": 6}
        assert not path.exists()
        db.flush()
        assert len(_raw(path)["c"]) == 100
        db.delete("c", "k5")
        assert len(_raw(path)["c"]) == 100
    assert len(_raw(path)["c"]) == 99  # close() flushed


def test_write_behind_merges_other_writers_at_flush(path: Path) -> None:
    with doqu.connect(f"tinydb:///{path}") as seed:
        seed.save_many([{"pk": "mine"}, {"pk": "theirs"}, {"pk": "gone"}], collection="c")
    lazy = doqu.connect(f"tinydb:///{path}?autoflush=false")
    try:
        lazy.save({"pk": "mine", "by": "lazy"}, collection="c")
        lazy.delete("c", "gone")
        with doqu.connect(f"tinydb:///{path}") as eager:
            eager.save({"pk": "theirs", "by": "eager"}, collection="c")
            eager.save({"pk": "extra"}, collection="c")
            version = eager.version("c")
        lazy.flush()
        assert lazy.version("c") > version
    finally:
        lazy.close()
    with doqu.connect(f"tinydb:///{path}") as check:
        assert {d["pk"]: d.get("by") for d in check.query("c")} == {
            "mine": "lazy",
            "theirs": "eager",
            "extra": None,
        }


# ------------------------------------------------------------------ crash safety
CRASH_CHILD = """
    import sys
    import doqu

    db = doqu.connect(sys.argv[1])
    i = int(sys.argv[2])
    while True:
        pk = f"k{i:06d}"
        db.save({"pk": pk, "n": i, "pad": "é" * 200}, collection="c")
        print(pk, flush=True)
        i += 1
"""


@pytest.mark.slow
def test_kill_9_never_tears_the_file_or_loses_an_acknowledged_save(path: Path) -> None:
    url = f"tinydb:///{path}"
    rng = random.Random(5)
    acknowledged: list[str] = []
    kills = 0
    while kills < 22:
        child = _run(CRASH_CHILD, url, str(len(acknowledged) * 10 + kills * 1_000_000))
        assert child.stdout is not None
        first = child.stdout.readline()  # the child is in its save loop
        assert first, child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.25))
        child.kill()
        # Read through the same text wrapper as readline(): communicate() would
        # skip what it has buffered. A line cut by the kill was not acknowledged.
        out = child.stdout.read()
        child.wait()
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
        lines = out.split("\n")
        acknowledged += [first.strip(), *(line for line in lines[:-1] if line)]
        kills += 1
        stored = _raw(path)  # parses: never torn
        pks = {doc[PK_FIELD] for doc in stored["c"].values()}
        missing = set(acknowledged) - pks
        assert not missing, f"kill {kills}: lost acknowledged saves {sorted(missing)[:5]}"
    with doqu.connect(url) as db:
        assert db.query("c").where(pk__in=acknowledged).count() == len(set(acknowledged))
    assert len(acknowledged) > kills


# ------------------------------------------------------------------ multi-process
INCREMENT_CHILD = """
    import sys
    import doqu

    with doqu.connect(sys.argv[1]) as db:
        info, _ = db._coll("counters")
        for i in range(int(sys.argv[2])):
            db._increment(info, "k", ("value",), 1)
            if i % 5 == 0:
                db.save({"pk": f"{sys.argv[3]}-{i}"}, collection="log")
"""

MAPPING_CHILD = """
    import sys
    import doqu

    with doqu.connect(sys.argv[1]) as db:
        counters = db.dict("counters")
        for _ in range(int(sys.argv[2])):
            counters.increment("k")
"""


def _race(script: str, url: str, n: int) -> None:
    children = [_run(script, url, str(n), f"p{i}") for i in range(4)]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err


@pytest.mark.slow
def test_four_processes_never_lose_an_increment_or_a_save(path: Path) -> None:
    url = f"tinydb:///{path}"
    _race(INCREMENT_CHILD, url, 500)
    with doqu.connect(url) as db:
        assert db.get("counters", "k")["value"] == 2000
        assert db.query("log").count() == 400


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("doqu._mapping") is None, reason="the mapping view is not built yet"
)
def test_four_processes_increment_through_the_mapping_view(path: Path) -> None:
    url = f"tinydb:///{path}"
    _race(MAPPING_CHILD, url, 500)
    with doqu.connect(url) as db:
        assert db.dict("counters")["k"] == 2000


def test_increment_locks_and_writes_once_per_call(
    db: doqu.Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_flock, real_replace = backend.fcntl.flock, os.replace

    def flock(fd: int, op: int) -> None:
        calls.append("lock" if op == backend.fcntl.LOCK_EX else "unlock")
        real_flock(fd, op)

    def replace(src: str, dst: str) -> None:
        calls.append("write")
        real_replace(src, dst)

    monkeypatch.setattr(backend.fcntl, "flock", flock)
    monkeypatch.setattr(backend.os, "replace", replace)
    info, _ = db._coll("counters")
    assert db._increment(info, "k", ("value",), 2) == 2
    assert db._increment(info, "k", ("value",), 3) == 5
    assert calls == ["lock", "write", "unlock"] * 2
