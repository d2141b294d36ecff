"""Lifecycle hooks: ``before_save``, ``after_save``, ``before_delete``, ``after_delete``.

A model overrides the no-op methods of :class:`~doqu.Document`. They fire in
the core's write paths, never in a backend, so every backend and the async API
(which runs the same code) fire them alike, exactly once per document written
or deleted:

- ``save``, ``save_many``, ``get_or_create`` (when it creates), the mapping
  view's writes: ``before_save`` on each document before anything is written
  (one that raises: nothing of the call is written), ``after_save`` once the
  write is acknowledged;
- ``Query.update``: per document the update changes, after the result is
  computed and validated (the hook sees the new state and may still change it);
- ``delete``, ``Query.delete``, the mapping view's deletions: ``before_delete``
  on the stored document, ``after_delete`` once it is gone.

A model with hooks makes ``Query.update`` and ``Query.delete`` go document by
document (compare-and-swap), as the hooks need each document; a model without
keeps the backend's native statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._document import HOOKS, has_hooks
from ._evaluator import apply_update, matches
from ._json import json_equal
from ._tree import Cond, Node, QuerySpec, UpdateOp

if TYPE_CHECKING:
    from ._storage import Collection

__all__ = ["HOOKS", "delete_each", "has_hooks", "update_each"]


def _again(collection: Collection[Any], pk: str, node: Node | None) -> Any:
    """The document under *pk* as stored now, if it still matches *node*."""
    only = Cond(("pk",), "exact", pk)
    for row in collection.select(QuerySpec(only)):
        if matches(node, *row):
            return row[1]
    return None


def update_each(collection: Collection[Any], node: Node | None, ops: tuple[UpdateOp, ...]) -> int:
    """``Query.update`` of a model with save hooks: every match computed, validated
    and given to ``before_save`` before any is written, then each written by
    compare-and-swap (a document another writer changed meanwhile is computed
    again), then ``after_save`` on each written one."""
    from ._encoding import finalizer, stored_dump
    from ._versions import stamp

    load = collection.load
    model = collection.model
    finalize = finalizer(model)

    def plan(pk: str, old: Any) -> tuple[Any, Any] | None:
        new = apply_update(old, ops)
        if json_equal(old, new):
            return None  # nothing to write: no hook either
        doc = load(pk, new)
        doc.before_save()
        return doc, finalize(stamp(model, stored_dump(doc)))  # what the hook left, checked

    plans = []
    for pk, old in list(collection.select(QuerySpec(node))):
        planned = plan(pk, old)
        if planned is not None:
            plans.append((pk, old, *planned))
    written = []
    for pk, old, doc, new in plans:
        while True:
            if collection.swap(pk, old, new):
                written.append(doc)
                break
            old = _again(collection, pk, node)
            planned = None if old is None else plan(pk, old)
            if planned is None:
                break
            doc, new = planned
    for doc in written:
        doc.after_save()
    return len(written)


def delete_each(collection: Collection[Any], node: Node | None) -> int:
    """``Query.delete`` of a model with delete hooks: ``before_delete`` on every match
    before any is deleted, then each deleted by compare-and-swap (one changed
    meanwhile is looked at again), then ``after_delete`` on each deleted one."""
    load = collection.load
    plans = []
    for pk, old in list(collection.select(QuerySpec(node))):
        doc = load(pk, old)
        doc.before_delete()
        plans.append((pk, old, doc))
    deleted = []
    for pk, old, doc in plans:
        while True:
            if collection.swap(pk, old, None):
                deleted.append(doc)
                break
            old = _again(collection, pk, node)
            if old is None:
                break
            doc = load(pk, old)
            doc.before_delete()
    for doc in deleted:
        doc.after_delete()
    return len(deleted)
