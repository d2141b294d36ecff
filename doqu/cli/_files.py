"""Streaming readers and writers for JSON lines, JSON arrays and CSV.

Nothing here holds more than one document (plus a read buffer) at a time, so
import and export keep memory flat however large the collection is.

CSV cells: a missing field is an empty cell; strings are written as they are
unless they would read back as something else (``30``, ``true``, ``""``, text
starting with ``"`` …), which are written JSON-quoted; every other value is
written as JSON. Reading takes each cell as text (``cells="text"``, the
default); ``cells="infer"`` turns a cell into a number, bool or null only when
that value's JSON is exactly the cell (:func:`infer_cell`); ``cells="json"``
parses a cell as JSON when it is valid JSON, else takes the text, so an
exported CSV imports back to the same documents.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import IO, Any, Literal, cast

from doqu.backend import INT_MAX, INT_MIN

from ._common import CLIError, dump_json, in_bytes, parse_value

__all__ = [
    "FORMATS",
    "Cells",
    "Source",
    "Writer",
    "csv_cell",
    "guess_format",
    "infer_cell",
    "open_text",
    "read_documents",
]

#: How CSV cells are read: as text, as losslessly inferred scalars, or as JSON.
Cells = Literal["text", "infer", "json"]

FORMATS = ("jsonl", "json", "csv")
_CHUNK = 1 << 16
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}


def guess_format(name: str, given: str | None, default: str = "jsonl") -> str:
    """The format named by ``--format``, else by the file's extension (``.gz`` ignored)."""
    if given:
        return given
    if name == "-":
        return default
    base = name[:-3] if name.endswith(".gz") else name
    for suffix, fmt in _SUFFIXES.items():
        if base.lower().endswith(suffix):
            return fmt
    raise CLIError(
        f"{name}: cannot tell the format from the extension; pass --format jsonl|json|csv"
    )


def open_text(path: str, mode: str, fmt: str) -> IO[str]:
    """Open *path* as UTF-8 text (gzip when it ends with ``.gz``); CSV without newline mapping."""
    newline = "" if fmt == "csv" else None
    if path.endswith(".gz"):
        return cast(IO[str], gzip.open(path, mode + "t", encoding="utf-8", newline=newline))
    return open(path, mode, encoding="utf-8", newline=newline)


# ------------------------------------------------------------------ reading
def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CLIError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def _jsonl(stream: IO[str], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            value = json.loads(line, parse_constant=_no_constant)
        except ValueError as exc:
            raise CLIError(f"{where}: not valid JSON ({exc})") from None
        yield where, _object(value, where)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_array(stream: IO[str], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream the objects of a top-level JSON array without reading the whole file."""
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    buf, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = stream.read(_CHUNK)
        if not chunk:
            eof = True
            return False
        buf, pos = buf[pos:] + chunk, 0
        return True

    def next_char() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    if next_char() != "[":
        raise CLIError(f"{name}: a .json file must hold one JSON array of objects")
    pos += 1
    index = 0
    if next_char() == "]":
        pos += 1
    else:
        while True:
            where = f"{name} item {index + 1}"
            next_char()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    break
                except ValueError as exc:
                    if not more():
                        raise CLIError(f"{where}: not valid JSON ({exc})") from None
            pos = end
            yield where, _object(value, where)
            index += 1
            sep = next_char()
            pos += 1
            if sep == "]":
                break
            if sep != ",":
                raise CLIError(f"{where}: expected ',' or ']' after the item, found {sep!r}")
    if next_char():
        raise CLIError(f"{name}: unexpected data after the JSON array")


_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def infer_cell(cell: str) -> Any:
    """The number, bool or null *cell* spells exactly, else *cell* itself.

    Lossless: a cell becomes a value only when that value's canonical JSON text
    (``json.dumps``) is exactly the cell, and the value is stored as it is. So
    ``42``, ``-1.5``, ``1.0``, ``true``, ``false`` and ``null`` become values,
    while ``0E0``, ``007``, ``1e3``, ``+1``, ``1.50``, ``" 42"``, ``NaN``, ``True``,
    integers beyond 64 bits, ``-0`` (JSON writes 0) and ``-0.0`` (stored as 0.0)
    stay text.
    """
    if cell in _LITERALS:
        return _LITERALS[cell]
    if not cell or cell[0] not in "-0123456789":
        return cell  # the common case: not a number at all
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    if isinstance(value, int):
        exact = INT_MIN <= value <= INT_MAX
    else:
        exact = isinstance(value, float) and math.isfinite(value)
    if not exact or (value == 0 and cell.startswith("-")) or json.dumps(value) != cell:
        return cell
    return value


def _csv(stream: IO[str], name: str, cells: Cells) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(stream)
    readers: dict[str, Callable[[str], Any]] = {
        "text": str,
        "infer": infer_cell,
        "json": parse_value,
    }
    read = readers[cells]
    for row in reader:
        where = f"{name} line {reader.line_num}"
        if None in row:
            raise CLIError(f"{where}: more cells than the header has columns")
        yield where, {k: read(v) for k, v in row.items() if v not in (None, "")}


def read_documents(
    stream: IO[str], fmt: str, name: str, cells: Cells = "text"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, document)`` from *stream*; *where* names the line or item for errors.

    *cells* says how CSV cells are read (see the module's docstring).
    """
    try:
        if fmt == "jsonl":
            yield from _jsonl(stream, name)
        elif fmt == "json":
            yield from _json_array(stream, name)
        elif fmt == "csv":
            yield from _csv(stream, name, cells)
        else:  # pragma: no cover - click checks the choice
            raise CLIError(f"unknown format {fmt!r}")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise CLIError(f"{name}: not valid CSV ({exc})") from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise CLIError(f"{name}: not a valid gzip file ({exc})") from None


class Source:
    """An input file that can be read from the start more than once, and says how far it got.

    A regular file is read where it is. Standard input (``-``) and other
    streams (a pipe, ``<(…)``) cannot be read twice, so :meth:`spool` first
    copies them to a temporary file, removed by :meth:`close`. :attr:`size` is
    the file's size in bytes (``None`` until a stream is spooled) and
    :meth:`position` the bytes read so far, both of the compressed file for
    ``.gz``, so progress is measured against what is on disk.
    """

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.name = "stdin" if path == "-" else path
        self.fmt = fmt
        self.size: int | None = None
        self._compressed = path != "-" and path.endswith(".gz")
        self._temp: str | None = None
        self._raw: IO[bytes] | None = None
        if path != "-":
            info = os.stat(path)  # a missing file fails here, before anything else
            if stat.S_ISREG(info.st_mode):
                self.size = info.st_size

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def spool(self, report: Callable[[int], object] = lambda n: None) -> None:
        """Copy a stream input to a temporary file, calling *report* with the bytes copied."""
        if self.size is not None:
            return
        fd, self._temp = tempfile.mkstemp(prefix="doqu-import-")
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(os.fdopen(fd, "wb"))
            src = in_bytes() if self.path == "-" else stack.enter_context(open(self.path, "rb"))
            copied = 0
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                copied += len(chunk)
                report(copied)
        self.size = copied

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[str]]:
        """The input as UTF-8 text from its start, decompressed when its name ends in ``.gz``."""
        if self.size is None:  # pragma: no cover - callers spool first
            raise RuntimeError("spool() a stream input before reading it")
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(open(self._temp or self.path, "rb"))
            binary: Any = raw
            if self._compressed:
                binary = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            newline = "" if self.fmt == "csv" else None
            text = io.TextIOWrapper(binary, encoding="utf-8", newline=newline)
            self._raw = raw
            try:
                yield text
            finally:
                self._raw = None
                text.close()

    def position(self) -> int:
        """Bytes of the file read so far by the open reader (its size once it is done)."""
        if self._raw is None or self._raw.closed:
            return self.size or 0
        return self._raw.tell()

    def close(self) -> None:
        """Remove the temporary copy of a stream input, if any."""
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.remove(self._temp)
            self._temp = None


# ------------------------------------------------------------------ writing
def csv_cell(value: Any) -> str:
    """Render one CSV cell so that reading it back gives *value* again."""
    if isinstance(value, str):
        if value and parse_value(value) == value and isinstance(parse_value(value), str):
            return value
        return dump_json(value)
    return dump_json(value)


class Writer:
    """Write documents one at a time as JSON lines, a JSON array or CSV rows.

    CSV needs its columns up front (*columns*); the other formats take them
    from each document.
    """

    def __init__(self, stream: IO[str], fmt: str, columns: Sequence[str] = ()) -> None:
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        self._csv: Any = None
        if fmt == "json":
            stream.write("[")
        elif fmt == "csv":
            self._columns = list(columns)
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(self._columns)

    def write(self, doc: dict[str, Any]) -> None:
        """Append one document."""
        if self.fmt == "jsonl":
            self.stream.write(dump_json(doc) + "\n")
        elif self.fmt == "json":
            self.stream.write(("\n" if self.count == 0 else ",\n") + dump_json(doc))
        else:
            extra = set(doc) - set(self._columns)
            if extra:
                raise CLIError(f"document {doc.get('pk')!r} has fields not in the CSV header")
            self._csv.writerow(["" if c not in doc else csv_cell(doc[c]) for c in self._columns])
        self.count += 1

    def finish(self) -> None:
        """Close the JSON array (the stream itself stays open)."""
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.flush()
