"""Backend-independent tests of the core: keys, documents, the query tree, the registry,
packaging and thread safety (on ``memory://``)."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    RootModel,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import PydanticSerializationError

import doqu
from doqu import ConfigError, Document, Q, QueryError, _registry
from doqu._pk import new_pk, new_pks
from doqu._tree import And, Cond, Not, Or, make_cond, parse_path
from doqu.testing import conformance

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mem() -> Iterator[doqu.Storage]:
    db = doqu.connect("memory://")
    try:
        yield db
    finally:
        db.close()


# ------------------------------------------------------------------ keys
def test_pks_unique_increasing_hex() -> None:
    pks = [new_pk() for _ in range(10_000)]
    assert len(set(pks)) == 10_000
    assert all(a < b for a, b in itertools.pairwise(pks))
    assert all(re.fullmatch(r"[0-9a-f]{32}", pk) for pk in pks[:100])
    assert {pk[12] for pk in pks} == {"7"}  # UUIDv7
    assert {pk[16] for pk in pks} <= set("89ab")  # RFC 4122 variant


def test_batched_pks_interleave_in_order() -> None:
    pks = [new_pk(), *new_pks(5_000), new_pk(), *new_pks(1), *new_pks(0), new_pk()]
    assert len(pks) == len(set(pks)) == 5_004
    assert all(a < b for a, b in itertools.pairwise(pks))
    assert {pk[12] for pk in pks} == {"7"} and {pk[16] for pk in pks} <= set("89ab")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_makes_other_keys() -> None:
    new_pk()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, "".join(new_pks(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 200).decode()
    os.close(read)
    mine = "".join(new_pks(3))
    assert len(theirs) == 96
    # Same clock and counter state at the fork: only reseeded random bits differ.
    assert {theirs[i : i + 32][16:] for i in (0, 32, 64)}.isdisjoint(
        {mine[i : i + 32][16:] for i in (0, 32, 64)}
    )


def test_pks_increase_across_threads() -> None:
    lock = threading.Lock()
    made: list[str] = []
    per_thread: dict[int, list[str]] = {}

    def work(i: int) -> None:
        mine = per_thread.setdefault(i, [])
        for _ in range(2000):
            with lock:  # the append order is the creation order
                pk = new_pk()
                made.append(pk)
            mine.append(pk)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8000
    assert made == sorted(made)
    for mine in per_thread.values():
        assert mine == sorted(mine)


def test_pks_increase_without_lock_per_thread() -> None:
    per_thread: dict[int, list[str]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(2000):
            per_thread[i].append(new_pk())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [pk for mine in per_thread.values() for pk in mine]
    assert len(set(everything)) == 8000
    for mine in per_thread.values():
        assert all(a < b for a, b in itertools.pairwise(mine))


# ------------------------------------------------------------- documents
class HTTPRequest(Document):
    url: str


class Plain(Document):
    x: int = 0


class MyDoc2(Document):
    pass


def test_default_collection_names() -> None:
    assert HTTPRequest.__doqu_collection__.name == "http_request"
    assert Plain.__doqu_collection__.name == "plain"
    assert MyDoc2.__doqu_collection__.name == "my_doc2"
    assert conformance.Person.__doqu_collection__.name == "people"


def test_meta_parsing() -> None:
    class Indexed(Document):
        a: int = 0

        class Meta:
            collection = "idx"
            indexes = ["a", ("a", "b.c"), "d__e"]  # noqa: RUF012
            unique = [("a", "b")]  # noqa: RUF012

    info = Indexed.__doqu_collection__
    assert info.name == "idx"
    assert info.indexes == ((("a",),), (("a",), ("b", "c")), (("d", "e"),))
    assert info.unique == ((("a",), ("b",)),)
    with pytest.raises(QueryError):

        class BadIndex(Document):
            class Meta:
                indexes = ["a b"]  # noqa: RUF012

    with pytest.raises(QueryError):

        class BadName(Document):
            class Meta:
                collection = "no spaces"


def test_pk_not_dumped_and_user_pk() -> None:
    p = Plain(pk="mine", x=3)
    assert p.pk == "mine"
    assert p.model_dump() == {"x": 3}
    assert p.model_dump(mode="json") == {"x": 3}
    assert "pk" not in p.model_dump_json()


def test_invalid_document_never_written(mem: doqu.Storage) -> None:
    from pydantic import ValidationError

    mem.save(Plain(x=1))
    with pytest.raises(ValidationError):
        Plain(x="not int")
    bad = Plain(x=1)
    bad.x = "oops"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        mem.save(bad)
    with pytest.raises(ValidationError):
        mem.save_many([Plain(x=2), bad])
    assert [p.x for p in mem.query(Plain)] == [1]


class Loose(Document):
    class Meta:
        collection = "loose"


def _nested(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("url", ["memory://", "sqlite://", "tinydb:///{tmp}/t.json"])
def test_fast_encoding_refuses_what_check_json_refuses(url: str, tmp_path: Path) -> None:
    from doqu import InvalidDocument

    db = doqu.connect(url.format(tmp=tmp_path))
    try:
        look_alike = "NaN Infinity 12345678901234567890 _id"
        kept = Loose(text=look_alike, n=2**63 - 1, m=-(2**63), inner={"_id": 1})
        deep = Loose(x=_nested(29), brackets="[[[[[[[[[[{{{{{{{{{{[[[[[[[[[[{{{{{{")
        db.save_many([kept, Loose(x=1.5), deep])
        db.save(Loose(pk="deep", x=_nested(29)))
        with pytest.raises(TypeError):
            db.dict("kv")["k"] = _nested(30)  # 30 levels under {"value": ...}
        db.dict("kv")["k"] = _nested(29)
        bad = [
            Loose(x=float("nan")),
            Loose(x=[float("-inf")]),
            Loose(x=2**63),
            Loose(x={"deep": -(2**63) - 1}),
            Loose(x="lone \ud800 surrogate"),
            Loose(_id="reserved"),
            Loose(x=_nested(30)),  # the document itself is level 1: 31 levels
        ]
        for doc in bad:
            with pytest.raises(InvalidDocument):
                db.save_many([Loose(y=1), doc])
        assert db.query(Loose).count() == 4
        got = db.get(Loose, kept.pk or "")
        assert got.model_dump() == kept.model_dump()
        assert db.query(Loose).where(text=look_alike).count() == 1
    finally:
        db.close()


class Bounded(Document):
    """Every type bounded: the save path skips every text scan (see ``doqu._encoding``)."""

    n: int = Field(ge=0, le=100)
    word: str = "w"
    words: list[str] = []  # noqa: RUF012 - pydantic copies defaults


class Typed(Document):
    """Unbounded ints and floats: the scans for big ints and NaN stay."""

    n: int = 0
    f: float = 0.0


class Bumped(Document):
    """A validator may return anything: every scan stays."""

    n: int = 0

    @field_validator("n")
    @classmethod
    def _huge(cls, n: int) -> int:
        return 2**70 if n == 7 else n


class Keyed(Document):
    """Free-form keys: the key scan stays."""

    marks: dict[str, bool] = Field(default_factory=dict)


class Tree(BaseModel):
    kids: list[Tree] = []


class Forest(Document):
    """A recursive type: no depth bound, the nesting check stays."""

    tree: Tree = Tree()


def test_save_plans_follow_the_schema() -> None:
    from doqu._encoding import ALL_CHECKS, TextChecks, save_plan

    bounded = save_plan(Bounded)
    assert bounded.checks == TextChecks(big_ints=False, non_finite=False, nesting=False, keys=False)
    assert bounded.validate == Bounded.__pydantic_validator__.validate_python
    assert save_plan(Typed).checks == TextChecks(
        big_ints=True, non_finite=True, nesting=False, keys=False
    )
    # Free-form keys (a dict field) are scanned for keys that cannot be stored.
    assert save_plan(Keyed).checks == TextChecks(
        big_ints=False, non_finite=False, nesting=False, keys=True
    )
    assert save_plan(Bumped).checks == ALL_CHECKS
    assert save_plan(Forest).checks.nesting
    assert bounded.nested is None  # no nested model: pydantic validates everything

    # Nested models of plain types: pydantic's validator, then a check that the nested
    # instances it took as they are hold exactly the declared types.
    trip = save_plan(conformance.Trip)
    assert trip.validate == conformance.Trip.__pydantic_validator__.validate_python
    assert trip.nested is not None
    ok = conformance.Trip(name="t", start={"lat": 1, "lon": 2}, stops=[{"lat": 3, "lon": 4}])
    assert trip.nested(trip.validate(ok))
    ok.stops[0].lat = 3  # an int: validation would make it 3.0
    assert not trip.nested(trip.validate(ok))
    person = save_plan(conformance.Person)  # Address | None, its zip optional
    assert person.nested is not None
    ann = conformance.Person(name="Ann", address={"city": "Paris"})
    assert person.nested(ann) and person.nested(conformance.Person(name="Bob"))
    ann.address.zip = 75001  # type: ignore[assignment, union-attr]
    assert not person.nested(ann)
    # A constraint in the nested model: pydantic's validator cannot be used.
    coded = save_plan(conformance.Coded)
    assert coded.nested is None
    assert coded.validate != conformance.Coded.__pydantic_validator__.validate_python


@pytest.mark.parametrize("url", ["memory://", "sqlite://", "tinydb:///{tmp}/t.json"])
def test_skipped_scans_still_refuse(url: str, tmp_path: Path) -> None:
    from doqu import InvalidDocument

    db = doqu.connect(url.format(tmp=tmp_path))
    try:
        db.save_many([Bounded(n=100, words=["NaN", "Infinity", "1" * 30]), Typed(n=2**63 - 1)])
        for doc in [
            Typed(n=2**63),
            Typed(n=-(2**63) - 1),
            Typed(f=float("nan")),
            Typed(f=float("-inf")),
            Bumped(n=7),
            Forest(tree=Tree.model_validate(_nested_tree(30))),
        ]:
            with pytest.raises(InvalidDocument):
                db.save_many([type(doc)(), doc])
            with pytest.raises(InvalidDocument):
                db.save(doc)
        spoiled = Bounded(n=1)
        spoiled.n = 2**70  # assigned, not validated: validated again on save
        with pytest.raises(ValidationError):
            db.save(spoiled)
        db.save(Forest(tree=Tree.model_validate(_nested_tree(28))))
        assert [db.query(m).count() for m in (Bounded, Typed, Bumped, Forest)] == [1, 1, 0, 1]
        assert db.query(Bounded).first().words == ["NaN", "Infinity", "1" * 30]  # type: ignore[union-attr]
    finally:
        db.close()


class Shouting(BaseModel):
    """A nested model with a validator, a frozen config and a private attribute."""

    model_config = ConfigDict(frozen=True)
    word: str
    _seen: int = PrivateAttr(default=0)

    @field_validator("word")
    @classmethod
    def _upper(cls, word: str) -> str:
        return word.upper()

    def model_post_init(self, context: Any, /) -> None:
        self._seen = len(self.word)


class Names(RootModel[list[str]]):
    """A nested root model."""


@dataclasses.dataclass
class Point:
    """A nested standard dataclass."""

    x: int
    y: int = 0


@pydantic_dataclass
class Box:
    """A nested pydantic dataclass holding a model."""

    corner: Point
    label: Shouting | None = None


class Mixed(Document):
    """Nested models only a full revalidation can check."""

    shout: Shouting
    names: Names = Names([])
    box: Box | None = None
    tree: Tree = Tree()


@pytest.mark.parametrize("url", ["memory://", "sqlite://"])
def test_full_revalidation_of_nested_values(url: str) -> None:
    from doqu._encoding import save_plan

    assert save_plan(Mixed).validate != Mixed.__pydantic_validator__.validate_python
    db = doqu.connect(url)
    try:
        doc = Mixed(
            shout=Shouting(word="hi"),
            names=Names(["a"]),
            box=Box(corner=Point(1, 2), label=Shouting(word="box")),
            tree=Tree(kids=[Tree()]),
        )
        pk = db.save(doc)
        back = db.get(Mixed, pk)
        assert back.model_dump() == doc.model_dump()
        assert back.shout.word == "HI" and back.shout._seen == 2
        spoilers = [
            lambda m: object.__setattr__(m.shout, "word", 5),
            lambda m: m.names.root.append(7),
            lambda m: setattr(m.box.corner, "x", "left"),
            lambda m: object.__setattr__(m.box.label, "word", None),
            lambda m: m.tree.kids[0].kids.append("leaf"),
        ]
        for spoil in spoilers:
            bad = doc.model_copy(deep=True)
            spoil(bad)
            with pytest.raises(ValidationError):
                db.save_many([doc.model_copy(deep=True), bad])
        assert db.query(Mixed).count() == 1
        # What the full revalidation gives is what is stored: validators run again.
        fixed = doc.model_copy(deep=True)
        object.__setattr__(fixed.shout, "word", "quiet")
        fixed.box.corner.y = 3  # type: ignore[union-attr]
        db.save(fixed)
        again = db.get(Mixed, fixed.pk or "")
        assert again.shout.word == "QUIET" and again.box.corner == Point(1, 3)  # type: ignore[union-attr]
    finally:
        db.close()


class Leg(BaseModel):
    """Plain types only: the save plan checks exact types instead of validating again."""

    km: float
    stops: int = 0
    name: str | None = None
    tags: list[str] = []
    marks: dict[str, bool] = {}


class Route(Document):
    first: Leg
    legs: list[Leg] = []  # noqa: RUF012
    by_day: dict[str, Leg] = {}  # noqa: RUF012
    spare: Leg | None = None


class _Level(enum.IntEnum):
    ONE = 1


class _Text(str):
    pass


_ODD_VALUES = st.sampled_from(
    [
        0,
        1,
        -7,
        2**70,
        1.5,
        0.0,
        float("nan"),
        True,
        False,
        "",
        "x",
        _Text("t"),
        _Level.ONE,
        None,
        [],
        ["a"],
        ["a", 1],
        [None],
        {},
        {"a": True},
        {"a": 1},
        {"a": None},
        {1: True},
        ("a",),
        b"b",
    ]
)
_LEG_FIELDS = st.sampled_from(["km", "stops", "name", "tags", "marks"])


@settings(max_examples=300, deadline=None)
@given(
    spoils=st.lists(
        st.tuples(st.sampled_from(["first", "legs", "by_day", "spare"]), _LEG_FIELDS, _ODD_VALUES),
        max_size=3,
    )
)
def test_the_exact_type_check_stands_for_validating_again(
    spoils: list[tuple[str, str, Any]],
) -> None:
    """Whenever the save plan's check of nested instances passes, validating them again
    in full succeeds and gives the very same JSON (when it fails, the save path hands
    the document to the full revalidation)."""
    from doqu._encoding import revalidator, save_plan

    route = Route(
        first=Leg(km=1.5, tags=["a"], marks={"m": True}),
        legs=[Leg(km=2, stops=3)],
        by_day={"mon": Leg(km=0.5, name="n")},
        spare=Leg(km=9),
    )
    for where, field, value in spoils:
        leg = {
            "first": route.first,
            "legs": route.legs[0],
            "by_day": route.by_day["mon"],
            "spare": route.spare,
        }[where]
        object.__setattr__(leg, field, value)
    plan = save_plan(Route)
    assert plan.nested is not None and plan.validate == Route.__pydantic_validator__.validate_python
    copy = plan.validate(route)
    to_json = Route.__pydantic_serializer__.to_json
    if plan.nested(copy):
        assert to_json(revalidator(Route)(route)) == to_json(copy)
    else:
        assert spoils  # an untouched document always passes the check


_PLAIN_VALUES: dict[str, Any] = {
    "km": st.floats(allow_nan=True, allow_infinity=True),
    "stops": st.integers(min_value=-(2**70), max_value=2**70),
    "name": st.none() | st.text(max_size=5) | st.sampled_from(["x" * 2000, "\ud800", "é"]),
    "tags": st.lists(st.text(max_size=3), max_size=3),
    "marks": st.dictionaries(
        st.text(max_size=3) | st.sampled_from(["$x", "a.b", "_id", "\x00"]),
        st.booleans(),
        max_size=3,
    ),
}


class Trek(Document):
    """Plain types whose stored size is bounded: MongoDB's stored form is built directly."""

    first: Leg
    spare: Leg | None = None
    note: str = ""
    count: int = 0


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(["first", "spare"]),
            st.sampled_from(sorted(_PLAIN_VALUES)).flatmap(
                lambda f: st.tuples(st.just(f), _PLAIN_VALUES[f])
            ),
        ),
        max_size=4,
    ),
    top=st.lists(
        st.tuples(
            st.sampled_from(["note", "count", "pk"]),
            _ODD_VALUES | st.sampled_from(["x" * 2000, "\ud800", 2**64, -(2**63)]),
        ),
        max_size=2,
    ),
)
def test_mongodb_stored_form_matches_the_json_text_path(
    changes: list[tuple[str, tuple[str, Any]]], top: list[tuple[str, Any]]
) -> None:
    """For a plain-typed model, MongoDB's stored form built straight from the model
    (the instance itself, else its validated copy) is what the JSON text path
    stores (same values, same key order at every level); a document it gives up
    on takes the text path, which decides."""
    from doqu import InvalidDocument
    from doqu._encoding import encode_rows, save_plan, sorted_rows
    from doqu.ext.mongodb._stored import MAX_DOCUMENT_BYTES, _mongo_from_text

    trek = Trek(first=Leg(km=1.5, tags=["a"], marks={"m": True}), spare=Leg(km=9), pk="k")
    legs = {"first": trek.first, "spare": trek.spare}
    for where, (field, value) in changes:
        object.__setattr__(legs[where], field, value)
    for field, value in top:
        trek.__dict__[field] = value
    plan = save_plan(Trek)
    assert plan.sorted_form is not None
    try:
        pk, text = encode_rows([trek], text=True)[0]
        expected: Any = _mongo_from_text(pk, text)
    except (InvalidDocument, ValidationError, TypeError):
        expected = None
    try:  # what MongoDB's save path runs: the instance, else its validated copy
        rows = sorted_rows([trek], MAX_DOCUMENT_BYTES)
    except (InvalidDocument, ValidationError, TypeError):
        assert expected is None, "the stored-form path refuses what the text path took"
        return
    if rows is None:
        return  # the text path decides (and was just run above)
    [(pk, got)] = rows
    assert expected is not None, f"the text path refuses what the stored form took: {got}"
    assert pk == expected["_id"] or trek.pk is None  # else each path made a new key
    stored = {"_id": expected["_id"], **got}

    def order(value: Any) -> Any:
        if isinstance(value, dict):
            return [(k, order(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [order(v) for v in value]
        return value

    assert order(stored) == order(expected)


class Journey(Document):
    """Plain types at the top and below: saving checks exact types instead of validating."""

    title: str = "j"
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    maybe: int | None = None
    first: Leg = Leg(km=1.0)
    legs: list[Leg] = []  # noqa: RUF012
    by_day: dict[str, Leg] = {}  # noqa: RUF012
    spare: Leg | None = None


_TOP_VALUES: dict[str, Any] = {
    "title": st.text(max_size=3) | _ODD_VALUES,
    "count": st.integers(min_value=-(2**70), max_value=2**70) | _ODD_VALUES,
    "ratio": st.floats() | _ODD_VALUES,
    "flag": st.booleans() | _ODD_VALUES,
    "maybe": st.none() | st.integers(min_value=-(2**65), max_value=2**65) | _ODD_VALUES,
    "first": _ODD_VALUES,
    "legs": _ODD_VALUES,
    "spare": _ODD_VALUES,
    "pk": st.none() | st.just("k") | _ODD_VALUES,
}


@settings(max_examples=400, deadline=None)
@given(
    top=st.lists(
        st.sampled_from(sorted(_TOP_VALUES)).flatmap(
            lambda f: st.tuples(st.just(f), _TOP_VALUES[f])
        ),
        max_size=3,
    ),
    below=st.lists(
        st.tuples(
            st.sampled_from(["first", "legs", "by_day", "spare"]),
            st.sampled_from(sorted(_PLAIN_VALUES)).flatmap(
                lambda f: st.tuples(st.just(f), _PLAIN_VALUES[f])
            ),
        ),
        max_size=2,
    ),
    extra=st.none() | st.sampled_from([1, 2**70, float("nan")]),
    dropped=st.booleans(),
    stray=st.booleans(),
)
def test_the_whole_exact_check_stands_for_validating_and_scanning(
    top: list[tuple[str, Any]],
    below: list[tuple[str, tuple[str, Any]]],
    extra: Any,
    dropped: bool,
    stray: bool,
) -> None:
    """Whenever ``SavePlan.exact`` passes a document, validating it again in full gives
    the very same JSON and that JSON passes every text scan: the save path may store
    the document's own JSON. An untouched document passes."""
    from doqu._encoding import ALL_CHECKS, revalidator, save_plan
    from doqu._encoding import clean_text as _plain_text

    doc = Journey(
        first=Leg(km=1.5, tags=["a"], marks={"m": True}),
        legs=[Leg(km=2, stops=3)],
        by_day={"mon": Leg(km=0.5, name="n")},
        spare=Leg(km=9),
    )
    plan = save_plan(Journey)
    assert plan.exact is not None and plan.exact(doc)
    legs = {
        "first": doc.first,
        "legs": doc.legs[0],
        "by_day": doc.by_day["mon"],
        "spare": doc.spare,
    }
    for where, (field, value) in below:
        object.__setattr__(legs[where], field, value)
    for field, value in top:
        doc.__dict__[field] = value
    if extra is not None:
        doc.__pydantic_extra__ = {"more": extra}
    if dropped:
        del doc.__dict__["title"]
    if stray:
        doc.__dict__["stray"] = float("nan")  # not a field: pydantic would not look for it
    if not plan.exact(doc):
        assert top or below or extra is not None or dropped or stray
        return
    to_json = Journey.__pydantic_serializer__.to_json
    try:
        own = to_json(doc)
    except PydanticSerializationError:  # text that is not Unicode: the save path's slow path
        with pytest.raises(PydanticSerializationError):
            to_json(revalidator(Journey)(doc))
        return
    assert to_json(revalidator(Journey)(doc)) == own
    assert to_json(plan.validate(doc)) == own
    assert _plain_text(own, ALL_CHECKS)


class Stripped(Document):
    """A config that changes values on validation: no exact check."""

    model_config = ConfigDict(str_strip_whitespace=True)
    word: str = ""


def test_exact_checks_only_where_types_are_all() -> None:
    from doqu._encoding import save_plan

    assert save_plan(Typed).exact is not None
    assert save_plan(Journey).exact is not None
    for model in (Bounded, Bumped, Forest, Mixed, Stripped, conformance.Coded):
        assert save_plan(model).exact is None, model
    typed = Typed(n=5, f=1.5)
    exact = save_plan(Typed).exact
    assert exact is not None and exact(typed)
    for field, value in [("n", 2**63), ("n", True), ("f", float("inf")), ("f", 1), ("pk", 3)]:
        spoiled = typed.model_copy()
        spoiled.__dict__[field] = value
        assert not exact(spoiled), (field, value)
    assert exact(Typed.model_construct(n=1))  # defaults filled in
    missing = typed.model_copy()
    del missing.__dict__["f"]
    assert not exact(missing)
    # What a failed check leaves to the validator: it converts or refuses as before.
    mem = doqu.connect("memory://")
    try:
        spoiled = Typed(n=1)
        spoiled.__dict__["n"] = "12"
        pk = mem.save(spoiled)
        assert mem.get(Typed, pk).n == 12
        spoiled.__dict__["f"] = float("nan")
        with pytest.raises(doqu.InvalidDocument):
            mem.save(spoiled)
        with pytest.raises(doqu.InvalidDocument):
            mem.save_many([Typed(), spoiled])
    finally:
        mem.close()


def _nested_tree(levels: int) -> dict[str, Any]:
    """A tree nested *levels* deep in JSON (two levels per node: object and list)."""
    tree: dict[str, Any] = {"kids": []}
    for _ in range(levels // 2 - 1):
        tree = {"kids": [tree]}
    return tree


def test_save_many_mixed_collections(mem: doqu.Storage) -> None:
    pks = mem.save_many([Plain(x=1), HTTPRequest(url="u"), Plain(x=2)])
    assert len(pks) == 3
    assert mem.query(Plain).count() == 2 and mem.query(HTTPRequest).count() == 1


# ------------------------------------------------------------------ tree
def test_q_immutable_and_hashable() -> None:
    a, b = Q(x=1), Q(y__gt=2)
    both = a & b
    assert both is not a and a == Q(x=1) and b == Q(y__gt=2)
    assert isinstance(both.node, And)
    assert isinstance((a | b).node, Or)
    assert isinstance((~a).node, Not)
    assert hash(Q(x=1)) == hash(Q(x=1))
    assert len({Q(x=1), Q(x=1), Q(x=2)}) == 2
    assert Q(x=1, y=2) == Q(x=1) & Q(y=2) or isinstance(Q(x=1, y=2).node, And)
    with pytest.raises(AttributeError):
        a.node.path = ("z",)  # type: ignore[misc,union-attr]


def test_lookup_parsing() -> None:
    assert make_cond("a__b__gt", 1) == Cond(("a", "b"), "gt", 1)
    assert make_cond("a.b", 1) == Cond(("a", "b"), "exact", 1)
    assert make_cond("a.b__c", 1) == Cond(("a", "b", "c"), "exact", 1)
    assert make_cond("gt", 1) == Cond(("gt",), "exact", 1)
    assert make_cond("a__foo", 1) == Cond(("a", "foo"), "exact", 1)
    assert make_cond("in__in", [1]) == Cond(("in",), "in", [1])
    assert parse_path("pk") == ("pk",)
    for bad in ("a b", "$gt", "a..b", "", "x;y", "a__", "__a", "a.", "é ", "0a"):
        with pytest.raises(QueryError):
            parse_path(bad)
    with pytest.raises(QueryError):
        parse_path(".".join(["a"] * 40))


def test_operands_converted_like_documents() -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal

    naive = dt.datetime(2024, 1, 2, 3, 4, 5)
    assert make_cond("t__gt", naive).operand == "2024-01-02T03:04:05.000000"
    aware = dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert make_cond("t__gt", aware).operand == "2024-01-02T03:04:05.000000Z"
    assert make_cond("u", uuid.UUID(int=1)).operand == "00000000-0000-0000-0000-000000000001"
    assert make_cond("d", Decimal("1.50")).operand == "1.50"
    assert make_cond("c__in", (conformance.Color.RED,)).operand == ["red"]


# ------------------------------------------------------------- registry
def test_register_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_BACKENDS", dict(_registry._BACKENDS))
    from doqu.ext.memory import MemoryStorage

    seen: list[tuple[str, dict[str, Any]]] = []

    def factory(url: str, **options: Any) -> doqu.Storage:
        seen.append((url, options))
        return MemoryStorage("memory://")

    doqu.register_backend("xtest", factory)
    with doqu.connect("xtest://anything/here", flag=True) as db:
        db.save({"a": 1}, collection="c")
        assert db.query("c").count() == 1
    assert seen == [("xtest://anything/here", {"flag": True})]
    doqu.register_backend("XLazy", "doqu.ext.memory:MemoryStorage")
    with pytest.raises(ConfigError):
        doqu.connect("xlazy://")  # MemoryStorage refuses a non-memory URL: still a ConfigError
    with pytest.raises(ConfigError):
        doqu.register_backend("bad://", factory)


def test_unknown_scheme_and_bad_urls() -> None:
    for url in ("nosuchscheme://x", "not a url", ""):
        with pytest.raises(ConfigError):
            doqu.connect(url or "://")
    with pytest.raises(ConfigError) as info:
        doqu.connect("nosuchscheme://x")
    assert "nosuchscheme" in str(info.value)


def test_missing_driver_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_BACKENDS", dict(_registry._BACKENDS))
    doqu.register_backend("nodriver", "nonexistent_driver_xyz:Storage")
    with pytest.raises(ConfigError) as info:
        doqu.connect("nodriver://x")
    expected = "doqu[nodriver], python -m pip install '.[nodriver]' in a doqu checkout"
    assert expected in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(
    ("url", "blocked", "module", "extra"),
    [
        ("mongodb://127.0.0.1:1/x", "pymongo", "doqu.ext.mongodb", "mongo"),
        ("sqlite:///nowhere.db", "sqlalchemy", "doqu.ext.sql", "sql"),
        ("postgresql+psycopg://u@127.0.0.1:1/x", "sqlalchemy", "doqu.ext.sql", "postgres"),
    ],
)
def test_blocked_driver_names_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, blocked: str, module: str, extra: str
) -> None:
    """With the driver unimportable, connecting says which extra to install."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not built yet")
    for name in list(sys.modules):
        if name == blocked or name.startswith(blocked + "."):
            monkeypatch.delitem(sys.modules, name)
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ConfigError) as info:
        doqu.connect(url)
    assert f"python -m pip install '.[{extra}]'" in str(info.value)


ONLY_PYDANTIC = ("pydantic", "pydantic_core", "typing_extensions", "annotated_types")


def test_import_with_only_pydantic(tmp_path: Path) -> None:
    """``import doqu`` works in a venv that holds pydantic and nothing else."""
    import importlib.util

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    only = tmp_path / "only"
    only.mkdir()
    names = list(ONLY_PYDANTIC)
    if importlib.util.find_spec("typing_inspection") is not None:
        names.append("typing_inspection")
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        src = Path(spec.origin)
        src = src.parent if src.name == "__init__.py" else src
        (only / src.name).symlink_to(src)
    (only / "doqu").symlink_to(ROOT / "doqu")
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    Path(site, "only.pth").write_text(f"{only}\n")
    script = """
import importlib.util, sys
import doqu
for mod in ("sqlalchemy", "pymongo", "tinydb", "psycopg", "pymysql", "pytest", "hypothesis"):
    assert importlib.util.find_spec(mod) is None, mod
with doqu.connect("memory://") as db:
    db.save({"a": 1}, collection="c")
    assert db.query("c").where(a=1).count() == 1
for url, extra in [("sqlite:///x.db", "sql"), ("mongodb://h/x", "mongo"),
                   ("postgresql://h/x", "postgres"), ("mysql+pymysql://h/x", "mysql")]:
    try:
        doqu.connect(url)
    except doqu.ConfigError as exc:
        assert f"python -m pip install '.[{extra}]'" in str(exc), (url, str(exc))
    else:
        raise AssertionError(url)
# doqu.ext.tinydb reads TinyDB's file format itself: it may work without the driver.
try:
    doqu.connect("tinydb:///x.json").close()
except doqu.ConfigError as exc:
    assert "python -m pip install '.[tinydb]'" in str(exc), str(exc)
for name in [m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "pymongo", "tinydb")]:
    raise AssertionError(name)
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.pop("DOQU_URL", None)
    done = subprocess.run(
        [str(python), "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_conformance_all_lists_every_test() -> None:
    tests = {n for n in dir(conformance) if n.startswith("test_")}
    assert set(conformance.__all__) == tests


# ---------------------------------------------------------------- threads
def test_concurrent_saves_lose_nothing(mem: doqu.Storage) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(100):
                mem.save({"t": i, "j": j}, collection="c")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert mem.query("c").count() == 800
    for i in range(8):
        assert sorted(d["j"] for d in mem.query("c").where(t=i)) == list(range(100))


def test_concurrent_updates_lose_nothing(mem: doqu.Storage) -> None:
    mem.save_many([{"pk": "c", "n": 0, "tags": []}], collection="u")

    def work(i: int) -> None:
        for j in range(50):
            mem.query("u").where(pk="c").update(n__inc=1)
            mem.query("u").where(pk="c").update(tags__add_to_set=f"{i}-{j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = mem.get("u", "c")
    assert doc["n"] == 400
    assert len(doc["tags"]) == 400


def test_increment_cas_loop(mem: doqu.Storage) -> None:
    info, _ = mem._coll("counters")
    results: list[Any] = []

    def work() -> None:
        for _ in range(250):
            results.append(mem._increment(info, "k", ("n",), 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mem.get("counters", "k")["n"] == 1000
    assert sorted(results) == list(range(1, 1001))  # every sum seen exactly once


def test_entry_point_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend found through the ``doqu.backends`` entry-point group."""
    dist = tmp_path / "doqu_fake_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: doqu-fake-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[doqu.backends]\nfakeep = doqu_fake_mod:make\n")
    (tmp_path / "doqu_fake_mod.py").write_text(
        "from doqu.ext.memory import MemoryStorage\n"
        "def make(url, **options):\n"
        "    store = MemoryStorage('memory://')\n"
        "    store.asked = url\n"
        "    return store\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with doqu.connect("fakeep://somewhere") as db:
        assert db.asked == "fakeep://somewhere"  # type: ignore[attr-defined]
        db.save({"a": 1}, collection="c")
        assert db.query("c").count() == 1


def test_backend_module_exports_the_author_surface() -> None:
    import doqu.backend as backend
    from doqu import _evaluator, _storage

    assert all(hasattr(backend, name) for name in backend.__all__)
    assert backend.Storage is _storage.Storage and backend.matches is _evaluator.matches
    node = backend.And((backend.Cond(("age",), "gt", 30),))
    rows = [("a", {"age": 31}), ("b", {"age": 3})]
    assert [pk for pk, _ in backend.filter_rows(rows, node)] == ["a"]


def test_list_of_a_query_runs_one_query(mem: doqu.Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    import doqu._query as query_module

    mem.save_many([Plain(pk=f"k{i:02d}", x=i) for i in range(10)])
    counts: list[object] = []
    real_count = mem._count

    def spy(*args: Any) -> int:
        counts.append(args)
        return real_count(*args)

    monkeypatch.setattr(mem, "_count", spy)
    q = mem.query(Plain).where(x__gte=2).order_by("-x")
    assert [p.x for p in list(q)] == list(range(9, 1, -1)) and counts == []
    assert len(q) == 8 and len(counts) == 1  # len() alone asks the database
    it = iter(q)
    assert len(q) == 8 and len(counts) == 1  # read ahead, exact
    assert [p.x for p in it] == list(range(9, 1, -1))
    monkeypatch.setattr(query_module, "PREFETCH_LIMIT", 3)
    assert [p.pk for p in list(q[1:])] == [f"k{i:02d}" for i in range(8, 1, -1)]
    assert len(counts) == 2  # more rows than the read-ahead holds: a COUNT, then the rest
    assert tuple(mem.query(Plain).where(x__gt=100)) == ()


def test_read_ahead_keeps_corrupt_documents_in_place(mem: doqu.Storage) -> None:
    import gc

    from doqu import CorruptDocument

    mem.save_many([Plain(pk=f"k{i}", x=i) for i in range(4)])
    mem.save({"pk": "k2", "x": "not a number"}, collection=Plain.__doqu_collection__.name)
    q = mem.query(Plain).order_by("pk")
    with pytest.raises(CorruptDocument) as caught:
        list(q)
    assert caught.value.pk == "k2" and gc.isenabled()
    it = iter(q)
    assert len(q) == 4 and gc.isenabled()
    assert [next(it).pk, next(it).pk] == ["k0", "k1"]
    with pytest.raises(CorruptDocument):
        next(it)
    assert next(it).pk == "k3"
    gc.disable()
    try:
        assert [p.pk for p in q.where(x__lt=2)] == ["k0", "k1"]
        assert len(list(q.where(x__lt=2))) == 2 and not gc.isenabled()
    finally:
        gc.enable()


def test_json_view_stores_subclasses_as_plain_values(mem: doqu.Storage) -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Colour(str, enum.Enum):
        RED = "red"

    view = mem.dict("kv")
    view["top"] = Level.HIGH
    view["nested"] = {"level": Level.HIGH, "colours": (Colour.RED,), "deep": [[1, (2,)]]}
    assert view["top"] == 3 and type(view["top"]) is int
    nested = view["nested"]
    assert nested == {"level": 3, "colours": ["red"], "deep": [[1, [2]]]}
    assert type(nested["level"]) is int and type(nested["colours"][0]) is str
    assert mem.query("kv").where(value__level=3).count() == 1
