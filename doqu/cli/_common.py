"""What every command shares: value parsing, conditions, errors and output helpers."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Literal, cast

import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import doqu
from doqu import Document, DoquError, Query, Storage, StorageError
from doqu.backend import check_node

__all__ = [
    "BATCH",
    "CLIError",
    "apply_conditions",
    "load_model",
    "dump_json",
    "echo_error",
    "error_line",
    "in_bytes",
    "is_terminal_stdout",
    "isatty",
    "open_storage",
    "out_stream",
    "parse_pairs",
    "parse_value",
    "progress",
    "stderr_console",
]

#: Documents per ``save_many`` call in import and copy.
BATCH = 1000


class CLIError(click.ClickException):
    """A user mistake found by the CLI itself (a bad file, a bad option value); exit 1."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_value(text: str) -> Any:
    """Parse a command-line value: JSON when *text* is valid JSON, else the string itself.

    ``30`` is a number, ``true`` a bool, ``null`` None, ``["a"]`` a list and ``"30"``
    (with the quotes) the string 30; ``Ann`` or ``São Paulo`` are strings.
    ``NaN`` and ``Infinity`` are strings, as JSON has no such numbers.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _pk_operand(value: Any) -> Any:
    # Primary keys are always strings, so `pk=17` can only mean the key "17".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return [_pk_operand(v) for v in value]
    return value


def parse_pairs(items: Iterable[str], option: str) -> list[tuple[str, Any]]:
    """Split ``key=value`` options into ``(key, parsed value)`` pairs, in order."""
    pairs: list[tuple[str, Any]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{option} takes key=value, not {item!r}")
        value = parse_value(raw)
        if key == "pk" or key.startswith(("pk__", "pk.")):
            value = _pk_operand(value)
        pairs.append((key, value))
    return pairs


def apply_conditions(
    query: Query[Any],
    where: Sequence[str] = (),
    where_not: Sequence[str] = (),
    model: type[Document] | None = None,
) -> Query[Any]:
    """Narrow *query* by ``--where`` (each ANDed) and ``--where-not`` (each a NOT) options.

    With a *model* (``--model``), the conditions are checked against its declared
    types, as on a model-bound query of the Python API.
    """
    for key, value in parse_pairs(where, "--where"):
        query = query.where(**{key: value})
    for key, value in parse_pairs(where_not, "--where-not"):
        query = query.where_not(**{key: value})
    if model is not None and query.node is not None:
        check_node(model, query.node)
    return query


def load_model(spec: str | None) -> type[Document] | None:
    """The ``Document`` class named by ``--model module:Class`` (``None`` without one).

    The current directory is searched first, as ``python -m`` does, so a
    project's own models are found from its root.
    """
    if spec is None:
        return None
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise click.BadParameter(f"{spec!r} is not module:Class", param_hint="--model")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint="--model"
        ) from None
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and issubclass(target, Document)):
        raise click.BadParameter(f"{spec!r} is not a doqu.Document class", param_hint="--model")
    return target


@contextmanager
def open_storage(url: str, *, read_only: bool = False) -> Iterator[Storage]:
    """Connect to *url* and close the storage afterwards (flushing ``memory://?persist``).

    *read_only* connects with ``read_only=True``: a store that does not exist is an
    error, never created (commands that only read use it).
    """
    storage = doqu.connect(url, read_only=True) if read_only else doqu.connect(url)
    try:
        yield storage
    finally:
        storage.close()


def dump_json(value: Any) -> str:
    """One-line JSON as the CLI prints it (UTF-8 text kept, not escaped)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def stderr_console() -> Console:
    """A rich console on stderr (progress bars and notes never mix with piped output)."""
    return Console(stderr=True, highlight=False)


def progress(console: Console, *, unit: Literal["rows", "bytes"] = "rows") -> Progress:
    """A progress display that shows only when stderr is a terminal.

    Tasks count *unit*: rows (``120/3000``) or bytes (``1.2/4.5 MB``). A task
    whose total is ``None`` shows a bar without an end and no time remaining.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )


def error_line(exc: BaseException) -> str:
    """Say what went wrong in one line (pydantic's multi-line reports are folded)."""
    if isinstance(exc, click.ClickException):
        text = exc.format_message()
    elif isinstance(exc, ValidationError):
        errors = exc.errors()
        shown = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in errors[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        text = f"invalid {exc.title}: {shown}{more}"
    elif isinstance(exc, StorageError):
        text = str(exc)
        cause = exc.__cause__
        if cause is not None and str(cause) and str(cause) not in text:
            text = f"{text}: {cause}"
    elif isinstance(exc, DoquError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def echo_error(message: str) -> None:
    """Print ``doqu: error: message`` on stderr."""
    click.echo(f"doqu: error: {message}", err=True)


def out_stream() -> IO[str]:
    """Standard output as click sees it (so ``CliRunner`` captures it too).

    ``click.open_file("-")`` looks ``sys.stdout`` up when called, so it is the
    stream of the current invocation, and gives a text stream even when
    stdout's encoding is misconfigured (it replaces the ``get_text_stream``
    click 8.5 deprecates, with the same behaviour on click 8.1 to 8.5).
    """
    return cast(IO[str], click.open_file("-", "w"))


def in_bytes() -> IO[bytes]:
    """Standard input as bytes, as click sees it (``CliRunner``'s input in tests)."""
    return cast(IO[bytes], click.open_file("-", "rb"))


def isatty(stream: IO[Any]) -> bool:
    """Whether *stream* is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def is_terminal_stdout() -> bool:
    """Whether standard output is a terminal (tables there, JSON lines when piped)."""
    return isatty(sys.stdout)
