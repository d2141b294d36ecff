"""Run every code example in README.rst and docs/ (sybil)."""

from __future__ import annotations

import os
from pathlib import Path

from sybil import Sybil
from sybil.parsers.rest import DocTestParser, PythonCodeBlockParser, SkipParser


def _fresh_dir(namespace: dict[str, object]) -> None:
    # Examples write files (sqlite:///app.db …): run each document in a temporary folder.
    import tempfile

    namespace["_doqu_old_cwd"] = os.getcwd()
    namespace["_doqu_tmp"] = tempfile.TemporaryDirectory()
    os.chdir(namespace["_doqu_tmp"].name)  # type: ignore[attr-defined]


def _restore_dir(namespace: dict[str, object]) -> None:
    os.chdir(namespace["_doqu_old_cwd"])  # type: ignore[arg-type]
    namespace["_doqu_tmp"].cleanup()  # type: ignore[attr-defined]


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), DocTestParser(), SkipParser()],
    path=str(Path(__file__).parent),
    patterns=["README.rst", "docs/*.rst", "docs/**/*.rst"],
    setup=_fresh_dir,
    teardown=_restore_dir,
).pytest()
