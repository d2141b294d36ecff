"""Hostile field paths and values through every query entry point, on every backend.

Hypothesis draws field paths (quotes, semicolons, comments, ``$``, dots,
unicode, very long) and values (SQL and NoSQL injection shapes, NUL, lone
surrogates, NaN/Infinity, integers beyond 64 bits, deeply nested or very large
documents) and sends them through every lookup, ``order_by``, ``values``,
``update``, ``save`` and the mapping view. Each outcome must be a
``QueryError``/``TypeError``/``ValueError`` or the reference evaluator's
answer on the same documents, and no document outside the target may change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import doqu
from doqu._evaluator import apply_update, canonical, distinct, matches, resolve, sort_rows
from doqu._json import json_equal, sort_key
from doqu._tree import LOOKUPS, UPDATE_OPERATORS, make_cond, parse_path, parse_update

from .conftest import count

EXAMPLES = int(os.environ.get("DOQU_HOSTILE_EXAMPLES", "60"))
REFUSED = (ValueError, TypeError)  # QueryError, InvalidDocument and ConfigError are ValueErrors

SEED: list[dict[str, Any]] = [
    {"pk": "t0", "name": "x' OR 1=1 --", "n": 1, "tags": ["a", "$gt"], "o": {"x": "%", "y": None}},
    {"pk": "t1", "name": '{"$gt": ""}', "n": 9223372036854775807, "tags": [], "o": {"x": "_"}},
    {"pk": "t2", "name": "'; DROP TABLE h; --", "n": -1.5, "tags": ["'", '"'], "名前": "é"},
    {"pk": "t3", "name": "a\\b%_*", "n": 0, "o": {"x": {"ne": None}}, "é": 1},
    {"pk": "t4", "name": 'Robert"); DELETE FROM h; --', "tags": ["x"] * 3, "o": None},
    {"pk": "t5", "n": True, "name": "", "o": {"x": [1, {"y": "z"}]}},
]
TARGET = "t1"  # the one document update() may change
OTHER = [{"pk": f"o{i}", "v": i, "name": "x' OR 1=1 --"} for i in range(3)]

FRAGMENTS = [
    "a", "name", "n", "o", "x", "y", "tags", "pk", "名前", "é", "_", "__", ".", "..",
    "'", '"', ";", "--", "/*", "*/", "#", "$", "$gt", "$where", " ", "\x00", "\ud800", "`",
    "\\", "%", "(", ")", "=", "1", "\n", "{", "}", "[0]", "->", "->>", "#>>", "a" * 129,
    "exact", "in", "gt",
]  # fmt: skip

INJECTIONS = [
    "x' OR 1=1 --", "'; DROP TABLE h; --", "\" OR \"\"=\"", "1; SELECT 1", "*/ OR 1=1 /*",
    "%", "_", "\\", "\\'", "' || '1'='1", "$gt", '{"$gt": ""}', "'; --", "\x00", "a\x00b",
    "\ud800", "\udfff", "é", "名前", "", " ", "\n", "' UNION SELECT pk, data FROM h --",
]  # fmt: skip
NOSQL = [
    {"$gt": ""}, {"$ne": None}, {"$where": "sleep(1)"}, {"$regex": ".*"}, {"$in": [1, 2]},
    {"x": {"$exists": True}}, {"$expr": {"$eq": [1, 1]}}, {"": 1}, {"a.b": 1},
]  # fmt: skip
NUMBERS = [
    math.nan, math.inf, -math.inf, 2**64, -(2**63) - 1, 2**63 - 1, -(2**63), 10**30, 1e308,
    -0.0, 0, 1, True, False,
]  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    how = draw(st.integers(0, 9))
    if how == 0:
        return draw(st.text(max_size=30))
    if how == 1:
        return ".".join(["a"] * draw(st.integers(30, 40)))
    if how == 2:
        return "a" * draw(st.integers(120, 300))
    return "".join(draw(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5)))


scalars = st.one_of(
    st.sampled_from(INJECTIONS),
    st.sampled_from(NUMBERS),
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.floats(),
)
hostile_values = st.one_of(
    scalars,
    st.sampled_from(NOSQL),
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(FRAGMENTS), scalars, max_size=3),
    st.integers(50, 400).map(_nested),
    st.sampled_from(["x" * 70_000, "é" * 300_000]),
)


def _operand(lookup: str) -> st.SearchStrategy[Any]:
    if lookup == "between":
        return st.one_of(st.tuples(scalars, scalars), hostile_values)
    if lookup in ("in", "nin", "all", "any"):
        return st.one_of(st.lists(hostile_values, max_size=4), hostile_values)
    return hostile_values


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, Any]:
    lookup = draw(st.sampled_from(sorted(LOOKUPS)))
    path = draw(st.one_of(hostile_paths(), st.sampled_from(["name", "n", "tags", "o__x", "名前"])))
    key = path if draw(st.booleans()) and lookup == "exact" else f"{path}__{lookup}"
    return key, draw(_operand(lookup))


def _rows(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["pk"], {k: v for k, v in d.items() if k != "pk"}) for d in docs]


def _same_docs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    by_pk = {d["pk"]: d for d in b}
    return len(a) == len(b) and all(d["pk"] in by_pk and json_equal(d, by_pk[d["pk"]]) for d in a)


class Battery:
    """One backend's store, reset before each example, and what it was asked."""

    def __init__(self, db: doqu.Storage, backend: str) -> None:
        self.db = db
        self.backend = backend
        db.save_many(OTHER, collection="bystanders")

        self.dirty = True

    def reset(self) -> None:
        """Seed the documents again if the last example may have changed them."""
        if self.dirty:
            self.db.clear("hmap")
            self.db.clear("h")
            self.db.save_many(SEED, collection="h")
            self.dirty = False

    def stored(self, name: str = "h") -> list[dict[str, Any]]:
        return list(self.db.query(name))

    def outcome(self, call: Callable[[], Any]) -> tuple[str, Any]:
        """``("ok", result)`` or ``("refused", exc)``; any other exception is an injection."""
        try:
            return "ok", call()
        except REFUSED as exc:
            return "refused", exc
        except Exception as exc:
            count("hostile input", self.backend, driver_errors_leaked=1)
            raise AssertionError(f"{self.backend}: {type(exc).__name__} leaked: {exc}") from exc

    def tally(self, *kinds: str) -> None:
        """Count the cases tried and how each ended (answered or refused)."""
        count(
            "hostile input",
            self.backend,
            cases_tried=len(kinds),
            injections=0,
            driver_errors_leaked=0,
            wrong_answers=0,
        )
        for kind in kinds:
            count("hostile input", self.backend, **{"answered" if kind == "ok" else kind: 1})

    def untouched(self, expected_h: list[dict[str, Any]]) -> None:
        if not (
            _same_docs(self.stored(), expected_h) and _same_docs(self.stored("bystanders"), OTHER)
        ):
            count("hostile input", self.backend, injections=1)
            raise AssertionError(f"{self.backend}: documents outside the target changed")

    def wrong(self, what: str, got: Any, expected: Any) -> None:
        count("hostile input", self.backend, wrong_answers=1)
        raise AssertionError(f"{self.backend} {what}: got {got!r}, the evaluator says {expected!r}")


@pytest.fixture
def battery(db: doqu.Storage, backend: str) -> Battery:
    return Battery(db, backend)


def _settings() -> Callable[[Any], Any]:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        # No shrinking: a failure is reported as found (derandomized, so it repeats),
        # and the battery stays within its time budget even when it fails.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.mark.slow
@_settings()
@given(cond=conditions(), negate=st.booleans())
def test_hostile_lookups(battery: Battery, cond: tuple[str, Any], negate: bool) -> None:
    battery.reset()
    key, value = cond

    def run() -> tuple[list[str], int]:
        q = battery.db.query("h")
        q = q.where_not(**{key: value}) if negate else q.where(**{key: value})
        return sorted(d["pk"] for d in q), q.count()

    kind, result = battery.outcome(run)
    battery.tally(kind)
    if kind == "ok":
        node = make_cond(key, value)
        want = sorted(pk for pk, data in _rows(SEED) if matches(node, pk, data) != negate)
        got, counted = result
        if got != want:
            battery.wrong(f"where({key!r}={value!r})", got, want)
        if counted != len(want):
            battery.wrong(f"count of {key!r}={value!r}", counted, len(want))
    battery.untouched(SEED)


@pytest.mark.slow
@_settings()
@given(path=hostile_paths(), descending=st.booleans())
def test_hostile_order_by_and_values(battery: Battery, path: str, descending: bool) -> None:
    battery.reset()
    q = battery.db.query("h")
    kind, got = battery.outcome(lambda: list(q.order_by(("-" if descending else "") + path)))
    kind_v, values = battery.outcome(lambda: q.values(path))
    battery.tally(kind, kind_v)
    if kind == "ok":
        segs = parse_path(path)
        want = sort_rows(_rows(SEED), [(segs, descending)])
        keys = [sort_key(resolve(d["pk"], d, segs)) for d in got]
        want_keys = [sort_key(resolve(pk, data, segs)) for pk, data in want]
        if keys != want_keys or sorted(d["pk"] for d in got) != sorted(d["pk"] for d in SEED):
            battery.wrong(f"order_by({path!r})", [d["pk"] for d in got], [pk for pk, _ in want])
    if kind_v == "ok":
        want_v = sorted(canonical(v) for v in distinct(_rows(SEED), parse_path(path)))
        if sorted(canonical(v) for v in values) != want_v:
            battery.wrong(f"values({path!r})", values, want_v)
    battery.untouched(SEED)


@st.composite
def updates(draw: st.DrawFn) -> tuple[str, Any]:
    op = draw(st.sampled_from(sorted(UPDATE_OPERATORS)))
    path = draw(st.one_of(hostile_paths(), st.sampled_from(["name", "n", "tags", "o__x", "新"])))
    value = draw(st.one_of(hostile_values, st.just(True))) if op != "inc" else draw(scalars)
    return f"{path}__{op}", value


@pytest.mark.slow
@_settings()
@given(change=updates())
def test_hostile_updates_change_only_the_target(battery: Battery, change: tuple[str, Any]) -> None:
    battery.reset()
    key, value = change
    q = battery.db.query("h").where(pk=TARGET)
    battery.dirty = True
    kind, changed = battery.outcome(lambda: q.update(**{key: value}))
    battery.tally(kind)
    expected = [dict(d) for d in SEED]
    if kind == "ok":
        ops = parse_update({key: value})
        i = next(i for i, d in enumerate(SEED) if d["pk"] == TARGET)
        new = apply_update(_rows(SEED)[i][1], ops)
        expected[i] = {"pk": TARGET, **new}
        want = int(not json_equal(new, _rows(SEED)[i][1]))
        if changed != want:
            battery.wrong(f"update({key!r}={value!r}) count", changed, want)
    battery.untouched(expected)


@pytest.mark.slow
@_settings()
@given(
    key=st.one_of(st.sampled_from(INJECTIONS), hostile_paths(), st.sampled_from(NUMBERS)),
    value=hostile_values,
    field=hostile_paths(),
)
def test_hostile_documents_and_mapping_keys(
    battery: Battery, key: Any, value: Any, field: str
) -> None:
    battery.reset()
    battery.dirty = True
    d = battery.db.dict("hmap")
    kind, _ = battery.outcome(lambda: d.__setitem__(key, value))
    doc = {"pk": "doc", field: value, "v": value}
    kind_s, _ = battery.outcome(lambda: battery.db.save(doc, collection="h"))
    battery.tally(kind, kind_s)
    if kind == "ok":
        if list(d) != [key] or not json_equal(d[key], value):
            battery.wrong(f"dict[{key!r}] = {value!r}", dict(d), {key: value})
    elif len(d):
        battery.wrong(f"refused dict[{key!r}] wrote", dict(d), {})
    expected = list(SEED)
    if kind_s == "ok":
        stored = battery.db.get("h", "doc")
        if not json_equal(stored, doc):
            battery.wrong(f"save({field!r}: {value!r})", stored, doc)
        expected.append(doc)
    battery.untouched(expected)
