"""Commands that move documents: import, export and copy, all streaming and batched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.progress import Progress

from doqu import DoquError, InvalidDocument, Storage
from doqu.backend import check_pk

from ._app import cli
from ._common import (
    BATCH,
    CLIError,
    apply_conditions,
    dump_json,
    error_line,
    open_storage,
    out_stream,
    progress,
    stderr_console,
)
from ._files import FORMATS, Cells, Source, Writer, guess_format, open_text, read_documents

__all__ = ["ON_DUPLICATE", "ImportCounts", "copy", "export", "import_", "iter_batches"]

T = TypeVar("T")
Doc = tuple[str, dict[str, Any]]  # (where, document), as read_documents yields them

#: What import does with a key it has already seen in the file or found in the collection.
ON_DUPLICATE = ("error", "replace", "skip")
#: Examples a duplicate-key error shows, of each kind.
_SHOWN = 3
#: Keys per lookup of stored keys. The SQL backend turns ``pk__in`` into one OR
#: term per key, and SQLite refuses an expression 1000 deep: stay well below.
_LOOKUP = 500


def _pk_of(value: Any, where: str, what: str) -> str:
    if isinstance(value, str):
        pk = value
    elif isinstance(value, int) and not isinstance(value, bool):
        pk = str(value)
    else:
        raise CLIError(
            f"{where}: {what} must be a string or a whole number, not {dump_json(value)}"
        )
    try:
        return check_pk(pk)
    except InvalidDocument as exc:
        raise CLIError(f"{where}: {exc}") from None


def _keyed(docs: Iterator[Doc], pk_field: str | None) -> Iterator[Doc]:
    for where, doc in docs:
        if pk_field is not None:
            if pk_field not in doc:
                raise CLIError(f"{where}: no {pk_field!r} field to take the pk from")
            doc = {**doc, "pk": _pk_of(doc[pk_field], where, f"--pk field {pk_field!r}")}
        elif doc.get("pk") is not None:  # a null pk asks for a new one, as in save()
            doc["pk"] = _pk_of(doc["pk"], where, '"pk"')
        yield where, doc


def iter_batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    """Group a stream of documents (or anything) into lists of at most *size*."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class ImportCounts:
    """What an import did with the documents it read (``read`` is the sum of the others)."""

    inserted: int = 0
    replaced: int = 0
    skipped: int = 0

    @property
    def read(self) -> int:
        return self.inserted + self.replaced + self.skipped

    def line(self, collection: str) -> str:
        """The closing line: ``406 read: 311 inserted, 95 replaced, 0 skipped into cars``."""
        return (
            f"{self.read} read: {self.inserted} inserted, {self.replaced} replaced,"
            f" {self.skipped} skipped into {collection}"
        )


class _Import:
    """One import: a check of the whole input, then the writes, in batches.

    Memory holds the keys seen (a set of strings) and one batch, never the
    whole input: the input is read twice, first to check it, then to write it.
    """

    def __init__(
        self,
        db: Storage,
        collection: str,
        source: Source,
        *,
        pk_field: str | None,
        cells: Cells,
        on_duplicate: str,
        batch: int,
        bar: Progress,
    ) -> None:
        self.db = db
        self.collection = collection
        self.source = source
        self.pk_field = pk_field
        self.cells = cells
        self.on_duplicate = on_duplicate
        self.batch = batch
        self.bar = bar

    @contextlib.contextmanager
    def _docs(self) -> Iterator[Iterator[Doc]]:
        with self.source.open() as stream:
            docs = read_documents(stream, self.source.fmt, self.source.name, self.cells)
            yield _keyed(docs, self.pk_field)

    def _stored(self, pks: list[str]) -> set[str]:
        """Which of *pks* the collection holds: one query per 500 keys, only the keys sent back."""
        found: set[str] = set()
        query = self.db.query(self.collection)
        for start in range(0, len(pks), _LOOKUP):
            found.update(query.where(pk__in=pks[start : start + _LOOKUP]).values("pk"))
        return found

    def _at(self, where: str) -> str:
        # "cars.json item 5" -> "item 5": the error line names the file once.
        return where.removeprefix(f"{self.source.name} ")

    def check(self) -> None:
        """Read the whole input once, before anything is written.

        A bad document raises ``CLIError`` naming its line; with ``--on-duplicate
        error``, so do keys repeated in the file or already in the collection,
        the first few listed with their lines. Only the keys are kept meanwhile.
        """
        task = self.bar.add_task(f"check {self.source.name}", total=self.source.size)
        refuse = self.on_duplicate == "error"
        # A collection with no documents holds no keys: no query needed.
        lookup = refuse and self.collection in self.db.collections()
        seen: set[str] = set()
        repeats: list[tuple[str, str]] = []  # (pk, where) of the first few
        stored: list[tuple[str, str]] = []
        n_repeats = n_stored = 0
        pending: list[tuple[str, str]] = []

        def look_up() -> None:
            nonlocal n_stored
            found = self._stored([pk for pk, _ in pending])
            for pk, where in pending:
                if pk in found:
                    n_stored += 1
                    if len(stored) < _SHOWN:
                        stored.append((pk, where))
            pending.clear()

        with self._docs() as docs:
            for count, (where, doc) in enumerate(docs, 1):
                pk = doc.get("pk")
                if refuse and pk is not None:
                    if pk in seen:
                        n_repeats += 1
                        if len(repeats) < _SHOWN:
                            repeats.append((pk, where))
                    else:
                        seen.add(pk)
                        if lookup:
                            pending.append((pk, where))
                            if len(pending) >= self.batch:
                                look_up()
                if count % self.batch == 0:
                    self.bar.update(task, completed=self.source.position())
        if pending:
            look_up()
        self.bar.update(task, completed=self.source.size)
        del seen
        if not n_repeats and not n_stored:
            return
        parts: list[str] = []
        if n_repeats:
            firsts = self._first_places({pk for pk, _ in repeats})
            shown = ", ".join(
                f"{pk!r} at {self._at(where)} (first at {self._at(firsts[pk])})"
                for pk, where in repeats
            )
            what = "document repeats a key" if n_repeats == 1 else "documents repeat a key"
            parts.append(f"{n_repeats} {what} of the file: {shown}{_more(n_repeats)}")
        if n_stored:
            shown = ", ".join(f"{pk!r} at {self._at(where)}" for pk, where in stored)
            what = "key is" if n_stored == 1 else "keys are"
            parts.append(
                f"{n_stored} {what} already in {self.collection}: {shown}{_more(n_stored)}"
            )
        raise CLIError(
            f"{self.source.name}: {'; '.join(parts)}; nothing was written"
            " (--on-duplicate replace or skip imports them)"
        )

    def _first_places(self, pks: set[str]) -> dict[str, str]:
        """Where each of a few repeated *pks* first occurs (read again up to the last one)."""
        firsts: dict[str, str] = {}
        with self._docs() as docs:
            for where, doc in docs:
                pk = doc.get("pk")
                if pk in pks and pk not in firsts:
                    firsts[pk] = where
                    if len(firsts) == len(pks):
                        break
        return firsts

    def write(self) -> ImportCounts:
        """Write the input in batches; each batch asks the collection which keys it holds."""
        task = self.bar.add_task(f"import {self.collection}", total=self.source.size)
        counts = ImportCounts()
        skip = self.on_duplicate == "skip"
        seen: set[str] = set()
        with self._docs() as docs:
            for chunk in iter_batches(docs, self.batch):
                written = counts.inserted + counts.replaced
                fresh = {pk for _, d in chunk if (pk := d.get("pk")) is not None} - seen
                stored = self._stored(sorted(fresh))
                keyed: dict[str, dict[str, Any]] = {}  # the last wins within a batch...
                new: list[dict[str, Any]] = []
                for _, doc in chunk:
                    pk = doc.get("pk")
                    if pk is None:
                        new.append(doc)
                        counts.inserted += 1
                    elif pk in seen or pk in stored:
                        seen.add(pk)
                        if skip:  # ... unless the first (or the stored one) is kept
                            counts.skipped += 1
                            continue
                        counts.replaced += 1
                        keyed[pk] = doc
                    else:
                        seen.add(pk)
                        counts.inserted += 1
                        keyed[pk] = doc
                try:
                    if new or keyed:
                        self.db.save_many([*new, *keyed.values()], collection=self.collection)
                except (DoquError, ValidationError) as exc:
                    raise CLIError(
                        f"{error_line(exc)} (in the batch from {chunk[0][0]};"
                        f" {written} documents were written before it)"
                    ) from exc
                self.bar.update(task, completed=self.source.position())
        self.bar.update(task, completed=self.source.size)
        return counts


def _more(n: int) -> str:
    return f" and {n - _SHOWN} more" if n > _SHOWN else ""


def _cells(fmt: str, infer: bool, json_cells: bool) -> Cells:
    if infer and json_cells:
        raise click.UsageError("--infer and --json-cells exclude each other")
    if (infer or json_cells) and fmt != "csv":
        option = "--infer" if infer else "--json-cells"
        raise click.UsageError(f"{option} applies to CSV only, not {fmt}")
    return "infer" if infer else "json" if json_cells else "text"


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
    "--on-duplicate",
    type=click.Choice(ON_DUPLICATE),
    default="error",
    show_default=True,
    help="A key repeated in FILE or already in COLLECTION: refuse the import, replace"
    " (the last one wins) or skip (the stored or first one stays).",
)
@click.option(
    "--infer",
    is_flag=True,
    help="CSV: a cell that is exactly a JSON number, true, false or null becomes that"
    " value (42, -1.5, true; not 007, 0E0, 1e3); other cells stay text.",
)
@click.option(
    "--json-cells",
    is_flag=True,
    help="CSV: read every cell that is valid JSON as JSON, as `doqu export` writes them.",
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=BATCH, show_default=True, help="Docs per write."
)
def import_(
    url: str,
    collection: str,
    file: str,
    fmt: str | None,
    pk_field: str | None,
    on_duplicate: str,
    infer: bool,
    json_cells: bool,
    batch: int,
) -> None:
    """Load documents from FILE (- for stdin) into COLLECTION.

    A document's own "pk" (or the --pk FIELD) is its key; documents without one
    get a new pk. FILE is checked whole before anything is written: a bad line,
    or a key that repeats or is already in COLLECTION (unless --on-duplicate
    says replace or skip), writes nothing. Standard input is first copied to a
    temporary file. CSV cells are text unless --infer or --json-cells. Files
    ending in .gz are decompressed. Prints "N read: I inserted, R replaced,
    S skipped into COLLECTION".
    """
    fmt = guess_format(file, fmt)
    cells = _cells(fmt, infer, json_cells)
    console = stderr_console()
    with (
        Source(file, fmt) as source,
        open_storage(url) as db,
        progress(console, unit="bytes") as bar,
    ):
        if source.size is None:  # stdin or a pipe: its size is known once it is read
            task = bar.add_task(f"read {source.name}", total=None)
            source.spool(lambda n: bar.update(task, completed=n))
        job = _Import(
            db,
            collection,
            source,
            pk_field=pk_field,
            cells=cells,
            on_duplicate=on_duplicate,
            batch=batch,
            bar=bar,
        )
        job.check()
        counts = job.write()
    click.echo(counts.line(collection), err=True)


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
    with open_storage(url, read_only=True) as db:
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
    with open_storage(src_url, read_only=True) as src, open_storage(dst_url) as dst:
        names = list(collections) or src.collections()
        for name in names:
            copied = copy_collection(src, dst, name, batch)
            click.echo(
                f"{name}: {copied} copied (source holds {src.query(name).count()},"
                f" destination {dst.query(name).count()})"
            )
