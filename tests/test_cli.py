"""The ``doqu`` command line: every subcommand, its errors, and streaming import/export/copy."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import doqu
from doqu import Storage
from doqu._registry import _BACKENDS
from doqu.cli import _files as files_module
from doqu.cli import cli
from doqu.cli._common import parse_value
from doqu.cli._files import Writer
from doqu.ext.memory import MemoryStorage

HAS_MAPPING = importlib.util.find_spec("doqu._mapping") is not None

PEOPLE: list[dict[str, Any]] = [
    {"pk": "ann", "name": "Ann", "age": 35, "tags": ["admin", "a"], "address": {"city": "Paris"}},
    {"pk": "bob", "name": "Bob", "age": 17, "tags": [], "address": {"city": "Lyon"}},
    {"pk": "cy", "name": "Cy", "age": 70, "tags": ["a"], "address": {"city": "Paris"}},
    {"pk": "dee", "name": "30", "age": 30, "tags": ["b"], "nickname": None},
    {"pk": "eve", "name": 'Ève, "the" one\nnewline', "age": 41.5, "active": True},
]


def run(*args: str, input: str | None = None) -> Result:
    """Invoke the CLI in-process; a real traceback (a bug) fails the test."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def fails(*args: str, code: int = 1, input: str | None = None) -> str:
    """Run a command that must fail with *code* and one ``doqu: error:`` line; return it."""
    result = run(*args, input=input)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("doqu: error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_pk(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["pk"]: d for d in docs}


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store that outlives each in-process invocation."""
    return f"memory://?persist={tmp_path / 'store.json'}"


@pytest.fixture
def people(url: str, tmp_path: Path) -> str:
    """*url* holding PEOPLE in collection "people"."""
    src = tmp_path / "people.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PEOPLE), encoding="utf-8")
    ok("import", url, "people", str(src))
    return url


@pytest.fixture
def cli_url(backend: str, db_url: str, tmp_path: Path) -> str:
    """The backend's fresh store, made persistent where it lives in one process only."""
    if db_url == "memory://":
        return f"memory://?persist={tmp_path / 'cli.json'}"
    if db_url == "sqlite://":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return db_url


# ------------------------------------------------------------------ help
def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name, "URL", "NAME"))


@pytest.mark.parametrize("path", list(_commands(cli)), ids=" ".join)
def test_every_subcommand_has_help(path: tuple[str, ...]) -> None:
    out = ok(*path, "--help")
    assert out.startswith("Usage: ")
    assert len(out.splitlines()) > 3


def test_main_help_lists_every_command() -> None:
    out = ok("--help")
    for name in ("demo", "collections", "count", "find", "values", "delete", "update"):
        assert f"  {name} " in out
    for name in ("import", "export", "copy", "dict"):
        assert f"  {name} " in out


def test_python_dash_m_runs_the_cli() -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "doqu", "--version"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"doqu {doqu.__version__}"


# ------------------------------------------------------------------ values
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30", 30),
        ("30.5", 30.5),
        ('"30"', "30"),
        ("Ann", "Ann"),
        ("true", True),
        ("null", None),
        ('["a", 1]', ["a", 1]),
        ('{"$gt": ""}', {"$gt": ""}),
        ("São Paulo", "São Paulo"),
        ("", ""),
        ("NaN", "NaN"),
        ("-Infinity", "-Infinity"),
        ("x' OR 1=1 --", "x' OR 1=1 --"),
    ],
)
def test_values_parse_as_json_else_text(text: str, value: Any) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


# ------------------------------------------------------------------ queries
def test_collections_and_count(people: str) -> None:
    assert ok("collections", people) == "people\n"
    assert ok("collections", people, "--counts") == "people\t5\n"
    assert ok("count", people, "people") == "5\n"
    assert ok("count", people, "people", "--where", "age__gt=30") == "3\n"
    assert ok("count", people, "people", "-w", "age__gt=30", "-w", "address.city=Paris") == "2\n"
    assert ok("count", people, "people", "--where-not", "address__city=Paris") == "3\n"
    assert ok("count", people, "people", "--where", 'tags=["a"]') == "1\n"
    assert ok("count", people, "people", "--where", "tags__contains=a") == "2\n"
    # "30" quoted is the string; bare 30 is the number.
    assert ok("count", people, "people", "--where", 'name="30"') == "1\n"
    assert ok("count", people, "people", "--where", "name=30") == "0\n"
    assert ok("count", people, "people", "--where", "nickname__isnull=true") == "5\n"
    assert ok("count", people, "people", "--where", "nickname__exists=true") == "1\n"


def test_count_takes_conditions_literally(people: str) -> None:
    assert ok("count", people, "people", "--where", 'name={"$gt": ""}') == "0\n"
    assert ok("count", people, "people", "--where", "name=x' OR 1=1 --") == "0\n"


def test_find_formats_order_and_window(people: str) -> None:
    docs = jsonl(ok("find", people, "people", "--order", "-age"))
    assert [d["pk"] for d in docs] == ["cy", "eve", "ann", "dee", "bob"]
    assert docs[0] == PEOPLE[2]
    page = jsonl(ok("find", people, "people", "-o", "age", "--limit", "2", "--offset", "1"))
    assert [d["pk"] for d in page] == ["dee", "ann"]
    assert ok("find", people, "people", "--limit", "0") == ""
    as_json = json.loads(ok("find", people, "people", "-w", "age__lt=20", "--format", "json"))
    assert as_json == [PEOPLE[1]]
    assert json.loads(ok("find", people, "people", "-w", "age__lt=0", "--format", "json")) == []
    names = [d["name"] for d in jsonl(ok("find", people, "people", "-W", "tags__contains=a"))]
    assert sorted(names) == sorted(["Bob", "30", PEOPLE[4]["name"]])


def test_find_table(people: str) -> None:
    out = ok("find", people, "people", "--format", "table", "--order", "name", "--limit", "2")
    assert "pk" in out and "address" in out and "Ann" in out and "Bob" not in out
    assert "rows 1-2 of 5" in out
    full = ok("find", people, "people", "-f", "table", "-w", "address.city=Paris")
    assert "Cy" in full and "rows" not in full and "more fields" not in full


def test_find_fields(people: str) -> None:
    out = ok("find", people, "people", "-F", "name,address.city", "-F", "nope", "-o", "age")
    assert jsonl(out)[:2] == [
        {"pk": "bob", "name": "Bob", "address.city": "Lyon"},
        {"pk": "dee", "name": "30"},
    ]
    wide = {"pk": "w", **{f"field{i}": i for i in range(12)}}
    db = doqu.connect(people)
    try:
        db.save(wide, collection="wide")
    finally:
        db.close()
    table = ok("find", people, "wide", "-f", "table")
    assert "field5" in table and "field6" not in table and "6 more fields" in table
    table = ok("find", people, "wide", "-f", "table", "-F", "field11")
    assert "field11" in table and "field0" not in table and "more fields" not in table
    assert "not a plain identifier" in fails("find", people, "wide", "-F", "a b")


def test_values(people: str) -> None:
    lines = ok("values", people, "people", "address.city").splitlines()
    assert [json.loads(v) for v in lines] == ["Lyon", "Paris"]
    tags = [json.loads(v) for v in ok("values", people, "people", "tags").splitlines()]
    assert tags == ["a", "admin", "b"]
    ages = [
        json.loads(v) for v in ok("values", people, "people", "age", "-w", "age__gt=40").split()
    ]
    assert ages == [41.5, 70]


def test_delete_asks_and_refuses_without_conditions(people: str) -> None:
    line = fails("delete", people, "people", code=2)
    assert "--where" in line and "--all" in line
    refused = run("delete", people, "people", "-w", "age__gt=60", input="n\n")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1] == "doqu: error: aborted"
    assert ok("count", people, "people") == "5\n"
    result = run("delete", people, "people", "-w", "age__gt=60", input="y\n")
    assert result.exit_code == 0
    assert "Delete 1 document from 'people'?" in result.stderr
    assert result.stdout == "1 deleted\n"
    assert ok("delete", people, "people", "-w", "age__lt=20", "--yes") == "1 deleted\n"
    assert ok("delete", people, "people", "-w", "age__lt=0") == "0 deleted\n"
    assert ok("count", people, "people") == "3\n"
    fails("delete", people, "people", "--all", "-w", "age=1", "--yes", code=2)
    assert ok("delete", people, "people", "--all", "--yes") == "3 deleted\n"
    assert ok("collections", people) == ""


def test_update(people: str) -> None:
    out = ok(
        "update", people, "people", "-w", "pk=ann",
        "--set", "address.city=Rome", "--inc", "age=1", "--push", "tags=new",
        "--unset", "name", "--set", 'email="30"',
    )  # fmt: skip
    assert out == "1 updated\n"
    (ann,) = jsonl(ok("find", people, "people", "-w", "pk=ann"))
    assert ann == {
        "pk": "ann",
        "age": 36,
        "tags": ["admin", "a", "new"],
        "address": {"city": "Rome"},
        "email": "30",
    }
    assert ok("update", people, "people", "-w", "tags__contains=a", "--pull", "tags=a") == (
        "2 updated\n"
    )
    assert ok("update", people, "people", "--all", "--add-to-set", "tags=z") == "5 updated\n"
    assert ok("count", people, "people", "-w", "tags__contains=z") == "5\n"
    fails("update", people, "people", "--set", "a=1", code=2)
    fails("update", people, "people", "--all", "-w", "pk=ann", "--set", "a=1", code=2)
    assert ok("count", people, "people", "-w", "a=1") == "0\n"
    fails("update", people, "people", "-w", "pk=ann", code=2)
    fails("update", people, "people", "-w", "pk=ann", "--set", "a=1", "--set", "a=2", code=2)
    line = fails("update", people, "people", "-w", "pk=ann", "--inc", "age=x")
    assert "age__inc takes a number" in line


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("count", "not-a-url", "people"), "not a doqu URL"),
        (("count", "nosuchdb://x", "people"), "no backend for nosuchdb://"),
        (("count", "{url}", "people", "-w", "age__size=x"), "age__size takes a whole number"),
        (("count", "{url}", "people", "-w", "age__in=3"), "age__in takes a list"),
        (("count", "{url}", "people", "-w", "age__between=3"), "between"),
        (("count", "{url}", "people", "-w", "a b=3"), "not a plain identifier"),
        (("count", "{url}", "bad name!"), "collection name"),
        (("find", "{url}", "people", "-o", "a;b"), "order_by"),
        (("values", "{url}", "people", "x y"), "not a plain identifier"),
        (("import", "{url}", "people", "{tmp}/missing.jsonl"), "missing.jsonl"),
        (("import", "{url}", "people", "{tmp}/data.txt"), "cannot tell the format"),
        (("export", "{url}", "people", "{tmp}/no/such/dir/out.jsonl"), "out.jsonl"),
        (("dict", "{url}", "settings", "incr", "k", "x"), "not a number"),
    ],
)
def test_errors_are_one_line(url: str, tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    (tmp_path / "data.txt").write_text("{}\n")
    args = tuple(a.format(url=url, tmp=tmp_path) for a in args)
    code = 2 if "incr" in args else 1
    assert needle in fails(*args, code=code)


def test_usage_errors_exit_2(url: str) -> None:
    assert "Missing argument" in fails("count", url, code=2)
    assert 'field path \'{"$gt": ""}\'' in fails("count", url, "p", "-w", '{"$gt": ""}=1')
    assert "No such command" in fails("nope", code=2)
    assert "--where takes key=value" in fails("count", url, "people", "-w", "age", code=2)
    assert "'doqu count --help'" in fails("count", url, code=2)
    assert "same store" in fails("copy", url, url, code=2)


def test_missing_driver_names_the_extra(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_BACKENDS, "fakedb", "nodriver_for_doqu_tests:Storage")
    line = fails("collections", "fakedb://host/db")
    assert "nodriver_for_doqu_tests" in line and "pip install" in line


def test_corrupt_snapshot_is_a_storage_error(tmp_path: Path) -> None:
    snap = tmp_path / "bad.json"
    snap.write_text("{not json")
    assert "cannot be read" in fails("collections", f"memory://?persist={snap}")


@pytest.mark.skipif(importlib.util.find_spec("doqu.ext.sql") is None, reason="needs doqu.ext.sql")
def test_unreachable_server_is_one_line() -> None:
    line = fails("count", "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2", "p")
    assert "127.0.0.1" in line or "connect" in line.lower()


# ------------------------------------------------------------------ import / export
def test_import_formats(url: str, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(PEOPLE, indent=2), encoding="utf-8")
    assert ok("import", url, "a", str(tmp_path / "a.json")) == ""
    assert by_pk(jsonl(ok("find", url, "a"))) == by_pk(PEOPLE)

    (tmp_path / "b.csv").write_text('id,name,age,tags\n7,Ann,35,"[""x""]"\n8,Bob,,\n')
    ok("import", url, "b", str(tmp_path / "b.csv"), "--pk", "id")
    assert by_pk(jsonl(ok("find", url, "b"))) == {
        "7": {"pk": "7", "id": 7, "name": "Ann", "age": 35, "tags": ["x"]},
        "8": {"pk": "8", "id": 8, "name": "Bob"},
    }
    assert ok("count", url, "b", "-w", "pk=7") == "1\n"

    stdin = "".join(json.dumps({"n": i}) + "\n" for i in range(2500))
    result = run("import", url, "c", "-", input=stdin)
    assert result.exit_code == 0 and result.stderr == "2500 imported into c\n"
    assert ok("count", url, "c") == "2500\n"

    with gzip.open(tmp_path / "d.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"pk": "x", "v": [1, {"w": None}]}) + "\n")
    ok("import", url, "d", str(tmp_path / "d.jsonl.gz"))
    assert jsonl(ok("find", url, "d")) == [{"pk": "x", "v": [1, {"w": None}]}]

    ok("import", url, "f", "-", input='{"pk": null, "v": 1}\n')
    (new,) = jsonl(ok("find", url, "f"))
    assert len(new["pk"]) == 32 and new["v"] == 1

    arr = json.dumps([{"pk": "s", "v": 1}])
    ok("import", url, "e", "-", "--format", "json", input=arr)
    assert jsonl(ok("find", url, "e")) == [{"pk": "s", "v": 1}]


def test_import_is_idempotent_by_pk(people: str, tmp_path: Path) -> None:
    src = tmp_path / "again.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PEOPLE))
    ok("import", people, "people", str(src))
    assert ok("count", people, "people") == "5\n"


def test_json_array_reader_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(files_module, "_CHUNK", 3)
    text = ' [ {"a": "x,]y"} ,\n{"b": [1, 2, {"c": "}"}]}, {"é": "\\u00e9"} ] \n'
    got = [doc for _, doc in files_module.read_documents(io.StringIO(text), "json", "t")]
    assert got == [{"a": "x,]y"}, {"b": [1, 2, {"c": "}"}]}, {"é": "é"}]
    assert list(files_module.read_documents(io.StringIO("[]"), "json", "t")) == []


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.jsonl", '{"a": 1}\n{"a": \n', "bad.jsonl line 2: not valid JSON"),
        ("list.jsonl", "[1, 2]\n", "list.jsonl line 1: expected a JSON object"),
        ("nan.jsonl", '{"a": NaN}\n', "nan.jsonl line 1: not valid JSON"),
        ("obj.json", '{"a": 1}', "must hold one JSON array"),
        ("cut.json", '[{"a": 1}, {"a": ', "cut.json item 2: not valid JSON"),
        ("sep.json", '[{"a": 1} {"a": 2}]', "expected ',' or ']'"),
        ("tail.json", '[{"a": 1}] x', "unexpected data after"),
        ("num.json", "[1]", "item 1: expected a JSON object"),
        ("wide.csv", "a\n1,2\n", "wide.csv line 2: more cells"),
        ("pk.jsonl", '{"pk": [1]}\n', 'pk.jsonl line 1: "pk" must be a string'),
        ("id.jsonl", '{"x": 1}\n', "no 'id' field"),
        ("under.jsonl", '{"_id": 1}\n', "'_id' is reserved"),
        ("latin1.jsonl", b'{"a": "\xe9"}\n', "not UTF-8"),
        ("fake.jsonl.gz", "not gzip", "not a valid gzip file"),
    ],
)
def test_bad_files_are_one_line(
    url: str, tmp_path: Path, name: str, content: str | bytes, needle: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    extra = ("--pk", "id") if name == "id.jsonl" else ()
    assert needle in fails("import", url, "things", str(path), *extra)


TRICKY: list[dict[str, Any]] = [
    {"pk": "1", "s": "30", "e": "", "n": None, "t": True, "f": 1.5, "i": -3},
    {"pk": "2", "s": '"quoted"', "nested": {"a": [1, "2", {"b": None}]}, "u": 'Zoë, "x"\n'},
    {"pk": "3", "s": "null", "l": [], "d": {}, "big": 2**62, "neg": -0.25},
    {"pk": "4", "s": " padded ", "tab": "a\tb", "num_text": "1e3", "word": "true-ish"},
]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_export_import_round_trip(url: str, tmp_path: Path, fmt: str) -> None:
    db = doqu.connect(url)
    try:
        db.save_many(TRICKY, collection="tricky")
    finally:
        db.close()
    out = tmp_path / f"tricky.{fmt}"
    result = run("export", url, "tricky", str(out))
    assert result.exit_code == 0 and result.stderr == f"4 exported to {out}\n"
    piped = ok("export", url, "tricky", "--format", fmt)
    assert piped == out.read_text(encoding="utf-8")
    ok("import", url, "copy", str(out))
    assert by_pk(jsonl(ok("find", url, "copy"))) == by_pk(TRICKY)


def test_export_jsonl_has_pk_on_every_line(people: str) -> None:
    docs = jsonl(ok("export", people, "people", "-w", "age__gt=30", "-o", "age"))
    assert [d["pk"] for d in docs] == ["ann", "eve", "cy"]
    assert docs[0] == PEOPLE[0]


def test_export_pipe_import_round_trips_every_backend(cli_url: str, tmp_path: Path) -> None:
    db = doqu.connect(cli_url)
    try:
        db.save_many(PEOPLE + TRICKY[1:], collection="people")
    finally:
        db.close()
    exported = ok("export", cli_url, "people")
    ok("import", cli_url, "again", "-", input=exported)
    assert by_pk(jsonl(ok("export", cli_url, "again"))) == by_pk(PEOPLE + TRICKY[1:])
    assert by_pk(jsonl(exported)) == by_pk(PEOPLE + TRICKY[1:])


# ------------------------------------------------------------------ copy
def _count(url: str, coll: str) -> int:
    return int(ok("count", url, coll))


def test_copy_every_collection_twice_copies_nothing_twice(cli_url: str, url: str) -> None:
    db = doqu.connect(url)
    try:
        db.save_many(PEOPLE, collection="people")
        db.save_many(({"n": i} for i in range(2300)), collection="numbers")
    finally:
        db.close()
    out = ok("copy", url, cli_url)
    assert "numbers: 2300 copied (source holds 2300, destination 2300)" in out
    assert "people: 5 copied (source holds 5, destination 5)" in out
    for coll in ("people", "numbers"):
        assert _count(url, coll) == _count(cli_url, coll)
    ok("copy", url, cli_url)
    assert _count(cli_url, "numbers") == 2300
    assert by_pk(jsonl(ok("export", cli_url, "people"))) == by_pk(PEOPLE)
    assert sorted(ok("collections", cli_url).split()) == ["numbers", "people"]


def test_copy_named_collections_only(people: str, tmp_path: Path) -> None:
    db = doqu.connect(people)
    try:
        db.save({"x": 1}, collection="other")
    finally:
        db.close()
    dst = f"memory://?persist={tmp_path / 'dst.json'}"
    assert ok("copy", people, dst, "people", "--batch", "2").startswith("people: 5 copied")
    assert ok("collections", dst) == "people\n"


@pytest.mark.skipif(importlib.util.find_spec("doqu.ext.sql") is None, reason="needs doqu.ext.sql")
@pytest.mark.skipif(importlib.util.find_spec("doqu.ext.mongodb") is None, reason="needs mongodb")
def test_copy_sqlite_to_mongodb(tmp_path: Path, mongo_base_url: str) -> None:
    from doqu.testing import servers

    src = f"sqlite:///{tmp_path / 'a.db'}"
    db = doqu.connect(src)
    try:
        db.save_many(PEOPLE, collection="people")
    finally:
        db.close()
    with servers.mongo_database_url(mongo_base_url) as dst:
        ok("copy", src, dst)
        ok("copy", src, dst)
        assert _count(src, "people") == _count(dst, "people") == len(PEOPLE)
        assert by_pk(jsonl(ok("export", dst, "people"))) == by_pk(PEOPLE)


# ------------------------------------------------------------------ streaming
class Pulls:
    """Counts rows pulled from ``MemoryStorage._select`` while something else watches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pulled = 0
        original = MemoryStorage._select
        pulls = self

        def counting(self: MemoryStorage, coll: Any, spec: Any) -> Iterator[Any]:
            for row in original(self, coll, spec):
                pulls.pulled += 1
                yield row

        monkeypatch.setattr(MemoryStorage, "_select", counting)


def _fill(url: str, n: int) -> None:
    db = doqu.connect(url)
    try:
        db.save_many(({"n": i, "pad": "x" * 20} for i in range(n)), collection="big")
    finally:
        db.close()


def test_export_streams_one_document_at_a_time(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(url, 3000)
    pulls = Pulls(monkeypatch)
    seen: list[int] = []
    original = Writer.write

    def write(self: Writer, doc: dict[str, Any]) -> None:
        seen.append(pulls.pulled)
        original(self, doc)

    monkeypatch.setattr(Writer, "write", write)
    assert len(ok("export", url, "big").splitlines()) == 3000
    # The n-th document is written when exactly n have been read: nothing is buffered.
    assert seen == list(range(1, 3001))


def test_copy_streams_in_batches(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(url, 2500)
    pulls = Pulls(monkeypatch)
    batches: list[tuple[int, int]] = []
    original = Storage.save_many

    def save_many(self: Storage, docs: Any, **kw: Any) -> list[str]:
        docs = list(docs)
        batches.append((len(docs), pulls.pulled))
        return original(self, docs, **kw)

    monkeypatch.setattr(Storage, "save_many", save_many)
    ok("copy", url, f"memory://?persist={tmp_path / 'dst.json'}", "--batch", "1000")
    assert batches == [(1000, 1000), (1000, 2000), (500, 2500)]


# ------------------------------------------------------------------ dict
@pytest.mark.skipif(not HAS_MAPPING, reason="doqu._mapping (db.dict) is not built yet")
def test_dict_commands(url: str) -> None:
    ok("dict", url, "settings", "set", "python", "rules")
    ok("dict", url, "settings", "set", "n", "41")
    ok("dict", url, "settings", "set", "tags", '["a", "b"]')
    assert ok("dict", url, "settings", "get", "python") == '"rules"\n'
    assert ok("dict", url, "settings", "incr", "n") == "42\n"
    assert ok("dict", url, "settings", "incr", "visits", "2.5") == "2.5\n"
    listed = dict(line.split("\t") for line in ok("dict", url, "settings", "list").splitlines())
    assert {k: json.loads(v) for k, v in listed.items()} == {
        "python": "rules",
        "n": 42,
        "tags": ["a", "b"],
        "visits": 2.5,
    }
    assert ok("count", url, "settings", "-w", "value__gt=3") == "1\n"
    assert "cannot increment 'python'" in fails("dict", url, "settings", "incr", "python")
    assert ok("dict", url, "settings", "get", "python") == '"rules"\n'
    ok("dict", url, "settings", "del", "python")
    assert "no key 'python'" in fails("dict", url, "settings", "get", "python")
    assert "no key 'python'" in fails("dict", url, "settings", "del", "python")


# ------------------------------------------------------------------ demo
def test_demo_runs_twice_on_memory(tmp_path: Path) -> None:
    demo_url = f"memory://?persist={tmp_path / 'demo.json'}"
    first = ok("demo", demo_url)
    assert "Loaded 3000 people" in first
    assert ">>> Person.objects(db).count()\n3000\n" in first
    assert "created: True" in first
    second = ok("demo", demo_url)
    strip = [line for line in first.splitlines() if " in " not in line or "Loaded" not in line]
    again = [line for line in second.splitlines() if " in " not in line or "Loaded" not in line]
    assert [x for x in strip if "demo runs" not in x] != []
    assert len(again) == len(strip)
    assert ok("count", demo_url, "demo_people") == "3001\n"


def test_demo_dataset_is_realistic() -> None:
    from doqu.cli._demo import Person, sample_documents

    docs = list(sample_documents())
    assert len(docs) == 3000
    assert len({d["pk"] for d in docs}) == 3000
    for doc in docs[:200]:
        Person.model_validate(doc)
    assert any(d["pets"] for d in docs) and any("nickname" in d for d in docs)
    path = Path(__file__).resolve().parent.parent / "doqu" / "data" / "people.jsonl.gz"
    assert path.stat().st_size < 500_000


@pytest.mark.skipif(importlib.util.find_spec("doqu.ext.sql") is None, reason="needs doqu.ext.sql")
def test_demo_default_url_is_sqlite_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = ok("demo")
    assert "into sqlite:///doqu-demo.db" in out
    assert (tmp_path / "doqu-demo.db").exists()
    ok("demo")
    assert ok("count", "sqlite:///doqu-demo.db", "demo_people") == "3001\n"


_PEAK = """
import resource, sys
from doqu.cli import cli
code = cli.main(sys.argv[1:], standalone_mode=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)
sys.exit(code)
"""


def _peak_mib(*args: str) -> int:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("doqu.ext.sql") is None, reason="needs doqu.ext.sql")
def test_export_and_copy_hold_memory_flat_on_sqlite(tmp_path: Path) -> None:
    """Peak memory exporting/copying 100k documents stays near that of 10k."""
    small, big = f"sqlite:///{tmp_path / 'small.db'}", f"sqlite:///{tmp_path / 'big.db'}"
    for url, n in ((small, 10_000), (big, 100_000)):
        db = doqu.connect(url)
        try:
            for start in range(0, n, 10_000):
                db.save_many(
                    ({"n": i, "text": f"document {i} " * 8, "tags": ["a", str(i)]}
                     for i in range(start, start + 10_000)),
                    collection="big",
                )  # fmt: skip
        finally:
            db.close()
    out = str(tmp_path / "out.jsonl")
    export_small = _peak_mib("export", small, "big", out)
    export_big = _peak_mib("export", big, "big", out)
    with open(out, encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 100_000
    # 90k more documents held in memory would take well over 100 MiB.
    assert export_big - export_small < 25, (export_small, export_big)
    copy_small = _peak_mib("copy", small, f"sqlite:///{tmp_path / 'c1.db'}")
    copy_big = _peak_mib("copy", big, f"sqlite:///{tmp_path / 'c2.db'}")
    assert copy_big - copy_small < 25, (copy_small, copy_big)
    print(f"peak MiB: export {export_small}/{export_big}, copy {copy_small}/{copy_big}")
