"""``tinydb:///path.json`` (alias ``file:///path.json``): one TinyDB JSON file, no server.

The file keeps TinyDB's layout, so ``tinydb.TinyDB(path)`` opens it: one table
per collection, ``{"table": {"<doc_id>": {"_id": "<pk>", ...fields}}}``. The doqu
pk lives under ``"_id"`` (a field name doqu reserves on every backend); a
document written by TinyDB itself, without ``"_id"``, reads as pk ``"<doc_id>"``.
Per-collection version counters live in the table ``"$doqu"``, a name no doqu
collection can have.

Unlike plain TinyDB, this backend

- keeps the whole file in memory, with a pk index, and re-reads it only when
  another writer replaced it (file identity, size and mtime are checked on each
  call; the inode of the loaded file is held open, so it cannot be reused);
- writes through a temporary file, ``fsync`` and an atomic ``os.replace`` (then
  ``fsync`` of the directory), so a crash leaves the old file or the new one;
- takes an exclusive ``fcntl.flock`` on ``path + ".lock"`` around each
  read-modify-write, so processes sharing the file never lose a write.

Queries run through the reference evaluator over the in-memory documents: for a
file store that *is* the native query engine (like TinyDB's ``Query`` predicates).
``?autoflush=false`` keeps writes in memory until ``flush()``/``close()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic_core import to_json as _to_json

from ..backend import (
    READ_ONLY,
    CollectionInfo,
    ConfigError,
    Finalize,
    Node,
    Path,
    QueryError,
    QuerySpec,
    Row,
    Storage,
    StorageError,
    UpdateOp,
    apply_update,
    check_json,
    distinct,
    duplicate_key,
    filter_rows,
    flag,
    json_equal,
    parse_collection_name,
    resolve,
    rlock,
    sleep,
    sort_rows,
    unique_key,
)

__all__ = ["META_TABLE", "PK_FIELD", "TinyDBStorage"]

Data = dict[str, Any]
R = TypeVar("R")

#: The key of each TinyDB document that holds the doqu pk.
PK_FIELD: Final = "_id"
#: The table that holds doqu's bookkeeping (never a valid collection name).
META_TABLE: Final = "$doqu"
FORMAT: Final = "doqu-tinydb-1"

_DECODER = json.JSONDecoder()


def _encode(value: Any) -> str:
    """Compact JSON, non-ASCII kept (pydantic-core's encoder: one call, no Python per value)."""
    return _to_json(value).decode()


# (st_dev, st_ino, st_size, st_mtime_ns) of the file the in-memory view was read from.
Signature = tuple[int, int, int, int]
_STALE: Final = (-1, -1, -1, -1)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Entry:
    """One stored document: its TinyDB doc_id, parsed data, and its serialized form."""

    __slots__ = ("data", "doc_id", "frag")

    def __init__(self, doc_id: int, data: Data, frag: str | None) -> None:
        self.doc_id = doc_id
        self.data = data  # never mutated and never handed out: callers get copies
        self.frag = frag  # '"<doc_id>":{"_id":"<pk>",...}', built on demand

    def fragment(self, pk: str) -> str:
        if self.frag is None:
            self.frag = f'"{self.doc_id}":{_encode({PK_FIELD: pk, **self.data})}'
        return self.frag

    def copy(self, pk: str) -> Data:
        """A fresh copy of the data (decoded from the serialized form: fast, never aliased)."""
        frag = self.fragment(pk)
        data: Data = _DECODER.raw_decode(frag, frag.index(":") + 1)[0]
        del data[PK_FIELD]
        return data


class _Table:
    """The documents of one collection, by pk, with lazily built unique indexes."""

    __slots__ = ("docs", "next_id", "uniques")

    def __init__(self) -> None:
        self.docs: dict[str, _Entry] = {}
        self.next_id = 1
        self.uniques: dict[tuple[Path, ...], dict[str, str]] = {}

    def unique_index(self, paths: tuple[Path, ...]) -> dict[str, str]:
        index = self.uniques.get(paths)
        if index is None:
            index = {}
            for pk, entry in self.docs.items():
                key = unique_key(pk, entry.data, paths)
                if key is not None:
                    index[key] = pk
            self.uniques[paths] = index
        return index

    def check_unique(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        """Raise ``DuplicateKey`` if writing *rows* would break one of the unique indexes."""
        if not coll.unique:
            return
        incoming = {pk for pk, _ in rows}
        for paths in coll.unique:
            index = self.unique_index(paths)
            seen: dict[str, str] = {}
            for pk, data in rows:
                key = unique_key(pk, data, paths)
                if key is None:
                    continue
                owner = index.get(key)
                if owner is not None and owner != pk and owner not in incoming:
                    raise duplicate_key(coll, paths, pk, data, owner)
                if seen.setdefault(key, pk) != pk:
                    raise duplicate_key(coll, paths, pk, data, seen[key])

    def set(self, pk: str, data: Data, *, private: bool = False) -> None:
        """Insert or replace *pk*; *data* is copied unless *private* (then it must not alias)."""
        old = self.docs.get(pk)
        doc_id = old.doc_id if old else self.next_id
        if private:
            entry = _Entry(doc_id, data, None)
        else:
            # The core checked the data (check_json); the round trip makes a private copy.
            text = _encode({PK_FIELD: pk, **data})
            copied = json.loads(text)
            del copied[PK_FIELD]
            entry = _Entry(doc_id, copied, f'"{doc_id}":{text}')
        if old is None:
            self.next_id += 1
        for paths, index in self.uniques.items():
            if old is not None:
                before = unique_key(pk, old.data, paths)
                if before is not None and index.get(before) == pk:
                    del index[before]
            after = unique_key(pk, entry.data, paths)
            if after is not None:
                index[after] = pk
        self.docs[pk] = entry

    def remove(self, pk: str) -> bool:
        old = self.docs.pop(pk, None)
        if old is None:
            return False
        for paths, index in self.uniques.items():
            key = unique_key(pk, old.data, paths)
            if key is not None and index.get(key) == pk:
                del index[key]
        return True

    def rows(self) -> Iterator[Row]:
        for pk, entry in self.docs.items():
            yield pk, entry.data


class _State:
    """The whole file in memory: tables by name, version counters, and foreign tables."""

    __slots__ = ("tables", "versions")

    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}
        self.versions: dict[str, int] = {}

    def table(self, name: str) -> _Table:
        found = self.tables.get(name)
        if found is None:
            found = self.tables[name] = _Table()
        return found

    def render(self) -> str:
        """The file's text: TinyDB's layout, compact, non-ASCII kept as is."""
        parts = []
        for name, table in self.tables.items():
            if table.docs:
                body = ",".join(entry.fragment(pk) for pk, entry in table.docs.items())
                parts.append(f"{json.dumps(name, ensure_ascii=False)}:{{{body}}}")
        meta = {"1": {"format": FORMAT, "versions": self.versions}}
        meta_json = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
        parts.append(f"{json.dumps(META_TABLE)}:{meta_json}")
        return "{" + ",".join(parts) + "}"


def _parse(path: str, raw: bytes) -> _State:
    """Build the in-memory view of a file's bytes; ``StorageError`` naming *path* if unfit."""
    state = _State()
    if not raw.strip():
        return state  # TinyDB treats an empty file as an empty database
    try:
        top = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise StorageError(f"{path!r} is not a valid JSON file: {exc}") from exc

    def unfit(why: str) -> StorageError:
        return StorageError(f"{path!r} is not a TinyDB file: {why}")

    if not isinstance(top, dict):
        raise unfit(f"the top level is a JSON {type(top).__name__}, not an object of tables")
    for name, docs in top.items():
        if not isinstance(docs, dict):
            raise unfit(f"table {name!r} is not an object of documents")
        if name == META_TABLE:
            meta = docs.get("1")
            versions = meta.get("versions") if isinstance(meta, dict) else None
            if not isinstance(versions, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in versions.values()
            ):
                raise unfit(f"the bookkeeping table {META_TABLE!r} is damaged")
            state.versions = versions
            continue
        table = state.table(name)
        for key, doc in docs.items():
            try:
                doc_id = int(key)
            except ValueError:
                raise unfit(
                    f"table {name!r} has a document id {key!r} that is not an integer"
                ) from None
            if not isinstance(doc, dict):
                raise unfit(f"document {key} of table {name!r} is not an object")
            pk = doc.pop(PK_FIELD, None)
            if pk is None:
                pk = key  # written by TinyDB itself: the doc_id is the pk
            elif not isinstance(pk, str):
                raise unfit(f"document {key} of table {name!r} has a non-string {PK_FIELD!r}")
            if pk in table.docs:
                raise unfit(f"table {name!r} holds pk {pk!r} twice")
            table.docs[pk] = _Entry(doc_id, doc, None)
            table.next_id = max(table.next_id, doc_id + 1)
    return state


def _file_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("tinydb", "file"):
        raise ConfigError(f"not a tinydb:// or file:// URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{url!r}: a file URL names no host (use tinydb:///path.json)")
    if parts.scheme == "file":
        path = unquote(parts.path)  # RFC 8089: file:///tmp/x.json is /tmp/x.json
    else:
        path = parts.path[1:]  # like sqlite:///rel.db and sqlite:////abs.db
    if not path or path.endswith("/"):
        raise ConfigError(f"{url!r} names no file (e.g. tinydb:///data.json)")
    return path


class TinyDBStorage(Storage):
    """A TinyDB JSON file: crash-safe, multi-process safe, read from memory.

    Options (URL query or keyword): ``autoflush`` (default true). With
    ``autoflush=false`` writes stay in memory until ``flush()`` or ``close()``: a
    crash loses them, and another process's writes are merged in at flush time
    document by document (last writer wins), so counters are only safe across
    processes with autoflush on.
    """

    scheme = "tinydb"
    accepted_options: ClassVar[Mapping[str, str]] = {
        "autoflush": "write each change to the file at once (default true); false: on flush()",
        **READ_ONLY,
    }

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.path = _file_path(url)
        query = parse_qs(urlsplit(url).query)
        raw_flag = options.get("autoflush", (query.get("autoflush") or ["true"])[-1])
        self.autoflush = flag("autoflush", raw_flag)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise ConfigError(f"{url!r}: the directory {directory!r} does not exist")
        if self.read_only and not os.path.exists(self.path):
            raise ConfigError(f"{url}: no such TinyDB file (read_only)")
        self._directory = directory
        self._lock = rlock(self.asynchronous)
        self._state = _State()
        self._sig: Signature | None = _STALE
        self._pin: int | None = None  # fd of the file the view was read from (pins its inode)
        self._lock_fd: int | None = None
        # Write-behind: pks written since the last flush, per collection.
        self._journal: dict[str, set[str]] = {}
        with self._lock:
            self._refresh()  # a damaged file fails at connect, not at first use

    # ------------------------------------------------------------------ file I/O
    def _stat(self) -> Signature | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {self.path!r}: {exc}") from exc
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _set_pin(self, fd: int | None) -> None:
        if self._pin is not None:
            os.close(self._pin)
        self._pin = fd

    def _refresh(self) -> _State:
        """The current view, re-read first if another writer changed the file."""
        if self._journal:
            return self._state  # unflushed writes: our view is the authority until flush
        if self._stat() != self._sig:
            self._reload()
        return self._state

    def _reload(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._state, self._sig = _State(), None
            self._set_pin(None)
            return
        except OSError as exc:
            raise StorageError(f"cannot open {self.path!r}: {exc}") from exc
        try:
            st = os.fstat(fd)
            with os.fdopen(os.dup(fd), "rb") as fh:
                raw = fh.read()
            state = _parse(self.path, raw)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot read {self.path!r}: {exc}") from exc
            raise
        self._state = state
        self._sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._set_pin(fd)

    def _write(self, state: _State) -> None:
        """Replace the file atomically with *state*: temp file, fsync, rename, fsync dir."""
        data = state.render().encode("utf-8")
        base = os.path.basename(self.path)
        tmp = os.path.join(self._directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise StorageError(f"cannot write next to {self.path!r}: {exc}") from exc
        try:
            if self._pin is not None:  # keep the mode a user may have set on the file
                os.fchmod(fd, os.fstat(self._pin).st_mode & 0o7777)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.replace(tmp, self.path)
            st = os.fstat(fd)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            self._sig = _STALE  # the view may hold what never landed: re-read next time
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write {self.path!r}: {exc}") from exc
            raise
        self._sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._set_pin(fd)
        try:
            dir_fd = os.open(self._directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a power cut
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageError(f"cannot sync the directory of {self.path!r}: {exc}") from exc

    def _file_lock(self) -> int:
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise StorageError(f"cannot open the lock file of {self.path!r}: {exc}") from exc
        return self._lock_fd

    def _mutate(self, change: Callable[[_State], tuple[R, Iterable[tuple[str, str]]]]) -> R:
        """Run *change* on a fresh view under the file lock and write the file once.

        *change* returns its result and the ``(collection, pk)`` pairs it wrote; it
        must raise before touching the view when it refuses (nothing is written).
        """
        with self._lock:
            self._check_open()
            if not self.autoflush:
                state = self._refresh()
                result, touched = change(state)
                for name, pk in touched:
                    self._journal.setdefault(name, set()).add(pk)
                for name in {name for name, _ in touched}:
                    state.versions[name] = state.versions.get(name, 0) + 1
                return result
            lock_fd = self._file_lock()
            self._lock_file(lock_fd)
            try:
                state = self._refresh()
                result, touched = change(state)
                names = {name for name, _ in touched}
                for name in names:
                    state.versions[name] = state.versions.get(name, 0) + 1
                if names:
                    self._write(state)
                return result
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _lock_file(self, fd: int) -> None:
        """Take the exclusive lock on the lock file. For the async API, without blocking
        the event loop: tried without waiting, then again after a sleep (1 ms doubling
        to 50 ms) that lets the loop run, for as long as another process holds it."""
        if not self.asynchronous:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                sleep(delay)
                delay = min(delay * 2, 0.05)

    def _read(self) -> _State:
        self._check_open()
        return self._refresh()

    # -------------------------------------------------------------- primitives
    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        def change(state: _State) -> tuple[None, list[tuple[str, str]]]:
            table = state.table(coll.name)
            table.check_unique(coll, rows)
            for pk, data in rows:
                table.set(pk, data)
            return None, [(coll.name, pk) for pk, _ in rows]

        if rows:
            self._mutate(change)

    def _fetch(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Data]:
        with self._lock:
            table = self._read().tables.get(coll.name)
            if table is None:
                return {}
            docs = table.docs
            return {pk: docs[pk].copy(pk) for pk in pks if pk in docs}

    def _remove(self, coll: CollectionInfo, pks: Sequence[str]) -> int:
        def change(state: _State) -> tuple[int, list[tuple[str, str]]]:
            table = state.tables.get(coll.name)
            gone = [pk for pk in dict.fromkeys(pks) if table is not None and table.remove(pk)]
            return len(gone), [(coll.name, pk) for pk in gone]

        return self._mutate(change)

    def _matching(self, coll: CollectionInfo, node: Node | None) -> list[tuple[str, _Entry]]:
        table = self._read().tables.get(coll.name)
        if table is None:
            return []
        docs = table.docs
        if node is None:
            return list(docs.items())
        return [(pk, docs[pk]) for pk, _ in filter_rows(table.rows(), node)]

    def _select(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        with self._lock:
            found = self._matching(coll, spec.node)
            if spec.order:
                by_pk = dict(found)
                rows = sort_rows(((pk, e.data) for pk, e in found), spec.order)
                found = [(pk, by_pk[pk]) for pk, _ in rows]
        stop = None if spec.limit is None else spec.offset + spec.limit
        # Entries are never changed in place, so decoding them after the lock is safe.
        return ((pk, entry.copy(pk)) for pk, entry in islice(found, spec.offset, stop))

    def _count(self, coll: CollectionInfo, node: Node | None) -> int:
        with self._lock:
            if node is None:
                table = self._read().tables.get(coll.name)
                return 0 if table is None else len(table.docs)
            return len(self._matching(coll, node))

    def _distinct(self, coll: CollectionInfo, node: Node | None, path: Path) -> list[Any]:
        with self._lock:
            found = self._matching(coll, node)
            values = distinct(((pk, e.data) for pk, e in found), path)
            # Values may be parts of stored documents: hand out copies.
            copied: list[Any] = json.loads(json.dumps(values, ensure_ascii=False))
            return copied

    def _delete_where(self, coll: CollectionInfo, node: Node | None) -> int:
        def change(state: _State) -> tuple[int, list[tuple[str, str]]]:
            table = state.tables.get(coll.name)
            if table is None:
                return 0, []
            doomed = [pk for pk, _ in filter_rows(table.rows(), node)]
            for pk in doomed:
                table.remove(pk)
            return len(doomed), [(coll.name, pk) for pk in doomed]

        return self._mutate(change)

    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        def change(state: _State) -> tuple[bool, list[tuple[str, str]]]:
            table = state.table(coll.name)
            current = table.docs.get(pk)
            if expected is None:
                if current is not None:
                    return False, []
            elif current is None or not json_equal(current.data, expected):
                return False, []
            if new is None:
                if current is None:
                    return False, []
                table.remove(pk)
            else:
                table.check_unique(coll, [(pk, new)])
                table.set(pk, new)
            return True, [(coll.name, pk)]

        return self._mutate(change)

    def _update_where(
        self, coll: CollectionInfo, node: Node | None, ops: Sequence[UpdateOp], finalize: Finalize
    ) -> int:
        """Update every match under one file lock and write the file once."""

        def change(state: _State) -> tuple[int, list[tuple[str, str]]]:
            table = state.tables.get(coll.name)
            if table is None:
                return 0, []
            plans = [
                (pk, old, finalize(apply_update(old, ops)))
                for pk, old in filter_rows(table.rows(), node)
            ]
            rows = [(pk, new) for pk, old, new in plans if not json_equal(old, new)]
            table.check_unique(coll, rows)
            for pk, new in rows:
                table.set(pk, new)
            return len(rows), [(coll.name, pk) for pk, _ in rows]

        return self._mutate(change)

    def _increment(self, coll: CollectionInfo, pk: str, path: Path, by: int | float) -> Any:
        """Add *by* under one file lock: read, add and write once, whatever other processes do."""
        ops = (UpdateOp("inc", path, by),)

        def change(state: _State) -> tuple[Any, list[tuple[str, str]]]:
            table = state.table(coll.name)
            current = table.docs.get(pk)
            new = apply_update(current.data if current else {}, ops)
            new = check_json(new)
            table.check_unique(coll, [(pk, new)])
            table.set(pk, new, private=True)  # apply_update returned a fresh copy
            return resolve(pk, new, path), [(coll.name, pk)]

        return self._mutate(change)

    def _version(self, coll: CollectionInfo) -> int:
        with self._lock:
            return self._read().versions.get(coll.name, 0)

    def _names(self) -> list[str]:
        with self._lock:
            names = []
            for name, table in self._read().tables.items():
                if not table.docs:
                    continue
                try:
                    names.append(parse_collection_name(name))
                except QueryError:
                    continue  # a TinyDB table no doqu collection can be named after
            return names

    def _drop(self, coll: CollectionInfo) -> None:
        def change(state: _State) -> tuple[None, list[tuple[str, str]]]:
            table = state.tables.pop(coll.name, None)
            return None, [(coll.name, pk) for pk in (table.docs if table else ())]

        self._mutate(change)

    # --------------------------------------------------------------- lifecycle
    def _flush(self) -> None:
        with self._lock:
            if not self._journal:
                return
            lock_fd = self._file_lock()
            self._lock_file(lock_fd)
            try:
                state = self._state
                if self._stat() != self._sig:
                    state = self._merged()
                self._write(state)
                self._state = state
                self._journal.clear()
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _merged(self) -> _State:
        """The file as another process left it, with our unflushed documents laid over it."""
        mine, journal = self._state, self._journal
        self._journal = {}  # let _reload read the file
        try:
            self._reload()
        finally:
            self._journal = journal
        fresh, self._state = self._state, mine
        for name, pks in journal.items():
            ours = mine.tables.get(name)
            table = fresh.table(name)
            for pk in pks:
                entry = ours.docs.get(pk) if ours else None
                if entry is None:
                    table.remove(pk)
                else:
                    table.set(pk, entry.data, private=True)  # entries are never mutated
            fresh.versions[name] = max(fresh.versions.get(name, 0), mine.versions.get(name, 0)) + 1
        return fresh

    def _reconnect(self) -> None:
        with self._lock:
            self._flush()
            self._set_pin(None)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._sig = _STALE
            self._refresh()

    def _close(self) -> None:
        with self._lock:
            try:
                self._flush()
            finally:
                self._set_pin(None)
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
                self._state = _State()
                self._journal.clear()
