"""The ``doqu`` command line: every subcommand, its errors, and streaming import/export/copy."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from rich.progress import Progress

import doqu
from doqu import Storage
from doqu._registry import _BACKENDS
from doqu.cli import _files as files_module
from doqu.cli import _transfer as transfer_module
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
        "7": {"pk": "7", "id": "7", "name": "Ann", "age": "35", "tags": '["x"]'},
        "8": {"pk": "8", "id": "8", "name": "Bob"},
    }
    assert ok("count", url, "b", "-w", "pk=7") == "1\n"
    ok("import", url, "b2", str(tmp_path / "b.csv"), "--pk", "id", "--json-cells")
    assert by_pk(jsonl(ok("find", url, "b2"))) == {
        "7": {"pk": "7", "id": 7, "name": "Ann", "age": 35, "tags": ["x"]},
        "8": {"pk": "8", "id": 8, "name": "Bob"},
    }

    stdin = "".join(json.dumps({"n": i}) + "\n" for i in range(2500))
    result = run("import", url, "c", "-", input=stdin)
    assert result.exit_code == 0
    assert result.stderr == "2500 read: 2500 inserted, 0 replaced, 0 skipped into c\n"
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


def test_import_again_refuses_then_replaces_or_skips_by_pk(people: str, tmp_path: Path) -> None:
    src = tmp_path / "again.jsonl"
    src.write_text("".join(json.dumps({**p, "again": True}) + "\n" for p in PEOPLE))
    line = fails("import", people, "people", str(src))
    assert line == (
        f"doqu: error: {src}: 5 keys are already in people: 'ann' at line 1, 'bob' at line 2,"
        " 'cy' at line 3 and 2 more; nothing was written"
        " (--on-duplicate replace or skip imports them)"
    )
    assert ok("count", people, "people", "-w", "again=true") == "0\n"
    result = run("import", people, "people", str(src), "--on-duplicate", "skip")
    assert result.stderr == "5 read: 0 inserted, 0 replaced, 5 skipped into people\n"
    assert ok("count", people, "people", "-w", "again=true") == "0\n"
    result = run("import", people, "people", str(src), "--on-duplicate", "replace")
    assert result.stderr == "5 read: 0 inserted, 5 replaced, 0 skipped into people\n"
    assert ok("count", people, "people") == "5\n"
    assert ok("count", people, "people", "-w", "again=true") == "5\n"


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


# ------------------------------------------------------------------ import: standard streams
def _collections(url: str) -> list[str]:
    """The collections *url* holds, read through the Python API (no store yet: none)."""
    with doqu.connect(url) as db:
        return db.collections()


def test_stdin_and_stdout_use_no_deprecated_click_api(url: str) -> None:
    # click 8.5 deprecates get_text_stream; pytest's filterwarnings=error would fail here.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok("import", url, "s", "-", input='{"pk": "a", "city": "São Paulo"}\n')
        assert ok("find", url, "s") == '{"pk": "a", "city": "São Paulo"}\n'
        assert ok("export", url, "s") == '{"pk": "a", "city": "São Paulo"}\n'


def test_stdin_must_be_utf8(url: str) -> None:
    result = CliRunner().invoke(cli, ["import", url, "s", "-"], input=b'{"a": "\xe9"}\n')
    assert result.exit_code == 1
    assert result.stderr.startswith("doqu: error: stdin: not UTF-8 text")
    assert _collections(url) == []


# ------------------------------------------------------------------ import: CSV cells
@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("-1.5", -1.5),
        ("1.0", 1.0),
        ("0.1", 0.1),
        ("1e+16", 1e16),
        ("9223372036854775807", 2**63 - 1),
        ("true", True),
        ("false", False),
        ("null", None),
    ],
)
def test_infer_cell_takes_canonical_json_scalars(cell: str, value: Any) -> None:
    got = files_module.infer_cell(cell)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "cell",
    [
        "0E0", "0E8", "007", "1e3", "1E3", "+1", "NaN", "Infinity", "-Infinity", "1.50",
        " 42", "42 ", "-0", "-0.0", "0.10", "1.", ".5", "True", "NULL", "None", "",
        "9223372036854775808", "1e400", "٣", "0x1F", "1_000", '"42"', "[1]", "{}",
        "Ann", "LAX",
    ],
)  # fmt: skip
def test_infer_cell_keeps_everything_else_as_text(cell: str) -> None:
    assert files_module.infer_cell(cell) == cell
    assert type(files_module.infer_cell(cell)) is str


AIRPORTS_CSV = (
    "code,n,x,flag,none,ratio,one,neg\n"
    "0E0,42,007,true,null,-1.5,1.0,-0\n"
    "0E8,1e3,+1,false,NaN,1.50, 42,-0.0\n"
)


def test_csv_cells_stay_text_by_default(url: str, tmp_path: Path) -> None:
    src = tmp_path / "airports.csv"
    src.write_text(AIRPORTS_CSV, encoding="utf-8")
    ok("import", url, "airports", str(src), "--pk", "code")
    docs = by_pk(jsonl(ok("find", url, "airports")))
    assert docs["0E0"] == {
        "pk": "0E0", "code": "0E0", "n": "42", "x": "007", "flag": "true", "none": "null",
        "ratio": "-1.5", "one": "1.0", "neg": "-0",
    }  # fmt: skip
    assert docs["0E8"]["code"] == "0E8" and docs["0E8"]["n"] == "1e3"
    assert ok("count", url, "airports", "-w", 'code="0E0"') == "1\n"


def test_csv_infer_is_lossless(url: str, tmp_path: Path) -> None:
    src = tmp_path / "airports.csv"
    src.write_text(AIRPORTS_CSV, encoding="utf-8")
    ok("import", url, "airports", str(src), "--pk", "code", "--infer")
    docs = by_pk(jsonl(ok("find", url, "airports")))
    assert docs["0E0"] == {
        "pk": "0E0", "code": "0E0", "n": 42, "x": "007", "flag": True, "none": None,
        "ratio": -1.5, "one": 1.0, "neg": "-0",
    }  # fmt: skip
    assert type(docs["0E0"]["one"]) is float
    assert docs["0E8"] == {
        "pk": "0E8", "code": "0E8", "n": "1e3", "x": "+1", "flag": False, "none": "NaN",
        "ratio": "1.50", "one": " 42", "neg": "-0.0",
    }  # fmt: skip
    # Every cell reads back as the text it was: nothing was changed.
    rows = [line.split(",") for line in AIRPORTS_CSV.splitlines()]
    for row in rows[1:]:
        doc = docs[row[0]]
        for key, cell in zip(rows[0], row):
            assert (doc[key] if isinstance(doc[key], str) else json.dumps(doc[key])) == cell


def test_csv_cell_options_are_checked(url: str, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n')
    assert "CSV only" in fails("import", url, "a", str(tmp_path / "a.jsonl"), "--infer", code=2)
    line = fails("import", url, "a", str(tmp_path / "a.csv"), "--infer", "--json-cells", code=2)
    assert "exclude each other" in line
    assert _collections(url) == []


# ------------------------------------------------------------------ import: duplicate keys
CARS: list[dict[str, Any]] = [
    {"Name": "chevelle", "hp": 130},
    {"Name": "skylark", "hp": 165},
    {"Name": "chevelle", "hp": 150},
    {"Name": "torino", "hp": 140},
    {"Name": "skylark", "hp": 1},
    {"Name": "skylark", "hp": 2},
]


def _cars(tmp_path: Path, cars: list[dict[str, Any]] = CARS) -> str:
    path = tmp_path / "cars.json"
    path.write_text(json.dumps(cars, indent=1), encoding="utf-8")
    return str(path)


def test_duplicate_keys_in_the_file_are_refused_and_nothing_is_written(
    url: str, tmp_path: Path
) -> None:
    cars = _cars(tmp_path)
    line = fails("import", url, "cars", cars, "--pk", "Name")
    assert line == (
        f"doqu: error: {cars}: 3 documents repeat a key of the file:"
        " 'chevelle' at item 3 (first at item 1), 'skylark' at item 5 (first at item 2),"
        " 'skylark' at item 6 (first at item 2); nothing was written"
        " (--on-duplicate replace or skip imports them)"
    )
    assert _collections(url) == []
    many = [{"id": i % 4} for i in range(14)]
    line = fails("import", url, "cars", _cars(tmp_path, many), "--pk", "id", "--batch", "3")
    assert "10 documents repeat a key of the file: '0' at item 5 (first at item 1)" in line
    assert "'2' at item 7 (first at item 3) and 7 more; nothing was written" in line
    assert _collections(url) == []


def test_duplicate_keys_on_stdin_are_refused(url: str) -> None:
    stdin = '{"pk": "a"}\n{"pk": "b"}\n\n{"pk": "a", "v": 2}\n'
    line = fails("import", url, "s", "-", input=stdin)
    assert "stdin: 1 document repeats a key of the file: 'a' at line 4 (first at line 1)" in line
    assert _collections(url) == []
    result = run("import", url, "s", "-", "--on-duplicate", "replace", input=stdin)
    assert result.stderr == "3 read: 2 inserted, 1 replaced, 0 skipped into s\n"
    assert jsonl(ok("find", url, "s", "-w", "pk=a")) == [{"pk": "a", "v": 2}]


def test_duplicate_keys_replace_or_skip(url: str, tmp_path: Path) -> None:
    cars = _cars(tmp_path)
    result = run("import", url, "cars", cars, "--pk", "Name", "--on-duplicate", "replace")
    assert result.exit_code == 0
    assert result.stderr == "6 read: 3 inserted, 3 replaced, 0 skipped into cars\n"
    assert {d["pk"]: d["hp"] for d in jsonl(ok("find", url, "cars"))} == {
        "chevelle": 150,
        "skylark": 2,
        "torino": 140,
    }
    result = run("import", url, "kept", cars, "--pk", "Name", "--on-duplicate", "skip")
    assert result.stderr == "6 read: 3 inserted, 0 replaced, 3 skipped into kept\n"
    assert {d["pk"]: d["hp"] for d in jsonl(ok("find", url, "kept"))} == {
        "chevelle": 130,
        "skylark": 165,
        "torino": 140,
    }
    # Keys in the collection and repeats in the file: both listed, nothing written.
    again = _cars(tmp_path, [{"Name": "torino", "hp": 0}, *CARS])
    line = fails("import", url, "cars", again, "--pk", "Name")
    assert (
        "4 documents repeat a key of the file: 'chevelle' at item 4 (first at item 2),"
        " 'torino' at item 5 (first at item 1), 'skylark' at item 6 (first at item 3) and 1 more"
    ) in line
    assert (
        "; 3 keys are already in cars: 'torino' at item 1, 'chevelle' at item 2,"
        " 'skylark' at item 3; nothing was written"
    ) in line
    assert {d["pk"]: d["hp"] for d in jsonl(ok("find", url, "cars"))}["torino"] == 140


@pytest.mark.parametrize("mode", ["replace", "skip"])
def test_inserted_is_what_the_collection_gained(cli_url: str, tmp_path: Path, mode: str) -> None:
    db = doqu.connect(cli_url)
    try:
        db.save_many([{"pk": "a", "v": "old"}, {"pk": "b", "v": "old"}], collection="dups")
    finally:
        db.close()
    # batches of 2: [a c] [- c] [e e] [d -] [b]; "-" has no pk and gets a new one.
    rows = [
        {"pk": "a", "v": 1}, {"pk": "c", "v": 2}, {"v": 3}, {"pk": "c", "v": 4},
        {"pk": "e", "v": 5}, {"pk": "e", "v": 6}, {"pk": "d", "v": 7}, {"v": 8},
        {"pk": "b", "v": 9},
    ]  # fmt: skip
    src = tmp_path / "dups.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = _count(cli_url, "dups")
    result = run("import", cli_url, "dups", str(src), "--on-duplicate", mode, "--batch", "2")
    assert result.exit_code == 0, result.stderr
    gained = _count(cli_url, "dups") - before
    inserted, replaced, skipped = (5, 4, 0) if mode == "replace" else (5, 0, 4)
    assert result.stderr == (
        f"9 read: {inserted} inserted, {replaced} replaced, {skipped} skipped into dups\n"
    )
    assert gained == inserted == 5
    values = {d["pk"]: d["v"] for d in jsonl(ok("export", cli_url, "dups")) if d["pk"] in "abcde"}
    if mode == "replace":
        assert values == {"a": 1, "b": 9, "c": 4, "d": 7, "e": 6}
    else:
        assert values == {"a": "old", "b": "old", "c": 2, "d": 7, "e": 5}


def test_stored_keys_are_found_for_whole_batches(cli_url: str, tmp_path: Path) -> None:
    # A default batch of 1000 keys and more: lookups must not hit a backend's limits.
    src = tmp_path / "keys.jsonl"
    src.write_text("".join(json.dumps({"pk": f"k{i}"}) + "\n" for i in range(2100)))
    result = run("import", cli_url, "keys", str(src))
    assert result.stderr == "2100 read: 2100 inserted, 0 replaced, 0 skipped into keys\n"
    line = fails("import", cli_url, "keys", str(src))
    assert "2100 keys are already in keys: 'k0' at line 1," in line
    result = run("import", cli_url, "keys", str(src), "--on-duplicate", "replace")
    assert result.stderr == "2100 read: 0 inserted, 2100 replaced, 0 skipped into keys\n"
    assert _count(cli_url, "keys") == 2100


def test_a_bad_line_after_the_first_batches_writes_nothing(url: str, tmp_path: Path) -> None:
    src = tmp_path / "late.jsonl"
    lines = [json.dumps({"n": i}) for i in range(2500)]
    lines[2399] = '{"n": '
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "late.jsonl line 2400: not valid JSON" in fails("import", url, "late", str(src))
    assert _collections(url) == []


def test_a_batch_the_store_refuses_says_what_was_written(url: str, tmp_path: Path) -> None:
    src = tmp_path / "refused.jsonl"
    src.write_text('{"pk": "a"}\n{"pk": "b"}\n{"pk": "c", "_id": 1}\n', encoding="utf-8")
    line = fails("import", url, "r", str(src), "--batch", "2")
    assert "'_id' is reserved" in line
    assert "(in the batch from" in line and "line 3; 2 documents were written before it)" in line
    assert _count(url, "r") == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_import_from_a_named_pipe(url: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:
            fh.write('{"pk": "a"}\n{"pk": "a"}\n')

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        line = fails("import", url, "p", str(fifo))
    finally:
        writer.join(timeout=10)
    assert "1 document repeats a key of the file: 'a' at line 2 (first at line 1)" in line


# ------------------------------------------------------------------ import: progress
class Bars:
    """Keeps the progress displays the transfer commands make, to look at their tasks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[Progress] = []
        original = transfer_module.progress

        def spy(console: Console, **options: Any) -> Progress:
            bar = original(console, **options)
            self.made.append(bar)
            return bar

        monkeypatch.setattr(transfer_module, "progress", spy)

    def tasks(self) -> dict[str, Any]:
        return {t.description: t for bar in self.made for t in bar.tasks}


def test_import_progress_counts_bytes_of_the_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = Bars(monkeypatch)
    src = tmp_path / "big.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"n": i, "pad": "x" * i}) + "\n" for i in range(3000))
    ok("import", url, "big", str(src))
    task = bars.tasks()["import big"]
    assert task.total == src.stat().st_size  # the compressed bytes on disk
    assert task.completed == task.total and task.finished
    check = bars.tasks()[f"check {src}"]
    assert check.total == task.total and check.completed == task.total


def test_import_progress_from_stdin_has_no_total_while_reading(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = Bars(monkeypatch)
    stdin = "".join(json.dumps({"n": i}) + "\n" for i in range(100))
    ok("import", url, "s", "-", input=stdin)
    tasks = bars.tasks()
    assert tasks["read stdin"].total is None
    assert tasks["read stdin"].completed == len(stdin.encode())
    assert tasks["import s"].total == len(stdin.encode())


def test_import_progress_shows_sizes_and_time_left(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(transfer_module, "stderr_console", lambda: terminal)
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(5000)), encoding="utf-8")
    ok("import", url, "p", str(src))
    size = f"{src.stat().st_size / 1000:.1f}"
    assert "import p" in screen.getvalue()
    assert f"{size}/{size} kB" in screen.getvalue()


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
    ok("import", url, "copy", str(out), *(["--json-cells"] if fmt == "csv" else []))
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
def test_export_copy_and_import_hold_memory_flat_on_sqlite(tmp_path: Path) -> None:
    """Peak memory exporting/copying/importing 100k documents stays near that of 10k."""
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
    # Import keeps the set of keys seen (100k keys: about 10 MiB), not the documents.
    out_small = str(tmp_path / "small.jsonl")
    _peak_mib("export", small, "big", out_small)
    import_small = _peak_mib("import", f"sqlite:///{tmp_path / 'i1.db'}", "big", out_small)
    import_big = _peak_mib("import", f"sqlite:///{tmp_path / 'i2.db'}", "big", out)
    assert _count(f"sqlite:///{tmp_path / 'i2.db'}", "big") == 100_000
    assert import_big - import_small < 40, (import_small, import_big)
    print(
        f"peak MiB: export {export_small}/{export_big}, copy {copy_small}/{copy_big},"
        f" import {import_small}/{import_big}"
    )
