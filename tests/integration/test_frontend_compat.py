"""Spellings of existing frontends (SPEC §21): each alias alone, with its canonical field
agreeing, and disagreeing (422 naming both); route aliases on both prefixes; problem members
on every error status; every LIST_RESPONSE_SHAPE (body, headers, OpenAPI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.http_support import app_for, auth, make_settings, serve
from todo_domain import StorageUnavailable, TaskService
from todo_domain.sync import ChangeToken
from todo_entrypoints.container import Container, provide
from todo_entrypoints.http.app import create_app

USER = "frontend-user"
A = auth(USER)
PREFIXES = ["/api", f"/api/{USER}"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_for()) as c:
        yield c


async def _create(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/tasks", json=body, headers=A)


def _fields_named(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {e["field"] for e in response.json()["errors"]}


# -- bodies ---------------------------------------------------------------------------------------

# (alias body, canonical body, a disagreeing value for the alias, what the task then shows)
BODY_ALIASES: list[tuple[str, dict[str, Any], dict[str, Any], Any, tuple[str, Any]]] = [
    (
        "due_at",
        {"due_at": "2026-12-24T09:00:00Z"},
        {"due_date": "2026-12-24T09:00:00+00:00"},
        "2026-12-25T09:00:00Z",
        ("due_date", "2026-12-24T09:00:00Z"),
    ),
    (
        "reminder_at",
        {"reminder_at": "2026-12-24T08:00:00Z"},
        {"remind_at": "2026-12-24T08:00:00Z"},
        "2026-12-24T07:00:00Z",
        ("remind_at", "2026-12-24T08:00:00Z"),
    ),
    ("is_completed", {"is_completed": True}, {"completed": True}, False, ("status", "completed")),
]


@pytest.mark.parametrize(("alias", "alone", "canonical", "other", "shown"), BODY_ALIASES)
async def test_a_body_alias_alone_or_agreeing_is_its_field(
    client: httpx.AsyncClient,
    alias: str,
    alone: dict[str, Any],
    canonical: dict[str, Any],
    other: Any,
    shown: tuple[str, Any],
) -> None:
    field, expected = shown
    for body in (alone, {**alone, **canonical}):
        response = await _create(client, {"title": "t", **body})
        assert response.status_code == 201, response.text
        assert response.json()[field] == expected
    (canonical_name,) = canonical
    clash = await _create(client, {"title": "t", **canonical, alias: other})
    assert _fields_named(clash) == {alias, canonical_name}
    assert clash.json()["errors"][0]["code"] == "alias_conflict"


@pytest.mark.parametrize("alias", [a for a, *_ in BODY_ALIASES])
async def test_body_aliases_work_in_patch_and_put(client: httpx.AsyncClient, alias: str) -> None:
    task = (await _create(client, {"title": "t"})).json()
    alone, field, expected = next((b, s[0], s[1]) for a, b, _, _, s in BODY_ALIASES if a == alias)
    patched = await client.patch(f"/api/tasks/{task['id']}", json=alone, headers=A)
    assert patched.status_code == 200, patched.text
    assert patched.json()[field] == expected
    replaced = await client.put(f"/api/tasks/{task['id']}", json={"title": "u", **alone}, headers=A)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()[field] == expected


@pytest.mark.parametrize(
    ("body", "recurrence"),
    [
        ({"is_recurring": True, "recurrence_rule": "daily"}, {"frequency": "daily", "interval": 1}),
        (
            {"is_recurring": True, "recurrence_rule": {"frequency": "weekly", "interval": 2}},
            {"frequency": "weekly", "interval": 2},
        ),
        ({"recurrence_rule": "monthly"}, {"frequency": "monthly", "interval": 1}),
        ({"is_recurring": False, "recurrence_rule": "daily"}, None),
        ({"is_recurring": False}, None),
        (
            {"is_recurring": True, "recurrence_rule": "daily", "recurrence": "daily"},
            {"frequency": "daily", "interval": 1},
        ),
    ],
)
async def test_is_recurring_and_recurrence_rule_are_recurrence(
    client: httpx.AsyncClient, body: dict[str, Any], recurrence: Any
) -> None:
    response = await _create(client, {"title": "t", "due_date": "2026-12-24", **body})
    assert response.status_code == 201, response.text
    assert response.json()["recurrence"] == recurrence


async def test_recurrence_aliases_refuse_what_does_not_add_up(client: httpx.AsyncClient) -> None:
    due = {"title": "t", "due_date": "2026-12-24"}
    clash = await _create(
        client, {**due, "is_recurring": True, "recurrence_rule": "daily", "recurrence": "weekly"}
    )
    assert _fields_named(clash) == {"recurrence_rule", "recurrence"}
    assert _fields_named(await _create(client, {**due, "is_recurring": True})) == {"recurrence_rule"}
    assert _fields_named(await _create(client, {**due, "is_recurring": "yes"})) == {"is_recurring"}
    assert _fields_named(await _create(client, {**due, "recurrence_rule": "hourly"})) != set()


async def test_is_recurring_false_in_a_patch_clears_the_recurrence(client: httpx.AsyncClient) -> None:
    task = (await _create(client, {"title": "t", "due_date": "2026-12-24", "recurrence": "daily"})).json()
    patched = await client.patch(f"/api/tasks/{task['id']}", json={"is_recurring": False}, headers=A)
    assert patched.json()["recurrence"] is None


@pytest.mark.parametrize(
    ("body", "tags"),
    [
        ({"tags": "work, urgent"}, ["urgent", "work"]),
        ({"tags": " , "}, []),
        ({"category": "Work"}, ["work"]),
        ({"tags": ["home"], "category": "work"}, ["home", "work"]),
        ({"tags": "home,errands", "category": "home"}, ["errands", "home"]),
        ({"category": None}, []),
        ({"category": ""}, []),
    ],
)
async def test_comma_separated_tags_and_category(
    client: httpx.AsyncClient, body: dict[str, Any], tags: list[str]
) -> None:
    response = await _create(client, {"title": "t", **body})
    assert response.status_code == 201, response.text
    assert response.json()["tags"] == tags


async def test_a_category_in_a_patch_joins_the_tasks_tags(client: httpx.AsyncClient) -> None:
    task = (await _create(client, {"title": "t", "tags": ["home"]})).json()
    url = f"/api/tasks/{task['id']}"
    assert (await client.patch(url, json={"category": "work"}, headers=A)).json()["tags"] == ["home", "work"]
    replaced = await client.patch(url, json={"tags": "a", "category": "b"}, headers=A)
    assert replaced.json()["tags"] == ["a", "b"]
    full = await client.patch(url, json={"tags": [f"t{i}" for i in range(20)]}, headers=A)
    assert full.status_code == 200
    assert _fields_named(await client.patch(url, json={"category": "one-too-many"}, headers=A)) == {"tags"}


async def test_other_unknown_fields_stay_422(client: httpx.AsyncClient) -> None:
    assert _fields_named(await _create(client, {"title": "t", "colour": "red"})) == {"colour"}
    assert _fields_named(await _create(client, {"title": "t", "tags": 5})) == {"tags"}


# -- listing --------------------------------------------------------------------------------------


async def _titles(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get(f"/api/tasks?{query}", headers=A)
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()]


@pytest.fixture
async def listed(client: httpx.AsyncClient) -> httpx.AsyncClient:
    for title, due in (("milk", "2026-12-03"), ("bread", "2026-12-01"), ("eggs", "2026-12-02")):
        assert (await _create(client, {"title": title, "due_date": due})).status_code == 201
    return client


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("created", "created_at"),
        ("createdAt", "created_at"),
        ("updated", "updated_at"),
        ("updatedAt", "updated_at"),
        ("due", "due_date"),
        ("due_at", "due_date"),
        ("dueDate", "due_date"),
    ],
)
async def test_sort_key_aliases(listed: httpx.AsyncClient, alias: str, canonical: str) -> None:
    for spelled in (f"sort={alias}", f"sort=-{alias}", f"sort_by={alias}&order=desc"):
        expected = spelled.replace(alias, canonical)
        assert await _titles(listed, spelled) == await _titles(listed, expected)
    assert await _titles(listed, "sort=due") == ["bread", "eggs", "milk"]


@pytest.mark.parametrize("alias", ["sort_order", "direction"])
async def test_order_aliases(listed: httpx.AsyncClient, alias: str) -> None:
    assert await _titles(listed, f"sort_by=due&{alias}=desc") == ["milk", "eggs", "bread"]
    assert await _titles(listed, f"sort_by=due&{alias}=asc&order=asc") == ["bread", "eggs", "milk"]
    clash = await listed.get(f"/api/tasks?sort_by=due&{alias}=asc&order=desc", headers=A)
    assert _fields_named(clash) == {alias, "order"}


async def test_search_is_q(listed: httpx.AsyncClient) -> None:
    assert await _titles(listed, "search=MILK") == ["milk"]
    assert await _titles(listed, "search=milk&q=milk") == ["milk"]
    assert _fields_named(await listed.get("/api/tasks?search=milk&q=eggs", headers=A)) == {"search", "q"}


async def test_unknown_sort_values_stay_422(client: httpx.AsyncClient) -> None:
    assert _fields_named(await client.get("/api/tasks?sort=createdOn", headers=A)) == {"sort"}
    assert _fields_named(await client.get("/api/tasks?sort_by=due&direction=up", headers=A)) == {"order"}


# -- routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("route", ["toggle", "toggle-completion"])
async def test_toggle_aliases_are_the_bodiless_complete(
    client: httpx.AsyncClient, prefix: str, route: str
) -> None:
    task = (await _create(client, {"title": "t"})).json()
    url = f"{prefix}/tasks/{task['id']}/{route}"
    first = await client.patch(url, headers=A)
    assert first.status_code == 200, first.text
    assert first.json()["completed"] is True
    assert first.headers["etag"] == '"2"'
    second = await client.patch(url, headers={**A, "If-Match": '"2"'})
    assert second.json()["completed"] is False
    assert (await client.patch(url, headers={**A, "If-Match": '"2"'})).status_code == 412
    missing = await client.patch(f"{prefix}/tasks/00000000-0000-7000-8000-000000000000/{route}", headers=A)
    assert missing.status_code == 404


async def test_toggle_aliases_are_deprecated_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for prefix in ("/api", "/api/{user_id}"):
        for route in ("toggle", "toggle-completion"):
            assert paths[f"{prefix}/tasks/{{task_id}}/{route}"]["patch"]["deprecated"] is True
        assert "deprecated" not in paths[f"{prefix}/tasks/{{task_id}}/complete"]["patch"]
    parameters = {p["name"]: p for p in paths["/api/tasks"]["get"]["parameters"]}
    assert parameters["search"]["deprecated"] is True
    assert parameters["sort_order"]["deprecated"] is True
    create = (await client.get("/openapi.json")).json()["components"]["schemas"]["TaskCreateIn"]
    assert create["properties"]["due_at"]["deprecated"] is True
    assert "category" in create["properties"]


# -- problems -------------------------------------------------------------------------------------


async def test_every_problem_carries_message_and_error(client: httpx.AsyncClient) -> None:
    task = (await _create(client, {"title": "t"})).json()
    answers = [
        await client.post("/api/tasks", content=b"{", headers={**A, "Content-Type": "application/json"}),
        await client.get("/api/tasks"),
        await client.get(f"/api/someone-else/tasks/{task['id']}", headers=A),
        await client.get("/api/tasks/00000000-0000-7000-8000-000000000000", headers=A),
        await client.delete("/api/tasks", headers=A),
        await client.patch(f"/api/tasks/{task['id']}", json={"title": "x"}, headers={**A, "If-Match": '"9"'}),
        await client.post(
            "/api/tasks", content=b"x" * 2_000_000, headers={**A, "Content-Type": "application/json"}
        ),
        await client.post("/api/tasks", content=b"title", headers={**A, "Content-Type": "text/plain"}),
        await _create(client, {"title": ""}),
    ]
    expired = ChangeToken(0, datetime(2000, 1, 1, tzinfo=UTC)).encode()
    answers.append(await client.get(f"/api/tasks/changes?since={expired}", headers=A))
    assert [r.status_code for r in answers] == [400, 401, 403, 404, 405, 412, 413, 415, 422, 410]
    answers += [await _limited(), await _exploding(), await _database_down()]
    assert [r.status_code for r in answers[-3:]] == [429, 500, 503]
    for response in answers:
        body = response.json()
        assert body["message"] == body["detail"]
        assert body["error"] == {"code": body["code"], "message": body["detail"]}
        assert isinstance(body["detail"], str)


async def _limited() -> httpx.Response:
    async with serve(app_for(rate_limit_enabled=True, rate_limit_read="1/minute")) as c:
        await c.get("/api/tasks", headers=A)
        return await c.get("/api/tasks", headers=A)


async def _exploding() -> httpx.Response:
    class Exploding(TaskService):
        async def list(self, owner: str, query: object = None) -> Any:
            raise RuntimeError("boom")

    container = Container(settings=make_settings())
    container.service.override(Exploding(await provide(container.unit_of_work)))
    async with serve(create_app(container), raise_app_exceptions=False) as c:
        return await c.get("/api/tasks", headers=A)


async def _database_down() -> httpx.Response:
    class Down:
        def begin(self, *, read_only: bool = False) -> Any:
            raise StorageUnavailable("the database is unreachable")

    container = Container(settings=make_settings())
    container.unit_of_work.override(Down())
    async with serve(create_app(container)) as c:
        return await c.get("/api/tasks", headers=A)


# -- list shape -----------------------------------------------------------------------------------

SHAPES = {
    "array": (None, None),
    "tasks": ("tasks", "total"),
    "items": ("items", "total"),
    "data": ("data", "count"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_list_response_shape(shape: str) -> None:
    items_key, total_key = SHAPES[shape]
    async with serve(app_for(list_response_shape=shape)) as client:
        for i in range(3):
            await _create(client, {"title": f"t{i}"})
        for prefix in PREFIXES:
            response = await client.get(f"{prefix}/tasks?limit=2", headers=A)
            assert response.status_code == 200
            assert response.headers["x-total-count"] == "3"
            assert 'rel="next"' in response.headers["link"]
            body = response.json()
            if items_key is None:
                assert isinstance(body, list)
                assert len(body) == 2
            else:
                assert set(body) == {items_key, total_key}
                assert len(body[items_key]) == 2
                assert body[total_key] == 3
        document = (await client.get("/openapi.json")).json()
        for path in ("/api/tasks", "/api/{user_id}/tasks"):
            schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ]
            if items_key is None:
                assert schema["type"] == "array"
            else:
                model = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                assert set(model["properties"]) == {items_key, total_key}


def test_an_unknown_list_shape_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="list_response_shape"):
        app_for(list_response_shape="envelope")
