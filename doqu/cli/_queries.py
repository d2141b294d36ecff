"""Commands that look into a store: collections, count, find, values, delete, update."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..backend import (
    MISSING,
    Path,
    check_path,
    check_updates,
    parse_path,
    parse_update,
    resolve,
    sort_key,
)
from ._app import cli
from ._common import (
    apply_conditions,
    dump_json,
    is_terminal_stdout,
    load_model,
    open_storage,
    out_stream,
    parse_pairs,
)
from ._files import Writer

__all__ = ["collections", "count", "delete", "find", "update", "values"]

#: Rows a terminal table shows when no --limit is given.
TABLE_ROWS = 50
#: Columns a table shows when no --fields are given (pk included).
TABLE_COLUMNS = 7

url_arg = click.argument("url")
coll_arg = click.argument("collection")
where_opt = click.option(
    "--where",
    "-w",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep documents matching, e.g. age__gte=30, address.city=Paris (repeat to AND).",
)
where_not_opt = click.option(
    "--where-not",
    "-W",
    multiple=True,
    metavar="KEY=VALUE",
    help="Leave out documents matching, e.g. tags__contains=vip (repeatable).",
)
model_opt = click.option(
    "--model",
    "-m",
    "model_spec",
    metavar="MODULE:CLASS",
    help="Check conditions, fields and changes against this Document class's declared"
    " types (a typo is an error with a 'did you mean'), e.g. app.models:Person.",
)


@cli.command(short_help="List the collections that hold documents.")
@url_arg
@click.option("--counts", "-c", is_flag=True, help="Also show how many documents each holds.")
def collections(url: str, counts: bool) -> None:
    """List the collections of the store at URL that hold documents."""
    with open_storage(url, read_only=True) as db:
        for name in db.collections():
            if counts:
                click.echo(f"{name}\t{db.query(name).count()}")
            else:
                click.echo(name)


@cli.command(short_help="Count the documents that match.")
@url_arg
@coll_arg
@where_opt
@where_not_opt
@model_opt
def count(
    url: str,
    collection: str,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    model_spec: str | None,
) -> None:
    """Print how many documents of COLLECTION match."""
    model = load_model(model_spec)
    with open_storage(url, read_only=True) as db:
        click.echo(apply_conditions(db.query(collection), where, where_not, model).count())


def _project(doc: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    out = {"pk": doc["pk"]}
    for name, path in paths.items():
        value = resolve(doc["pk"], doc, path)
        if value is not MISSING:
            out[name] = value
    return out


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else dump_json(value)


@cli.command(short_help="Print the documents that match (table, JSON lines or JSON).")
@url_arg
@coll_arg
@where_opt
@where_not_opt
@click.option(
    "--order",
    "-o",
    multiple=True,
    metavar="FIELD",
    help="Sort by FIELD, -FIELD for descending (repeat for more keys).",
)
@click.option(
    "--fields",
    "-F",
    multiple=True,
    metavar="A,B.C",
    help="Show only these fields (comma-separated paths; pk always comes first).",
)
@click.option("--limit", "-n", type=click.IntRange(min=0), help="Return at most N documents.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip the first N matches.")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["table", "jsonl", "json"]),
    help="Output format (default: table on a terminal, JSON lines when piped).",
)
@model_opt
def find(
    url: str,
    collection: str,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    order: tuple[str, ...],
    fields: tuple[str, ...],
    limit: int | None,
    offset: int,
    fmt: str | None,
    model_spec: str | None,
) -> None:
    """Print the documents of COLLECTION that match, each with its "pk".

    Results stream: JSON lines and JSON output never hold the whole result in
    memory. A terminal table shows 50 rows unless --limit says otherwise.
    """
    fmt = fmt or ("table" if is_terminal_stdout() else "jsonl")
    chosen = [f.strip() for item in fields for f in item.split(",") if f.strip()]
    paths = {name: parse_path(name) for name in chosen if name != "pk"}
    model = load_model(model_spec)
    if model is not None:
        for name, path in paths.items():
            check_path(model, path, what=f"--fields {name}")
    with open_storage(url, read_only=True) as db:
        query = apply_conditions(db.query(collection), where, where_not, model)
        if order:
            query = query.order_by(*order)
            if model is not None:
                for key in order:
                    name = key.lstrip("+-")
                    check_path(model, parse_path(name), what=f"--order {name}")
        if fmt == "table" and limit is None:
            limit = TABLE_ROWS
        window = query[offset : None if limit is None else offset + limit]
        docs = (_project(doc, paths) for doc in window) if chosen else iter(window)
        if fmt != "table":
            writer = Writer(out_stream(), fmt)
            for doc in docs:
                writer.write(doc)
            writer.finish()
            return
        rows = list(docs)
        columns: dict[str, None] = {"pk": None}
        for doc in rows:
            columns.update(dict.fromkeys(doc))
        hidden = len(columns) - TABLE_COLUMNS if len(columns) > TABLE_COLUMNS else 0
        shown = list(columns)[: len(columns) - hidden]
        table = Table(*shown, title=collection, title_justify="left")
        for doc in rows:
            table.add_row(*("" if c not in doc else _cell(doc[c]) for c in shown))
        console = Console(file=out_stream(), highlight=False)
        console.print(table)
        notes = []
        total = query.count()
        if offset or len(rows) < total:
            first = offset + 1 if rows else offset
            notes.append(f"rows {first}-{offset + len(rows)} of {total} (--limit/--offset)")
        if hidden:
            notes.append(f"{hidden} more fields (--fields a,b or --format jsonl)")
        if notes:
            console.print("; ".join(notes))


@cli.command(short_help="Print the distinct values of a field among matches.")
@url_arg
@coll_arg
@click.argument("field")
@where_opt
@where_not_opt
@model_opt
def values(
    url: str,
    collection: str,
    field: str,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    model_spec: str | None,
) -> None:
    """Print the distinct values of FIELD among matches, one JSON value a line.

    Elements of list fields count one by one; missing fields and nulls are left
    out. Numbers come first, then strings, then the rest.
    """
    model = load_model(model_spec)
    if model is not None:
        check_path(model, parse_path(field), what=f"values field {field}")
    with open_storage(url, read_only=True) as db:
        found = apply_conditions(db.query(collection), where, where_not, model).values(field)
    for value in sorted(found, key=lambda v: (sort_key(v), json.dumps(v, sort_keys=True))):
        click.echo(dump_json(value))


@cli.command(short_help="Delete the documents that match (asks first).")
@url_arg
@coll_arg
@where_opt
@where_not_opt
@click.option("--all", "everything", is_flag=True, help="Delete every document (no --where).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@model_opt
def delete(
    url: str,
    collection: str,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    everything: bool,
    yes: bool,
    model_spec: str | None,
) -> None:
    """Delete the documents of COLLECTION that match; print how many.

    Asks first unless --yes. Refuses to run with no condition unless --all.
    """
    _check_target(where, where_not, everything, "delete")
    model = load_model(model_spec)
    with open_storage(url) as db:
        query = apply_conditions(db.query(collection), where, where_not, model)
        if not yes:
            matched = query.count()
            if matched == 0:
                click.echo("0 deleted")
                return
            click.confirm(
                f"Delete {matched} document{'s' if matched != 1 else ''} from {collection!r}?",
                abort=True,
                err=True,
            )
        click.echo(f"{query.delete()} deleted")


def _check_target(
    where: tuple[str, ...], where_not: tuple[str, ...], everything: bool, verb: str
) -> None:
    """Writes to many documents need conditions, or ``--all`` alone."""
    if not (where or where_not or everything):
        raise click.UsageError(
            f"give --where/--where-not conditions, or --all to {verb} everything"
        )
    if everything and (where or where_not):
        raise click.UsageError(f"--all {verb}s everything: leave out --where/--where-not")


def _changes(
    sets: tuple[str, ...],
    incs: tuple[str, ...],
    unsets: tuple[str, ...],
    pushes: tuple[str, ...],
    pulls: tuple[str, ...],
    adds: tuple[str, ...],
) -> dict[str, Any]:
    changes: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in changes:
            raise click.UsageError(f"{key!r} is changed twice")
        changes[key] = value

    for key, value in parse_pairs(sets, "--set"):
        put(f"{key}__set", value)
    for key, value in parse_pairs(incs, "--inc"):
        put(f"{key}__inc", value)
    for key in unsets:
        put(f"{key}__unset", True)
    for key, value in parse_pairs(pushes, "--push"):
        put(f"{key}__push", value)
    for key, value in parse_pairs(pulls, "--pull"):
        put(f"{key}__pull", value)
    for key, value in parse_pairs(adds, "--add-to-set"):
        put(f"{key}__add_to_set", value)
    if not changes:
        raise click.UsageError("nothing to change: give --set, --inc, --unset, --push, …")
    return changes


@cli.command(short_help="Change the documents that match (--set, --inc, --push, …).")
@url_arg
@coll_arg
@where_opt
@where_not_opt
@click.option("--all", "everything", is_flag=True, help="Update every document (no --where).")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Set a field.")
@click.option("--inc", "incs", multiple=True, metavar="KEY=N", help="Add N to a number.")
@click.option("--unset", "unsets", multiple=True, metavar="KEY", help="Remove a field.")
@click.option("--push", "pushes", multiple=True, metavar="KEY=VALUE", help="Append to a list.")
@click.option("--pull", "pulls", multiple=True, metavar="KEY=VALUE", help="Remove from a list.")
@click.option(
    "--add-to-set", "adds", multiple=True, metavar="KEY=VALUE", help="Append unless present."
)
@model_opt
def update(
    url: str,
    collection: str,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    everything: bool,
    sets: tuple[str, ...],
    incs: tuple[str, ...],
    unsets: tuple[str, ...],
    pushes: tuple[str, ...],
    pulls: tuple[str, ...],
    adds: tuple[str, ...],
    model_spec: str | None,
) -> None:
    """Change the documents of COLLECTION that match; print how many changed.

    Each document changes atomically. Refuses to run with no condition unless
    --all, e.g.: doqu update URL people --where name=Ann --set age=36 --push tags=vip
    """
    _check_target(where, where_not, everything, "update")
    changes = _changes(sets, incs, unsets, pushes, pulls, adds)
    model = load_model(model_spec)
    if model is not None:
        check_updates(model, parse_update(changes))
    with open_storage(url) as db:
        query = apply_conditions(db.query(collection), where, where_not, model)
        click.echo(f"{query.update(**changes)} updated")
