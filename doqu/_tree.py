"""The query tree: immutable, hashable nodes built by ``Q`` and ``Query.where``.

Lookup parsing, operand checks and field-path validation happen here, once, so
that every backend receives a tree it can translate without checking again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Union

from ._errors import QueryError
from ._json import to_json

__all__ = [
    "LOOKUPS",
    "UPDATE_OPERATORS",
    "And",
    "Cond",
    "Node",
    "Not",
    "Or",
    "Path",
    "Q",
    "UpdateOp",
    "parse_collection_name",
    "parse_path",
    "parse_update",
    "regex_replace_end_anchor",
]

Path = tuple[str, ...]

LOOKUPS: Final = frozenset(
    {
        "exact", "ne", "gt", "gte", "lt", "lte", "between", "in", "nin", "exists", "isnull",
        "contains", "icontains", "startswith", "endswith", "istartswith", "iendswith",
        "matches", "size", "all", "any",
    }
)  # fmt: skip
UPDATE_OPERATORS: Final = frozenset({"set", "unset", "inc", "push", "pull", "add_to_set"})

MAX_SEGMENT: Final = 128
MAX_DEPTH: Final = 32
_SPLIT = re.compile(r"__|\.")
_COLLECTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,47}")


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, eq=False)
class Cond:
    """A comparison of the value at *path* with *operand* by *lookup*.

    ``path == ("pk",)`` means the document's primary key. The operand is already
    in JSON form and checked for the lookup.
    """

    path: Path
    lookup: str
    operand: Any
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", _freeze([list(self.path), self.lookup, self.operand]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cond) and self._key == other._key

    def __hash__(self) -> int:
        return hash(("cond", self._key))


@dataclass(frozen=True)
class And:
    """All children match; ``And(())`` matches everything."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one child matches; ``Or(())`` matches nothing."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The child does not match (missing fields included: logic is two-valued)."""

    child: Node


Node = Union[Cond, And, Or, Not]


def parse_path(key: str, *, what: str = "field path") -> Path:
    """Split ``"a__b"`` or ``"a.b"`` into segments; each must be a plain identifier."""
    if not isinstance(key, str):
        raise QueryError(f"a {what} must be a string, not {type(key).__name__}")
    segments = tuple(_SPLIT.split(key))
    if len(segments) > MAX_DEPTH:
        raise QueryError(f"{what} {key[:80]!r} is nested deeper than {MAX_DEPTH} levels")
    for seg in segments:
        if not seg.isidentifier() or len(seg) > MAX_SEGMENT:
            raise QueryError(
                f"{what} {key[:80]!r} is not a plain identifier path (letters, digits and _,"
                f" joined by __ or .)"
            )
    return segments


def parse_collection_name(name: str) -> str:
    """Check a collection name: letters, digits, ``_`` and ``-``, at most 48, no leading ``-``."""
    if not isinstance(name, str) or not _COLLECTION.fullmatch(name):
        raise QueryError(
            f"collection name {name!r} is not valid: use 1-48 letters, digits, _ or -"
            " (not starting with -)"
        )
    return name


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_ORDERABLE = "a number or a string"


def _check_operand(path: Path, lookup: str, raw: Any) -> Any:
    shown = "__".join(path)
    if lookup in ("in", "nin", "all", "any"):
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
            raise QueryError(f"{shown}__{lookup} takes a list of values, not {raw!r}")
        raw = list(raw)
    value = to_json(raw, where=f"operand of {shown}__{lookup}")
    if lookup in ("gt", "gte", "lt", "lte"):
        if not (_is_number(value) or isinstance(value, str)):
            raise QueryError(f"{shown}__{lookup} compares with {_ORDERABLE}, not {raw!r}")
    elif lookup == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError(f"{shown}__between takes a pair (low, high), not {raw!r}")
        low, high = value
        same = (_is_number(low) and _is_number(high)) or (
            isinstance(low, str) and isinstance(high, str)
        )
        if not same:
            raise QueryError(f"{shown}__between needs two numbers or two strings, not {raw!r}")
    elif lookup in ("exists", "isnull"):
        if not isinstance(raw, bool):
            raise QueryError(f"{shown}__{lookup} takes True or False, not {raw!r}")
    elif lookup in ("icontains", "startswith", "endswith", "istartswith", "iendswith"):
        if not isinstance(value, str):
            raise QueryError(f"{shown}__{lookup} takes a string, not {raw!r}")
    elif lookup == "matches":
        if not isinstance(value, str):
            raise QueryError(f"{shown}__matches takes a regular expression string, not {raw!r}")
        check_regex(value)
    elif lookup == "size":
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise QueryError(f"{shown}__size takes a whole number >= 0, not {raw!r}")
    elif lookup in ("all", "any") and not value:
        raise QueryError(f"{shown}__{lookup} takes a non-empty list")
    return value


_REGEX_FORBIDDEN = re.compile(r"\\[A-Za-z0-9]|\(\?|\[:|\[=|\[\.")


def check_regex(pattern: str) -> None:
    """Refuse what the portable regex subset leaves out, and patterns that do not compile.

    The subset: literals, ``\\`` before punctuation, ``.``, classes ``[...]``,
    anchors ``^ $``, quantifiers ``* + ? {m,n}``, groups ``( )`` and ``|``.
    ``.`` matches any character (newline too); ``$`` matches only at the very end.
    """
    bad = _REGEX_FORBIDDEN.search(pattern)
    if bad:
        raise QueryError(
            f"regular expression {pattern!r}: {bad.group()!r} is outside the portable subset"
            " (no escapes of letters or digits, no (?...) groups, no POSIX classes)"
        )
    if "\x00" in pattern:
        raise QueryError("regular expression holds a NUL character")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise QueryError(f"regular expression {pattern!r} does not compile: {exc}") from None
    # Braces must form a quantifier: engines differ on a stray "{".
    for m in re.finditer(r"(?<!\\)\{", pattern):
        if not re.match(r"\{\d+(,\d*)?\}", pattern[m.start() :]):
            raise QueryError(f"regular expression {pattern!r}: escape a literal '{{' as '\\{{'")


def regex_replace_end_anchor(pattern: str, end: str) -> str:
    """Rewrite each unescaped ``$`` outside a class as *end* (e.g. ``\\Z`` or ``\\z``)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                out.append("[^")
                i += 2
                continue
        elif c == "$":
            out.append(end)
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def make_cond(key: str, raw: Any) -> Cond:
    """Parse one ``field__lookup=value`` keyword into a checked condition."""
    segments = parse_path(key)
    if len(segments) > 1 and segments[-1] in LOOKUPS:
        path, lookup = segments[:-1], segments[-1]
    else:
        path, lookup = segments, "exact"
    return Cond(path, lookup, _check_operand(path, lookup, raw))


class Q:
    """A composable condition: ``Q(age__gt=3) | ~Q(name="x") & Q(...)``.

    Keyword conditions inside one ``Q`` are ANDed. ``Q`` objects are immutable
    and hashable; ``&``, ``|`` and ``~`` return new ones.
    """

    __slots__ = ("node",)

    def __init__(self, *args: Q, **conditions: Any) -> None:
        nodes: list[Node] = []
        for arg in args:
            if not isinstance(arg, Q):
                raise QueryError(f"Q() takes Q objects and keyword conditions, not {arg!r}")
            nodes.append(arg.node)
        nodes.extend(make_cond(k, v) for k, v in conditions.items())
        self.node: Node = nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    @classmethod
    def _of(cls, node: Node) -> Q:
        q = cls.__new__(cls)
        q.node = node
        return q

    def __and__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._of(And((self.node, other.node)))

    def __or__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._of(Or((self.node, other.node)))

    def __invert__(self) -> Q:
        return Q._of(Not(self.node))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Q) and self.node == other.node

    def __hash__(self) -> int:
        return hash(self.node)

    def __repr__(self) -> str:
        return f"Q({self.node!r})"


@dataclass(frozen=True, eq=False)
class UpdateOp:
    """One update operator applied at *path* (``set``, ``unset``, ``inc``, …)."""

    op: str
    path: Path
    operand: Any


def parse_update(changes: Mapping[str, Any]) -> tuple[UpdateOp, ...]:
    """Parse ``Query.update`` keywords (``age__inc=1``, ``name="x"``) into checked operators."""
    if not changes:
        raise QueryError("update() needs at least one change")
    ops: list[UpdateOp] = []
    for key, raw in changes.items():
        segments = parse_path(key)
        if len(segments) > 1 and segments[-1] in UPDATE_OPERATORS:
            path, op = segments[:-1], segments[-1]
        else:
            path, op = segments, "set"
        if path == ("pk",):
            raise QueryError("update() cannot change the primary key")
        shown = "__".join(path)
        value = to_json(raw, where=f"operand of {shown}__{op}")
        if op == "inc" and not _is_number(value):
            raise QueryError(f"{shown}__inc takes a number, not {raw!r}")
        if op == "unset" and raw is not True:
            raise QueryError(f"{shown}__unset takes True, not {raw!r}")
        ops.append(UpdateOp(op, path, value))
    for a in ops:
        for b in ops:
            if a is not b and b.path[: len(a.path)] == a.path:
                raise QueryError(
                    f"update() changes {'__'.join(a.path)!r} and {'__'.join(b.path)!r},"
                    " which overlap"
                )
    return tuple(ops)
