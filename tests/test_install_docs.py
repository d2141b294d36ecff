"""Install instructions: one page with every extra, and none that fetch PyPI's ``doqu``.

The name ``doqu`` on PyPI belongs to an unrelated project: ``pip install doqu``
or ``pip install 'doqu[cli]'`` installs that one. doqu installs from a checkout.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_PAGE = ROOT / "docs" / "install.rst"

#: pip asked for the project named ``doqu`` (options, quotes and extras allowed), not a path.
FROM_PYPI = re.compile(r"""pip3?\s+install\s+(?:-\S+\s+)*["']?doqu(?![\w/-])""", re.IGNORECASE)


def _texts() -> list[Path]:
    """Every file that gives instructions: README, the docs, doqu's messages and docstrings."""
    docs = [p for p in (ROOT / "docs").rglob("*.rst") if "_build" not in p.parts]
    return [ROOT / "README.rst", ROOT / "setup.cfg", *docs, *(ROOT / "doqu").rglob("*.py")]


@pytest.mark.parametrize(
    "text",
    [
        "pip install doqu",
        "python -m pip install 'doqu[mongo]'",
        'pip install -U "doqu[cli]"',
        "pip install --upgrade doqu",
    ],
)
def test_the_pattern_catches_a_pypi_install(text: str) -> None:
    assert FROM_PYPI.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "python -m pip install '.[mongo]'",
        "python -m pip install -e '.[test]'",
        "python -m pip install '/path/to/doqu[sql]'",
        "pip install doqu-other",
    ],
)
def test_the_pattern_leaves_a_checkout_install(text: str) -> None:
    assert not FROM_PYPI.search(text)


def test_no_instruction_fetches_the_other_project() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _texts()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FROM_PYPI.search(line)
    ]
    assert not found, "installs PyPI's unrelated 'doqu':\n" + "\n".join(found)


def test_install_page_lists_every_extra() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    extras = list(config["options.extras_require"])
    assert {"sql", "postgres", "mysql", "mongo", "tinydb", "cli", "all", "test"} <= set(extras)
    page = INSTALL_PAGE.read_text(encoding="utf-8")
    missing = [e for e in extras if not re.search(rf"^``{re.escape(e)}``\s", page, re.M)]
    assert not missing, f"docs/install.rst does not list the extras {missing}"


def test_install_page_is_in_the_toctree() -> None:
    index = (ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    assert re.search(r"^   install$", index, re.M)


def test_pages_with_install_commands_point_to_the_install_page() -> None:
    lacking = []
    for path in [ROOT / "README.rst", *(ROOT / "docs").rglob("*.rst")]:
        if path == INSTALL_PAGE or "_build" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if "pip install" in text and not re.search(r":doc:`(\.\./|/)?install`|install\.rst", text):
            lacking.append(str(path.relative_to(ROOT)))
    assert not lacking, f"give install commands without naming docs/install.rst: {lacking}"
