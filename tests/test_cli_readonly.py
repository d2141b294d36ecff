"""Read-only connections: ``read_only=True`` on every backend, and the CLI commands that read.

A read-only connection never creates a file, database, table or index and never
writes: a missing SQLite or TinyDB file is a ``ConfigError``, a missing
collection reads as empty, and every write raises ``StorageError`` naming the
operation. ``find``, ``count``, ``values``, ``export``, ``collections`` and the
source of ``copy`` connect that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import doqu
from doqu import ConfigError, Document, NotFound, Storage, StorageError
from doqu.cli import cli


class Car(Document):
    name: str
    hp: int = 0
    plate: str | None = None

    class Meta:
        collection = "cars"
        indexes = ["hp"]  # noqa: RUF012
        unique = ["plate"]  # noqa: RUF012


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fails(*args: str) -> str:
    """Run a command that must exit 1 with one ``doqu: error:`` line; return the line."""
    result = run(*args)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doqu: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


READ_COMMANDS: list[Callable[[str], list[str]]] = [
    lambda url: ["find", url, "cars"],
    lambda url: ["find", url, "cars", "--format", "json"],
    lambda url: ["count", url, "cars"],
    lambda url: ["values", url, "cars", "hp"],
    lambda url: ["export", url, "cars"],
    lambda url: ["collections", url],
    lambda url: ["copy", url, "memory://"],
]
COMMAND_IDS = ["find", "find-json", "count", "values", "export", "collections", "copy"]


# --------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("command", READ_COMMANDS, ids=COMMAND_IDS)
@pytest.mark.parametrize(
    ("scheme", "name", "message"),
    [
        ("sqlite", "nodb.db", "no such database file (read_only)"),
        ("tinydb", "nodb.json", "no such TinyDB file (read_only)"),
    ],
)
def test_read_commands_never_create_a_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: Callable[[str], list[str]],
    scheme: str,
    name: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"{scheme}:///{name}"
    line = fails(*command(url))
    assert line == f"doqu: error: {url}: {message}"
    assert os.listdir(tmp_path) == []
    # An absolute path, too.
    url = f"{scheme}:///{tmp_path / name}"
    assert fails(*command(url)).endswith(message)
    assert os.listdir(tmp_path) == []


def test_count_of_a_missing_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert fails("count", "sqlite:///nodb.db", "cars") == (
        "doqu: error: sqlite:///nodb.db: no such database file (read_only)"
    )
    assert not (tmp_path / "nodb.db").exists()


def _seeded(url: str) -> None:
    with doqu.connect(url) as db:
        db.save_many([Car(pk="a", name="A", hp=90, plate="X1"), Car(pk="b", name="B", hp=120)])


@pytest.mark.parametrize("scheme", ["sqlite", "tinydb"])
def test_read_commands_leave_a_store_as_it_was(tmp_path: Path, scheme: str) -> None:
    path = tmp_path / ("cars.db" if scheme == "sqlite" else "cars.json")
    url = f"{scheme}:///{path}"
    _seeded(url)
    for extra in tmp_path.glob("*.lock"):
        extra.unlink()
    before = path.read_bytes()
    listing = sorted(os.listdir(tmp_path))
    assert run("count", url, "cars", "-w", "hp__gt=100").stdout == "1\n"
    assert run("count", url, "trucks").stdout == "0\n"  # a missing collection reads as empty
    found = [json.loads(line) for line in run("find", url, "cars", "-o", "hp").stdout.splitlines()]
    assert [d["pk"] for d in found] == ["a", "b"]
    assert run("values", url, "cars", "hp").stdout == "90\n120\n"
    assert len(run("export", url, "cars").stdout.splitlines()) == 2
    assert run("collections", url).stdout == "cars\n"
    copied = run("copy", url, f"tinydb:///{tmp_path / 'copy.json'}")
    assert copied.exit_code == 0 and "cars: 2 copied" in copied.stdout
    (tmp_path / "copy.json").unlink()
    (tmp_path / "copy.json.lock").unlink()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == listing


def test_read_commands_on_a_missing_snapshot_create_none(tmp_path: Path) -> None:
    url = f"memory://?persist={tmp_path / 'snap.json'}"
    assert run("count", url, "cars").stdout == "0\n"
    assert run("collections", url).stdout == ""
    assert os.listdir(tmp_path) == []


def test_writing_commands_still_create(tmp_path: Path) -> None:
    src = tmp_path / "cars.jsonl"
    src.write_text('{"pk": "a", "hp": 1}\n')
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert run("import", url, "cars", str(src)).exit_code == 0
    assert run("count", url, "cars").stdout == "1\n"


# ------------------------------------------------------------- every backend
def _shared(backend: str) -> bool:
    """Whether a second connection to the URL sees the same data."""
    return backend not in ("memory", "sqlite-memory")


WRITES: list[tuple[str, Callable[[Storage], Any]]] = [
    ("save", lambda db: db.save(Car(name="New"))),
    ("save_many", lambda db: db.save_many([Car(name="New")])),
    ("delete", lambda db: db.delete(Car, "a")),
    ("clear", lambda db: db.clear()),
    ("clear", lambda db: db.clear(Car)),
    ("get_or_create", lambda db: db.get_or_create(Car, name="Nobody")),
    ("update", lambda db: db.query(Car).update(hp__inc=1)),
    ("delete", lambda db: db.query(Car).where(hp__gt=0).delete()),
    ("dict item assignment", lambda db: db.dict("kv").__setitem__("k", 1)),
    ("dict item deletion", lambda db: db.dict("kv").__delitem__("k")),
    ("dict update", lambda db: db.dict("kv").update(k=1)),
    ("dict clear", lambda db: db.dict("kv").clear()),
    ("setdefault", lambda db: db.dict("kv").setdefault("other", 1)),
    ("increment", lambda db: db.dict("kv").increment("k")),
]


@pytest.mark.parametrize("form", ["keyword", "url"])
def test_read_only_connection(db: Storage, db_url: str, backend: str, form: str) -> None:
    db.save_many([Car(pk="a", name="A", hp=90, plate="X1"), Car(pk="b", name="B", hp=120)])
    db.dict("kv")["k"] = 1
    db.flush()
    version = db.version(Car)
    if form == "keyword":
        ro = doqu.connect(db_url, read_only=True)
    else:
        ro = doqu.connect(f"{db_url}{'&' if '?' in db_url else '?'}read_only=true")
    try:
        assert ro.read_only
        expected = {"a", "b"} if _shared(backend) else set()
        assert {c.pk for c in ro.query(Car)} == expected
        assert ro.query(Car).where(hp__gt=100).count() == len(expected) // 2
        if expected:
            assert ro.get(Car, "a").plate == "X1"
            assert ro.dict("kv")["k"] == 1
            assert ro.collections() == ["cars", "kv"]
        # A collection that does not exist reads as empty.
        assert ro.query("trucks").count() == 0 and list(ro.query("trucks")) == []
        assert ro.query("trucks").values("x") == [] and not ro.query("trucks").exists()
        assert ro.version("trucks") == 0 and len(ro.dict("trucks")) == 0
        with pytest.raises(NotFound):
            ro.get("trucks", "x")
        # get_or_create that finds the document writes nothing.
        if expected:
            assert ro.get_or_create(Car, name="A")[1] is False
        for what, write in WRITES:
            with pytest.raises(StorageError) as info:
                write(ro)
            assert str(info.value) == f"{what} on a read-only connection"
    finally:
        ro.close()
    assert {c.pk for c in db.query(Car)} == {"a", "b"}
    assert db.version(Car) == version and db.dict("kv")["k"] == 1
    if _shared(backend):
        assert "trucks" not in db.collections()


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda p: f"sqlite:///{p / 'no.db'}", "no such database file (read_only)"),
        (lambda p: f"tinydb:///{p / 'no.json'}", "no such TinyDB file (read_only)"),
    ],
)
def test_read_only_missing_file(
    tmp_path: Path, make_url: Callable[[Path], str], message: str
) -> None:
    url = make_url(tmp_path)
    with pytest.raises(ConfigError) as info:
        doqu.connect(url, read_only=True)
    assert str(info.value) == f"{url}: {message}"
    assert os.listdir(tmp_path) == []


def test_read_only_missing_snapshot_is_empty(tmp_path: Path) -> None:
    with doqu.connect(f"memory://?persist={tmp_path / 'snap.json'}", read_only=True) as db:
        assert db.collections() == [] and db.query(Car).count() == 0
        db.flush()
    assert os.listdir(tmp_path) == []


def test_read_only_sqlite_with_other_tables(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE t (x)")
    before = path.read_bytes()
    with doqu.connect(f"sqlite:///{path}", read_only=True) as db:
        assert db.collections() == [] and db.query(Car).count() == 0
        assert db.query(Car).where(plate="X1").first() is None
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["plain.db"]
