"""What mypy sees of doqu from a user's project: precise types, found through the install.

Each check writes a sample of user code into an empty temporary directory and
runs ``python -m mypy --strict`` (with the pydantic plugin) there, with the
interpreter running the tests. Nothing of this checkout is on mypy's path:
it must find doqu where a user's mypy finds it, through site-packages (the
``.pth`` path of ``pip install -e .``, or a regular install) and its
``py.typed`` marker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MYPY_INI = """\
[mypy]
strict = True
plugins = pydantic.mypy
"""

#: Runs as it is (``python sample.py``), and every ``assert_type`` must hold for mypy.
#: ``assert_type`` is exact: an ``Any`` where a model is expected is an error.
SAMPLE = """
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

import doqu
from doqu import Document, Q, Query, Storage
from doqu.ext.memory import MemoryStorage


class Address(BaseModel):
    city: str


class Person(Document):
    name: str
    age: int = 0
    address: Address | None = None


class Staff(Person):
    role: str = "clerk"


def main() -> None:
    with doqu.connect("memory://") as db:
        assert_type(db, Storage)
        ann = Person(name="Ann", age=35, address=Address(city="Paris"))
        pk = ann.save(db)
        assert_type(pk, str)
        assert_type(Staff(name="Sam").save(db), str)

        # Queries of a model: every step keeps the model, every result is one.
        q = Person.objects(db).where(age__gte=18).where_not(Q(name="Bob")).order_by("-age")
        assert_type(q, Query[Person])
        assert_type(db.query(Person), Query[Person])
        assert_type(Staff.objects(db), Query[Staff])
        for p in q:
            assert_type(p, Person)
            assert_type(p.name, str)
        assert_type(iter(q), Iterator[Person])
        assert_type(q.iter(on_corrupt="skip"), Iterator[Person])
        assert_type(list(q), list[Person])
        assert_type(q.first(), Person | None)
        assert_type(q[0], Person)
        assert_type(q[0:1], Query[Person])
        assert_type(q.count(), int)
        assert_type(q.exists(), bool)
        assert_type(q.values("name"), list[Any])
        assert q[0].name == "Ann" and [p.name for p in q[0:1]] == ["Ann"]

        # Reads and get_or_create by model.
        assert_type(db.get(Person, pk), Person)
        assert_type(db.get(Person, pk).address, Address | None)
        assert_type(db.get_many(Person, [pk]), list[Person])
        cy, created = db.get_or_create(Person, defaults={"age": 70}, name="Cy")
        assert_type(cy, Person)
        assert_type(created, bool)
        assert_type(db.get_or_create(Person, name="Cy"), tuple[Person, bool])
        assert created and cy.age == 70

        # A collection name: plain dicts.
        db.save({"name": "Dee"}, collection="rows")
        rows = db.query("rows").where(name="Dee")
        assert_type(rows, Query[dict[str, Any]])
        for row in rows:
            assert_type(row, dict[str, Any])
        assert_type(rows.first(), dict[str, Any] | None)
        assert_type(rows[0], dict[str, Any])
        row_pk = rows[0]["pk"]
        assert_type(db.get("rows", row_pk), dict[str, Any])
        assert_type(db.get_many("rows", [row_pk]), list[dict[str, Any]])
        assert_type(db.get_or_create("rows", name="Eve"), tuple[dict[str, Any], bool])

        # The mapping view of a model maps pks to instances; of a name, to anything.
        people = db.dict(Person)
        as_mapping: MutableMapping[str, Person] = people
        assert_type(people[pk], Person)
        assert_type(people.get(pk), Person | None)
        assert_type(people.setdefault(pk, ann), Person)
        for key, value in people.items():
            assert_type(key, str)
            assert_type(value, Person)
        for each in people.values():
            assert_type(each, Person)
        assert_type(people.pop(pk), Person)
        people[pk] = ann
        assert as_mapping[pk].name == "Ann"
        settings = db.dict("settings")
        settings["theme"] = "dark"
        assert_type(settings["theme"], Any)

        db.delete(ann)
        db.delete("rows", row_pk)

    with MemoryStorage("memory://") as mem:
        assert_type(mem, MemoryStorage)


if __name__ == "__main__":
    main()
"""

#: Every line marked ``# E`` must be an error (and no other line): the first ones
#: assert the types doqu had before they were made precise, so the check fails
#: if one of them comes back as ``Any``.
WRONG = """
from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import doqu
from doqu import Document, Query


class Person(Document):
    name: str


def wrong(db: doqu.Storage, pk: str) -> None:
    assert_type(Person.objects(db), Query[Any])  # E
    assert_type(db.get_or_create(Person, name="x"), tuple[Any, bool])  # E
    assert_type(db.dict(Person)[pk], Any)  # E
    assert_type(db.query(Person).first(), Any)  # E
    for p in Person.objects(db):
        assert_type(p, Any)  # E
        print(p.nickname)  # E
    assert_type(db.get(Person, pk), dict[str, Any])  # E
    print(db.get(Person, pk).name + 1)  # E
    db.dict(Person)[pk] = {"name": "x"}  # E
    print(Person.objects(db).first().name)  # E
    print(db.get_or_create("rows", name="x")[0].name)  # E
"""


def _env() -> dict[str, str]:
    """The caller's environment, without anything that would show mypy this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env.pop("MYPY_CACHE_DIR", None)
    return env


def _mypy(where: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini",
            "--cache-dir", str(where.parent / "mypy-cache"), "--no-color-output",
            "--no-error-summary", "--hide-error-context", name,
        ],
        cwd=where,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory outside the checkout holding the samples and a mypy config."""
    where = tmp_path_factory.mktemp("typing") / "project"
    where.mkdir()
    (where / "mypy.ini").write_text(MYPY_INI, encoding="utf-8")
    (where / "sample.py").write_text(textwrap.dedent(SAMPLE).lstrip(), encoding="utf-8")
    (where / "wrong.py").write_text(textwrap.dedent(WRONG).lstrip(), encoding="utf-8")
    return where


def _modules(package: Path) -> set[str]:
    return {str(p.relative_to(package)) for p in package.rglob("*.py")} | {
        str(p.relative_to(package)) for p in package.rglob("py.typed")
    }


def test_the_installed_doqu_is_this_checkout(project: Path) -> None:
    """From outside the checkout, ``import doqu`` reaches these files, every one of them.

    An editable install links the files that existed when it ran: a module added
    since needs the install command again.
    """
    done = subprocess.run(
        [sys.executable, "-c", "import doqu, os; print(doqu.__file__)"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    installed = Path(done.stdout.strip())
    again = "python -m pip install -e '.[test]' again"
    assert installed.resolve() == ROOT / "doqu" / "__init__.py", (
        f"the interpreter's installed doqu ({installed}) is another copy: {again}"
    )
    missing = _modules(ROOT / "doqu") - _modules(installed.parent)
    assert not missing, f"the editable install predates {sorted(missing)}: {again}"


def test_sample_runs(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "sample.py"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_mypy_strict_sees_precise_types(project: Path) -> None:
    done = _mypy(project, "sample.py")
    hint = ""
    if "doqu" in done.stdout and "import-not-found" in done.stdout:
        hint = (
            "\nmypy cannot find the installed doqu: an editable install must put a path in a"
            " .pth file (setup.cfg [editable_wheel] mode = strict); reinstall with"
            " python -m pip install -e '.[test]'"
        )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:] + hint


def test_mypy_strict_reports_wrong_types(project: Path) -> None:
    """The check can fail: each wrong line of ``WRONG`` is an error, and only those."""
    done = _mypy(project, "wrong.py")
    assert done.returncode == 1, done.stdout[-5000:] + done.stderr[-2000:]
    lines = (project / "wrong.py").read_text(encoding="utf-8").splitlines()
    expected = {n for n, line in enumerate(lines, 1) if line.endswith("# E")}
    reported = {int(n) for n in re.findall(r"^wrong\.py:(\d+): error:", done.stdout, re.M)}
    assert reported == expected, done.stdout
