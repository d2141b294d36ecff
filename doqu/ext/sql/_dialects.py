"""Query-tree → SQL translators, one per dialect (SQLite, PostgreSQL, MariaDB/MySQL).

Each translator renders a :class:`~doqu._tree.Node` as a ``WHERE`` clause with
exactly the reference evaluator's semantics. Field paths are validated
identifiers and are rendered as SQL *literals* (so expression indexes match the
query); every operand is a bound parameter, in the driver's paramstyle.

Conditions are two-valued: a leaf under a ``NOT`` is tested with ``IS TRUE``
and a negation is ``IS NOT TRUE``, so a missing field (SQL ``NULL``) never leaks
through a negation. Outside a negation the bare expression is kept, because
``NULL`` already acts as false there and the bare form is what indexes match.

Big trees stay within what the databases parse: a list of operands (``in``,
``nin``, ``any``, ``all``) is one bound JSON array (SQLite, PostgreSQL) or one
sorted ``IN`` list (MariaDB) rather than a condition per operand; a long
``AND``/``OR`` is grouped by :data:`CHUNK` (SQLite counts each term of a flat
chain as one level of its 1,000-level expression depth); the deepest child of
an ``AND``/``OR`` comes first and ``IS NOT TRUE`` follows its operand, so that
each level of nesting costs SQLite's 100-entry parser stack one entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...backend import (
    INT_MAX,
    INT_MIN,
    And,
    Cond,
    Fixed,
    Node,
    Not,
    Or,
    Path,
    QueryError,
    ascii_fold,
    canonical,
    gathered,
    kind,
    regex_replace_end_anchor,
)

__all__ = [
    "Loc",
    "MySQLTranslator",
    "PostgresTranslator",
    "SQLiteTranslator",
    "Translator",
    "exact_numbers",
]

_SEGMENT = re.compile(r"[^\W\d]\w*")
_MARKER = re.compile("\x01(\\d+)\x02")
#: Integers up to this magnitude are exact as doubles.
EXACT_DOUBLE = 2**53
#: Bytes of a string kept in a MariaDB index column (a prefix: queries recheck the value).
STRING_PREFIX = 255
#: The comparison an index prefix or a rounded value can decide: never stricter than asked.
_WEAK = {">": ">=", ">=": ">=", "<": "<=", "<=": "<=", "=": "="}
#: Terms joined by one flat AND/OR at most; longer lists are grouped in parentheses.
CHUNK = 64
#: Operands PostgreSQL gets as a list of parameters (an index serves it); more are one array.
SMALL_LIST = 32


def check_segment(seg: str) -> str:
    """A path segment rendered into SQL must be a plain identifier (the core checks it too)."""
    if not isinstance(seg, str) or not _SEGMENT.fullmatch(seg) or len(seg) > 128:
        raise QueryError(f"field path segment {seg!r} is not a plain identifier")
    return seg


def int_bound(sym: str, op: int | float) -> tuple[str, int] | bool:
    """``v sym op`` for every 64-bit integer ``v``, as ``v sym' bound`` (or a constant)."""
    if isinstance(op, int):
        return sym, op
    if sym == "=":
        return ("=", int(op)) if op.is_integer() and INT_MIN <= op <= INT_MAX else False
    if sym in (">", "<="):
        bound = math.floor(op)
        sym = ">=" if sym == ">" else "<="
        bound += 1 if sym == ">=" else 0
    else:
        bound = math.ceil(op)
        sym = ">=" if sym == ">=" else "<="
        bound -= 1 if sym == "<=" else 0
    if bound > INT_MAX:
        return sym == "<="
    if bound < INT_MIN:
        return sym == ">="
    return sym, bound


def double_bound(sym: str, op: int | float) -> tuple[str, float] | bool:
    """``d sym op`` for every double ``d``, as ``d sym' bound`` with a double bound."""
    if isinstance(op, float):
        return sym, op
    near = float(op)
    if int(near) == op:
        return sym, near
    # op lies strictly between two neighbouring doubles.
    if int(near) > op:
        low, high = math.nextafter(near, -math.inf), near
    else:
        low, high = near, math.nextafter(near, math.inf)
    if sym == "=":
        return False
    return (">=", high) if sym in (">", ">=") else ("<=", low)


def string_successor(text: str) -> str | None:
    """The least string above every string starting with *text* (code point order)."""
    text = text.rstrip("\U0010ffff")
    if not text:
        return None
    nxt = ord(text[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return text[:-1] + chr(nxt)


def bytes_successor(data: bytes) -> bytes | None:
    """The least byte string above every byte string starting with *data*."""
    data = data.rstrip(b"\xff")
    if not data:
        return None
    return data[:-1] + bytes([data[-1] + 1])


def dumps(value: Any) -> str:
    """Compact JSON text, as documents are stored."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def distinct_operands(ops: Sequence[Any]) -> dict[str, list[Any]]:
    """The operands of a list lookup by kind, JSON-equal repeats left out (``1`` and ``1.0``)."""
    groups: dict[str, dict[Any, Any]] = {}
    for op in ops:
        k = kind(op)
        groups.setdefault(k, {}).setdefault(canonical(op) if k in ("array", "object") else op, op)
    return {k: list(values.values()) for k, values in groups.items()}


_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?e\+\d+)')


def _exact(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return m.group(1)
    return f"{int(float(m.group(2))):d}.0"


def exact_numbers(text: str) -> str:
    """JSON *text* with floats printed in exponent form (1e16 and beyond) spelled exactly.

    Python prints such floats by their shortest digits (``1.152921504606847e+18`` for
    2**60), which PostgreSQL's ``numeric`` would read as a different number. They are
    all integers: ``int(f)`` followed by ``.0`` keeps the exact value and reads back
    as the same float.
    """
    if "e+" not in text:
        return text
    return _TOKEN.sub(_exact, text)


def dumps_exact(value: Any) -> str:
    """:func:`dumps` with floats of 1e16 and beyond spelled exactly (as documents are stored)."""
    return exact_numbers(dumps(value))


@dataclass(frozen=True)
class Loc:
    """Where a JSON value sits, as SQL expressions.

    ``j``: the JSON value (dialect form); ``typ``: its type name (``NULL`` when
    missing); ``text``: its text when it is a string; ``path``: the literal JSON
    path for a document field (``None`` for list elements); ``pk``: the primary
    key column (always a present string); ``cols``: indexed columns holding the
    value when it is a number and a string prefix (MariaDB generated columns);
    ``fixed``: the kind the bound model's declared type fixes at the path, so that
    a kind test is known without looking (null is still looked at).
    """

    j: str
    typ: str
    text: str
    path: str | None = None
    pk: bool = False
    cols: tuple[str, str] | None = None
    #: What the model's declared type fixes here (a model-bound query), else ``None``.
    fixed: Fixed | None = None


class Translator:
    """Renders query trees for one dialect; collects bound parameters in order."""

    placeholder: ClassVar[str] = "?"
    true: ClassVar[str] = "1"
    false: ClassVar[str] = "0"
    data: ClassVar[str] = "data"

    def __init__(
        self,
        indexed: Mapping[Path, tuple[str, str]] | None = None,
        kinds: Mapping[Path, Fixed] | None = None,
    ) -> None:
        self._values: list[Any] = []
        self._aliases = 0
        #: Paths with index columns (used by dialects whose indexes are columns).
        self.indexed: Mapping[Path, tuple[str, str]] = indexed or {}
        #: Paths whose kind the bound model's declared types fix (empty: a query by name).
        self.kinds: Mapping[Path, Fixed] = kinds or {}

    @staticmethod
    def known_kind(loc: Loc, k: str) -> bool | None:
        """Whether the value at *loc* has kind *k* when that is fixed, else ``None``.

        ``None`` for ``"null"`` (a nullable field may hold it, a kind test decides).
        """
        if loc.fixed is None or k == "null":
            return None
        return k == loc.fixed.kind

    def kind_and(self, loc: Loc, k: str, sql: str) -> str:
        """*sql*, for a value of kind *k* only.

        Where the bound model fixes the kind, *sql* alone: used for equality,
        ``in``, comparisons and ``startswith``, whose dialect forms then exclude a
        value of another kind themselves, in the range an index searches.
        """
        known = self.known_kind(loc, k)
        if known is True:
            return sql
        if known is False:
            return self.false
        return self.all_of([self.is_kind(loc, k), sql])

    # ----------------------------------------------------------------- helpers
    def bind(self, value: Any) -> str:
        """A marker for a bound parameter; :meth:`finish` turns markers into placeholders.

        Markers (not placeholders) because parts of a condition may be dropped or
        repeated after they were rendered, and parameters must follow the final text.
        """
        self._values.append(value)
        return f"\x01{len(self._values) - 1}\x02"

    def finish(self, sql: str) -> tuple[str, list[Any]]:
        """The statement in the driver's paramstyle and its parameters, in order."""
        params: list[Any] = []

        def sub(m: re.Match[str]) -> str:
            params.append(self._values[int(m.group(1))])
            return self.placeholder

        return _MARKER.sub(sub, sql), params

    def alias(self) -> str:
        self._aliases += 1
        return f"e{self._aliases}"

    def coalesce(self, sql: str) -> str:
        """*sql* with ``NULL`` read as false."""
        return f"({sql}) IS TRUE"

    @staticmethod
    def joined(parts: Sequence[str], op: str) -> str:
        """*parts* joined by *op*, in groups of at most :data:`CHUNK` (nested as needed)."""
        while len(parts) > CHUNK:
            parts = [joined_flat(parts[i : i + CHUNK], op) for i in range(0, len(parts), CHUNK)]
        return joined_flat(parts, op)

    def all_of(self, parts: Sequence[str]) -> str:
        parts = [p for p in parts if p != self.true]
        if self.false in parts:
            return self.false
        if not parts:
            return self.true
        return self.joined(parts, "AND")

    def any_of(self, parts: Sequence[str]) -> str:
        parts = [p for p in parts if p != self.false]
        if self.true in parts:
            return self.true
        if not parts:
            return self.false
        return self.joined(parts, "OR")

    def negate(self, sql: str) -> str:
        if sql == self.true:
            return self.false
        if sql == self.false:
            return self.true
        return f"({sql}) IS NOT TRUE"

    # ------------------------------------------------------------- the tree
    def where(self, node: Node | None) -> str:
        """The SQL condition for *node* (``None`` matches everything)."""
        if node is None:
            return self.true
        return self.node(node, negated=False)

    def node(self, node: Node, negated: bool) -> str:
        if isinstance(node, Cond):
            sql = self.cond(node)
            if negated and sql not in (self.true, self.false):
                return self.coalesce(sql)
            return sql
        if isinstance(node, (And, Or)):
            combine = self.all_of if isinstance(node, And) else self.any_of
            children = gathered(node)  # a | of exacts on one path: one bound list
            if node.depth < 2 or len(children) < 2:
                return combine([self.node(c, negated) for c in children])
            # The deepest child first and the rest after it, grouped: each level of
            # nesting then holds one "(" on SQLite's parser stack while the deepest
            # child is read, instead of "( expr AND".
            lead = max(range(len(children)), key=lambda i: children[i].depth)
            rest = [self.node(c, negated) for i, c in enumerate(children) if i != lead]
            return combine([self.node(children[lead], negated), combine(rest)])
        if isinstance(node, Not):
            inner, odd = node.child, True
            while isinstance(inner, Not):  # NOT NOT x is x (two-valued logic)
                inner, odd = inner.child, not odd
            sql = self.node(inner, True)
            return self.negate(sql) if odd else sql
        raise QueryError(f"not a query node: {node!r}")

    def cond(self, c: Cond) -> str:
        loc = self.loc(c.path)
        lk, op = c.lookup, c.operand
        if lk == "exact":
            return self.eq(loc, op)
        if lk == "ne":
            return self.negate(self.eq(loc, op))
        if lk in ("gt", "gte", "lt", "lte"):
            sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[lk]
            return self.compare(loc, sym, op)
        if lk == "between":
            low, high = op
            return self.all_of([self.compare(loc, ">=", low), self.compare(loc, "<=", high)])
        if lk == "in":
            return self.in_list(loc, op)
        if lk == "nin":
            return self.negate(self.in_list(loc, op))
        if lk == "exists":
            present = self.present(loc)
            return present if op else self.negate(present)
        if lk == "isnull":
            if loc.pk:
                return self.false if op else self.true
            if op:
                return f"({loc.typ} IS NULL OR {self.is_kind(loc, 'null')})"
            return self.negate(f"({loc.typ} IS NULL OR {self.is_kind(loc, 'null')})")
        if lk == "contains":
            parts = [self.has_any(loc, [op])]
            if isinstance(op, str):
                parts.append(self.all_of([self.is_kind(loc, "string"), self.s_contains(loc, op)]))
            return self.any_of(parts)
        if lk == "icontains":
            folded = ascii_fold(op)
            elem = self.elements(
                loc,
                lambda e: self.all_of([self.is_kind(e, "string"), self.s_ieq(e, folded)]),
            )
            sub = self.all_of([self.is_kind(loc, "string"), self.s_icontains(loc, folded)])
            return self.any_of([elem, sub])
        if lk == "size":
            return self.size(loc, op)
        if lk == "any":
            return self.has_any(loc, op)
        if lk == "all":
            return self.all_elements(loc, op)
        text_ops: dict[str, Callable[[Loc, str], str]] = {
            "startswith": self.s_startswith,
            "endswith": self.s_endswith,
            "istartswith": lambda loc, op: self.s_istartswith(loc, ascii_fold(op)),
            "iendswith": lambda loc, op: self.s_iendswith(loc, ascii_fold(op)),
            "matches": self.s_matches,
        }
        if lk == "startswith":
            return self.kind_and(loc, "string", self.s_startswith(loc, op))
        if lk in text_ops:
            return self.all_of([self.is_kind(loc, "string"), text_ops[lk](loc, op)])
        raise QueryError(f"unknown lookup {lk!r}")

    def _equal_to(self, op: Any) -> Callable[[Loc], str]:
        return lambda e: self.eq(e, op)

    def in_list(self, loc: Loc, ops: Sequence[Any]) -> str:
        """The value at *loc* equals one of *ops*; dialects bind the list once."""
        return self.any_of([self.eq(loc, o) for o in ops])

    def has_any(self, loc: Loc, ops: Sequence[Any]) -> str:
        """The value at *loc* is a list holding one of *ops* (``any``, ``contains``)."""
        return self.elements(loc, lambda e: self.in_list(e, ops))

    def all_elements(self, loc: Loc, ops: Sequence[Any]) -> str:
        """The value at *loc* is a list holding each of *ops* (``all``)."""
        return self.all_of([self.elements(loc, self._equal_to(o)) for o in ops])

    def present(self, loc: Loc) -> str:
        return self.true if loc.pk else f"{loc.typ} IS NOT NULL"

    def compare(self, loc: Loc, sym: str, op: Any) -> str:
        if isinstance(op, str):
            return self.kind_and(loc, "string", self.s_compare(loc, sym, op))
        if loc.pk:
            return self.false
        return self.kind_and(loc, "number", self.n_compare(loc, sym, op))

    # --------------------------------------------------- dialect primitives
    def loc(self, path: Path) -> Loc:
        raise NotImplementedError

    def is_kind(self, loc: Loc, k: str) -> str:
        raise NotImplementedError

    def eq(self, loc: Loc, op: Any) -> str:
        raise NotImplementedError

    def n_compare(self, loc: Loc, sym: str, op: Any) -> str:
        raise NotImplementedError

    def s_compare(self, loc: Loc, sym: str, op: str) -> str:
        raise NotImplementedError

    def s_contains(self, loc: Loc, op: str) -> str:
        raise NotImplementedError

    def s_icontains(self, loc: Loc, folded: str) -> str:
        raise NotImplementedError

    def s_ieq(self, loc: Loc, folded: str) -> str:
        raise NotImplementedError

    def s_startswith(self, loc: Loc, op: str) -> str:
        raise NotImplementedError

    def s_endswith(self, loc: Loc, op: str) -> str:
        raise NotImplementedError

    def s_istartswith(self, loc: Loc, folded: str) -> str:
        raise NotImplementedError

    def s_iendswith(self, loc: Loc, folded: str) -> str:
        raise NotImplementedError

    def s_matches(self, loc: Loc, pattern: str) -> str:
        raise NotImplementedError

    def size(self, loc: Loc, n: int) -> str:
        raise NotImplementedError

    def elements(self, loc: Loc, body: Callable[[Loc], str]) -> str:
        """``EXISTS`` an element of the list at *loc* for which *body* holds."""
        raise NotImplementedError

    def sort_keys(self, loc: Loc, descending: bool) -> list[str]:
        """``ORDER BY`` terms: kind rank, then number, then string (the rest tie)."""
        raise NotImplementedError

    def values_sql(self, table: str, path: Path, where: str) -> str:
        """Rows for ``values()``: list elements one by one, no nulls."""
        raise NotImplementedError


# ---------------------------------------------------------------------- SQLite
class SQLiteTranslator(Translator):
    """SQLite's JSON1 functions; strings compare with the default BINARY collation."""

    _KINDS: ClassVar[dict[str, str]] = {
        "null": "= 'null'",
        "true": "= 'true'",
        "false": "= 'false'",
        "bool": "IN ('true', 'false')",
        "number": "IN ('integer', 'real')",
        "string": "= 'text'",
        "array": "= 'array'",
        "object": "= 'object'",
    }

    @staticmethod
    def json_path(path: Path) -> str:
        return "'$" + "".join(f'."{check_segment(s)}"' for s in path) + "'"

    def loc(self, path: Path) -> Loc:
        if path == ("pk",):
            return Loc("pk", "'text'", "pk", pk=True)
        p = self.json_path(path)
        j, t = f"json_extract(data, {p})", f"json_type(data, {p})"
        return Loc(j, t, "", path=p, fixed=self.kinds.get(path))

    def value(self, loc: Loc) -> str:
        return loc.j

    def is_kind(self, loc: Loc, k: str) -> str:
        if loc.pk:
            return self.true if k == "string" else self.false
        return f"{loc.typ} {self._KINDS[k]}"

    def eq(self, loc: Loc, op: Any) -> str:
        k = kind(op)
        if loc.pk:
            return f"pk = {self.bind(op)}" if k == "string" else self.false
        if k == "null":
            return self.is_kind(loc, "null")
        if k == "bool":
            return self.is_kind(loc, "true" if op else "false")
        if k in ("number", "string"):
            return self.kind_and(loc, k, f"{loc.j} = {self.bind(op)}")
        # Arrays and objects: JSON equality (numbers by value, keys in any order).
        return self.kind_and(loc, k, f"doqu_json_eq({loc.j}, {self.bind(dumps(op))})")

    def _among(self, sql: str, values: Sequence[Any]) -> str:
        if not values:
            return self.false
        if len(values) == 1:
            return f"{sql} = {self.bind(values[0])}"
        # One JSON array, however long: SQLite binds at most 32,766 parameters.
        return f"{sql} IN (SELECT value FROM json_each({self.bind(dumps(values))}))"

    def in_list(self, loc: Loc, ops: Sequence[Any]) -> str:
        groups = distinct_operands(ops)
        # No stored string holds NUL (and json_each would cut one short).
        strings = [op for op in groups.get("string", ()) if "\x00" not in op]
        if loc.pk:
            return self._among("pk", strings)
        parts = [self.is_kind(loc, "null")] if "null" in groups else []
        parts += [self.is_kind(loc, "true" if b else "false") for b in groups.get("bool", ())]
        for k, values in (("number", groups.get("number", [])), ("string", strings)):
            if values:
                parts.append(self.kind_and(loc, k, self._among(loc.j, values)))
        composite = [canonical(op) for k in ("array", "object") for op in groups.get(k, ())]
        if composite and loc.fixed is None:
            # CASE, not AND: doqu_canonical() must never see a string that is not JSON.
            text = f"CASE WHEN {loc.typ} IN ('array', 'object') THEN doqu_canonical({loc.j}) END"
            parts.append(self._among(text, composite))
        return self.any_of(parts)

    def all_elements(self, loc: Loc, ops: Sequence[Any]) -> str:
        if loc.pk or loc.path is None:
            return self.false
        n = sum(map(len, distinct_operands(ops).values()))
        e = self.alias()
        match = self.in_list(Loc(f"{e}.value", f"{e}.type", f"{e}.value"), ops)
        if match == self.false:
            return self.false
        # Elements equal to an operand, counted once per operand: a key per value (kinds
        # apart, numbers by value) whose distinct count reaches n only if each is there.
        key = (
            f"CASE WHEN {e}.type IN ('integer', 'real') THEN {e}.value"
            f" WHEN {e}.type = 'text' THEN '\"' || {e}.value"
            f" WHEN {e}.type IN ('array', 'object') THEN doqu_canonical({e}.value)"
            f" ELSE {e}.type END"
        )
        return (
            f"({self.is_kind(loc, 'array')} AND json_array_length(data, {loc.path}) >= {n:d}"
            f" AND (SELECT count(DISTINCT {key}) FROM json_each(data, {loc.path}) AS {e}"
            f" WHERE {match}) = {n:d})"
        )

    def n_compare(self, loc: Loc, sym: str, op: Any) -> str:
        sql = f"{loc.j} {sym} {self.bind(op)}"
        if loc.fixed is not None and sym[0] == ">":
            # SQLite orders every number below every text: "< ''" keeps a text (written
            # by other means than the model) out, in the same index range.
            return f"{sql} AND {loc.j} < ''"
        return sql

    def s_compare(self, loc: Loc, sym: str, op: str) -> str:
        sql = f"{loc.j} {sym} {self.bind(op)}"
        if loc.fixed is not None and sym[0] == "<":
            return f"{sql} AND {loc.j} >= ''"  # numbers sort below every text
        return sql

    def s_contains(self, loc: Loc, op: str) -> str:
        return f"doqu_instr({loc.j}, {self.bind(op)}) > 0"

    def s_icontains(self, loc: Loc, folded: str) -> str:
        return f"doqu_instr(lower({loc.j}), {self.bind(folded)}) > 0"

    def s_ieq(self, loc: Loc, folded: str) -> str:
        return f"lower({loc.j}) = {self.bind(folded)}"

    def s_startswith(self, loc: Loc, op: str) -> str:
        exact = f"doqu_instr({loc.j}, {self.bind(op)}) = 1"
        if (loc.path is None and not loc.pk) or "\x00" in op:
            return exact
        # A code point range first (the expression index serves it), then the test.
        parts = [f"{loc.j} >= {self.bind(op)}"]
        high = string_successor(op)
        if high is not None:
            parts.append(f"{loc.j} < {self.bind(high)}")
        return self.all_of([*parts, exact])

    def s_endswith(self, loc: Loc, op: str) -> str:
        return f"doqu_endswith({loc.j}, {self.bind(op)})"

    def s_istartswith(self, loc: Loc, folded: str) -> str:
        return f"doqu_instr(lower({loc.j}), {self.bind(folded)}) = 1"

    def s_iendswith(self, loc: Loc, folded: str) -> str:
        return f"doqu_endswith(lower({loc.j}), {self.bind(folded)})"

    def s_matches(self, loc: Loc, pattern: str) -> str:
        return f"doqu_regexp({self.bind(pattern)}, {loc.j})"

    def size(self, loc: Loc, n: int) -> str:
        if loc.pk or loc.path is None:
            return self.false
        return f"({self.is_kind(loc, 'array')} AND json_array_length(data, {loc.path}) = {n:d})"

    def elements(self, loc: Loc, body: Callable[[Loc], str]) -> str:
        if loc.pk or loc.path is None:
            return self.false
        e = self.alias()
        inner = body(Loc(f"{e}.value", f"{e}.type", f"{e}.value"))
        if inner == self.false:
            return self.false
        return (
            f"({self.is_kind(loc, 'array')} AND EXISTS (SELECT 1 FROM json_each(data, {loc.path})"
            f" AS {e} WHERE {inner}))"
        )

    def sort_keys(self, loc: Loc, descending: bool) -> list[str]:
        d = " DESC" if descending else ""
        if loc.pk:
            return [f"pk{d}"]
        if loc.fixed is not None:
            # One kind or NULL (null and missing), and SQLite puts NULL first ascending:
            # doqu's order, by the indexed expression itself.
            return [f"{loc.j}{d}"]
        t, v = loc.typ, loc.j
        rank = (
            f"CASE WHEN {t} IS NULL OR {t} = 'null' THEN 0 WHEN {t} IN ('integer', 'real')"
            f" THEN 1 WHEN {t} = 'text' THEN 2 ELSE 3 END"
        )
        return [
            f"{rank}{d}",
            f"CASE WHEN {t} IN ('integer', 'real') THEN {v} END{d}",
            f"CASE WHEN {t} = 'text' THEN {v} END{d}",
        ]

    def values_sql(self, table: str, path: Path, where: str) -> str:
        if path == ("pk",):
            return f"SELECT DISTINCT 'text', pk FROM {table} WHERE {where}"
        p = self.json_path(path)
        fixed = self.kinds.get(path)
        if fixed is not None:
            j = f"json_extract(data, {p})"
            label = "number" if fixed.kind == "number" else "text"
            # DISTINCT of the bare expression alone, so the index on it serves it;
            # the kind label outside (a constant in the DISTINCT hides the index).
            found = f"{j} IS NOT NULL" + ("" if where == self.true else f" AND ({where})")
            return f"SELECT '{label}', v FROM (SELECT DISTINCT {j} AS v FROM {table} WHERE {found})"
        # Number kinds merge so that 1 and 1.0 are one value (SQLite compares them equal).
        kinds = "CASE {t} WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' ELSE {t} END"
        scalar = kinds.format(t=f"json_type(data, {p})")
        elem = kinds.format(t="e.type")
        return (
            f"SELECT DISTINCT k, v FROM ("
            f"SELECT {scalar} AS k, json_extract(data, {p}) AS v FROM {table}"
            f" WHERE json_type(data, {p}) NOT IN ('null', 'array') AND ({where})"
            f" UNION ALL SELECT {elem}, e.value FROM {table}, json_each(data, {p}) AS e"
            f" WHERE json_type(data, {p}) = 'array' AND e.type <> 'null' AND ({where}))"
        )


# ------------------------------------------------------------------ PostgreSQL
class PostgresTranslator(Translator):
    """JSONB operators; strings compare ``COLLATE "C"`` (code point order)."""

    placeholder = "%s"
    true = "TRUE"
    false = "FALSE"

    @staticmethod
    def json_expr(path: Path, text: bool = False) -> str:
        segs = [f"'{check_segment(s)}'" for s in path]
        if text:
            return "(data" + "".join(f"->{s}" for s in segs[:-1]) + f"->>{segs[-1]})"
        return "(data" + "".join(f"->{s}" for s in segs) + ")"

    def loc(self, path: Path) -> Loc:
        if path == ("pk",):
            return Loc("pk", "'string'", "pk", pk=True)
        j = self.json_expr(path)
        text = self.json_expr(path, text=True)
        return Loc(j, f"jsonb_typeof({j})", text, path=j, fixed=self.kinds.get(path))

    def kind_and(self, loc: Loc, k: str, sql: str) -> str:
        # The kind test stays where the type fixes the kind: the planner searches the
        # index by the comparison and checks the test on the rows it fetches, and a
        # document written by other means than the model keeps its kind's answers
        # (jsonb orders strings below numbers, which a bare "<" would take in).
        return self.all_of([self.is_kind(loc, k), sql])

    def is_kind(self, loc: Loc, k: str) -> str:
        if loc.pk:
            return self.true if k == "string" else self.false
        if k in ("true", "false"):
            return f"{loc.j} = '{k}'::jsonb"
        name = {"bool": "boolean"}.get(k, k)
        return f"{loc.typ} = '{name}'"

    def eq(self, loc: Loc, op: Any) -> str:
        if holds_nul(op):
            return self.false
        if loc.pk:
            return f"pk = {self.bind(op)}::text" if isinstance(op, str) else self.false
        return f"{loc.j} = {self.bind(dumps_exact(op))}::jsonb"

    def in_list(self, loc: Loc, ops: Sequence[Any]) -> str:
        # jsonb equality is doqu's (numbers by value, objects in any key order).
        values = [op for v in distinct_operands(ops).values() for op in v if not holds_nul(op)]
        if loc.pk:
            values = [op for op in values if isinstance(op, str)]
            if len(values) < 2:
                return self.any_of([self.eq(loc, op) for op in values])
            elems = f"jsonb_array_elements_text({self.bind(dumps(values))}::jsonb)"
            return f"pk IN (SELECT {elems})"
        if len(values) <= SMALL_LIST:
            if len(values) < 2:
                return self.any_of([self.eq(loc, op) for op in values])
            listed = ", ".join(f"{self.bind(dumps_exact(op))}::jsonb" for op in values)
            return f"{loc.j} IN ({listed})"  # = ANY(ARRAY[…]): an index serves it
        found = f"{loc.j} IN (SELECT jsonb_array_elements({self.bind(dumps_exact(values))}::jsonb))"
        if loc.path is None:
            # A list element, inside a correlated subquery: "IS TRUE" keeps the IN a
            # hashed subplan (built once) instead of a join scanning the list per row.
            return f"({found}) IS TRUE"
        return found

    @staticmethod
    def _scalars(ops: Sequence[Any]) -> list[Any] | None:
        """*ops* if none is a list or an object (``@>`` compares those by containment)."""
        if any(isinstance(op, (list, dict)) for op in ops):
            return None
        return [op for op in ops if not (isinstance(op, str) and "\x00" in op)]

    def _contains(self, loc: Loc, values: list[Any]) -> str:
        # jsonb containment of a list of scalars: each equals an element (by jsonb
        # equality); no subquery, so an OR of thousands plans and runs fast.
        return f"{loc.j} @> {self.bind(dumps_exact(values))}::jsonb"

    def has_any(self, loc: Loc, ops: Sequence[Any]) -> str:
        scalars = self._scalars(ops)
        if loc.pk or loc.path is None or scalars is None or len(scalars) > SMALL_LIST:
            return super().has_any(loc, ops)
        found = self.any_of([self._contains(loc, [op]) for op in scalars])
        return self.all_of([self.is_kind(loc, "array"), found])

    def all_elements(self, loc: Loc, ops: Sequence[Any]) -> str:
        if loc.pk:
            return self.false
        scalars = self._scalars(ops)
        n = sum(map(len, distinct_operands(ops).values()))
        # @> scans the list once per operand: for a short list of operands only.
        if scalars is not None and loc.path is not None and len(scalars) <= SMALL_LIST:
            if len(scalars) < len(ops):
                return self.false  # a string holding NUL: in no stored list
            length = f"CASE WHEN {loc.typ} = 'array' THEN jsonb_array_length({loc.j}) END"
            return f"({length} >= {n:d} AND {self._contains(loc, scalars)})"
        e = self.alias()
        match = self.in_list(Loc(f"{e}.v", f"jsonb_typeof({e}.v)", f"({e}.v #>> '{{}}')"), ops)
        if match == self.false:
            return self.false
        # Distinct matching elements (jsonb equality, as the match) reach n only if each
        # operand is there; a list shorter than n cannot hold them all.
        arr = f"CASE WHEN {loc.typ} = 'array' THEN {loc.j} ELSE '[]'::jsonb END"
        return (
            f"(CASE WHEN {loc.typ} = 'array' THEN jsonb_array_length({loc.j}) END >= {n:d}"
            f" AND (SELECT count(DISTINCT {e}.v) FROM jsonb_array_elements({arr}) AS {e}(v)"
            f" WHERE {match}) = {n:d})"
        )

    def n_compare(self, loc: Loc, sym: str, op: Any) -> str:
        return f"{loc.j} {sym} {self.bind(dumps_exact(op))}::jsonb"

    def s_compare(self, loc: Loc, sym: str, op: str) -> str:
        if "\x00" in op:
            # No stored string holds NUL: compare with the part before it instead.
            op = op[: op.index("\x00")]
            sym = {">=": ">", "<": "<="}.get(sym, sym)
        return f'{loc.text} COLLATE "C" {sym} {self.bind(op)}::text'

    def s_contains(self, loc: Loc, op: str) -> str:
        if "\x00" in op:
            return self.false
        return f"strpos({loc.text}, {self.bind(op)}::text) > 0"

    def fold(self, sql: str) -> str:
        return f'lower({sql} COLLATE "C")'

    def s_icontains(self, loc: Loc, folded: str) -> str:
        if "\x00" in folded:
            return self.false
        return f"strpos({self.fold(loc.text)}, {self.bind(folded)}::text) > 0"

    def s_ieq(self, loc: Loc, folded: str) -> str:
        if "\x00" in folded:
            return self.false
        return f"{self.fold(loc.text)} = {self.bind(folded)}::text"

    def s_startswith(self, loc: Loc, op: str) -> str:
        if "\x00" in op:
            return self.false
        # A code point range first (an index on the text COLLATE "C" serves it), then the test.
        parts = [f'{loc.text} COLLATE "C" >= {self.bind(op)}::text']
        high = string_successor(op)
        if high is not None:
            parts.append(f'{loc.text} COLLATE "C" < {self.bind(high)}::text')
        return self.all_of([*parts, f"starts_with({loc.text}, {self.bind(op)}::text)"])

    def s_endswith(self, loc: Loc, op: str) -> str:
        if "\x00" in op:
            return self.false
        p = self.bind(op)
        return f"right({loc.text}, length({p}::text)) = {self.bind(op)}::text"

    def s_istartswith(self, loc: Loc, folded: str) -> str:
        if "\x00" in folded:
            return self.false
        return f"starts_with({self.fold(loc.text)}, {self.bind(folded)}::text)"

    def s_iendswith(self, loc: Loc, folded: str) -> str:
        if "\x00" in folded:
            return self.false
        p = self.bind(folded)
        return f"right({self.fold(loc.text)}, length({p}::text)) = {self.bind(folded)}::text"

    def s_matches(self, loc: Loc, pattern: str) -> str:
        # ARE: "." matches newline and "$" is the end of the string unless asked otherwise;
        # the respelled pattern leaves no class member to ARE's own reading.
        are = regex_replace_end_anchor(pattern, "$")
        return f'{loc.text} COLLATE "C" ~ {self.bind(are)}::text'

    def size(self, loc: Loc, n: int) -> str:
        if loc.pk:
            return self.false
        return f"CASE WHEN {loc.typ} = 'array' THEN jsonb_array_length({loc.j}) END = {n:d}"

    def elements(self, loc: Loc, body: Callable[[Loc], str]) -> str:
        if loc.pk:
            return self.false
        e = self.alias()
        inner = body(Loc(f"{e}.v", f"jsonb_typeof({e}.v)", f"({e}.v #>> '{{}}')"))
        if inner == self.false:
            return self.false
        arr = f"CASE WHEN {loc.typ} = 'array' THEN {loc.j} ELSE '[]'::jsonb END"
        return f"EXISTS (SELECT 1 FROM jsonb_array_elements({arr}) AS {e}(v) WHERE {inner})"

    def sort_keys(self, loc: Loc, descending: bool) -> list[str]:
        d = " DESC" if descending else ""
        if loc.pk:
            return [f'pk COLLATE "C"{d}']
        fixed = loc.fixed
        if fixed is not None:
            # jsonb null sorts below every number, as doqu's order has it; SQL NULL
            # (missing, or a string's null text) needs placing, which an index walk
            # cannot do, so it is only spelled out where it can occur.
            if fixed.kind == "number" and fixed.present:
                key, nulls = loc.j, False
            elif fixed.kind == "number":  # null and missing tie: both SQL NULL
                key, nulls = f"NULLIF({loc.j}, 'null'::jsonb)", True
            else:
                key, nulls = f'{loc.text} COLLATE "C"', fixed.nullable or not fixed.present
            place = (" NULLS LAST" if descending else " NULLS FIRST") if nulls else ""
            return [f"{key}{d}{place}"]
        t = loc.typ
        rank = (
            f"CASE WHEN {t} IS NULL OR {t} = 'null' THEN 0 WHEN {t} = 'number' THEN 1"
            f" WHEN {t} = 'string' THEN 2 ELSE 3 END"
        )
        return [
            f"{rank}{d}",
            f"CASE WHEN {t} = 'number' THEN {loc.j} END{d}",
            f"CASE WHEN {t} = 'string' THEN {loc.text} END COLLATE \"C\"{d}",
        ]

    def values_sql(self, table: str, path: Path, where: str) -> str:
        if path == ("pk",):
            return f"SELECT DISTINCT to_jsonb(pk) FROM {table} WHERE {where}"
        j = self.json_expr(path)
        if path in self.kinds:
            found = f"{j} <> 'null'::jsonb" + ("" if where == self.true else f" AND ({where})")
            return f"SELECT DISTINCT {j} FROM {table} WHERE {found}"
        arr = f"CASE WHEN jsonb_typeof({j}) = 'array' THEN {j} ELSE jsonb_build_array({j}) END"
        return (
            f"SELECT DISTINCT e.v FROM {table} CROSS JOIN LATERAL jsonb_array_elements({arr})"
            f" AS e(v) WHERE jsonb_typeof(e.v) <> 'null' AND ({where})"
        )


# ---------------------------------------------------------------- MariaDB/MySQL
class MySQLTranslator(Translator):
    """MariaDB/MySQL JSON functions; strings compare as binary (code point order)."""

    placeholder = "%s"

    _KINDS: ClassVar[dict[str, str]] = {
        "null": "= 'NULL'",
        "bool": "= 'BOOLEAN'",
        "number": "IN ('INTEGER', 'DOUBLE', 'DECIMAL', 'UNSIGNED INTEGER')",
        "string": "= 'STRING'",
        "array": "= 'ARRAY'",
        "object": "= 'OBJECT'",
    }

    @staticmethod
    def json_path(path: Path) -> str:
        return "'$" + "".join(f'."{check_segment(s)}"' for s in path) + "'"

    @staticmethod
    def index_columns(path: Path) -> tuple[str, str]:
        """Names of the generated columns holding *path* as a number and as a string prefix."""
        ident = hashlib.sha1(".".join(path).encode()).hexdigest()[:16]
        return f"`doqu_n_{ident}`", f"`doqu_s_{ident}`"

    @classmethod
    def column_exprs(cls, path: Path) -> tuple[str, str]:
        """The generated columns' expressions: ``NULL`` unless the value has that kind."""
        p = cls.json_path(path)
        j = f"JSON_EXTRACT(data, {p})"
        kinds = cls._KINDS["number"]
        number = f"IF(JSON_TYPE({j}) {kinds}, CAST(JSON_UNQUOTE({j}) AS DOUBLE), NULL)"
        string = (
            f"IF(JSON_TYPE({j}) = 'STRING',"
            f" LEFT(CAST(JSON_UNQUOTE({j}) AS BINARY), {STRING_PREFIX}), NULL)"
        )
        return number, string

    def loc(self, path: Path) -> Loc:
        if path == ("pk",):
            return Loc("pk", "'STRING'", "pk", pk=True)
        p = self.json_path(path)
        j = f"JSON_EXTRACT(data, {p})"
        return Loc(j, f"JSON_TYPE({j})", f"JSON_UNQUOTE({j})", path=p, cols=self.indexed.get(path))

    @staticmethod
    def binary(sql: str) -> str:
        return f"CAST({sql} AS BINARY)"

    def fold(self, sql: str) -> str:
        # LOWER() folds non-ASCII letters too (or nothing, on binary strings): fold A-Z only.
        out = self.binary(sql)
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            out = f"REPLACE({out}, '{c}', '{c.lower()}')"
        return out

    def is_kind(self, loc: Loc, k: str) -> str:
        if loc.pk:
            return self.true if k == "string" else self.false
        if k in ("true", "false"):
            return f"({loc.typ} = 'BOOLEAN' AND {self.binary(loc.j)} = '{k}')"
        return f"{loc.typ} {self._KINDS[k]}"

    def eq(self, loc: Loc, op: Any) -> str:
        k = kind(op)
        if loc.pk:
            return f"{self.binary('pk')} = {self.bind_bin(op)}" if k == "string" else self.false
        if k == "null":
            return self.is_kind(loc, "null")
        if k == "bool":
            return self.is_kind(loc, "true" if op else "false")
        if k == "number":
            return self.all_of([self.is_kind(loc, k), self.n_compare(loc, "=", op)])
        if k == "string":
            return self.all_of([self.is_kind(loc, k), self.s_compare(loc, "=", op)])
        return f"({self.is_kind(loc, k)} AND JSON_EQUALS({loc.j}, {self.bind(dumps_exact(op))}))"

    def bind_bin(self, op: str) -> str:
        return self.binary(self.bind(op))

    def _among(self, sql: str, values: Sequence[Any]) -> str:
        # A constant IN list: MariaDB sorts it once and searches it per row.
        if not values:
            return self.false
        if len(values) == 1:
            return f"{sql} = {self.bind(values[0])}"
        return f"{sql} IN ({', '.join(self.bind(v) for v in values)})"

    def _small(self, loc: Loc) -> str:
        """The number at *loc* compares exactly as a double (else as a 64-bit integer)."""
        return f"(ABS({self.number(loc)}) < {EXACT_DOUBLE:d} OR {loc.text} NOT REGEXP '^-?[0-9]+$')"

    @staticmethod
    def _number_forms(nums: Sequence[Any]) -> tuple[list[float], list[int]]:
        """Each operand as the double and as the 64-bit integer it equals (where one does)."""
        doubles: dict[float, None] = {}
        ints: dict[int, None] = {}
        for op in nums:
            d, i = double_bound("=", op), int_bound("=", op)
            if not isinstance(d, bool):
                doubles[d[1]] = None
            if not isinstance(i, bool):
                ints[int(i[1])] = None
        return list(doubles), list(ints)

    def in_list(self, loc: Loc, ops: Sequence[Any]) -> str:
        groups = distinct_operands(ops)
        strings = [op.encode("utf-8") for op in groups.get("string", ())]
        if loc.pk:
            return self._among(self.binary("pk"), strings)
        parts = [self.is_kind(loc, "null")] if "null" in groups else []
        parts += [self.is_kind(loc, "true" if b else "false") for b in groups.get("bool", ())]
        nums = groups.get("number", [])
        if nums:
            doubles, ints = self._number_forms(nums)
            exact = (
                f"CASE WHEN {self._small(loc)} THEN {self._among(self.number(loc), doubles)}"
                f" ELSE {self._among(f'CAST({loc.text} AS SIGNED)', ints)} END"
            )
            if loc.cols is not None:
                # The index column holds the value rounded to a double: a necessary condition.
                rounded = list(dict.fromkeys(float(op) for op in nums))
                exact = self.all_of([self._among(loc.cols[0], rounded), exact])
            parts.append(self.all_of([self.is_kind(loc, "number"), exact]))
        if strings:
            exact = self._among(self.binary(loc.text), strings)
            if loc.cols is not None:
                prefixes = list(dict.fromkeys(s[:STRING_PREFIX] for s in strings))
                exact = self.all_of([self._among(loc.cols[1], prefixes), exact])
            parts.append(self.all_of([self.is_kind(loc, "string"), exact]))
        parts += [self.eq(loc, op) for k in ("array", "object") for op in groups.get(k, ())]
        return self.any_of(parts)

    def all_elements(self, loc: Loc, ops: Sequence[Any]) -> str:
        if loc.pk or loc.path is None:
            return self.false
        groups = distinct_operands(ops)
        n = sum(map(len, groups.values()))
        if n <= 2:
            # A subquery per operand: MariaDB gives each COUNT(DISTINCT) below a buffer
            # of its own (about half a MiB), which an OR of many short lists would add up.
            return super().all_elements(loc, [op for g in groups.values() for op in g])
        e = self.alias()
        j = f"{e}.v"
        el = Loc(j, f"JSON_TYPE({j})", f"JSON_UNQUOTE({j})")
        match = self.in_list(el, ops)
        if match == self.false:
            return self.false
        # Elements equal to an operand, counted once per operand: one key per operand,
        # in families that each count at most their operands, so the sum reaches n only
        # if every operand is there. Numbers that a double holds exactly are keyed by
        # the double (reached from either spelling), others by the 64-bit integer.
        exact_double: list[int] = []
        only_int: list[int] = []
        for op in groups.get("number", ()):
            i = int_bound("=", op)
            if not isinstance(i, bool):
                (exact_double if float(i[1]) == i[1] else only_int).append(int(i[1]))
        num, as_int = self.is_kind(el, "number"), f"CAST({el.text} AS SIGNED)"
        keys: list[str] = []
        if "number" in groups:
            keys.append(
                f"COUNT(DISTINCT CASE WHEN {num} THEN CASE WHEN {self._small(el)}"
                f" THEN {self.number(el)} WHEN {self._among(as_int, exact_double)}"
                f" THEN {self.number(el)} END END)"
            )
        if only_int:
            keys.append(
                f"COUNT(DISTINCT CASE WHEN {num} AND NOT {self._small(el)}"
                f" AND {self._among(as_int, only_int)} THEN {as_int} END)"
            )
        if "string" in groups:
            text = self.binary(el.text)
            keys.append(f"COUNT(DISTINCT CASE WHEN {self.is_kind(el, 'string')} THEN {text} END)")
        if groups.keys() & {"null", "bool"}:
            kinds = f"{el.typ} IN ('NULL', 'BOOLEAN')"
            keys.append(f"COUNT(DISTINCT CASE WHEN {kinds} THEN {self.binary(j)} END)")
        composite = [op for k in ("array", "object") for op in groups.get(k, ())]
        if composite:
            whens = " ".join(f"WHEN {self.eq(el, op)} THEN {i:d}" for i, op in enumerate(composite))
            keys.append(f"COUNT(DISTINCT CASE {whens} END)")
        each = f"JSON_TABLE(data, {loc.path[:-1]}[*]' COLUMNS (v JSON PATH '$')) AS {e}"
        return (
            f"({self.is_kind(loc, 'array')} AND JSON_LENGTH({loc.j}) >= {n:d}"
            f" AND (SELECT {' + '.join(keys)} FROM {each} WHERE {match}) = {n:d})"
        )

    def number(self, loc: Loc) -> str:
        return f"CAST({loc.text} AS DOUBLE)"

    def _side(self, expr: str, bound: tuple[str, Any] | bool) -> str:
        if bound is True or bound is False:
            return self.true if bound else self.false
        sym, value = bound
        return f"{expr} {sym} {self.bind(value)}"

    def n_compare(self, loc: Loc, sym: str, op: Any) -> str:
        # Exact: doubles compare as doubles (the operand rounded in Python to a bound that
        # keeps the answer), integers beyond 2**53 as BIGINT (the operand floored/ceiled).
        as_double = self._side(self.number(loc), double_bound(sym, op))
        as_int = self._side(f"CAST({loc.text} AS SIGNED)", int_bound(sym, op))
        if as_double == as_int and as_double in (self.true, self.false):
            exact = as_double
        else:
            exact = (
                f"CASE WHEN ABS({self.number(loc)}) < {EXACT_DOUBLE:d}"
                f" OR {loc.text} NOT REGEXP '^-?[0-9]+$' THEN {as_double} ELSE {as_int} END"
            )
        if loc.cols is None or exact == self.false:
            return exact
        # The index column holds the value rounded to a double: a necessary condition.
        return self.all_of([f"{loc.cols[0]} {_WEAK[sym]} {self.bind(float(op))}", exact])

    def _prefix(self, op: str) -> bytes:
        return op.encode("utf-8")[:STRING_PREFIX]

    def s_compare(self, loc: Loc, sym: str, op: str) -> str:
        exact = f"{self.binary(loc.text)} {sym} {self.bind_bin(op)}"
        if loc.cols is None:
            return exact
        # The index column holds a byte prefix: truncation keeps the order, weakly.
        return f"({loc.cols[1]} {_WEAK[sym]} {self.bind(self._prefix(op))} AND {exact})"

    def s_contains(self, loc: Loc, op: str) -> str:
        return f"LOCATE({self.bind_bin(op)}, {self.binary(loc.text)}) > 0"

    def s_icontains(self, loc: Loc, folded: str) -> str:
        return f"LOCATE({self.bind_bin(folded)}, {self.fold(loc.text)}) > 0"

    def s_ieq(self, loc: Loc, folded: str) -> str:
        return f"{self.fold(loc.text)} = {self.bind_bin(folded)}"

    def _starts(self, sql: str, op: str) -> str:
        p = self.bind_bin(op)
        return f"LEFT({sql}, LENGTH({p})) = {self.bind_bin(op)}"

    def _ends(self, sql: str, op: str) -> str:
        p = self.bind_bin(op)
        return f"RIGHT({sql}, LENGTH({p})) = {self.bind_bin(op)}"

    def s_startswith(self, loc: Loc, op: str) -> str:
        exact = self._starts(self.binary(loc.text), op)
        if loc.cols is None:
            return exact
        low = self._prefix(op)
        parts = [f"{loc.cols[1]} >= {self.bind(low)}"]
        high = bytes_successor(low)
        if high is not None:
            parts.append(f"{loc.cols[1]} < {self.bind(high)}")
        return self.all_of([*parts, exact])

    def s_endswith(self, loc: Loc, op: str) -> str:
        return self._ends(self.binary(loc.text), op)

    def s_istartswith(self, loc: Loc, folded: str) -> str:
        return self._starts(self.fold(loc.text), folded)

    def s_iendswith(self, loc: Loc, folded: str) -> str:
        return self._ends(self.fold(loc.text), folded)

    def s_matches(self, loc: Loc, pattern: str) -> str:
        # PCRE: case-sensitive, "." matches newline, "$" only at the very end.
        pcre = "(?s-i)" + regex_replace_end_anchor(pattern, r"\z")
        return f"{loc.text} REGEXP {self.bind(pcre)}"

    def size(self, loc: Loc, n: int) -> str:
        if loc.pk:
            return self.false
        return f"({self.is_kind(loc, 'array')} AND JSON_LENGTH({loc.j}) = {n:d})"

    def elements(self, loc: Loc, body: Callable[[Loc], str]) -> str:
        if loc.pk or loc.path is None:
            return self.false
        e = self.alias()
        j = f"{e}.v"
        inner = body(Loc(j, f"JSON_TYPE({j})", f"JSON_UNQUOTE({j})"))
        if inner == self.false:
            return self.false
        each = f"JSON_TABLE(data, {loc.path[:-1]}[*]' COLUMNS (v JSON PATH '$')) AS {e}"
        return f"({self.is_kind(loc, 'array')} AND EXISTS (SELECT 1 FROM {each} WHERE {inner}))"

    def sort_keys(self, loc: Loc, descending: bool) -> list[str]:
        d = " DESC" if descending else ""
        if loc.pk:
            return [f"pk{d}"]
        t = loc.typ
        num = self._KINDS["number"]
        rank = (
            f"CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN 0 WHEN {t} {num} THEN 1"
            f" WHEN {t} = 'STRING' THEN 2 ELSE 3 END"
        )
        n, text = self.number(loc), loc.text
        # Numbers that tie as doubles beyond 2**53 are ordered by their exact integer value.
        exact = (
            f"CASE WHEN {t} {num} AND ABS({n}) >= {EXACT_DOUBLE:d} THEN CASE"
            f" WHEN {text} REGEXP '^-?[0-9]+$' THEN CAST({text} AS DECIMAL(20, 0))"
            f" WHEN {n} >= 9223372036854775808e0 THEN 9223372036854775808"
            f" WHEN {n} < -9223372036854775808e0 THEN -9223372036854775809"
            f" ELSE CAST(CAST({n} AS SIGNED) AS DECIMAL(20, 0)) END END{d}"
        )
        return [
            f"{rank}{d}",
            f"CASE WHEN {t} {num} THEN {n} END{d}",
            exact,
            f"CASE WHEN {t} = 'STRING' THEN {self.binary(loc.text)} END{d}",
        ]

    def values_sql(self, table: str, path: Path, where: str) -> str:
        if path == ("pk",):
            return f"SELECT DISTINCT JSON_QUOTE(pk) FROM {table} WHERE {where}"
        p = self.json_path(path)
        j = f"JSON_EXTRACT(data, {p})"
        each = f"JSON_TABLE(data, {p[:-1]}[*]' COLUMNS (v JSON PATH '$')) AS e"
        return (
            f"SELECT DISTINCT v FROM ("
            f"SELECT {j} AS v FROM {table} WHERE JSON_TYPE({j}) NOT IN ('NULL', 'ARRAY')"
            f" AND ({where}) UNION ALL SELECT e.v FROM {table}, {each}"
            f" WHERE JSON_TYPE({j}) = 'ARRAY' AND JSON_TYPE(e.v) <> 'NULL' AND ({where})) AS u"
        )


def joined_flat(parts: Sequence[str], op: str) -> str:
    """*parts* joined by one flat *op*, in parentheses (a single part as it is)."""
    return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"


def holds_nul(value: Any) -> bool:
    """Whether a JSON value holds NUL in any string or key (PostgreSQL stores none)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
    return False
