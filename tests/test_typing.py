"""What mypy sees of doqu from a user's project: precise types, found through the install.

Each check writes a sample of user code into an empty temporary directory and
runs ``python -m mypy --strict`` there (with the pydantic plugin, and for the
field expressions with doqu's own, ``doqu.mypy``), with the interpreter running
the tests. Nothing of this checkout is on mypy's path:
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


#: The config of a project using field expressions: pydantic's plugin and doqu's.
MYPY_PLUGIN_INI = """\
[mypy]
strict = True
plugins = pydantic.mypy, doqu.mypy
"""

#: The same plugins the other way round, and doqu's alone: each must give the same types.
MYPY_PLUGIN_INIS = {
    "mypy-plugins.ini": MYPY_PLUGIN_INI,
    "mypy-reversed.ini": MYPY_PLUGIN_INI.replace(
        "pydantic.mypy, doqu.mypy", "doqu.mypy, pydantic.mypy"
    ),
    "mypy-doqu-only.ini": MYPY_PLUGIN_INI.replace("pydantic.mypy, doqu.mypy", "doqu.mypy"),
}

#: Field expressions as the ``doqu.mypy`` plugin types them. Runs as it is, too.
EXPRESSIONS = """
from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import Self, assert_type

import doqu
from doqu import Document, Field, Q, Query, Sort, UpdateOp


class Geo(BaseModel):
    lat: float
    lng: float = 0.0


class Address(BaseModel):
    city: str
    geo: Geo | None = None


class Item(BaseModel):
    sku: str
    qty: int = 1


class Person(Document):
    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = []
    address: Address | None = None
    items: list[Item] = []
    scores: dict[str, Geo] = {}

    @classmethod
    def adults(cls, db: doqu.Storage) -> Query[Self]:
        assert_type(cls.age, Field[int])
        return cls.objects(db).where(cls.age >= 18)


class Staff(Person):
    role: str = "clerk"


def main() -> None:
    # A declared field read on the class is a field expression of its declared type.
    assert_type(Person.age, Field[int])
    assert_type(Person.pk, Field[str | None])
    assert_type(Person.email, Field[str | None])
    assert_type(Person.tags, Field[list[str]])
    assert_type(Person.address, Field[Address | None])
    assert_type(Staff.role, Field[str])
    assert_type(Staff.age, Field[int])
    # Sub-fields: through an optional model, a list of models, a dict, two levels down.
    assert_type(Person.address.city, Field[str])
    assert_type(Person.address.geo, Field[Geo | None])
    assert_type(Person.address.geo.lat, Field[float])
    assert_type(Person.items.sku, Field[str])
    assert_type(Person.items.qty, Field[int])
    assert_type(Person.scores.math, Field[Geo])
    assert_type(Person.scores.math.lat, Field[float])
    assert_type(doqu.field(Person, "json"), Field[Any])
    assert_type(doqu.field(Person.age), Field[int])

    # Conditions, sort keys and update operators.
    assert_type(Person.age >= 30, Q)
    assert_type((Person.age < 18) | Person.tags.contains("x"), Q)
    assert_type(~Person.name.startswith("A"), Q)
    assert_type(Person.email.isnull(), Q)
    assert_type(Person.age.between(1, 2), Q)
    assert_type(Person.age.in_([1, 2]), Q)
    assert_type(Person.tags.size(2), Q)
    assert_type(Person.tags.all(["a"]), Q)
    assert_type(Person.address.city.matches("^P"), Q)
    assert_type(Person.items.sku == "A1", Q)
    assert_type(Person.age.desc(), Sort)
    assert_type(-Person.age, Sort)
    assert_type(Person.age.inc(1), UpdateOp)
    assert_type(Person.tags.push("y"), UpdateOp)

    with doqu.connect("memory://") as db:
        ann = Person(
            name="Ann",
            age=35,
            tags=["x"],
            address=Address(city="Paris", geo=Geo(lat=48.9)),
            items=[Item(sku="A1")],
        )
        ann.save(db)
        Person(name="Bob", age=12).save(db)
        q = Person.objects(db)

        paris = q.where(Person.age >= 30, Person.address.city == "Paris")
        assert_type(paris, Query[Person])
        assert [p.name for p in paris] == ["Ann"]
        ordered = q.order_by(Person.age.desc(), Person.name)
        assert_type(ordered, Query[Person])
        assert [p.name for p in ordered] == ["Ann", "Bob"]
        assert_type(q.values(Person.address.city), list[Any])
        assert "Paris" in q.values(Person.address.city)
        assert_type(q.where(Person.items.sku == "A1"), Query[Person])
        assert [p.name for p in Person.adults(db)] == ["Ann"]

        changed = q.where(Person.name == "Ann").update(
            Person.age.inc(1), Person.tags.push("y"), Person.email.unset()
        )
        assert_type(changed, int)
        assert changed == 1
        first = q.where(Person.name == "Ann").first()
        assert_type(first, Person | None)
        assert first is not None
        # An instance keeps its plain values.
        assert_type(first.age, int)
        assert_type(first.address, Address | None)
        assert_type(ann.tags, list[str])
        assert first.age == 36 and first.tags == ["x", "y"]



class Writer(Document):
    name: str


class Novel(Document):
    title: str
    author: doqu.Ref[Writer]
    editor: doqu.Ref[Writer] | None = None


def references() -> None:
    # A reference field compares with its target, a Ref or a pk; prefetch keeps the model.
    with doqu.connect("memory://") as db:
        frank = Writer(name="Frank")
        frank.save(db)
        Novel(title="Dune", author=frank).save(db)
        q = Novel.objects(db)
        assert_type(Novel.author, Field[doqu.Ref[Writer]])
        assert_type(Novel.author == frank, Q)
        assert_type(Novel.author == "pk", Q)
        assert_type(Novel.editor == None, Q)  # noqa: E711
        assert_type(Novel.author.in_([frank, "pk"]), Q)
        assert_type(q.prefetch("author"), Query[Novel])
        novel = q.where(Novel.author == frank).prefetch("author").first()
        assert novel is not None
        assert_type(novel.author, doqu.Ref[Writer])
        assert_type(novel.author.pk, str)
        assert_type(novel.author.doc, Writer | None)
        assert novel.author.doc is not None and novel.author.doc.name == "Frank"
        assert_type(db.get(Novel, str(novel.pk), prefetch=["author"]), Novel)

if __name__ == "__main__":
    main()
    references()
"""

#: Every line marked ``# E`` must be an error with the plugin (and no other line).
#: Never called: it is only type-checked.
WRONG_EXPRESSIONS = """
from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

from doqu import Document, Field, Query


class Address(BaseModel):
    city: str


class Item(BaseModel):
    sku: str


class Person(Document):
    name: str
    age: int = 0
    tags: list[str] = []
    address: Address | None = None
    items: list[Item] = []


def wrong(q: Query[Person]) -> None:
    Person.age.startswith("x")  # E
    print(Person.nosuch)  # E
    print(Person.address.cty)  # E
    print(Person.items.skuu)  # E
    print(Person.age.gtee)  # E
    print(Person.address.city.upper)  # E
    print(Person.age > "x")  # E
    Person.name.size(2)  # E
    Person.name.inc(1)  # E
    Person.tags.startswith("a")  # E
    Person.address.city.inc(1)  # E
    q.where(Person.age)  # E
    q.where(Person.age == "x")  # E
    q.where(Person.name == 3)  # E
    # The types the expressions would have if Any leaked, or without the plugin.
    assert_type(Person.age, Any)  # E
    assert_type(Person.age, int)  # E
    assert_type(Person.age >= 30, bool)  # E
    assert_type(Person.address.city, Any)  # E
    assert_type(Person.address.city, Field[Any])  # E
    assert_type(Person.items.sku, Field[Any])  # E
    assert_type(Person(name="x").age, Field[int])  # E
    # Not errors: a sub-field by name, a method of Field, a plain value.
    print(Person.address["city"], Person.tags.path, Person(name="x").name.upper())
"""


def _env() -> dict[str, str]:
    """The caller's environment, without anything that would show mypy this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env.pop("MYPY_CACHE_DIR", None)
    return env


def _mypy(where: Path, name: str, config: str = "mypy.ini") -> subprocess.CompletedProcess[str]:
    # One cache per config: a cache written with other plugins is not reused anyway.
    cache = where.parent / f"cache-{config.removesuffix('.ini')}"
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--config-file", config,
            "--cache-dir", str(cache), "--no-color-output",
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
    """An empty directory outside the checkout holding the samples and the mypy configs."""
    where = tmp_path_factory.mktemp("typing") / "project"
    where.mkdir()
    (where / "mypy.ini").write_text(MYPY_INI, encoding="utf-8")
    (where / "sample.py").write_text(textwrap.dedent(SAMPLE).lstrip(), encoding="utf-8")
    (where / "wrong.py").write_text(textwrap.dedent(WRONG).lstrip(), encoding="utf-8")
    for config, text in MYPY_PLUGIN_INIS.items():
        (where / config).write_text(text, encoding="utf-8")
    (where / "expressions.py").write_text(textwrap.dedent(EXPRESSIONS).lstrip(), encoding="utf-8")
    (where / "wrong_expressions.py").write_text(
        textwrap.dedent(WRONG_EXPRESSIONS).lstrip(), encoding="utf-8"
    )
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


@pytest.mark.parametrize("name", ["sample.py", "expressions.py"])
def test_sample_runs(project: Path, name: str) -> None:
    done = subprocess.run(
        [sys.executable, name],
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


def _reported_as_marked(project: Path, name: str, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, done.stdout[-5000:] + done.stderr[-2000:]
    lines = (project / name).read_text(encoding="utf-8").splitlines()
    expected = {n for n, line in enumerate(lines, 1) if line.endswith("# E")}
    pattern = rf"^{re.escape(name)}:(\d+): error:"
    reported = {int(n) for n in re.findall(pattern, done.stdout, re.M)}
    assert reported == expected, done.stdout


def test_mypy_strict_reports_wrong_types(project: Path) -> None:
    """The check can fail: each wrong line of ``WRONG`` is an error, and only those."""
    _reported_as_marked(project, "wrong.py", _mypy(project, "wrong.py"))


@pytest.mark.parametrize("config", list(MYPY_PLUGIN_INIS))
def test_mypy_plugin_types_field_expressions(project: Path, config: str) -> None:
    """With ``doqu.mypy`` (after pydantic's, before it, or alone), ``Person.age`` is a
    ``Field[int]`` and ``Person.address.city`` a ``Field[str]``."""
    done = _mypy(project, "expressions.py", config)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_mypy_plugin_reports_wrong_expressions(project: Path) -> None:
    """Each wrong line of ``WRONG_EXPRESSIONS`` is an error, and only those; the
    sub-fields a model does not declare are reported by the plugin, by name."""
    done = _mypy(project, "wrong_expressions.py", "mypy-plugins.ini")
    _reported_as_marked(project, "wrong_expressions.py", done)
    assert '"Address" has no field "cty"; maybe "city"?' in done.stdout, done.stdout
    assert '"Item" has no field "skuu"; maybe "sku"?' in done.stdout, done.stdout
    assert '"Field[int]" has no attribute "gtee"' in done.stdout, done.stdout
    assert '"Field[str]" has no attribute "upper"' in done.stdout, done.stdout


CACHED_MODELS = """
from pydantic import BaseModel, ConfigDict

from doqu import Document


class Address(BaseModel):
    city: str


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class Person(Document):
    address: Address | None = None
    loose: Loose | None = None
"""

CACHED_USES = """
from typing import Any

from typing_extensions import assert_type

from doqu import Field
from models import Person

assert_type(Person.address.city, Field[str])
assert_type(Person.loose.anything, Field[Any])
print(Person.address.cty)  # E
"""


def test_mypy_plugin_reads_models_from_the_cache_as_from_source(project: Path) -> None:
    """What the plugin reads in a model's body (``extra="allow"``) is kept in mypy's cache:
    a second run, with the models' module from the cache, reports the same."""
    where = project.parent / "cached"
    where.mkdir()
    (where / "mypy-plugins.ini").write_text(MYPY_PLUGIN_INI, encoding="utf-8")
    (where / "models.py").write_text(textwrap.dedent(CACHED_MODELS).lstrip(), encoding="utf-8")
    uses = textwrap.dedent(CACHED_USES).lstrip()
    for run in range(2):
        (where / "uses.py").write_text(uses + f"# run {run}\n", encoding="utf-8")
        _reported_as_marked(where, "uses.py", _mypy(where, "uses.py", "mypy-plugins.ini"))


def test_without_the_plugin_a_field_reads_as_its_declared_type(project: Path) -> None:
    """The plugin is what makes the expressions typed: without it, ``Person.age`` is an
    ``int`` (mypy reads the annotation) and the sample does not check."""
    done = _mypy(project, "expressions.py")
    assert done.returncode == 1, done.stdout[-5000:]
    assert 'Expression is of type "int", not "Field[int]"' in done.stdout, done.stdout
