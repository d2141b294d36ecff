"""One "can be stored" rule, through every write path, on every backend.

One table of hostile values; each is tried through ``save``, ``save_many``,
``get_or_create``, ``Query.update``, the mapping view (``d[k] = v``,
``d.update``, ``d.setdefault``) and the CLI's ``import``. Every path refuses
every value and writes nothing — ``InvalidDocument`` (the mapping view's
``UnstorableValue`` is a ``TypeError`` too), or for an update's operand the
``QueryError`` of an update that cannot be made — and ``-0.0`` is stored as
``0.0`` by all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from doqu import Document, InvalidDocument, QueryError, Storage


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


#: (what, value): none of these can be stored on any backend.
HOSTILE: list[tuple[str, Any]] = [
    ("NaN", math.nan),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ("int over 64 bits", 2**64),
    ("int under 64 bits", -(2**63) - 1),
    ("lone surrogate", "\ud800"),
    ("NUL in text", "a\x00b"),
    ("NUL in a key", {"a\x00": 1}),
    ("key starting with $", {"$gt": 1}),
    ("key holding a dot", {"a.b": 1}),
    ("nested too deep", _nested(40)),
    ("in a list", [1, "x", math.nan]),
]
IDS = [what for what, _ in HOSTILE]


#: The same values in JSON text, for the CLI (a file can hold them all but NaN/Infinity,
#: which the CLI's JSON reader refuses as not JSON).
def _json_line(value: Any) -> str | None:
    try:
        return json.dumps({"pk": "bad", "v": value}, allow_nan=False)
    except ValueError:
        return None


class Thing(Document):
    """A model with a field of any JSON value: the general save path."""

    v: Any = None

    class Meta:
        collection = "things"


def _stored(db: Storage) -> list[Any]:
    return sorted(d["pk"] for d in db.query("things"))


def _refuses(attempt: Callable[[], object]) -> None:
    with pytest.raises(InvalidDocument):
        attempt()


@pytest.mark.parametrize(("what", "value"), HOSTILE, ids=IDS)
def test_every_write_path_refuses_it(db: Storage, what: str, value: Any) -> None:
    db.save({"pk": "keep", "v": 1}, collection="things")
    version = db.version("things")
    _refuses(lambda: db.save({"pk": "bad", "v": value}, collection="things"))
    _refuses(lambda: db.save(Thing(pk="bad", v=value)))
    batch = [{"pk": "ok", "v": 2}, {"pk": "bad", "v": value}]
    _refuses(lambda: db.save_many(batch, collection="things"))
    _refuses(lambda: db.save_many([Thing(pk="ok", v=2), Thing(pk="bad", v=value)]))
    _refuses(lambda: db.get_or_create("things", defaults={"v": value}, name="new"))
    _refuses(lambda: db.get_or_create(Thing, defaults={"v": value}, pk="new"))
    # An update's operands are checked by the same rule when it is parsed, before
    # anything runs: a QueryError, as for any update that cannot be made.
    for update in (
        lambda: db.query("things").where(pk="keep").update(v=value),
        lambda: db.query(Thing).where(pk="keep").update(v=value),
        lambda: db.query("things").where(pk="keep").update(l__push=value),
        lambda: db.query("things").where(pk="keep").update(l__add_to_set=value),
    ):
        with pytest.raises(QueryError):
            update()
    assert _stored(db) == ["keep"]
    assert db.get("things", "keep") == {"pk": "keep", "v": 1}
    assert db.version("things") == version

    view = db.dict("view")
    for attempt in (
        lambda: view.__setitem__("k", value),
        lambda: view.update({"ok": 1, "k": value}),
        lambda: view.setdefault("k", value),
    ):
        with pytest.raises(InvalidDocument) as info:
            attempt()
        assert isinstance(info.value, TypeError)  # as the view promises for its JSON codec
    assert len(view) == 0
    models = db.dict(Thing)
    with pytest.raises(InvalidDocument):
        models["k"] = Thing(v=value)
    assert _stored(db) == ["keep"]


@pytest.mark.parametrize(("what", "value"), HOSTILE, ids=IDS)
def test_the_cli_import_refuses_it(cli_url: str, tmp_path: Path, what: str, value: Any) -> None:
    from doqu.cli import cli

    line = _json_line(value)
    if line is None:
        line = '{"pk": "bad", "v": NaN}'  # not JSON: refused as such
    src = tmp_path / "in.jsonl"
    src.write_text('{"pk": "ok", "v": 1}\n' + line + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", cli_url, "things", str(src)])
    assert result.exit_code != 0, result.output
    import doqu

    with doqu.connect(cli_url) as db:
        assert [d["pk"] for d in db.query("things")] == []


def test_minus_zero_is_zero_on_every_path(db: Storage) -> None:
    db.save({"pk": "a", "v": -0.0}, collection="things")
    db.save_many([Thing(pk="b", v=-0.0), Thing(pk="c", v=[-0.0])])
    db.get_or_create("things", defaults={"v": -0.0}, pk="d")
    db.save({"pk": "e", "v": 1.0}, collection="things")
    db.query("things").where(pk="e").update(v=-0.0)
    view = db.dict("view")
    view["x"] = -0.0
    view.update({"y": [-0.0]})
    view.setdefault("z", {"n": -0.0})
    values = [db.get("things", pk)["v"] for pk in "abde"] + [db.get("things", "c")["v"][0]]
    values += [view["x"], view["y"][0], view["z"]["n"]]
    assert all(v == 0 and math.copysign(1.0, v) > 0 for v in values), values
