"""Lifecycle hooks: on each write path, each hook fires exactly once per document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from ..._document import Document
from ..._storage import Storage

#: (hook, pk) of every hook call, in order.
CALLS: list[tuple[str, str | None]] = []


class Hooked(Document):
    name: str
    n: int = 0
    stamp: int = 0

    class Meta:
        collection = "hooked"

    refuse: ClassVar[set[str]] = set()  # names whose before_* hooks raise

    def before_save(self) -> None:
        CALLS.append(("before_save", self.pk))
        if self.name in self.refuse:
            raise ValueError(f"refused {self.name}")
        self.stamp += 1  # what a hook sets is what is written

    def after_save(self) -> None:
        CALLS.append(("after_save", self.pk))

    def before_delete(self) -> None:
        CALLS.append(("before_delete", self.pk))
        if self.name in self.refuse:
            raise ValueError(f"refused {self.name}")

    def after_delete(self) -> None:
        CALLS.append(("after_delete", self.pk))


def _seed(db: Storage) -> None:
    db.save_many([Hooked(pk=p, name=p, n=i) for i, p in enumerate("abc")])
    CALLS.clear()


def _tally() -> Counter[str]:
    out = Counter(hook for hook, _ in CALLS)
    CALLS.clear()
    return out


SAVED = Counter({"before_save": 1, "after_save": 1})
DELETED = Counter({"before_delete": 1, "after_delete": 1})


def _paths() -> list[tuple[str, Callable[[Any], Any], Counter[str]]]:
    """(path, the call on a store holding a, b, c with n = 0, 1, 2, the hooks expected)."""
    return [
        ("save", lambda db: db.save(Hooked(pk="x", name="x")), SAVED),
        (
            "save_many",
            lambda db: db.save_many([Hooked(name="x"), Hooked(name="y"), Hooked(name="z")]),
            Counter({k: 3 * v for k, v in SAVED.items()}),
        ),
        ("get_or_create, created", lambda db: db.get_or_create(Hooked, name="new"), SAVED),
        ("get_or_create, found", lambda db: db.get_or_create(Hooked, name="a"), Counter()),
        (
            "Query.update",
            lambda db: db.query(Hooked).where(n__gte=1).update(n__inc=10),
            Counter({k: 2 * v for k, v in SAVED.items()}),
        ),
        (
            "Query.update, no change",
            lambda db: db.query(Hooked).where(n=1).update(n=1),
            Counter(),
        ),
        ("delete(doc)", lambda db: db.delete(db.get(Hooked, "a")), DELETED),
        ("delete(Model, pk)", lambda db: db.delete(Hooked, "a"), DELETED),
        (
            "Query.delete",
            lambda db: db.query(Hooked).where(n__gte=1).delete(),
            Counter({k: 2 * v for k, v in DELETED.items()}),
        ),
        ("dict set", lambda db: db.dict(Hooked).__setitem__("x", Hooked(name="x")), SAVED),
        (
            "dict update",
            lambda db: db.dict(Hooked).update({"x": Hooked(name="x"), "y": Hooked(name="y")}),
            Counter({k: 2 * v for k, v in SAVED.items()}),
        ),
        ("dict setdefault", lambda db: db.dict(Hooked).setdefault("x", Hooked(name="x")), SAVED),
        ("dict del", lambda db: db.dict(Hooked).__delitem__("a"), DELETED),
        ("dict pop", lambda db: db.dict(Hooked).pop("a"), DELETED),
        (
            "dict clear",
            lambda db: db.dict(Hooked).clear(),
            Counter({k: 3 * v for k, v in DELETED.items()}),
        ),
    ]


def test_hooks_fire_once_per_document_on_every_write_path(db: Storage) -> None:
    """The table: each write path fires each hook exactly once per document."""
    Hooked.refuse = set()
    seen = {}
    for path, call, _ in _paths():
        db.clear(Hooked)
        _seed(db)
        call(db)
        seen[path] = _tally()
    assert seen == {path: expected for path, _, expected in _paths()}


def test_what_before_save_sets_is_written(db: Storage) -> None:
    Hooked.refuse = set()
    db.save(Hooked(pk="a", name="a"))
    assert db.get(Hooked, "a").stamp == 1
    db.query(Hooked).where(name="a").update(n__inc=1)
    assert (db.get(Hooked, "a").n, db.get(Hooked, "a").stamp) == (1, 2)
    doc, _ = db.get_or_create(Hooked, name="b")
    assert doc.stamp == 1 and db.get(Hooked, doc.pk).stamp == 1  # type: ignore[arg-type]
    CALLS.clear()


def test_a_hook_that_raises_stops_the_write(db: Storage) -> None:
    """``before_save``/``before_delete`` raising: nothing of the call is written."""
    Hooked.refuse = {"no"}
    try:
        db.save(Hooked(pk="keep", name="keep"))
        with pytest.raises(ValueError, match="refused"):
            db.save_many([Hooked(pk="a", name="ok"), Hooked(pk="b", name="no")])
        assert db.query(Hooked).count() == 1
        db.save(Hooked(pk="c", name="nah", n=5))
        with pytest.raises(ValueError, match="refused"):
            db.query(Hooked).update(name="no")  # every result refused before any write
        assert sorted(d.name for d in db.query(Hooked)) == ["keep", "nah"]
        Hooked.refuse = {"keep"}
        with pytest.raises(ValueError, match="refused"):
            db.query(Hooked).delete()
        with pytest.raises(ValueError, match="refused"):
            db.delete(Hooked, "keep")
        assert db.query(Hooked).count() == 2
        calls = [hook for hook, _ in CALLS]
        assert "after_save" in calls and "after_delete" not in calls
    finally:
        Hooked.refuse = set()
        CALLS.clear()


class Logged(Document):
    text: str

    class Meta:
        collection = "logged"


@Logged.hook("before_save")
def _stamp(doc: Logged) -> None:
    CALLS.append(("before_save", doc.text))


@Logged.hook("after_delete")
def _gone(doc: Logged) -> None:
    CALLS.append(("after_delete", doc.pk))


def test_registered_hook_functions(db: Storage) -> None:
    """Functions registered with ``Model.hook(name)`` fire as the methods do."""
    CALLS.clear()
    db.save_many([Logged(pk="a", text="x"), Logged(pk="b", text="y")])
    assert db.query(Logged).where(text="x").update(text="z") == 1
    assert db.query(Logged).delete() == 2
    saves = [("before_save", "x"), ("before_save", "y"), ("before_save", "z")]
    assert CALLS[:3] == saves  # in the order written; deletions in any order
    assert sorted(CALLS[3:]) == [("after_delete", "a"), ("after_delete", "b")]
    CALLS.clear()
