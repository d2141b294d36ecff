"""The query tree: immutable, hashable nodes built by ``Q`` and ``Query.where``.

Lookup parsing, operand checks and field-path validation happen here, once, so
that every backend receives a tree it can translate without checking again.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, ClassVar, Final, Union

from ._errors import QueryError
from ._json import to_json

__all__ = [
    "LOOKUPS",
    "MAX_QUERY_DEPTH",
    "UPDATE_OPERATORS",
    "And",
    "Cond",
    "Node",
    "Not",
    "Or",
    "Path",
    "Q",
    "QuerySpec",
    "UpdateOp",
    "gathered",
    "cond",
    "joined",
    "make_cond",
    "near_names",
    "parse_collection_name",
    "parse_path",
    "parse_update",
    "regex_replace_end_anchor",
    "update_op",
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
_STORING: Final = frozenset({"set", "push", "add_to_set"})

MAX_SEGMENT: Final = 128
MAX_DEPTH: Final = 32
#: And/Or/Not levels a query tree may nest, counted after ``&``/``|`` chains are
#: flattened: within what every backend's parser and server can take (SQLite's
#: parser stack is the tightest), and far beyond what a real query needs.
MAX_QUERY_DEPTH: Final = 32
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
    #: A condition nests no And/Or/Not (see :data:`MAX_QUERY_DEPTH`).
    depth: ClassVar[int] = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", _freeze([list(self.path), self.lookup, self.operand]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cond) and self._key == other._key

    def __hash__(self) -> int:
        return hash(("cond", self._key))


def _checked_depth(depth: int) -> int:
    if depth > MAX_QUERY_DEPTH:
        raise QueryError(
            f"query tree nested deeper than {MAX_QUERY_DEPTH} levels of And/Or/Not"
            " (MAX_QUERY_DEPTH; chains of & or | count as one level)"
        )
    return depth


_DEPTH = attrgetter("depth")


def _nesting(children: tuple[Node, ...]) -> int:
    try:
        deepest = max(map(_DEPTH, children), default=0)
    except AttributeError:
        bad = next(c for c in children if not isinstance(c, (Cond, And, Or, Not)))
        raise QueryError(f"not a query node: {bad!r}") from None
    return _checked_depth(deepest + 1)


@dataclass(frozen=True)
class And:
    """All children match; ``And(())`` matches everything.

    ``depth`` counts the And/Or/Not levels of the tree; building a tree deeper than
    :data:`MAX_QUERY_DEPTH` raises :class:`~doqu.QueryError`.
    """

    children: tuple[Node, ...]
    depth: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _nesting(self.children))


@dataclass(frozen=True)
class Or:
    """At least one child matches; ``Or(())`` matches nothing."""

    children: tuple[Node, ...]
    depth: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _nesting(self.children))


@dataclass(frozen=True)
class Not:
    """The child does not match (missing fields included: logic is two-valued)."""

    child: Node
    depth: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _nesting((self.child,)))


Node = Union[Cond, And, Or, Not]


def joined(kind: type[And] | type[Or], nodes: Iterable[Node]) -> Node:
    """*nodes* combined by *kind*, flattened: children of the same kind are merged.

    ``a & b & c`` is one ``And`` of three, however it was grouped, so a chain of
    any length is one level deep; a single node is returned as it is.
    """
    flat: list[Node] = []
    deepest = 0
    for node in nodes:
        if isinstance(node, kind):
            flat.extend(node.children)
            deepest = max(deepest, node.depth - 1)
        else:
            if not isinstance(node, (Cond, And, Or, Not)):
                raise QueryError(f"not a query node: {node!r}")
            flat.append(node)
            deepest = max(deepest, node.depth)
    if len(flat) == 1:
        return flat[0]
    # Built without __post_init__: the depth is known, and rescanning the children
    # at every step would make a loop of ``q = q | Q(...)`` quadratic in Python.
    out = object.__new__(kind)
    object.__setattr__(out, "children", tuple(flat))
    object.__setattr__(out, "depth", _checked_depth(deepest + 1))
    return out


def gathered(node: And | Or) -> tuple[Node, ...]:
    """The children of *node*, with conditions that make one list lookup made into one.

    An ``Or`` of ``exact`` conditions on one path is an ``in`` of their operands,
    an ``And`` of ``ne`` conditions a ``nin``: the same documents, and a shape that
    translators render as one bound list instead of a term per operand.
    """
    lookup, into = ("exact", "in") if isinstance(node, Or) else ("ne", "nin")
    operands: dict[Path, list[Any]] = {}
    order: list[Node | Path] = []
    for child in node.children:
        if isinstance(child, Cond) and child.lookup == lookup:
            ops = operands.get(child.path)
            if ops is None:
                ops = operands[child.path] = []
                order.append(child.path)
            ops.append(child.operand)
        else:
            order.append(child)
    if len(operands) == sum(map(len, operands.values())):
        return node.children
    return tuple(
        item
        if not isinstance(item, tuple)
        else Cond(item, into, operands[item])
        if len(operands[item]) > 1
        else Cond(item, lookup, operands[item][0])
        for item in order
    )


def near_names(word: str, names: Iterable[str]) -> list[str]:
    """The names closest to *word* (a typo's likely meaning), best first."""
    return difflib.get_close_matches(word, list(names), n=3, cutoff=0.6)


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


def _referred(value: Any) -> Any:
    """A document or a ``Ref`` as an operand is its pk (``where(author=frank)``)."""
    as_operand = getattr(type(value), "__doqu_operand__", None)
    return value if as_operand is None else as_operand(value)


def _check_operand(path: Path, lookup: str, raw: Any) -> Any:
    shown = "__".join(path)
    if lookup in ("in", "nin", "all", "any"):
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
            raise QueryError(f"{shown}__{lookup} takes a list of values, not {raw!r}")
        raw = [_referred(v) for v in raw]
    else:
        raw = _referred(raw)
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


# ------------------------------------------------------------ regular expressions
# ``matches`` patterns are read by one scanner into pieces, each already spelled
# the way every engine reads alike: Python's ``re`` (the evaluator, SQLite,
# TinyDB), PostgreSQL's ARE, MariaDB's PCRE2 and MongoDB's PCRE.
_REGEX_MAX_COUNT: Final = 255  # PostgreSQL refuses more in {m,n}
_REGEX_MAX_NESTING: Final = 100  # MariaDB's PCRE2 stops at 250; Python's re recurses
_REGEX_PUNCTUATION: Final = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_REGEX_COUNT = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
_REGEX_REPEATABLE: Final = frozenset({"char", "any", "class", "close"})
_REGEX_SIMPLE: Final = {".": "any", "^": "start", "$": "end", "|": "or"}
_REGEX_LETTER_ESCAPE: Final = (
    "is outside the portable subset: escapes of letters and digits (\\d, \\w, \\b, \\1, ...)"
    " mean different things on different databases; write a class such as [0-9]"
)


@dataclass(frozen=True)
class _RegexPiece:
    """One piece of a scanned pattern and the text every backend is given for it."""

    kind: str  # char, any, class, start, end, repeat, open, close or or
    text: str


def _regex_literal(ch: str) -> str:
    # ASCII punctuation escaped, anything else bare: the one spelling that every
    # engine reads as the character itself, inside classes and out.
    return "\\" + ch if ch in _REGEX_PUNCTUATION else ch


def _regex_count(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 4 else _REGEX_MAX_COUNT + 1


class _RegexScanner:
    """Reads a pattern of the portable subset into pieces; refuses anything else."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def refuse(self, pos: int, piece: str, why: str) -> QueryError:
        return QueryError(f"regular expression {self.pattern!r}: {piece!r} at position {pos} {why}")

    def char(self, i: int) -> tuple[str, int]:
        """The literal character at *i*, written plain or escaped, and where it ends."""
        p = self.pattern
        if p[i] == "\x00":
            raise self.refuse(i, p[i], "is a NUL character, which no database can hold")
        if p[i] != "\\":
            return p[i], i + 1
        if i + 1 == len(p):
            raise self.refuse(i, "\\", "ends the pattern; a literal backslash is written '\\\\'")
        escaped = p[i + 1]
        if escaped == "\x00":
            raise self.refuse(i + 1, escaped, "is a NUL character, which no database can hold")
        if escaped.isalnum():
            raise self.refuse(i, p[i : i + 2], _REGEX_LETTER_ESCAPE)
        return escaped, i + 2

    def member(self, i: int) -> tuple[str, int]:
        """One character of a class at *i* (POSIX classes refused) and where it ends."""
        p = self.pattern
        if p[i] == "[" and p[i + 1 : i + 2] in (":", "=", "."):
            raise self.refuse(
                i,
                p[i : i + 2],
                "is outside the portable subset: no POSIX classes ([:alpha:], [=a=], [.a.]);"
                " write the characters out, e.g. [A-Za-z]",
            )
        return self.char(i)

    def klass(self, start: int) -> tuple[str, int]:
        """The class opened at *start*, respelled, and where it ends."""
        p, i = self.pattern, start + 1
        out = ["["]
        if p.startswith("^", i):
            out.append("^")
            i += 1
        first = True  # a "]" first is a member, as in POSIX and every engine
        while True:
            if i == len(p):
                raise self.refuse(
                    start, "[", "opens a class that is never closed; a literal '[' is written '\\['"
                )
            if p[i] == "]" and not first:
                out.append("]")
                return "".join(out), i + 1
            at = i
            low, i = self.member(i)
            if p.startswith("-", i) and i + 1 < len(p) and p[i + 1] != "]":
                high, i = self.member(i + 1)
                if high < low:
                    raise self.refuse(at, p[at:i], "is a range out of order")
                out.append(f"{_regex_literal(low)}-{_regex_literal(high)}")
            else:
                out.append(_regex_literal(low))
            first = False

    def quantifier(self, i: int) -> tuple[str, int]:
        """The quantifier at *i* (with its lazy ``?``), respelled, and where it ends."""
        p = self.pattern
        if p[i] != "{":
            text, i = p[i], i + 1
        else:
            m = _REGEX_COUNT.match(p, i)
            if m is None:
                raise self.refuse(
                    i, "{", "is not a quantifier {m}, {m,} or {m,n}; a literal '{' is written '\\{'"
                )
            low = _regex_count(m[1])
            high = low if m[2] is None else _regex_count(m[3]) if m[3] else None
            if max(low, high or 0) > _REGEX_MAX_COUNT:
                raise self.refuse(
                    i, m[0], f"counts past {_REGEX_MAX_COUNT}, the most every database allows"
                )
            if high is not None and high < low:
                raise self.refuse(i, m[0], "has its minimum above its maximum")
            if m[2] is None:
                text = f"{{{low}}}"
            else:
                text = f"{{{low},{'' if high is None else high}}}"
            i = m.end()
        if p.startswith("?", i):  # lazy: the same answer to "is it found?" everywhere
            text, i = text + "?", i + 1
        return text, i

    def scan(self) -> list[_RegexPiece]:
        """The pieces of the whole pattern, each respelled."""
        p = self.pattern
        pieces: list[_RegexPiece] = []
        opened: list[int] = []
        i = 0
        while i < len(p):
            c, at = p[i], i
            if c == "[":
                kind, (text, i) = "class", self.klass(i)
            elif c == "(":
                if p.startswith("(?", i):
                    raise self.refuse(
                        i,
                        "(?",
                        "is outside the portable subset: no (?...) groups (flags, lookarounds,"
                        " non-capturing or named groups); use a plain group ( )",
                    )
                if len(opened) == _REGEX_MAX_NESTING:
                    raise self.refuse(i, c, f"nests groups more than {_REGEX_MAX_NESTING} deep")
                opened.append(i)
                kind, text, i = "open", c, i + 1
            elif c == ")":
                if not opened:
                    raise self.refuse(i, c, "closes no group; a literal ')' is written '\\)'")
                opened.pop()
                kind, text, i = "close", c, i + 1
            elif c in _REGEX_SIMPLE:
                kind, text, i = _REGEX_SIMPLE[c], c, i + 1
            elif c in "*+?{":
                text, i = self.quantifier(i)
                before = pieces[-1].kind if pieces else None
                if before == "repeat":
                    raise self.refuse(
                        at,
                        text,
                        "follows another quantifier (no possessive a*+); group what repeats: (a*)+",
                    )
                if before not in _REGEX_REPEATABLE:
                    raise self.refuse(at, text, "has nothing to repeat")
                kind = "repeat"
            else:
                kind, (char, i) = "char", self.char(i)
                text = _regex_literal(char)
            pieces.append(_RegexPiece(kind, text))
        if opened:
            raise self.refuse(
                opened[-1],
                "(",
                "opens a group that is never closed; a literal '(' is written '\\('",
            )
        return pieces


def check_regex(pattern: str) -> None:
    """Refuse a pattern outside the portable regex subset, naming the piece and its position.

    The subset: literal characters, and ``\\`` before any character that is not
    a letter or digit; ``.``; classes ``[...]`` and ``[^...]`` of characters,
    ranges and escaped characters (a ``]`` first is a member); anchors ``^``
    and ``$``; quantifiers ``* + ? {m} {m,} {m,n}`` (counts up to 255) and their
    lazy ``?`` forms; groups ``( )`` (nested up to 100 deep) and ``|``. ``.``
    matches any character (newline too); ``$`` matches only at the very end.
    """
    _RegexScanner(pattern).scan()


def regex_replace_end_anchor(pattern: str, end: str) -> str:
    """*pattern* as every backend is given it, each ``$`` anchor written as *end*.

    The pattern is scanned as :func:`check_regex` does (``QueryError`` outside
    the subset) and every literal respelled alike (ASCII punctuation escaped,
    inside classes too), so a ``$`` that is escaped or in a class is never taken
    for the anchor, and no engine reads a class member its own way.
    """
    pieces = _RegexScanner(pattern).scan()
    return "".join(end if piece.kind == "end" else piece.text for piece in pieces)


def make_cond(key: str, raw: Any) -> Cond:
    """Parse one ``field__lookup=value`` keyword into a checked condition."""
    segments = parse_path(key)
    if len(segments) > 1 and segments[-1] in LOOKUPS:
        path, lookup = segments[:-1], segments[-1]
    else:
        path, lookup = segments, "exact"
    return cond(path, lookup, raw)


def cond(path: Path, lookup: str, raw: Any) -> Cond:
    """A checked condition on *path* (already parsed) by *lookup*."""
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
        self.node: Node = joined(And, nodes)

    @classmethod
    def _of(cls, node: Node) -> Q:
        q = cls.__new__(cls)
        q.node = node
        return q

    def __and__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._of(joined(And, (self.node, other.node)))

    def __or__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._of(joined(Or, (self.node, other.node)))

    def __invert__(self) -> Q:
        return Q._of(Not(self.node))

    def __bool__(self) -> bool:
        # ``a and b``, ``18 <= Person.age < 65`` would silently keep one condition.
        raise TypeError(
            "a condition has no truth value: combine conditions with & | ~, not and/or/not,"
            " and write a range as Person.age.between(low, high)"
        )

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


def update_op(path: Path, op: str, raw: Any) -> UpdateOp:
    """One checked update operator on *path* (already parsed)."""
    if path == ("pk",):
        raise QueryError("update() cannot change the primary key")
    shown = "__".join(path)
    # An operand that is written as it is must be storable (the one rule), checked
    # before anything runs: a QueryError, as for any bad update.
    value = to_json(raw, where=f"operand of {shown}__{op}", stored=op in _STORING)
    if op == "inc" and not _is_number(value):
        raise QueryError(f"{shown}__inc takes a number, not {raw!r}")
    if op == "unset" and raw is not True:
        raise QueryError(f"{shown}__unset takes True, not {raw!r}")
    return UpdateOp(op, path, value)


def parse_update(changes: Mapping[str, Any], ops: Iterable[UpdateOp] = ()) -> tuple[UpdateOp, ...]:
    """Parse ``Query.update`` keywords (``age__inc=1``, ``name="x"``) into checked operators.

    *ops* are operators already built (``Person.age.inc(1)``); the keywords are
    added after them, and no two may change the same field or one inside another.
    """
    out: list[UpdateOp] = []
    for given in ops:
        if not isinstance(given, UpdateOp):
            raise QueryError(
                f"update() takes field updates (Person.age.inc(1)) and keywords, not {given!r}"
            )
        out.append(given)
    for key, raw in changes.items():
        segments = parse_path(key)
        if len(segments) > 1 and segments[-1] in UPDATE_OPERATORS:
            path, op = segments[:-1], segments[-1]
        else:
            path, op = segments, "set"
        out.append(update_op(path, op, raw))
    if not out:
        raise QueryError("update() needs at least one change")
    for a in out:
        for b in out:
            if a is not b and b.path[: len(a.path)] == a.path:
                outer, inner = "__".join(a.path), "__".join(b.path)
                if a.path == b.path:
                    raise QueryError(
                        f"update() changes {outer!r} twice ({a.op} and {b.op});"
                        " make two update() calls, one per operator"
                    )
                raise QueryError(
                    f"update() changes {outer!r} and {inner!r}, which is inside it;"
                    " make two update() calls, one per field"
                )
    return tuple(out)


@dataclass(frozen=True)
class QuerySpec:
    """What a backend's ``_select`` is asked for: a filter, an order and a window."""

    node: Node | None = None
    order: tuple[tuple[Path, bool], ...] = ()
    offset: int = 0
    limit: int | None = None
