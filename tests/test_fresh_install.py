"""The README's two commands, tried on a clean virtual environment.

Slow (it builds doqu and installs its dependencies from the package index),
but it is the only test that sees what a new user sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_COMMAND = "python -m pip install '.[cli]' && doqu demo"
TEST_COMMAND = "python -m pip install -e '.[test]' && python -m pytest"
IGNORED = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache", "*.db",
    "*.sqlite3", ".venv", "venv", "docs/_build",
)  # fmt: skip

pytestmark = pytest.mark.slow


def _readme_commands() -> list[str]:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.startswith("    python -m pip")]


def _run(
    cmd: list[str], *, timeout: int, check: bool = False, **where: Any
) -> subprocess.CompletedProcess[str]:
    """Run *cmd* (``cwd=``, ``env=``) and capture its text output."""
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=check, **where
    )


def _clean_env(venv: Path) -> dict[str, str]:
    """The caller's environment with only the venv on top: nothing of this checkout leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("DOQU_URL", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the project (so building never touches the work tree) and a new venv."""
    base = tmp_path_factory.mktemp("fresh")
    project = base / "project"
    shutil.copytree(ROOT, project, ignore=IGNORED)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return project, venv, _clean_env(venv)


def test_readme_says_the_two_commands() -> None:
    assert _readme_commands() == [DEMO_COMMAND, TEST_COMMAND]


def test_install_then_demo(fresh: tuple[Path, Path, dict[str, str]]) -> None:
    """``python -m pip install '.[cli]' && doqu demo``, exactly as the README says it."""
    project, venv, env = fresh
    done = _run(["bash", "-c", DEMO_COMMAND], cwd=project, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Loaded 3000 people into sqlite:///doqu-demo.db" in out
    assert ">>> Person.objects(db).count()\n3000\n" in out
    assert re.search(r'address__city="Paris"\)\.count\(\)\n\d+\n', out)
    assert "Traceback" not in done.stderr
    assert (project / "doqu-demo.db").exists()
    # The installed console script is the venv's, importing the installed package.
    assert (venv / "bin" / "doqu").exists()

    # Again, from another directory, with nothing of the checkout around: no server needed.
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    again = _run([str(venv / "bin" / "doqu"), "demo"], cwd=elsewhere, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ">>> Person.objects(db).count()\n3000\n" in again.stdout
    assert (elsewhere / "doqu-demo.db").exists()


def test_test_extra_resolves(fresh: tuple[Path, Path, dict[str, str]]) -> None:
    """The second command's install step resolves on a clean venv.

    Running the whole suite again inside the suite would recurse, so this checks
    the part a fresh machine can get wrong: that ``pip install -e '.[test]'``
    finds every test dependency (``--dry-run``: nothing is installed).
    """
    project, _venv, env = fresh
    install = TEST_COMMAND.split(" && ")[0].replace("install", "install --dry-run", 1)
    done = _run(["bash", "-c", install], cwd=project, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Would install" in done.stdout
    for name in ("pytest", "hypothesis", "sybil", "secantusdb"):
        assert name in done.stdout.lower()


EDITABLE_APP = """\
from typing_extensions import assert_type

import doqu
from doqu import Document, Query


class Person(Document):
    name: str


def adults(db: doqu.Storage) -> Query[Person]:
    q = Person.objects(db).where(age__gte=18)
    assert_type(q, Query[Person])
    return q
"""

#: What a path on sys.path to the checkout itself would make importable everywhere.
NOT_PACKAGES = ("tests", "benchmarks", "conftest", "setup", "docs")


def test_editable_install_is_a_path_mypy_follows(
    fresh: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """The README's ``python -m pip install -e '.[test]'``, then mypy in another directory.

    setuptools' default editable install is an import hook, which type checkers
    do not run: mypy said "Cannot find implementation or library stub for module
    named doqu". ``setup.cfg`` asks for the strict mode, whose ``.pth`` names a
    tree of links to ``doqu/`` alone. A venv of its own, so that the other tests'
    installs do not matter.
    """
    project, _venv, _env = fresh
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _clean_env(venv)
    install = TEST_COMMAND.split(" && ")[0]
    done = _run(["bash", "-c", install], cwd=project, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    python = str(venv / "bin" / "python")
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env,
        timeout=60,
        check=True,
    ).stdout.strip()
    (pth,) = Path(site).glob("__editable__*doqu*.pth")
    entries = pth.read_text(encoding="utf-8").split()
    assert len(entries) == 1 and not entries[0].startswith("import"), entries
    tree = Path(entries[0])
    assert tree.is_relative_to(project.resolve() / "build")
    assert sorted(p.name for p in tree.iterdir()) == ["doqu"]
    assert (tree / "doqu" / "py.typed").exists()

    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    probe = (
        "import doqu, importlib.util, os\n"
        "print(os.path.realpath(doqu.__file__))\n"
        f"print([m for m in {NOT_PACKAGES!r} if importlib.util.find_spec(m) is not None])\n"
    )
    seen = _run([python, "-c", probe], cwd=elsewhere, env=env, timeout=60)
    assert seen.returncode == 0, seen.stderr
    where, leaked = seen.stdout.splitlines()
    assert Path(where) == (project / "doqu" / "__init__.py").resolve()  # edits show at once
    assert leaked == "[]"

    (elsewhere / "app.py").write_text(EDITABLE_APP, encoding="utf-8")
    (elsewhere / "mypy.ini").write_text("[mypy]\nstrict = True\nplugins = pydantic.mypy\n")
    checked = _run([python, "-m", "mypy", "app.py"], cwd=elsewhere, env=env, timeout=600)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
