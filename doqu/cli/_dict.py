"""``doqu dict URL NAME …``: the mapping view (``db.dict(NAME)``) from the shell."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from doqu import NotFound

from ._app import cli
from ._common import CLIError, dump_json, open_storage, parse_value

__all__ = ["dict_group"]


@contextmanager
def _view(ctx: click.Context) -> Iterator[Any]:
    url, name = ctx.obj
    with open_storage(url) as db:
        yield db.dict(name)


def _missing(ctx: click.Context, key: str) -> CLIError:
    return CLIError(f"no key {key!r} in dict {ctx.obj[1]!r}")


@cli.group("dict", short_help="Get, set, delete, list and increment keys of db.dict(NAME).")
@click.argument("url")
@click.argument("name")
@click.pass_context
def dict_group(ctx: click.Context, url: str, name: str) -> None:
    """Read and write the key/value view NAME of the store at URL (db.dict(NAME)).

    Each key is one document {"value": …} of collection NAME, its pk the key.
    Values are JSON when they parse as JSON, else text.
    """
    ctx.obj = (url, name)


@dict_group.command()
@click.argument("key")
@click.pass_context
def get(ctx: click.Context, key: str) -> None:
    """Print the value under KEY as JSON (an error if there is none)."""
    with _view(ctx) as view:
        try:
            value = view[key]
        except (KeyError, NotFound):
            raise _missing(ctx, key) from None
    click.echo(dump_json(value))


@dict_group.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
def set_(ctx: click.Context, key: str, value: str) -> None:
    """Store VALUE under KEY (JSON when it parses as JSON, else text)."""
    with _view(ctx) as view:
        view[key] = parse_value(value)


@dict_group.command("del")
@click.argument("key")
@click.pass_context
def del_(ctx: click.Context, key: str) -> None:
    """Remove KEY (an error if there is none)."""
    with _view(ctx) as view:
        try:
            del view[key]
        except (KeyError, NotFound):
            raise _missing(ctx, key) from None


@dict_group.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Print every key and its JSON value, tab-separated, one a line."""
    with _view(ctx) as view:
        for key, value in view.items():
            click.echo(f"{key}\t{dump_json(value)}")


@dict_group.command()
@click.argument("key")
@click.argument("by", default="1")
@click.pass_context
def incr(ctx: click.Context, key: str, by: str) -> None:
    """Add BY (default 1) to the number under KEY atomically; print the new value.

    A missing key counts as 0.
    """
    amount = parse_value(by)
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise click.BadParameter(f"{by!r} is not a number", param_hint="BY")
    with _view(ctx) as view:
        try:
            total = view.increment(key, amount)
        except TypeError as exc:  # the stored value is not a number
            raise CLIError(f"cannot increment {key!r} in dict {ctx.obj[1]!r}: {exc}") from None
    click.echo(dump_json(total))
