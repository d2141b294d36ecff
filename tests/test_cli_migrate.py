"""``doqu migrate URL module:Model``: summary, dry run, failures named, exit status."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import doqu
from doqu.cli import cli

MODELS = """
from doqu import Document


class Person(Document):
    full_name: str

    class Meta:
        collection = "people"
        version = 2


@Person.migration(from_version=1)
def _rename(doc):
    doc["full_name"] = doc.pop("name")
    return doc


class Plain(Document):
    name: str
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "migrate_models.py").write_text(textwrap.dedent(MODELS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "migrate_models", raising=False)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with doqu.connect(url) as db:
        db.save_many([{"pk": f"p{i}", "name": f"n{i}"} for i in range(5)], collection="people")
        db.save({"pk": "ok", "full_name": "Ok", "_v": 2}, collection="people")
    return url


def test_migrate_upgrades_and_says_so(url: str) -> None:
    dry = run("migrate", url, "migrate_models:Person", "--dry-run")
    assert (
        dry.exit_code == 0 and dry.stdout == "5 would upgrade, 1 already at version 2, 0 failed\n"
    )
    with doqu.connect(url) as db:
        assert db.get("people", "p0") == {"pk": "p0", "name": "n0"}
    done = run("migrate", url, "migrate_models:Person", "--batch", "2")
    assert done.exit_code == 0 and done.stdout == "5 upgraded, 1 already at version 2, 0 failed\n"
    again = run("migrate", url, "migrate_models:Person")
    assert again.stdout == "0 upgraded, 6 already at version 2, 0 failed\n"
    with doqu.connect(url) as db:
        assert db.get("people", "p0") == {"pk": "p0", "full_name": "n0", "_v": 2}


def test_migrate_names_failures_and_exits_1(url: str) -> None:
    with doqu.connect(url) as db:
        db.save({"pk": "bad", "other": 1}, collection="people")  # no name to rename
        db.save({"pk": "newer", "full_name": "X", "_v": 3}, collection="people")
    result = run("migrate", url, "migrate_models:Person")
    assert result.exit_code == 1
    assert result.stdout == "5 upgraded, 1 already at version 2, 2 failed\n"
    assert "failed bad: KeyError: 'name'" in result.stderr
    assert "failed newer: ValueError: it is stored at version 3, newer than" in result.stderr
    with doqu.connect(url) as db:
        assert db.get("people", "bad") == {"pk": "bad", "other": 1}  # left as it was


def test_migrate_needs_a_versioned_model(url: str) -> None:
    result = CliRunner().invoke(cli, ["migrate", url, "migrate_models:Plain"])
    assert result.exit_code != 0 and "no Meta.version" in result.output
    assert "Traceback" not in result.output
