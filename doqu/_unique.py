"""Building :class:`DuplicateKey` the same way on every backend.

A backend that checks unique indexes itself (memory, TinyDB) knows the index,
the row and the holder: :func:`duplicate_key` makes the error. A database that
refused a write names the index at best: :func:`find_clash` finds the clashing
row of the write in Python and the holder with one query (the error path).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._document import CollectionInfo
from ._errors import DoquError, DuplicateKey
from ._evaluator import canonical, resolve, unique_key
from ._tree import Cond, Path

if TYPE_CHECKING:
    from ._storage import Storage

__all__ = ["PK_INDEX", "duplicate_key", "find_clash"]

Data = dict[str, Any]

#: The "index" of a primary key that is taken.
PK_INDEX: tuple[Path, ...] = (("pk",),)


def duplicate_key(
    coll: CollectionInfo, paths: Sequence[Path], pk: str, data: Data, holder: str | None
) -> DuplicateKey:
    """The error for the document *pk* (with *data*) clashing on the unique index *paths*."""
    fields = tuple(".".join(p) for p in paths)
    values = tuple(resolve(pk, data, p) for p in paths)
    return DuplicateKey(coll.name, fields, values[0] if len(values) == 1 else values, holder)


def _holders(
    storage: Storage, coll: CollectionInfo, paths: Sequence[Path], keyed: Sequence[Any]
) -> dict[str, list[str]]:
    """Stored pks by unique key, for the keys of the *keyed* rows (one query)."""
    from ._tree import QuerySpec

    firsts = {canonical(v): v for v in (resolve(pk, data, paths[0]) for pk, data, _ in keyed)}
    keys = {key for _, _, key in keyed}
    node = Cond(paths[0], "in", list(firsts.values()))
    found: dict[str, list[str]] = {}
    for pk, data in storage._select(coll, QuerySpec(node)):
        key = unique_key(pk, data, paths)
        if key is not None and key in keys:
            found.setdefault(key, []).append(pk)
    return found


def _stored_pair(
    storage: Storage, coll: CollectionInfo, paths: Sequence[Path]
) -> DuplicateKey | None:
    """Two stored documents sharing a key of *paths* (a unique index that cannot be built)."""
    from ._tree import QuerySpec

    seen: dict[str, str] = {}
    for pk, data in storage._select(coll, QuerySpec()):
        key = unique_key(pk, data, paths)
        if key is None:
            continue
        if key in seen:
            return duplicate_key(coll, paths, pk, data, seen[key])
        seen[key] = pk
    return None


def find_clash(
    storage: Storage,
    coll: CollectionInfo,
    rows: Sequence[tuple[str, Any]],
    index: tuple[Path, ...] | None = None,
) -> DuplicateKey:
    """The ``DuplicateKey`` for a write of *rows* that the database refused.

    *index* is the unique index the driver named (:data:`PK_INDEX` for a taken
    pk; ``None``: not known, each of the collection's is tried). Rows may hold
    their data as JSON text. The first row (in order) whose key is held by a
    stored document, or by an earlier row of the batch, is the clash; a holder
    that cannot be found (another writer moved it) is ``None``. With no rows
    (an index that cannot be built over the stored data), two stored documents
    that share a key are looked for.
    """
    if index == PK_INDEX:
        pks = list(dict.fromkeys(pk for pk, _ in rows))
        try:
            taken = [pk for pk in pks if pk in storage._fetch(coll, pks)]
        except DoquError:
            taken = []
        shown = taken[0] if taken else (pks[0] if pks else None)
        return DuplicateKey(coll.name, ("pk",), shown, shown)
    datas = [(pk, json.loads(d) if isinstance(d, (str, bytes)) else d) for pk, d in rows]
    specs = [index] if index is not None else list(coll.unique)
    incoming = {pk for pk, _ in datas}
    fallback: DuplicateKey | None = None
    for paths in specs:
        if not datas:
            try:
                pair = _stored_pair(storage, coll, paths)
            except DoquError:
                pair = None
            if pair is not None:
                return pair
            continue
        keyed = [(pk, data, key) for pk, data in datas if (key := unique_key(pk, data, paths))]
        if not keyed:
            continue
        try:
            stored = _holders(storage, coll, paths, keyed)
        except DoquError:
            stored = {}
        seen: dict[str, str] = {}
        for pk, data, key in keyed:
            # A stored holder that the batch itself rewrites comes last.
            held = sorted((p for p in stored.get(key, ()) if p != pk), key=lambda p: p in incoming)
            if held:
                return duplicate_key(coll, paths, pk, data, held[0])
            other = seen.setdefault(key, pk)
            if other != pk:
                return duplicate_key(coll, paths, pk, data, other)
        if fallback is None:
            pk, data, _ = keyed[0]
            fallback = duplicate_key(coll, paths, pk, data, None)
    if fallback is not None:
        return fallback
    if specs:
        return DuplicateKey(coll.name, tuple(".".join(p) for p in specs[0]), None)
    return DuplicateKey(coll.name, ("pk",), datas[0][0] if datas else None)
