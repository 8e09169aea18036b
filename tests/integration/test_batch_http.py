"""`POST /api/tasks/batch` (SPEC §18): mixed batches with temp ids, per-command failures,
resends, atomic rollback, BOLA, limits and the OpenAPI document — on memory and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from .http_support import app_for, auth, serve
from .test_http_api import B, assert_problem, create


@pytest.fixture(params=["memory", "postgres"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    url = "memory://" if request.param == "memory" else str(request.getfixturevalue("postgres_url"))
    async with serve(app_for(database_url=url)) as client:
        yield client


def owner() -> dict[str, str]:
    return auth(f"u{uuid.uuid4().hex}")


async def batch(
    api: httpx.AsyncClient, me: dict[str, str], commands: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    return await api.post("/api/tasks/batch", json={"commands": commands, **extra}, headers=me)


QUEUE: list[dict[str, Any]] = [
    {"id": "1", "op": "create", "temp_id": "trip", "body": {"title": "Plan the trip", "tags": ["travel"]}},
    {"id": "2", "op": "create", "temp_id": "van", "body": {"title": "Book a van", "parent_id": "trip"}},
    {"id": "3", "op": "create", "temp_id": "keys", "body": {"title": "Hand in keys", "parent_id": "trip"}},
    {"id": "4", "op": "move", "task_id": "keys", "body": {"after": None}},
    {"id": "5", "op": "update", "task_id": "van", "if_match": '"1"', "body": {"priority": "high"}},
    {"id": "6", "op": "complete", "task_id": "keys"},
    {"id": "7", "op": "replace", "task_id": "trip", "body": {"title": "Plan the move"}},
    {"id": "8", "op": "delete", "task_id": "van"},
]


async def test_an_offline_queue_in_one_request(api: httpx.AsyncClient) -> None:
    me = owner()
    response = await batch(api, me, QUEUE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == [201, 201, 201, 200, 200, 200, 200, 204]
    assert [r["id"] for r in body["results"]] == [c["id"] for c in QUEUE]
    trip, keys = body["temp_ids"]["trip"], body["temp_ids"]["keys"]
    assert body["results"][1]["task"]["parent_id"] == trip
    assert body["results"][4]["task"]["priority"] == "high"
    assert body["results"][5]["task"]["completed"] is True
    assert body["results"][6]["task"]["title"] == "Plan the move"
    assert "task" not in body["results"][7]
    listed = (await api.get(f"/api/tasks?parent_id={trip}&sort=position", headers=me)).json()
    assert [t["id"] for t in listed] == [keys]
    again = await batch(api, me, QUEUE)
    assert again.json() == body  # the same results, nothing applied twice
    assert len((await api.get("/api/tasks", headers=me)).json()) == 2


async def test_failures_are_answered_per_command_while_the_rest_apply(api: httpx.AsyncClient) -> None:
    me = owner()
    mine = await create(api, me, title="mine")
    theirs = await create(api, B, title="bob's")
    response = await batch(
        api,
        me,
        [
            {"id": "a", "op": "delete", "task_id": theirs["id"]},
            {"id": "b", "op": "complete", "task_id": mine["id"], "if_match": '"9"'},
            {"id": "c", "op": "create", "temp_id": "t", "body": {"title": ""}},
            {"id": "d", "op": "create", "body": {"title": "child", "parent_id": "t"}},
            {"id": "e", "op": "update", "task_id": "no-such-temp", "body": {"title": "x"}},
            {"id": "f", "op": "update", "task_id": mine["id"], "body": {"title": "renamed", "bogus": 1}},
            {"id": "g", "op": "update", "task_id": mine["id"], "body": {"title": "renamed"}},
            {"id": "h", "op": "create", "body": {"title": "x", "after": mine["id"]}},
        ],
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [404, 412, 422, 424, 422, 422, 200, 422]
    assert {e["field"] for e in results[7]["problem"]["errors"]} == {"after"}
    codes = [r["problem"]["code"] for r in results[:6]]
    assert (
        codes
        == ["not_found", "precondition_failed", "validation_error", "failed_dependency"]
        + ["validation_error"] * 2
    )
    assert {e["field"] for e in results[4]["problem"]["errors"]} == {"task_id"}
    assert {e["field"] for e in results[5]["problem"]["errors"]} == {"bogus"}
    assert results[6]["task"]["title"] == "renamed"
    assert (await api.get(f"/api/tasks/{theirs['id']}", headers=B)).status_code == 200


async def test_an_atomic_batch_is_all_or_nothing(api: httpx.AsyncClient) -> None:
    me = owner()
    commands: list[dict[str, Any]] = [
        {"id": "x", "op": "create", "temp_id": "p", "body": {"title": "parent"}},
        {"id": "y", "op": "create", "body": {"title": "child", "parent_id": "p"}},
        {"id": "z", "op": "delete", "task_id": str(uuid.uuid4())},
    ]
    failed = await batch(api, me, commands, atomic=True)
    problem = assert_problem(failed, 404, "not_found")
    assert problem["errors"][0]["field"] == "commands[2]"
    assert (await api.get("/api/tasks", headers=me)).json() == []
    done = await batch(api, me, commands[:2], atomic=True)
    assert [r["status"] for r in done.json()["results"]] == [201, 201]


async def test_a_reused_command_id_and_malformed_batches(api: httpx.AsyncClient) -> None:
    me = owner()
    await batch(api, me, [{"id": "k", "op": "create", "body": {"title": "one"}}])
    reused = await batch(api, me, [{"id": "k", "op": "create", "body": {"title": "two"}}])
    assert reused.json()["results"][0]["problem"]["code"] == "idempotency_key_reused"
    too_many = await batch(api, me, [{"id": str(i), "op": "toggle", "task_id": "x"} for i in range(1001)])
    assert "commands" in {e["field"] for e in assert_problem(too_many, 422, "validation_error")["errors"]}
    twice = await batch(api, me, [{"id": "d", "op": "create", "body": {"title": "t"}}] * 2)
    assert "commands[1].id" in {e["field"] for e in assert_problem(twice, 422, "validation_error")["errors"]}
    unknown_op = await batch(api, me, [{"id": "u", "op": "explode", "task_id": "x"}])
    assert_problem(unknown_op, 422, "validation_error")
    assert [t["title"] for t in (await api.get("/api/tasks", headers=me)).json()] == ["one"]


async def test_the_openapi_document_describes_batches(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    operation = document["paths"]["/api/tasks/batch"]["post"]
    assert "requestBody" in operation
    schemas = document["components"]["schemas"]
    assert {"commands", "atomic"} <= set(schemas["BatchIn"]["properties"])
    assert {"results", "temp_ids"} <= set(schemas["BatchOut"]["properties"])
    assert "/api/{user_id}/tasks/batch" in document["paths"]


async def test_a_batch_is_one_write_and_its_commands_count_against_their_own_limit() -> None:
    app = app_for(rate_limit_enabled=True, rate_limit_write="3/minute", rate_limit_batch_commands="5/hour")
    me = owner()
    async with serve(app) as api:
        three = [{"id": f"a{i}", "op": "create", "body": {"title": "t"}} for i in range(3)]
        first = await batch(api, me, three)
        assert first.status_code == 200
        assert first.headers["ratelimit-remaining"] == "2"  # the whole batch: one write
        over = await batch(
            api, me, [{"id": f"b{i}", "op": "create", "body": {"title": "t"}} for i in range(3)]
        )
        problem = assert_problem(over, 429, "rate_limited")
        assert "RATE_LIMIT_BATCH_COMMANDS" in problem["detail"]
        assert len((await api.get("/api/tasks", headers=me)).json()) == 3
        two = await batch(
            api, me, [{"id": f"c{i}", "op": "create", "body": {"title": "t"}} for i in range(2)]
        )
        assert two.status_code == 200
