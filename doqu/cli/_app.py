"""The ``doqu`` command group and its error handling."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click
from pydantic import ValidationError

import doqu
from doqu import DoquError

from ._common import echo_error, error_line

__all__ = ["DoquGroup", "cli"]

#: Exit status for usage mistakes (click's convention) and for every other error.
EXIT_USAGE = 2
EXIT_ERROR = 1


class DoquGroup(click.Group):
    """A click group that turns user mistakes into one ``doqu: error: …`` line.

    Usage errors exit 2, everything else a user can cause (a bad query, URL,
    file, missing driver, unreachable server, missing pk) exits 1. Genuine bugs
    still show their traceback.
    """

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = 0
        try:
            result = super().main(
                args, prog_name or "doqu", complete_var, standalone_mode=False, **extra
            )
            if isinstance(result, int):
                code = result
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            echo_error(error_line(exc) + hint)
            code = EXIT_USAGE
        except click.Abort:
            echo_error("aborted")
            code = EXIT_ERROR
        except click.ClickException as exc:
            echo_error(error_line(exc))
            code = exc.exit_code
        except BrokenPipeError:
            # The reader went away (`doqu find … | head`): stop quietly; keep the
            # interpreter from failing again while flushing stdout at exit.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = EXIT_ERROR
        except (DoquError, ValidationError, OSError) as exc:
            echo_error(error_line(exc))
            code = EXIT_ERROR
        if standalone_mode:
            sys.exit(code)
        return code


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("doqu", cls=DoquGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(doqu.__version__, prog_name="doqu", message="%(prog)s %(version)s")
def cli() -> None:
    """Look into, load, move and query doqu stores from the shell.

    Every command takes a store URL: sqlite:///app.db, postgresql://…,
    mysql+pymysql://…, mongodb://…/db, tinydb:///data.json, or
    memory://?persist=snap.json. Conditions use the Python API's lookups:
    --where age__gt=30 --where address.city=Paris. Values are JSON when they
    parse as JSON (30, true, null, ["a"], "30" with quotes), else text.
    """
