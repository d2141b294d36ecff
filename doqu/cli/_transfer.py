"""Commands that move documents: import, export and copy, all streaming and batched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

import click

from doqu import Storage

from ._app import cli
from ._common import (
    BATCH,
    CLIError,
    apply_conditions,
    dump_json,
    open_storage,
    out_stream,
    progress,
    stderr_console,
)
from ._files import FORMATS, Writer, guess_format, open_text, read_documents

__all__ = ["copy", "export", "import_", "iter_batches"]


def _pk_of(value: Any, where: str, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise CLIError(f"{where}: {what} must be a string or a whole number, not {dump_json(value)}")


def _keyed(
    docs: Iterator[tuple[str, dict[str, Any]]], pk_field: str | None
) -> Iterator[dict[str, Any]]:
    for where, doc in docs:
        if pk_field is not None:
            if pk_field not in doc:
                raise CLIError(f"{where}: no {pk_field!r} field to take the pk from")
            doc = {**doc, "pk": _pk_of(doc[pk_field], where, f"--pk field {pk_field!r}")}
        elif doc.get("pk") is not None:  # a null pk asks for a new one, as in save()
            doc["pk"] = _pk_of(doc["pk"], where, '"pk"')
        yield doc


def iter_batches(
    docs: Iterator[dict[str, Any]], size: int = BATCH
) -> Iterator[list[dict[str, Any]]]:
    """Group a stream of documents into lists of at most *size*."""
    batch: list[dict[str, Any]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _input(path: str, fmt: str) -> Iterator[IO[str]]:
    if path == "-":
        yield click.get_text_stream("stdin", encoding="utf-8")
        return
    with open_text(path, "r", fmt) as stream:
        yield stream


@cli.command("import", short_help="Load documents from a JSON lines, JSON or CSV file.")
@click.argument("url")
@click.argument("collection")
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    help="jsonl, json (an array) or csv; default: from FILE's extension, jsonl for -.",
)
@click.option("--pk", "pk_field", metavar="FIELD", help="Take each document's pk from FIELD.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=BATCH, show_default=True, help="Docs per write."
)
def import_(
    url: str, collection: str, file: str, fmt: str | None, pk_field: str | None, batch: int
) -> None:
    """Load documents from FILE (- for stdin) into COLLECTION.

    A document's own "pk" (or the --pk FIELD) is its key, so importing again
    replaces instead of duplicating; documents without one get a new pk.
    Files ending in .gz are decompressed. Writes happen in batches: on an error,
    the batches before it are kept.
    """
    fmt = guess_format(file, fmt)
    name = "stdin" if file == "-" else file
    console = stderr_console()
    total = 0
    with _input(file, fmt) as stream, open_storage(url) as db, progress(console) as bar:
        task = bar.add_task(f"import {collection}", total=None)
        docs = _keyed(read_documents(stream, fmt, name), pk_field)
        for chunk in iter_batches(docs, batch):
            db.save_many(chunk, collection=collection)
            total += len(chunk)
            bar.update(task, completed=total)
    click.echo(f"{total} imported into {collection}", err=True)


@cli.command(short_help="Write a collection as JSON lines, JSON or CSV.")
@click.argument("url")
@click.argument("collection")
@click.argument("file", required=False, default="-", metavar="[FILE]")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    help="jsonl (default), json or csv; default: from FILE's extension.",
)
@click.option("--where", "-w", multiple=True, metavar="KEY=VALUE", help="Export only matches.")
@click.option("--where-not", "-W", multiple=True, metavar="KEY=VALUE", help="Leave out matches.")
@click.option("--order", "-o", multiple=True, metavar="FIELD", help="Sort by FIELD (-FIELD desc).")
def export(
    url: str,
    collection: str,
    file: str,
    fmt: str | None,
    where: tuple[str, ...],
    where_not: tuple[str, ...],
    order: tuple[str, ...],
) -> None:
    """Write the documents of COLLECTION to FILE (default: stdout), each with its "pk".

    Streams from the database to the file one document at a time. CSV reads the
    collection twice: once for the column names, once for the rows.
    """
    fmt = guess_format(file, fmt)
    console = stderr_console()
    with open_storage(url) as db:
        query = apply_conditions(db.query(collection), where, where_not)
        if order:
            query = query.order_by(*order)
        columns: dict[str, None] = {}
        if fmt == "csv":
            columns["pk"] = None
            for doc in query:
                columns.update(dict.fromkeys(doc))
        with contextlib.ExitStack() as stack:
            stream = out_stream() if file == "-" else stack.enter_context(open_text(file, "w", fmt))
            bar = stack.enter_context(progress(console))
            task = bar.add_task(
                f"export {collection}", total=None if bar.disable else query.count()
            )
            writer = Writer(stream, fmt, list(columns))
            for doc in query:
                writer.write(doc)
                if writer.count % 500 == 0:
                    bar.update(task, completed=writer.count)
            writer.finish()
            bar.update(task, completed=writer.count)
    if file != "-":
        click.echo(f"{writer.count} exported to {file}", err=True)


def copy_collection(src: Storage, dst: Storage, name: str, batch: int = BATCH) -> int:
    """Copy one collection, pks kept, in batches; return how many documents were written.

    Writes are upserts by pk, so running it again rewrites the same documents
    instead of adding new ones.
    """
    written = 0
    console = stderr_console()
    with progress(console) as bar:
        task = bar.add_task(f"copy {name}", total=None if bar.disable else src.query(name).count())
        for chunk in iter_batches(iter(src.query(name)), batch):
            dst.save_many(chunk, collection=name)
            written += len(chunk)
            bar.update(task, completed=written)
    return written


@cli.command(short_help="Copy collections between stores, pks kept.")
@click.argument("src_url")
@click.argument("dst_url")
@click.argument("collections", nargs=-1)
@click.option(
    "--batch", type=click.IntRange(min=1), default=BATCH, show_default=True, help="Docs per write."
)
def copy(src_url: str, dst_url: str, collections: tuple[str, ...], batch: int) -> None:
    """Copy every collection (or those named) from SRC_URL to DST_URL, pks kept.

    Documents stream from the source and are written in batches as upserts by
    pk: an interrupted copy can simply be run again, and nothing is copied twice.
    Prints, per collection, how many documents were copied and what each side holds.
    """
    if src_url == dst_url:
        raise click.UsageError("SRC_URL and DST_URL are the same store")
    with open_storage(src_url) as src, open_storage(dst_url) as dst:
        names = list(collections) or src.collections()
        for name in names:
            copied = copy_collection(src, dst, name, batch)
            click.echo(
                f"{name}: {copied} copied (source holds {src.query(name).count()},"
                f" destination {dst.query(name).count()})"
            )
