"""The FastAPI applications of docs/fastapi.rst, served through httpx.

The code run here is the code of the page: its blocks are read from the file
and executed as sybil executes them (the sync application's block, then the
async version's block in the same namespace, which reuses its models). Each
app is driven by httpx's ``AsyncClient`` over ``ASGITransport``, which does not
run the lifespan, so the test enters ``app.router.lifespan_context(app)``
itself: the storage is opened (from ``$DOQU_URL``) and closed by the page's code.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

if TYPE_CHECKING:
    from fastapi import FastAPI
    from httpx import AsyncClient, Response

PAGE = Path(__file__).parent.parent / "docs" / "fastapi.rst"
_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", re.MULTILINE)


def _blocks() -> list[str]:
    """The page's Python blocks, each led by blank lines so tracebacks give page lines."""
    text = PAGE.read_text(encoding="utf-8")
    return [
        "\n" * text.count("\n", 0, m.start(1)) + textwrap.dedent(m.group(1))
        for m in _BLOCK.finditer(text)
    ]


def _block(*needles: str) -> str:
    found = [b for b in _blocks() if all(n in b for n in needles)]
    assert len(found) == 1, f"{len(found)} blocks of {PAGE.name} contain {needles}"
    return found[0]


def load_app(kind: str) -> FastAPI:
    """The ``app`` the page defines: ``"sync"`` or ``"async"``."""
    namespace: dict[str, Any] = {"__name__": f"fastapi_page_{kind}"}
    exec(compile(_block("FastAPI(", "doqu.connect()"), str(PAGE), "exec"), namespace)
    if kind == "async":
        exec(compile(_block("FastAPI(", "doqu.connect_async()"), str(PAGE), "exec"), namespace)
    app: FastAPI = namespace["app"]
    return app


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/app.db"


def serve(app: FastAPI, scenario: Callable[[AsyncClient], Awaitable[None]]) -> None:
    """Run ``scenario(client)`` against *app*, inside its lifespan, in a fresh loop."""

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await scenario(client)
        assert app.state.db.closed  # the lifespan closed the storage at shutdown

    asyncio.run(main())


async def crud(client: AsyncClient) -> None:
    ann = {"name": "Ann", "email": "ann@example.com", "age": 35}
    r = await client.post("/people", json=ann)
    assert r.status_code == 201, r.text
    created = r.json()
    pk = created.pop("pk")
    assert created == ann and pk

    r = await client.get(f"/people/{pk}")
    assert r.status_code == 200 and r.json() == {"pk": pk, **ann}
    r = await client.get("/people/nobody")
    assert r.status_code == 404 and r.json() == {"detail": "no such person"}

    # the input model: a duplicate email, a client-chosen pk, a missing field
    r = await client.post("/people", json={"name": "Ann 2", "email": "ann@example.com"})
    assert r.status_code == 409
    assert (
        await client.post("/people", json={**ann, "email": "x@e.com", "pk": "x"})
    ).status_code == 422
    assert (await client.post("/people", json={"name": "Eve"})).status_code == 422

    bob = (await client.post("/people", json={"name": "Bob", "email": "b@e.com", "age": 17})).json()
    cy = (await client.post("/people", json={"name": "Cy", "email": "c@e.com", "age": 70})).json()

    # list: filter, order, pagination
    r = await client.get("/people")
    assert [p["name"] for p in r.json()] == ["Ann", "Bob", "Cy"]
    r = await client.get("/people", params={"min_age": 18})
    assert [p["name"] for p in r.json()] == ["Ann", "Cy"]
    r = await client.get("/people", params={"offset": 1, "limit": 1})
    assert [p["name"] for p in r.json()] == ["Bob"]
    r = await client.get("/people", params={"min_age": 18, "offset": 1, "limit": 5})
    assert [p["pk"] for p in r.json()] == [cy["pk"]]
    assert (await client.get("/people", params={"limit": 0})).status_code == 422
    assert (await client.get("/people", params={"offset": -1})).status_code == 422

    # replace
    r = await client.put(
        f"/people/{bob['pk']}", json={"name": "Bob", "email": "b@e.com", "age": 18}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {**bob, "age": 18}
    assert (await client.get(f"/people/{bob['pk']}")).json()["age"] == 18
    r = await client.get("/people", params={"min_age": 18})
    assert [p["name"] for p in r.json()] == ["Ann", "Bob", "Cy"]
    r = await client.put("/people/nobody", json={"name": "N", "email": "n@e.com"})
    assert r.status_code == 404
    r = await client.put(f"/people/{bob['pk']}", json={"name": "Bob", "email": "ann@example.com"})
    assert r.status_code == 409
    assert (await client.get(f"/people/{bob['pk']}")).json()["email"] == "b@e.com"
    r = await client.put(
        f"/people/{bob['pk']}", json={"name": "Bob", "email": "b@e.com", "pk": "z"}
    )
    assert r.status_code == 422

    # delete
    r = await client.delete(f"/people/{pk}")
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/people/{pk}")).status_code == 404
    assert (await client.delete(f"/people/{pk}")).status_code == 404
    assert [p["name"] for p in (await client.get("/people")).json()] == ["Bob", "Cy"]


async def concurrent(client: AsyncClient) -> None:
    n = 20
    people = [{"name": f"P{i:02}", "email": f"p{i}@e.com", "age": i} for i in range(n)]
    created = await asyncio.gather(*(client.post("/people", json=p) for p in people))
    assert [r.status_code for r in created] == [201] * n
    pks = [r.json()["pk"] for r in created]
    assert len(set(pks)) == n

    reads = await asyncio.gather(*(client.get(f"/people/{pk}") for pk in pks))
    assert [r.json()["name"] for r in reads] == [p["name"] for p in people]

    # twenty mixed requests at once: replaces, deletes, pages, reads
    def one(i: int) -> Awaitable[Response]:
        pk = pks[i]
        if i % 4 == 0:
            return client.put(f"/people/{pk}", json={**people[i], "age": 100 + i})
        if i % 4 == 1:
            return client.delete(f"/people/{pk}")
        if i % 4 == 2:
            return client.get("/people", params={"min_age": 0, "offset": i, "limit": 5})
        return client.get(f"/people/{pk}")

    mixed = await asyncio.gather(*(one(i) for i in range(n)))
    assert [r.status_code for r in mixed] == [[200, 204, 200, 200][i % 4] for i in range(n)]

    left = (await client.get("/people", params={"limit": 100})).json()
    assert [p["name"] for p in left] == [p["name"] for i, p in enumerate(people) if i % 4 != 1]
    assert [p["age"] for p in left if p["age"] >= 100] == [100 + i for i in range(0, n, 4)]

    # creates of one email at once, more than the SQL pool's 15 connections: exactly
    # one wins (a refused write reads who holds the key on its own connection).
    same = await asyncio.gather(
        *(client.post("/people", json={"name": f"D{i}", "email": "dup@e.com"}) for i in range(20))
    )
    assert sorted(r.status_code for r in same) == [201] + [409] * 19


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_crud(kind: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOQU_URL", url)
    serve(load_app(kind), crud)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_concurrent_requests(
    kind: str, url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("DOQU_URL", url)
    serve(load_app(kind), concurrent)


def test_async_handlers_are_coroutines() -> None:
    """The async version really is async (and the sync one is not)."""
    for kind, expected in (("async", True), ("sync", False)):
        routes = [r for r in load_app(kind).routes if isinstance(r, fastapi.routing.APIRoute)]
        endpoints = {r.name: r.endpoint for r in routes}
        assert set(endpoints) == {"create", "read", "search", "replace", "remove"}
        assert {inspect.iscoroutinefunction(e) for e in endpoints.values()} == {expected}
