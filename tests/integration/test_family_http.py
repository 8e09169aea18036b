"""Subtasks, moves and time zones over HTTP (SPEC §17): representation, filters, every 422."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from .http_support import app_for, auth, serve
from .test_http_api import A, B, assert_problem, create


@pytest.fixture(params=["memory", "postgres"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    url = "memory://" if request.param == "memory" else str(request.getfixturevalue("postgres_url"))
    async with serve(app_for(database_url=url)) as client:
        yield client


async def titles(api: httpx.AsyncClient, query: str, headers: dict[str, str]) -> list[str]:
    response = await api.get(f"/api/tasks?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()]


def owner() -> dict[str, str]:
    return auth(f"u{uuid.uuid4().hex}")


async def test_subtasks_filters_and_manual_order(api: httpx.AsyncClient) -> None:
    me = owner()
    parent = await create(api, me, title="parent", time_zone="Europe/Paris")
    assert (parent["parent_id"], parent["time_zone"]) == (None, "Europe/Paris")
    assert isinstance(parent["position"], str)
    first = await create(api, me, title="first", parent_id=parent["id"])
    second = await create(api, me, title="second", parent_id=parent["id"])
    assert first["parent_id"] == parent["id"]
    assert await titles(api, f"parent_id={parent['id']}&sort=position", me) == ["first", "second"]
    assert await titles(api, "parent_id=none", me) == ["parent"]
    assert sorted(await titles(api, "", me)) == ["first", "parent", "second"]
    moved = await api.post(f"/api/tasks/{second['id']}/move", json={"after": None}, headers=me)
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] == '"2"'
    assert moved.json()["position"] < first["position"]
    assert await titles(api, f"parent_id={parent['id']}&sort=position", me) == ["second", "first"]
    assert await titles(api, f"parent_id={parent['id']}&sort=-position", me) == ["first", "second"]
    top = await api.post(
        f"/api/tasks/{first['id']}/move", json={"parent_id": None}, headers={**me, "If-Match": '"1"'}
    )
    assert top.status_code == 200, top.text
    assert top.json()["parent_id"] is None
    stale = await api.post(f"/api/tasks/{first['id']}/move", json={}, headers={**me, "If-Match": '"1"'})
    assert_problem(stale, 412, "precondition_failed")
    deleted = await api.delete(f"/api/tasks/{parent['id']}", headers=me)
    assert deleted.status_code == 204
    assert await titles(api, "", me) == ["first"]  # `second` went with its parent


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parent_id": "not-a-uuid"}, "parent_id"),
        ({"parent_id": str(uuid.uuid4())}, "parent_id"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "x" * 65}, "time_zone"),
        ({"time_zone": 5}, "time_zone"),
    ],
)
async def test_bad_family_fields_are_422_naming_them(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    me = owner()
    for response in (
        await api.post("/api/tasks", json={"title": "t", **body}, headers=me),
        await api.patch(f"/api/tasks/{(await create(api, me))['id']}", json=body, headers=me),
    ):
        problem = assert_problem(response, 422, "validation_error")
        assert field in {e["field"] for e in problem["errors"]}, problem


async def test_moves_that_cannot_be_are_422_and_foreign_ids_are_not_found(api: httpx.AsyncClient) -> None:
    me = owner()
    root = await create(api, me, title="root")
    child = await create(api, me, title="child", parent_id=root["id"])
    other = await create(api, me, title="other")
    third = await create(api, me, title="third")
    theirs = await create(api, B, title="bob's")
    cases = [
        ({"parent_id": child["id"]}, "parent_id"),  # under its own subtask
        ({"parent_id": root["id"]}, "parent_id"),  # under itself
        ({"after": child["id"]}, "after"),  # not a sibling at the top level
        ({"before": theirs["id"]}, "before"),
        ({"parent_id": theirs["id"]}, "parent_id"),
        ({"after": None, "before": third["id"]}, "before"),  # two different gaps
        ({"after": other["id"], "before": None}, "before"),
        ({"after": "nope"}, "after"),
    ]
    for body, field in cases:
        response = await api.post(f"/api/tasks/{root['id']}/move", json=body, headers=me)
        problem = assert_problem(response, 422, "validation_error")
        assert field in {e["field"] for e in problem["errors"]}, (body, problem)
    assert (await api.get(f"/api/tasks/{root['id']}", headers=me)).json()["version"] == 1
    foreign = await api.post(f"/api/tasks/{theirs['id']}/move", json={}, headers=me)
    assert_problem(foreign, 404, "not_found")
    bad_filter = await api.get("/api/tasks?parent_id=nope", headers=me)
    assert "parent_id" in {e["field"] for e in assert_problem(bad_filter, 422, "validation_error")["errors"]}


async def test_put_resets_parent_and_zone_and_keeps_position(api: httpx.AsyncClient) -> None:
    me = owner()
    root = await create(api, me, title="root")
    task = await create(api, me, title="t", parent_id=root["id"], time_zone="Asia/Tokyo")
    replaced = await api.put(
        f"/api/tasks/{task['id']}", json={**task, "title": "t2", "parent_id": root["id"]}, headers=me
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["parent_id"], body["time_zone"], body["position"]) == (
        root["id"],
        "Asia/Tokyo",
        task["position"],
    )
    bare = await api.put(f"/api/tasks/{task['id']}", json={"title": "t3"}, headers=me)
    assert (bare.json()["parent_id"], bare.json()["time_zone"]) == (None, None)


async def test_the_openapi_document_describes_the_family(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert "post" in document["paths"]["/api/tasks/{task_id}/move"]
    task = document["components"]["schemas"]["TaskOut"]["properties"]
    assert {"parent_id", "position", "time_zone"} <= set(task)
    parameters = {p["name"] for p in document["paths"]["/api/tasks"]["get"]["parameters"]}
    assert "parent_id" in parameters
    assert document["components"]["schemas"]["MoveIn"]["properties"].keys() == {
        "parent_id",
        "after",
        "before",
    }


async def test_a_move_for_a_user_path_must_be_the_token_subject(api: httpx.AsyncClient) -> None:
    task = await create(api, A, title="mine")
    response = await api.post(f"/api/bob/tasks/{task['id']}/move", json={}, headers=A)
    assert_problem(response, 403, "forbidden")
