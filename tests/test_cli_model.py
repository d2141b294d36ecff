"""`--model module:Class`: CLI conditions, fields and changes checked as in the Python API."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from doqu.cli import cli

MODELS = """
from pydantic import BaseModel, ConfigDict
from doqu import Document


class Address(BaseModel):
    city: str


class Person(Document):
    model_config = ConfigDict(extra="forbid")
    name: str
    age: int = 0
    tags: list[str] = []
    address: Address | None = None

    class Meta:
        collection = "people"


NOT_A_MODEL = 3
"""

_names = itertools.count()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def error(*args: str) -> str:
    result = run(*args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.stderr


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A store holding two people, and the name of a module (in the cwd) declaring Person."""
    module = f"cli_models_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(MODELS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    url = f"memory://?persist={tmp_path / 'store.json'}"
    src = tmp_path / "people.jsonl"
    rows = [
        {"pk": "ann", "name": "Ann", "age": 35, "tags": ["a"], "address": {"city": "Paris"}},
        {"pk": "bob", "name": "Bob", "age": 17, "tags": [], "address": None},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run("import", url, "people", str(src)).exit_code == 0
    yield url, f"{module}:Person"
    sys.modules.pop(module, None)


def test_model_checked_commands_run(setup: tuple[str, str]) -> None:
    url, model = setup
    assert run("count", url, "people", "-w", "age__gte=18", "--model", model).stdout == "1\n"
    found = run("find", url, "people", "-w", "address.city=Paris", "-m", model, "-f", "jsonl")
    assert [json.loads(line)["pk"] for line in found.stdout.splitlines()] == ["ann"]
    assert run("values", url, "people", "name", "-m", model).stdout.split() == ['"Ann"', '"Bob"']
    out = run("update", url, "people", "-w", "pk=bob", "--inc", "age=1", "-m", model)
    assert out.stdout == "1 updated\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("count", "-w", "agee__gt=3"), "Person declares no field 'agee'; did you mean 'age'?"),
        (("count", "-w", "age__gtee=3"), "did you mean 'age__gte'"),
        (("count", "-W", "address__cty=Paris"), "did you mean 'address__city'?"),
        (("count", "-w", 'age__gt="x"'), "age is declared int, which never holds a string"),
        (("find", "-o", "-agee"), "did you mean 'age'?"),
        (("find", "-F", "name,agee"), "did you mean 'age'?"),
        (("values", "agee"), "did you mean 'age'?"),
        (("delete", "-w", "nmae=x", "--yes"), "did you mean 'name'?"),
        (("update", "--all", "--inc", "name=1"), "name is declared str, not a number"),
        (("update", "--all", "--set", "agee=1"), "did you mean 'age'?"),
    ],
)
def test_typos_are_errors_and_change_nothing(
    setup: tuple[str, str], args: tuple[str, ...], message: str
) -> None:
    url, model = setup
    command, *rest = args
    before = run("find", url, "people", "-f", "jsonl").stdout
    assert message in error(command, url, "people", *rest, "--model", model)
    assert run("find", url, "people", "-f", "jsonl").stdout == before


def test_without_model_nothing_is_checked(setup: tuple[str, str]) -> None:
    url, _ = setup
    assert run("count", url, "people", "-w", "agee__gt=3").stdout == "0\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "is not module:Class"),
        ("no_such_module_here:Person", "cannot import 'no_such_module_here'"),
        ("{module}:NOT_A_MODEL", "is not a doqu.Document class"),
        ("{module}:Missing", "is not a doqu.Document class"),
    ],
)
def test_bad_model_option(setup: tuple[str, str], spec: str, message: str) -> None:
    url, model = setup
    spec = spec.format(module=model.split(":")[0])
    assert message in error("count", url, "people", "--model", spec)
