"""The ``doqu`` command line: query, import, export and copy doqu stores.

Run ``doqu --help`` (or ``python -m doqu --help``); every command has ``--help``.
Needs the ``cli`` extra: ``python -m pip install '.[cli]'`` in a doqu checkout.
"""

from __future__ import annotations

from typing import Any

from . import _demo, _dict, _migrate, _queries, _transfer  # noqa: F401 - they register the commands
from ._app import cli

__all__ = ["cli", "main"]


def main(args: list[str] | None = None) -> Any:
    """Run the ``doqu`` command (exits the process with its status)."""
    return cli.main(args, prog_name="doqu")
