"""References beyond the conformance suite: cycles, forward names, equality, hashing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

import doqu
from doqu import Document, NotLoaded, QueryError, Ref
from doqu.cli import cli


class Member(Document):
    name: str
    best_friend: Ref[Member] | None = None
    employer: Ref[Company] | None = None  # a class defined below: resolved when first used


class Company(Document):
    name: str
    boss: Ref[Member] | None = None


def test_cycles_and_forward_names_share_one_object_per_target() -> None:
    with doqu.connect("memory://") as db:
        ann = Member(name="Ann")
        ann.save(db)
        acme = Company(name="Acme", boss=ann)
        acme.save(db)
        bob = Member(name="Bob", best_friend=ann, employer=acme)
        bob.save(db)
        got = db.get(Member, str(bob.pk), prefetch=["employer__boss", "best_friend"])
        assert got.employer is not None and got.best_friend is not None
        company = got.employer.doc
        assert company is not None and company.boss is not None
        assert company.boss.doc is got.best_friend.doc  # Ann, loaded once
        assert got.best_friend.doc is not None and got.best_friend.doc.name == "Ann"


def test_equality_hash_and_repr() -> None:
    a, b = Ref(Member, "x"), Ref(Member, "x")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Ref(Member, "y") and a != Ref(Company, "x")
    assert a == Member(pk="x", name="n") and a != Member(pk="y", name="n")
    assert (a == "x") is False  # a pk string is no reference: compare ref.pk
    assert repr(a) == "Ref[Member]('x')"
    with pytest.raises(NotLoaded):
        _ = a.doc


def test_unsaved_targets_and_wrong_values() -> None:
    loose = Member(name="Loose")
    ref = Member(name="Ref", best_friend=loose).best_friend
    assert ref is not None
    with pytest.raises(doqu.InvalidDocument, match="save the Member first"):
        _ = ref.pk
    with doqu.connect("memory://") as db:
        loose.save(db)
        assert ref.pk == loose.pk  # the target saved since: its pk is read then
    with pytest.raises(ValidationError, match="takes a Member or its pk"):
        Member(name="x", best_friend=Company(name="c"))
    with pytest.raises(ValidationError, match="a reference to Company, not to Member"):
        Member(name="x", best_friend=Ref(Company, "c"))


def test_prefetch_needs_a_model_and_reference_paths() -> None:
    with doqu.connect("memory://") as db:
        with pytest.raises(QueryError, match="needs a query of a model"):
            db.query("members").prefetch("best_friend")
        with pytest.raises(QueryError, match="holds no model"):
            Member.objects(db).prefetch("name__x")
        with pytest.raises(QueryError, match="list of reference paths"):
            db.get(Member, "x", prefetch="best_friend")  # type: ignore[arg-type]
        with pytest.raises(QueryError, match="at least one"):
            Member.objects(db).prefetch()


class Seat(Document):
    holder: Ref[Member]
    number: int

    class Meta:
        unique = ["holder"]  # noqa: RUF012 - one seat per member


def test_unique_index_on_a_reference() -> None:
    with doqu.connect("sqlite://") as db:
        ann = Member(pk="ann", name="Ann")
        ann.save(db)
        Seat(holder=ann, number=1).save(db)
        with pytest.raises(doqu.DuplicateKey) as caught:
            Seat(holder="ann", number=2).save(db)
        assert caught.value.value == "ann"
        assert Seat.objects(db).where(holder=ann).count() == 1


def test_the_cli_shows_references_as_pks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refs.db'}"
    with doqu.connect(url) as db:
        ann = Member(pk="ann", name="Ann")
        db.save_many([ann, Member(pk="bob", name="Bob", best_friend=ann)])
    out = CliRunner().invoke(cli, ["find", url, "member", "-w", "pk=bob", "-f", "jsonl"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["best_friend"] == "ann"
    exported = tmp_path / "members.jsonl"
    assert CliRunner().invoke(cli, ["export", url, "member", str(exported)]).exit_code == 0
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert {r["pk"]: r.get("best_friend") for r in rows} == {"ann": None, "bob": "ann"}
