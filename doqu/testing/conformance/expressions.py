"""Field expressions (``Person.age >= 30``) on the backend, and queries checked against the model.

Expressions build the keyword lookups' trees, so a backend learns nothing new:
these tests prove it on each one, lookup by lookup, with the answers written
out by hand, and check that a condition the model makes impossible is refused
before the backend is asked anything.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..._errors import QueryError
from ..._storage import Storage
from ..._tree import Q
from ._common import Address, Person, _ordered, _pks


def _people(db: Storage) -> None:
    db.save_many([
        Person(pk="ann", name="Ann", age=35, email="ann@x", tags=["a", "b"],
               address=Address(city="Paris", zip="75001")),
        Person(pk="bob", name="bob", age=17, tags=["b"], address=Address(city="Lyon")),
        Person(pk="cy", name="Cy", age=70, email="cy@x", tags=[]),
        Person(pk="dee", name="Dée", age=30, tags=["a", "c", "B"],
               address=Address(city="paris")),
    ])  # fmt: skip


#: (expression, the same condition as keywords, the pks it matches)
LOOKUP_CASES: list[tuple[Q, Q, set[str]]] = [
    (Person.age == 35, Q(age=35), {"ann"}),
    (Person.email == None, Q(email=None), {"bob", "dee"}),  # noqa: E711
    (Person.age != 35, Q(age__ne=35), {"bob", "cy", "dee"}),
    (Person.age > 30, Q(age__gt=30), {"ann", "cy"}),
    (Person.age >= 30, Q(age__gte=30), {"ann", "cy", "dee"}),
    (Person.age < 30, Q(age__lt=30), {"bob"}),
    (Person.age <= 30, Q(age__lte=30), {"bob", "dee"}),
    (Person.name > "a", Q(name__gt="a"), {"bob"}),
    (Person.age.between(17, 30), Q(age__between=(17, 30)), {"bob", "dee"}),
    (Person.age.in_([17, 70]), Q(age__in=[17, 70]), {"bob", "cy"}),
    (Person.age.nin([17, 70]), Q(age__nin=[17, 70]), {"ann", "dee"}),
    (Person.email.exists(), Q(email__exists=True), {"ann", "bob", "cy", "dee"}),
    (Person.address.zip.exists(False), Q(address__zip__exists=False), {"cy"}),
    (Person.email.isnull(), Q(email__isnull=True), {"bob", "dee"}),
    (Person.address.isnull(False), Q(address__isnull=False), {"ann", "bob", "dee"}),
    (Person.tags.contains("a"), Q(tags__contains="a"), {"ann", "dee"}),
    (Person.name.contains("o"), Q(name__contains="o"), {"bob"}),
    (Person.tags.icontains("b"), Q(tags__icontains="b"), {"ann", "bob", "dee"}),
    (Person.name.icontains("N"), Q(name__icontains="N"), {"ann"}),
    (Person.name.startswith("C"), Q(name__startswith="C"), {"cy"}),
    (Person.name.istartswith("b"), Q(name__istartswith="b"), {"bob"}),
    (Person.name.endswith("e"), Q(name__endswith="e"), {"dee"}),
    (Person.name.iendswith("Y"), Q(name__iendswith="Y"), {"cy"}),
    (Person.email.matches("^[a-n]+@"), Q(email__matches="^[a-n]+@"), {"ann"}),
    (Person.tags.size(1), Q(tags__size=1), {"bob"}),
    (Person.tags.all(["a", "b"]), Q(tags__all=["a", "b"]), {"ann"}),
    (Person.tags.any(["c", "b"]), Q(tags__any=["c", "b"]), {"ann", "bob", "dee"}),
    (Person.address.city == "Paris", Q(address__city="Paris"), {"ann"}),
    (Person.address.city.iendswith("S"), Q(address__city__iendswith="S"), {"ann", "dee"}),
    (Person.pk.in_(["cy", "zz"]), Q(pk__in=["cy", "zz"]), {"cy"}),
    ((Person.age < 18) | Person.tags.contains("c"), Q(age__lt=18) | Q(tags__contains="c"),
     {"bob", "dee"}),
    (~Person.name.startswith("A") & Person.email.isnull(),
     ~Q(name__startswith="A") & Q(email__isnull=True), {"bob", "dee"}),
]  # fmt: skip


def test_expressions_every_lookup(db: Storage) -> None:
    """Each lookup as an expression finds what its keyword form finds, and its negation the rest."""
    _people(db)
    q = Person.objects(db)
    everyone = {"ann", "bob", "cy", "dee"}
    for expr, keyword, expected in LOOKUP_CASES:
        assert expr == keyword, f"{expr} builds another tree than {keyword}"
        assert _pks(q.where(expr)) == expected, f"where({expr})"
        assert _pks(q.where(keyword)) == expected, f"where({keyword})"
        assert q.where(expr).count() == len(expected), f"count {expr}"
        assert _pks(q.where(~expr)) == everyone - expected, f"where(~{expr})"


def test_expressions_mixed_order_values_update(db: Storage) -> None:
    """Expressions beside ``Q`` and keywords; sort keys, ``values()`` and update operators."""
    _people(db)
    q = Person.objects(db)
    mixed = q.where(Person.age >= 17, Q(tags__contains="b") | Q(name="Cy"), address__city="Lyon")
    assert _pks(mixed) == {"bob"}
    assert _ordered(q.order_by(Person.age.desc())) == ["cy", "ann", "dee", "bob"]
    assert _ordered(q.order_by(-Person.age)) == ["cy", "ann", "dee", "bob"]
    by_city = q.order_by(Person.address.city, Person.name)
    assert _ordered(by_city) == ["cy", "bob", "ann", "dee"]  # missing first, then code points
    assert _ordered(q.order_by(Person.age)[1:3]) == ["dee", "ann"]
    assert sorted(q.values(Person.address.city)) == ["Lyon", "Paris", "paris"]
    assert sorted(q.where(Person.age > 20).values(Person.tags)) == ["B", "a", "b", "c"]
    changed = q.where(Person.age < 31).update(
        Person.age.inc(1), Person.tags.push("new"), Person.email.unset()
    )
    assert changed == 2
    bob, dee = db.get(Person, "bob"), db.get(Person, "dee")
    assert (bob.age, bob.tags, bob.email) == (18, ["b", "new"], None)
    assert (dee.age, dee.tags) == (31, ["a", "c", "B", "new"])
    assert q.where(Person.pk == "cy").update(Person.name.set("Cyd"), age__inc=-1) == 1
    cy = db.get(Person, "cy")
    assert (cy.name, cy.age) == ("Cyd", 69)
    assert q.update(Person.tags.pull("new"), Person.address.unset()) == 3  # cy: no change
    assert db.get(Person, "bob").tags == ["b"] and db.get(Person, "bob").address is None
    assert q.where(Person.tags.size(0)).update(Person.tags.add_to_set("x")) == 1
    assert db.get(Person, "cy").tags == ["x"]


def test_model_checked_queries(db: Storage) -> None:
    """Conditions the declared types make impossible are refused, naming field and near names."""
    _people(db)
    q = Person.objects(db)
    version = db.version(Person)
    impossible: list[tuple[dict[str, Any], str]] = [
        ({"age__gtee": 3}, "did you mean 'age__gte'"),
        ({"address__cty": "Paris"}, "Address declares no field 'cty'; did you mean 'address__city"),
        ({"age__gt": "x"}, "age is declared int, which never holds a string"),
        ({"tags__size": "2"}, "tags__size takes a whole number"),
        ({"name__size": 2}, "name is declared str, not a list"),
        ({"age__startswith": "3"}, "age is declared int, not a string"),
    ]  # fmt: skip
    for conditions, message in impossible:
        with pytest.raises(QueryError) as caught:
            q.where(**conditions)
        assert message in str(caught.value), (conditions, str(caught.value))
    with pytest.raises(QueryError, match="did you mean 'address__zip'"):
        q.where(address__city="Paris").order_by("-address__zipp")
    with pytest.raises(QueryError, match="did you mean 'address__city'"):
        q.values("address__citty")
    with pytest.raises(QueryError, match="name is declared str, not a number"):
        q.update(name__inc=1)
    # Extra fields of this schemaless model, and queries by collection name, stay unchecked.
    assert q.where(nickname__gt=3).count() == 0
    assert db.query("people").where(age__gtee=3, address__cty="Paris").count() == 0
    assert db.version(Person) == version
