"""``memory://``: in-process dicts, evaluated by the reference evaluator.

``memory://?persist=/path/snap.json`` loads that JSON snapshot at connect and
writes it atomically (temp file, fsync, rename) on ``flush()`` and ``close()``.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from ..backend import (
    READ_ONLY,
    CollectionInfo,
    ConfigError,
    Node,
    Path,
    QuerySpec,
    Row,
    Storage,
    StorageError,
    decode_document,
    distinct,
    duplicate_key,
    encode_document,
    filter_rows,
    json_equal,
    sort_rows,
    unique_key,
)

__all__ = ["MemoryStorage"]

Data = dict[str, Any]


class MemoryStorage(Storage):
    """The reference backend: every query runs through the reference evaluator.

    Documents are kept as JSON text, so what a caller holds never aliases what
    is stored. One lock serializes every operation (thread-safe).
    """

    scheme = "memory"
    stores_text = True
    accepted_options: ClassVar[Mapping[str, str]] = {
        "persist": "a JSON snapshot file: loaded at connect, written on flush() and close()",
        **READ_ONLY,
    }

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise ConfigError(f"not a memory:// URL: {url!r}")
        query = parse_qs(parts.query)
        persist: str | None = options.pop("persist", None) or (query.get("persist") or [""])[0]
        self.persist_path = persist or None

        self._lock = threading.RLock()
        self._tables: dict[str, dict[str, str]] = {}
        self._versions: dict[str, int] = {}
        # Read-only, a missing snapshot is an empty store (as memory:// is), never created.
        if persist and os.path.exists(persist):
            self._load_snapshot(persist)

    # ---------------------------------------------------------------- snapshot
    def _load_snapshot(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as fh:
                snap = json.load(fh)
            tables = snap["collections"]
            self._versions = {k: int(v) for k, v in snap.get("versions", {}).items()}
            self._tables = {
                name: {pk: encode_document(data) for pk, data in docs.items()}
                for name, docs in tables.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(f"memory:// snapshot {path!r} cannot be read: {exc}") from exc

    def _write_snapshot(self, path: str) -> None:
        with self._lock:
            snap = {
                "format": "doqu-memory-1",
                "versions": self._versions,
                "collections": {
                    name: {pk: decode_document(text) for pk, text in docs.items()}
                    for name, docs in self._tables.items()
                },
            }
            directory = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(prefix=".doqu-", suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(snap, fh, ensure_ascii=False, separators=(",", ":"))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -------------------------------------------------------------- primitives
    def _table(self, coll: CollectionInfo) -> dict[str, str]:
        return self._tables.setdefault(coll.name, {})

    def _rows(self, coll: CollectionInfo) -> Iterator[Row]:
        for pk, text in self._tables.get(coll.name, {}).items():
            yield pk, decode_document(text)

    def _bump(self, coll: CollectionInfo) -> None:
        self._versions[coll.name] = self._versions.get(coll.name, 0) + 1

    def _check_unique(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        if not coll.unique:
            return
        incoming = {pk for pk, _ in rows}
        for paths in coll.unique:
            taken: dict[str, str] = {}
            for pk, data in self._rows(coll):
                if pk not in incoming:
                    key = unique_key(pk, data, paths)
                    if key is not None:
                        taken[key] = pk
            for pk, data in rows:
                key = unique_key(pk, data, paths)
                if key is None:
                    continue
                holder = taken.setdefault(key, pk)  # a stored holder, or the batch's first
                if holder != pk:
                    raise duplicate_key(coll, paths, pk, data, holder)

    def _put(self, coll: CollectionInfo, rows: Sequence[Row]) -> None:
        self._put_text(coll, [(pk, encode_document(data)) for pk, data in rows])

    def _put_text(self, coll: CollectionInfo, rows: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            if coll.unique:
                self._check_unique(coll, [(pk, decode_document(text)) for pk, text in rows])
            self._table(coll).update(rows)
            self._bump(coll)

    def _fetch(self, coll: CollectionInfo, pks: Sequence[str]) -> dict[str, Data]:
        with self._lock:
            table = self._tables.get(coll.name, {})
            return {pk: decode_document(table[pk]) for pk in pks if pk in table}

    def _remove(self, coll: CollectionInfo, pks: Sequence[str]) -> int:
        with self._lock:
            table = self._table(coll)
            gone = sum(table.pop(pk, None) is not None for pk in pks)
            if gone:
                self._bump(coll)
            return gone

    def _select(self, coll: CollectionInfo, spec: QuerySpec) -> Iterator[Row]:
        with self._lock:
            rows = list(filter_rows(self._rows(coll), spec.node))
        if spec.order:
            rows = sort_rows(rows, spec.order)
        stop = None if spec.limit is None else spec.offset + spec.limit
        return islice(iter(rows), spec.offset, stop)

    def _count(self, coll: CollectionInfo, node: Node | None) -> int:
        with self._lock:
            return sum(1 for _ in filter_rows(self._rows(coll), node))

    def _distinct(self, coll: CollectionInfo, node: Node | None, path: Path) -> list[Any]:
        with self._lock:
            return distinct(filter_rows(self._rows(coll), node), path)

    def _delete_where(self, coll: CollectionInfo, node: Node | None) -> int:
        with self._lock:
            doomed = [pk for pk, _ in filter_rows(self._rows(coll), node)]
            return self._remove(coll, doomed)

    def _swap(self, coll: CollectionInfo, pk: str, expected: Data | None, new: Data | None) -> bool:
        text = None if new is None else encode_document(new)
        with self._lock:
            table = self._table(coll)
            current = table.get(pk)
            if expected is None:
                if current is not None:
                    return False
            elif current is None or not json_equal(decode_document(current), expected):
                return False
            if new is None:
                del table[pk]
            else:
                self._check_unique(coll, [(pk, new)])
                table[pk] = text  # type: ignore[assignment]
            self._bump(coll)
            return True

    def _version(self, coll: CollectionInfo) -> int:
        with self._lock:
            return self._versions.get(coll.name, 0)

    def _names(self) -> list[str]:
        with self._lock:
            return [name for name, docs in self._tables.items() if docs]

    def _drop(self, coll: CollectionInfo) -> None:
        with self._lock:
            if self._tables.pop(coll.name, None):
                self._bump(coll)

    def _flush(self) -> None:
        if self.persist_path and not self.read_only:
            self._write_snapshot(self.persist_path)

    def _close(self) -> None:
        self._flush()
        with self._lock:
            self._tables.clear()
