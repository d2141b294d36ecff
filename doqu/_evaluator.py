"""The reference evaluator: the semantics of every lookup, sort, distinct and update.

The memory backend runs queries through these functions; every other backend
translates the tree instead and is tested against what these functions return.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from ._errors import InvalidDocument, QueryError
from ._json import INT_MAX, INT_MIN, MISSING, json_equal, sort_key
from ._tree import And, Cond, Node, Not, Or, Path, UpdateOp, regex_replace_end_anchor

__all__ = [
    "UpdateTypeError",
    "apply_update",
    "ascii_fold",
    "canonical",
    "compile_regex",
    "distinct",
    "matches",
    "resolve",
    "sort_rows",
    "unique_key",
]

Row = tuple[str, dict[str, Any]]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class UpdateTypeError(QueryError, TypeError):
    """An update operator met a stored value of the wrong kind (``inc`` on a string, …)."""


def ascii_fold(text: str) -> str:
    """Lower-case ASCII letters only: case-insensitive lookups fold A-Z and nothing else."""
    return text.translate(_ASCII_LOWER)


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a portable-subset pattern with doqu's meaning of ``.`` and ``$``."""
    return re.compile(regex_replace_end_anchor(pattern, r"\Z"), re.DOTALL)


def resolve(pk: str, data: dict[str, Any], path: Path) -> Any:
    """The value at *path*, walking objects only; ``MISSING`` when any step is absent."""
    if path == ("pk",):
        return pk
    value: Any = data
    for seg in path:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(seg, MISSING)
        if value is MISSING:
            return MISSING
    return value


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same_orderable(v: Any, op: Any) -> bool:
    return (_num(v) and _num(op)) or (isinstance(v, str) and isinstance(op, str))


def _has(items: list[Any], op: Any) -> bool:
    return any(json_equal(e, op) for e in items)


def _member(v: Any) -> Any:
    """A hashable key, equal for JSON-equal values (``1`` and ``1.0``), kinds apart."""
    if isinstance(v, str) or v is None:
        return v
    if v is True or v is False:
        return ("bool", v)
    if isinstance(v, (int, float)):
        return v
    return ("json", canonical(v))


@lru_cache(maxsize=256)
def _members(c: Cond) -> frozenset[Any]:
    """The keys of a list operand (``in``, ``nin``, ``all``, ``any``): one set lookup each."""
    return frozenset(map(_member, c.operand))


def _cond(c: Cond, v: Any) -> bool:
    lk, op = c.lookup, c.operand
    if lk == "exact":
        return v is not MISSING and json_equal(v, op)
    if lk == "ne":
        return v is MISSING or not json_equal(v, op)
    if lk == "gt":
        return _same_orderable(v, op) and v > op
    if lk == "gte":
        return _same_orderable(v, op) and v >= op
    if lk == "lt":
        return _same_orderable(v, op) and v < op
    if lk == "lte":
        return _same_orderable(v, op) and v <= op
    if lk == "between":
        low, high = op
        return _same_orderable(v, low) and low <= v <= high
    if lk == "in":
        return v is not MISSING and _member(v) in _members(c)
    if lk == "nin":
        return v is MISSING or _member(v) not in _members(c)
    if lk == "exists":
        return (v is not MISSING) is op
    if lk == "isnull":
        return (v is MISSING or v is None) is op
    if lk == "contains":
        if isinstance(v, list):
            return _has(v, op)
        return isinstance(v, str) and isinstance(op, str) and op in v
    if lk == "icontains":
        if isinstance(v, list):
            folded = ascii_fold(op)
            return any(isinstance(e, str) and ascii_fold(e) == folded for e in v)
        return isinstance(v, str) and ascii_fold(op) in ascii_fold(v)
    if not isinstance(v, (str, list)):
        return False
    if lk == "size":
        return isinstance(v, list) and len(v) == op
    if lk == "all":
        return isinstance(v, list) and _members(c) <= set(map(_member, v))
    if lk == "any":
        return isinstance(v, list) and not _members(c).isdisjoint(map(_member, v))
    if not isinstance(v, str):
        return False
    if lk == "startswith":
        return v.startswith(op)
    if lk == "endswith":
        return v.endswith(op)
    if lk == "istartswith":
        return ascii_fold(v).startswith(ascii_fold(op))
    if lk == "iendswith":
        return ascii_fold(v).endswith(ascii_fold(op))
    if lk == "matches":
        return compile_regex(op).search(v) is not None
    raise QueryError(f"unknown lookup {lk!r}")


def matches(node: Node | None, pk: str, data: dict[str, Any]) -> bool:
    """Whether the document (*pk*, *data*) satisfies *node* (``None`` matches all)."""
    if node is None:
        return True
    if isinstance(node, Cond):
        return _cond(node, resolve(pk, data, node.path))
    if isinstance(node, And):
        return all(matches(child, pk, data) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, pk, data) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, pk, data)
    raise QueryError(f"not a query node: {node!r}")


def sort_rows(rows: Iterable[Row], order: Sequence[tuple[Path, bool]]) -> list[Row]:
    """Sort by each ``(path, descending)`` key in the API's mixed-kind order."""
    out = list(rows)
    for path, descending in reversed(order):
        out.sort(key=lambda row: sort_key(resolve(row[0], row[1], path)), reverse=descending)
    return out


def canonical(value: Any) -> str:
    """A text key equal for JSON-equal values (``1`` and ``1.0``; objects in any key order)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True, separators=(",", ":"))


def distinct(rows: Iterable[Row], path: Path) -> list[Any]:
    """Distinct values at *path*; list elements count one by one; missing and null left out."""
    seen: dict[str, Any] = {}
    for pk, data in rows:
        value = resolve(pk, data, path)
        for item in value if isinstance(value, list) else (value,):
            if item is MISSING or item is None:
                continue
            seen.setdefault(canonical(item), item)
    return list(seen.values())


def unique_key(pk: str, data: dict[str, Any], paths: Sequence[Path]) -> str | None:
    """The key a unique index holds for a document; ``None`` (exempt) if any part is null."""
    parts = []
    for path in paths:
        value = resolve(pk, data, path)
        if value is MISSING or value is None:
            return None
        parts.append(value)
    return canonical(parts)


def _parent(data: dict[str, Any], path: Path, create: bool) -> dict[str, Any] | None:
    node: Any = data
    for seg in path[:-1]:
        child = node.get(seg)
        if child is None:
            if not create:
                return None
            child = node[seg] = {}
        elif not isinstance(child, dict):
            raise UpdateTypeError(f"cannot update {'.'.join(path)}: {seg!r} is not an object")
        node = child
    return node  # type: ignore[no-any-return]


def _number_result(path: Path, value: Any) -> Any:
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise InvalidDocument(f"{'.'.join(path)}: integer {value} does not fit in 64 bits")
    return value


def apply_update(data: dict[str, Any], ops: Sequence[UpdateOp]) -> dict[str, Any]:
    """Return a new document with *ops* applied; *data* is left as it was."""
    out = copy.deepcopy(data)
    for u in ops:
        create = u.op not in ("unset", "pull")
        parent = _parent(out, u.path, create)
        if parent is None:
            continue
        key, shown = u.path[-1], ".".join(u.path)
        current = parent.get(key, MISSING)
        operand = copy.deepcopy(u.operand)
        if u.op == "set":
            parent[key] = operand
        elif u.op == "unset":
            parent.pop(key, None)
        elif u.op == "inc":
            if current is MISSING:
                parent[key] = _number_result(u.path, operand)
            elif _num(current):
                parent[key] = _number_result(u.path, current + operand)
            else:
                raise UpdateTypeError(f"cannot increment {shown}: it holds {current!r}")
        elif current is MISSING or current is None:
            if u.op in ("push", "add_to_set"):
                parent[key] = [operand]
        elif not isinstance(current, list):
            raise UpdateTypeError(f"cannot {u.op} on {shown}: it holds {current!r}, not a list")
        elif u.op == "push":
            current.append(operand)
        elif u.op == "add_to_set":
            if not _has(current, operand):
                current.append(operand)
        elif u.op == "pull":
            parent[key] = [e for e in current if not json_equal(e, operand)]
    return out


def filter_rows(rows: Iterable[Row], node: Node | None) -> Iterator[Row]:
    """The rows that match *node* (the memory backend's scan)."""
    return (row for row in rows if matches(node, row[0], row[1]))


Finalize = Callable[[dict[str, Any]], dict[str, Any]]
