"""Query trees as native filters: literal operands, doqu's semantics, sort pipelines.

MongoDB's own matching differs from doqu's in places (it reaches into arrays,
lets ``null`` match missing fields, compares embedded documents by key order);
:func:`to_filter` adds the guards that make a filter answer exactly what the
reference evaluator answers. Orders other than by pk run as an aggregation
(:func:`_pipeline`) with computed sort keys for doqu's mixed-kind order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final

from ...backend import (
    And,
    Cond,
    Fixed,
    Node,
    Not,
    Or,
    Path,
    QuerySpec,
    canonical,
    gathered,
    matches,
    regex_replace_end_anchor,
)
from ._stored import _operand

Filter = dict[str, Any]

#: A filter that matches nothing (and uses the ``_id`` index to say so).
NEVER: Final[Filter] = {"_id": {"$in": []}}
_NOT_ARRAY: Final = {"$not": {"$type": "array"}}


# ------------------------------------------------------------------ regexes
#: The dotted paths whose kind the bound model fixes, while :func:`to_filter` runs.
_FIXED: ContextVar[frozenset[str]] = ContextVar("doqu_mongo_fixed", default=frozenset())


def _escape(text: str) -> str:
    """*text* as a regex matching itself, alike in PCRE (MongoDB) and Python's ``re``."""
    out = []
    for ch in text:
        if ch.isalnum() or ch == "_" or not ch.isascii():
            out.append(ch)
        elif ch.isprintable() and ch != " ":
            out.append("\\" + ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


def _ascii_insensitive(text: str) -> str:
    """Like :func:`_escape`, but ASCII letters match either case (and nothing else folds)."""
    return "".join(
        f"[{ch.lower()}{ch.upper()}]" if ch.isascii() and ch.isalpha() else _escape(ch)
        for ch in text
    )


# --------------------------------------------------------------- translation
def _field(path: Path) -> str:
    return "_id" if path == ("pk",) else ".".join(path)


def _reserved(path: Path) -> bool:
    # No stored document holds "_id" among its data (the pk lives there), so a
    # user path starting with it is always missing, as the evaluator says.
    return path[0] == "_id"


def _prefix_guards(path: Path) -> list[Filter]:
    """Keep MongoDB from walking into arrays on the way: doqu paths walk objects only."""
    if ".".join(path) in _FIXED.get():
        return []  # through embedded models: objects or null, never arrays
    return [{".".join(path[:i]): _NOT_ARRAY} for i in range(1, len(path))]


def _combine(clauses: Sequence[Filter | bool], op: str, unit: bool) -> Filter | bool:
    """``$and`` (*unit* ``True``) or ``$or`` (*unit* ``False``) of clauses, folding constants."""
    parts: list[Filter] = []
    for c in clauses:
        if c is (not unit):
            return not unit
        if c is not unit:
            parts.append(c)  # type: ignore[arg-type]
    if not parts:
        return unit
    return parts[0] if len(parts) == 1 else {op: parts}


def _all(clauses: Sequence[Filter | bool]) -> Filter | bool:
    return _combine(clauses, "$and", True)


def _any(clauses: Sequence[Filter | bool]) -> Filter | bool:
    return _combine(clauses, "$or", False)


def _negate(clause: Filter | bool) -> Filter | bool:
    if isinstance(clause, bool):
        return not clause
    return {"$nor": [clause]}


def _scalar(field: str, ops: Filter) -> Filter:
    """*ops* on the field's own value, never on the elements of an array it holds."""
    if field == "_id" or field in _FIXED.get():  # a string, or a kind the model fixes
        return {field: ops}
    if all(_never_an_object(v) for v in ops.values()):
        # "Not an array" said as "no element 0": that exists only in a non-empty array
        # or in an object keyed "0", which operands like these never match (nor does
        # an empty array). Servers that evaluate filters in Python check it faster.
        return {field: ops, f"{field}.0": {"$exists": False}}
    return {field: {**ops, **_NOT_ARRAY}}


def _never_an_object(operand: Any) -> bool:
    """Whether *operand* (a scalar or a list of them) can only match scalars."""
    if isinstance(operand, list):
        return all(_never_an_object(v) for v in operand)
    return operand is None or isinstance(operand, (str, int, float))


def _exact(field: str, value: Any) -> Filter | bool:
    ok, value = _operand(value)
    if not ok:
        return False
    if value is None:
        # {"$eq": null} would match missing fields too.
        return _scalar(field, {"$type": "null"})
    if isinstance(value, list):
        # $eq on an array field also matches an array holding the operand as an
        # element; $elemMatch compares elements one by one and excludes that case.
        return {field: {"$eq": value, "$not": {"$elemMatch": {"$eq": value}}}}
    return _scalar(field, {"$eq": value})


def _distinct(values: list[Any]) -> tuple[list[Any], bool]:
    """The storable operands of a list lookup in stored form, JSON-equal repeats left out,
    and whether any operand was left out as one no document can hold."""
    seen: dict[Any, Any] = {}
    dropped = False
    for value in values:
        ok, stored = _operand(value)
        if not ok:
            dropped = True
            continue
        if isinstance(stored, (dict, list)):
            key: Any = ("json", canonical(stored))
        elif stored is True or stored is False:
            key = ("bool", stored)
        else:
            key = stored  # numbers by value (1 and 1.0 are one), strings, None
        seen.setdefault(key, stored)
    return list(seen.values()), dropped


def _in(field: str, values: list[Any]) -> Filter | bool:
    plain: list[Any] = []
    clauses: list[Filter | bool] = []
    for stored in _distinct(values)[0]:
        if stored is None or isinstance(stored, list):
            clauses.append(_exact(field, stored))
        else:
            plain.append(stored)
    if plain:
        clauses.insert(0, _scalar(field, {"$in": plain}))
    return _any(clauses)


def _has_any(field: str, values: list[Any]) -> Filter | bool:
    """The field is an array with an element JSON-equal to one of *values*."""
    stored = _distinct(values)[0]
    if not stored:
        return False
    # $in inside $elemMatch compares each element whole, as {"$eq": v} there does.
    return {field: {"$elemMatch": {"$in": stored}}}


def _has_all(field: str, values: list[Any]) -> Filter | bool:
    """The field is an array with an element JSON-equal to each of *values*."""
    stored, dropped = _distinct(values)
    if dropped:
        return False  # an operand no document can hold
    clauses: list[Filter | bool] = [_has_element(field, v) for v in stored]
    if len(stored) > 1 and field != "_id":
        # n distinct operands need n elements: "no element n-1" rules a shorter list
        # out before n $elemMatch scans of it.
        clauses.insert(0, {f"{field}.{len(stored) - 1}": {"$exists": True}})
    return _all(clauses)


def _has_element(field: str, value: Any) -> Filter | bool:
    """The field is an array with an element JSON-equal to *value*."""
    ok, stored = _operand(value)
    if not ok:
        return False
    return {field: {"$elemMatch": {"$eq": stored}}}


def _regex(field: str, pattern: str, options: str = "") -> Filter:
    ops: Filter = {"$regex": pattern}
    if options:
        ops["$options"] = options
    return _scalar(field, ops)


def _positive(c: Cond) -> Filter | bool:
    """The filter for a condition that never holds on a missing field."""
    field, lk, op = _field(c.path), c.lookup, c.operand
    if lk == "exact":
        return _exact(field, op)
    if lk == "in":
        return _in(field, op)
    if lk in ("gt", "gte", "lt", "lte"):
        # Type bracketing: a number operand meets only numbers (not bools), a
        # string operand only strings, compared by UTF-8 bytes = code points.
        return _scalar(field, {f"${lk}": op})
    if lk == "between":
        return _scalar(field, {"$gte": op[0], "$lte": op[1]})
    if lk == "exists":
        return {field: {"$exists": True}}
    if lk == "contains":
        in_list = _has_element(field, op)
        if isinstance(op, str):
            return _any([in_list, _regex(field, _escape(op))])
        return in_list
    if lk == "icontains":
        folded = _ascii_insensitive(op)
        in_list = {field: {"$elemMatch": {"$regex": f"^{folded}\\z"}}}
        return _any([in_list, _regex(field, folded)])
    if lk == "startswith":
        return _regex(field, "^" + _escape(op))
    if lk == "endswith":
        return _regex(field, _escape(op) + "\\z")
    if lk == "istartswith":
        return _regex(field, "^" + _ascii_insensitive(op))
    if lk == "iendswith":
        return _regex(field, _ascii_insensitive(op) + "\\z")
    if lk == "matches":
        # DOTALL ("s") and "$" only at the very end: the evaluator's re.search.
        return _regex(field, regex_replace_end_anchor(op, "\\z"), "s")
    if lk == "size":
        return {field: {"$size": op}}
    if lk == "all":
        return _has_all(field, op)
    if lk == "any":
        return _has_any(field, op)
    raise AssertionError(f"no translation for lookup {lk!r}")  # pragma: no cover


def _cond(c: Cond) -> Filter | bool:
    if _reserved(c.path):
        return matches(c, "", {})  # the value is missing in every document
    lk = c.lookup
    # The lookups that hold on missing fields are the negations of ones that don't.
    if lk == "ne":
        return _negate(_cond(Cond(c.path, "exact", c.operand)))
    if lk == "nin":
        return _negate(_cond(Cond(c.path, "in", c.operand)))
    if lk == "exists" and c.operand is False:
        return _negate(_cond(Cond(c.path, "exists", True)))
    if lk == "isnull":
        present = _all(
            [_cond(Cond(c.path, "exists", True)), _negate(_cond(Cond(c.path, "exact", None)))]
        )
        return _negate(present) if c.operand else present
    return _all([*_prefix_guards(c.path), _positive(c)])


def _node(node: Node) -> Filter | bool:
    if isinstance(node, Cond):
        return _cond(node)
    if isinstance(node, And):
        return _all([_node(n) for n in gathered(node)])
    if isinstance(node, Or):  # exacts on one path become one $in
        return _any([_node(n) for n in gathered(node)])
    if isinstance(node, Not):
        inner, odd = node.child, True
        while isinstance(inner, Not):  # NOT NOT x is x: filters are two-valued
            inner, odd = inner.child, not odd
        out = _node(inner)
        return _negate(out) if odd else out
    raise TypeError(f"not a query node: {node!r}")


def to_filter(node: Node | None, kinds: Mapping[Path, Fixed] | None = None) -> Filter:
    """The MongoDB filter document that matches exactly what *node* matches.

    Operand values are always literal (``{"$eq": v}``, ``$in`` of values,
    escaped regexes); a value that could only be query syntax (an object with a
    ``$`` key) cannot equal any stored value and becomes a match-nothing filter.
    *kinds* (a model-bound query's :attr:`~doqu.backend.CollectionInfo.kinds`)
    are the paths that never hold an array: their conditions carry no guards
    against one, so the server's index on the field serves them.
    """
    if node is None:
        return {}
    token = _FIXED.set(frozenset(".".join(p) for p in kinds or ()))
    try:
        out = _node(node)
    finally:
        _FIXED.reset(token)
    if out is True:
        return {}
    if out is False:
        return dict(NEVER)
    return out


# ------------------------------------------------------------------- sorting
def _resolved(path: Path) -> Any:
    """An aggregation expression for the value at *path*, walking objects only."""
    if path == ("pk",):
        return "$_id"
    if _reserved(path):
        return None
    ref = "$" + ".".join(path)
    if len(path) == 1:
        return ref
    objects = [
        {"$eq": [{"$type": "$" + ".".join(path[:i])}, "object"]} for i in range(1, len(path))
    ]
    return {"$cond": [{"$and": objects}, ref, None]}


def _rank(ref: str) -> Any:
    """0 missing/null, 1 numbers, 2 strings, 3 everything else (bools, arrays, objects)."""
    return {
        "$switch": {
            "branches": [
                {"case": {"$isNumber": ref}, "then": 1},
                {"case": {"$eq": [{"$type": ref}, "string"]}, "then": 2},
                {"case": {"$in": [{"$type": ref}, ["missing", "null"]]}, "then": 0},
            ],
            "default": 3,
        }
    }


def _orderable(ref: str) -> Any:
    """The value itself for numbers and strings, null for the kinds that tie."""
    return {
        "$cond": [
            {"$or": [{"$isNumber": ref}, {"$eq": [{"$type": ref}, "string"]}]},
            ref,
            None,
        ]
    }


def _pipeline(spec: QuerySpec) -> list[Filter]:
    """Filter, computed sort keys (doqu's mixed-kind order), window; rows under ``d``."""
    keys: Filter = {"d": "$$ROOT"}
    ranked: Filter = {}
    sort: Filter = {}
    for i, (path, descending) in enumerate(spec.order):
        direction = -1 if descending else 1
        if path == ("pk",):
            sort["_id"] = direction
            continue
        keys[f"x{i}"] = _resolved(path)
        ranked[f"r{i}"] = _rank(f"$x{i}")
        ranked[f"v{i}"] = _orderable(f"$x{i}")
        sort[f"r{i}"] = direction
        sort[f"v{i}"] = direction
    # A total order, so that pages of one query never overlap.
    sort.setdefault("_id", 1)
    stages: list[Filter] = [{"$match": to_filter(spec.node)}, {"$project": keys}]
    if ranked:
        stages.append({"$addFields": ranked})
    stages.append({"$sort": sort})
    if spec.offset:
        stages.append({"$skip": spec.offset})
    if spec.limit is not None:
        stages.append({"$limit": spec.limit})
    stages.append({"$project": {"d": 1}})
    return stages


def _native_order(
    spec: QuerySpec, kinds: Mapping[Path, Fixed] | None = None
) -> list[tuple[str, int]] | None:
    """A plain ``find().sort()`` when every key is pk or a path of one fixed kind.

    MongoDB's own order is doqu's there: missing and null tie first, then the
    numbers by value or the strings by code point; an index on the field serves it.
    """
    fixed = kinds or {}
    keys: list[tuple[str, int]] = []
    for path, desc in spec.order:
        if path != ("pk",) and path not in fixed:
            return None
        keys.append((_field(path), -1 if desc else 1))
        if path == ("pk",):
            break  # unique: later keys never matter
    return keys


def _distinct_pipeline(node: Node | None, path: Path) -> list[Filter]:
    guards: list[Filter | bool] = [*_prefix_guards(path)] if path != ("pk",) else []
    match = _all([to_filter(node), *guards])
    return [
        {"$match": {} if match is True else match},
        {"$project": {"_id": 0, "v": _resolved(path)}},
        # One level, like the evaluator: elements of a list count one by one.
        {"$unwind": "$v"},
        {"$match": {"$expr": {"$ne": ["$v", None]}}},
        # Grouping by type too keeps true apart from 1; 1 and 1.0 merge below.
        {"$group": {"_id": {"t": {"$type": "$v"}, "v": "$v"}}},
    ]
