"""``update()`` as native operators (``$set``, ``$inc``, ``$push``, …), guarded.

Each document's update is computed from the document as read and sent with a
guard (:func:`_guard`) that matches it only while it is still exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ...backend import MISSING, Finalize, InvalidDocument, UpdateOp, apply_update, json_equal
from ._filters import Filter
from ._stored import Data, _operand, _sorted

#: What a guarded update inserts when its guard misses: MongoDB refuses to
#: change the ``_id`` the filter names (error 66, ImmutableField), and the
#: error's index tells which document of a bulk was not written.
_MISSED: Final = {"$setOnInsert": {"_id": {"doqu": "guard missed"}}}
_IMMUTABLE_FIELD: Final = 66
Step = tuple[str, str, Any]


def _identical(a: Any, b: Any) -> bool:
    """Equal as stored: JSON equality, except that ``1`` and ``1.0`` (int, double) differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _keys_sorted(value: Any) -> bool:
    """Whether every object in *value* has its keys in the stored (sorted) order."""
    if isinstance(value, dict):
        keys = list(value)
        return keys == sorted(keys) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


def _written(operand: Any, field: str) -> Any:
    """The stored form of an operand written as it is (``$set``, ``$push``, ``$addToSet``).

    The core refused keys that cannot be stored in these operands already
    (``parse_update``); should one come anyway, it is refused here rather than
    reach the server, which would read ``{"$each": …}`` as a modifier.
    """
    ok, stored = _operand(operand)
    if not ok:
        raise InvalidDocument(
            f"update of {field}: the operand holds an object key that cannot be stored"
            " (no leading '$', no '.', no NUL)"
        )
    return stored


def _native_op(u: UpdateOp, old: Data) -> list[Step] | None:
    """MongoDB operators that do to *old* exactly what the evaluator's *u* does.

    ``[]`` when *u* leaves *old* as it is; ``None`` when no native operator
    gives the evaluator's result, and the field's computed value is written.
    """
    parent: Any = old
    for seg in u.path[:-1]:
        parent = parent.get(seg) if isinstance(parent, dict) else None
    field = ".".join(u.path)
    if not isinstance(parent, dict):
        # A missing or null object on the way: unset and pull change nothing; the
        # evaluator creates the objects for the others, where MongoDB's $set fails.
        return [] if u.op in ("unset", "pull") else None
    current = parent.get(u.path[-1], MISSING)
    if current is MISSING and len(u.path) > 1 and u.op not in ("unset", "pull"):
        return None  # MongoDB would append the new key after the sorted ones
    if u.op == "set":
        return [("$set", field, _written(u.operand, field))]
    if u.op == "unset":
        return [] if current is MISSING else [("$unset", field, "")]
    if u.op == "inc":
        return [("$inc", field, u.operand)]
    if u.op in ("push", "add_to_set"):
        value = _written(u.operand, field)
        if current is None:
            return [("$set", field, [value])]  # both fail on a null field
        if u.op == "push":
            return [("$push", field, value)]
        if isinstance(current, list) and any(json_equal(e, u.operand) for e in current):
            return []
        # Nothing in the list equals the operand, so $addToSet appends it.
        return [("$addToSet", field, value)]
    if u.op == "pull":
        if not isinstance(current, list) or not any(json_equal(e, u.operand) for e in current):
            return []
        if isinstance(u.operand, (dict, list)):
            return None  # $pull of an object or array matches it as a query
        # $pull of a scalar removes the elements equal to it: numbers by value,
        # bools apart from numbers, never inside nested arrays.
        return [("$pull", field, u.operand)]
    return None  # pragma: no cover - parse_update knows no other operator


def _native_update(old: Data, raw: Data, new: Data, ops: Sequence[UpdateOp]) -> Filter:
    """The update document that turns the stored *old* into *new* (see :func:`to_update`).

    *raw* is what the operators make of *old*, *new* the model's validation
    of it: a field the validation changed, one no native operator can
    produce exactly, or one holding objects with unsorted keys (written by
    another tool) is written whole (``$set`` of its computed value).
    """
    changed = {k for k in (*old, *new) if not _identical(old.get(k, MISSING), new.get(k, MISSING))}
    whole = {k for k in changed if not _identical(raw.get(k, MISSING), new.get(k, MISSING))}
    # Objects another tool wrote with unsorted keys are rewritten sorted, so that
    # equality lookups on them work from now on.
    whole.update(k for k in old if not _keys_sorted(old[k]))
    steps: list[Step] = []
    for u in ops:
        top = u.path[0]
        if top not in changed or top in whole:
            continue
        native = _native_op(u, old)
        if native is None:
            whole.add(top)
        else:
            steps.extend(native)
    out: dict[str, dict[str, Any]] = {}
    covered: set[str] = set()
    for op, field, value in steps:
        top = field.split(".", 1)[0]
        if top not in whole:
            out.setdefault(op, {})[field] = value
            covered.add(top)
    for top in sorted(whole | (changed - covered)):
        if top in new:
            # Checked data (the core's finalize), and $set takes its value literally.
            out.setdefault("$set", {})[top] = _sorted(new[top])
        else:
            out.setdefault("$unset", {})[top] = ""
    return out


def to_update(
    data: Mapping[str, Any], ops: Sequence[UpdateOp], finalize: Finalize | None = None
) -> Filter:
    """The native update document ``update()`` sends for a document holding *data*.

    ``$set``, ``$unset``, ``$inc``, ``$push``, ``$addToSet`` and ``$pull`` where
    they do exactly what doqu's operators do to this document; otherwise a
    ``$set`` of the field's computed value. Raises like ``update()`` when the
    result is invalid (:class:`doqu.QueryError`, :class:`doqu.InvalidDocument`).
    """
    old = dict(data)
    raw = apply_update(old, ops)
    new = finalize(raw) if finalize is not None else raw
    return _native_update(old, raw, new, ops)


def _guard(pk: str, old: Data) -> Filter:
    """A filter matching the document only while it is exactly *old*, key order included."""
    return {"_id": pk, "$expr": {"$eq": ["$$ROOT", {"$literal": {"_id": pk, **old}}]}}
