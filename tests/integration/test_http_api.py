"""The HTTP API through the ASGI app (SPEC §6): representation, bodies, listing, conditional
requests and every error of the §6.9 table. Runs on the in-memory store, and the
representative subset marked `both_stores` also on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from todo_domain import NewTask, StorageUnavailable, TaskService
from todo_entrypoints.container import LARGE_PAGES_AT_ONCE, Container, provide

from .http_support import app_for, auth, make_settings, serve

ALICE, BOB = "KZMw0N5rJhdi_i1JbWle6aaaaaaaaaaa", "bob"
A = auth(ALICE)
B = auth(BOB)


@pytest.fixture(params=["memory", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_for()) as c:
        yield c


@pytest.fixture
async def any_client(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same tests against memory and PostgreSQL (owners are unique per run there)."""
    async with serve(app_for(database_url=store_url)) as c:
        yield c


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def create(client: httpx.AsyncClient, headers: dict[str, str] = A, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/tasks", json={"title": "Buy milk", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- representation and bodies ------------------------------------------------------------------


async def test_creating_a_task_returns_the_full_representation(any_client: httpx.AsyncClient) -> None:
    user = f"u{uuid.uuid4().hex}"
    response = await any_client.post(
        "/api/tasks", json={"title": "  Buy milk ", "tags": ["Home"]}, headers=auth(user)
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "user_id", "title", "description", "status", "completed", "priority", "tags",
        "due_date", "remind_at", "recurrence", "completed_at", "created_at", "updated_at", "version",
        "parent_id", "position", "time_zone",
    }  # fmt: skip
    assert (body["title"], body["user_id"], body["tags"], body["version"]) == ("Buy milk", user, ["home"], 1)
    assert (body["status"], body["completed"], body["priority"]) == ("pending", False, "medium")
    assert body["created_at"].endswith("Z")
    assert uuid.UUID(body["id"]).version == 7
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/api/tasks/{body['id']}"
    fetched = await any_client.get(response.headers["location"], headers=auth(user))
    assert fetched.json() == body


async def test_lenient_values_are_normalised(client: httpx.AsyncClient) -> None:
    body = await create(
        client,
        status="Doing",
        priority="URGENT",
        due_date="2026-11-24",
        remind_at="2026-11-24T08:00:00",
        recurrence="weekly",
    )
    assert (body["status"], body["priority"]) == ("in_progress", "high")
    assert body["due_date"] == "2026-11-24T00:00:00Z"
    assert body["remind_at"] == "2026-11-24T08:00:00Z"
    assert body["recurrence"] == {"frequency": "weekly", "interval": 1}


async def test_offsets_are_converted_to_utc(client: httpx.AsyncClient) -> None:
    body = await create(client, due_date="2026-11-24T17:00:00+05:30")
    assert body["due_date"] == "2026-11-24T11:30:00Z"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "a\u0000b"}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"description": "d" * 10_001}, "description"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"due_date": "0001-01-01T00:00:00+14:00"}, "due_date"),
        ({"due_date": "10000-01-01T00:00:00Z"}, "due_date"),
        ({"priority": "whenever"}, "priority"),
        (
            {"recurrence": {"frequency": "daily", "interval": 366}, "due_date": "2026-01-01"},
            "recurrence.interval",
        ),
        ({"recurrence": "daily"}, "recurrence"),
        ({"status": "in_progress", "completed": True}, "completed"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/tasks", json={"title": "ok", **fields}, headers=A)
    body = assert_problem(response, 422, "validation_error")
    assert field in {e["field"] for e in body["errors"]}, body


async def test_a_title_with_a_lone_surrogate_is_refused(client: httpx.AsyncClient) -> None:
    raw = b'{"title": "a\\ud800b"}'
    response = await client.post("/api/tasks", content=raw, headers={**A, "content-type": "application/json"})
    assert_problem(response, 422, "validation_error")


async def test_read_only_fields_sent_back_are_ignored(client: httpx.AsyncClient) -> None:
    task = await create(client)
    echoed = {**task, "title": "Buy oat milk", "version": 99, "id": str(uuid.uuid4()), "user_id": "mallory"}
    response = await client.put(f"/api/tasks/{task['id']}", json=echoed, headers=A)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["user_id"], body["version"]) == (task["id"], ALICE, 2)


async def test_put_resets_omitted_fields(client: httpx.AsyncClient) -> None:
    task = await create(client, description="d", priority="high", tags=["x"])
    body = (await client.put(f"/api/tasks/{task['id']}", json={"title": "new"}, headers=A)).json()
    assert (body["description"], body["priority"], body["tags"]) == (None, "medium", [])


async def test_patch_changes_only_what_it_names_and_null_clears(client: httpx.AsyncClient) -> None:
    task = await create(client, description="d", due_date="2026-12-01")
    response = await client.patch(
        f"/api/tasks/{task['id']}",
        content=b'{"description": null}',
        headers={**A, "content-type": "application/merge-patch+json"},
    )
    body = response.json()
    assert (body["description"], body["due_date"], body["title"]) == (
        None,
        "2026-12-01T00:00:00Z",
        "Buy milk",
    )


async def test_an_unchanged_patch_keeps_the_version(client: httpx.AsyncClient) -> None:
    task = await create(client)
    body = (await client.patch(f"/api/tasks/{task['id']}", json={"title": "Buy milk"}, headers=A)).json()
    assert body["version"] == 1


async def test_complete_toggles_without_a_body_and_sets_with_one(any_client: httpx.AsyncClient) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    task = await create(any_client, headers)
    url = f"/api/tasks/{task['id']}/complete"
    toggled = (await any_client.patch(url, headers=headers)).json()
    assert (toggled["completed"], toggled["status"], toggled["version"]) == (True, "completed", 2)
    assert toggled["completed_at"] is not None
    again = (await any_client.patch(url, json={"completed": True}, headers=headers)).json()
    assert again["version"] == 2
    reopened = (await any_client.patch(url, json={"completed": False}, headers=headers)).json()
    assert (reopened["completed"], reopened["completed_at"], reopened["version"]) == (False, None, 3)


async def test_delete_then_get_is_404(any_client: httpx.AsyncClient) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    task = await create(any_client, headers)
    assert (await any_client.delete(f"/api/tasks/{task['id']}", headers=headers)).status_code == 204
    assert_problem(await any_client.get(f"/api/tasks/{task['id']}", headers=headers), 404, "not_found")


async def test_both_prefixes_behave_the_same(client: httpx.AsyncClient) -> None:
    task = await create(client)
    via_path = await client.get(f"/api/{ALICE}/tasks/{task['id']}", headers=A)
    assert via_path.json() == task
    created = await client.post(f"/api/{ALICE}/tasks", json={"title": "second"}, headers=A)
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/{ALICE}/tasks/{created.json()['id']}"
    listed = await client.get(f"/api/{ALICE}/tasks", headers=A)
    assert listed.headers["x-total-count"] == "2"


async def test_tags_report_open_and_total(client: httpx.AsyncClient) -> None:
    done = await create(client, tags=["home", "work"])
    await create(client, tags=["home"])
    await client.patch(f"/api/tasks/{done['id']}/complete", headers=A)
    response = await client.get("/api/tags", headers=A)
    assert response.json() == [
        {"name": "home", "open": 1, "total": 2},
        {"name": "work", "open": 0, "total": 1},
    ]
    assert (await client.get(f"/api/{ALICE}/tags", headers=A)).json() == response.json()


# -- listing --------------------------------------------------------------------------------------


async def test_listing_is_a_bare_array_newest_first_with_paging_headers(
    any_client: httpx.AsyncClient,
) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    ids = [(await create(any_client, headers, title=f"t{i}"))["id"] for i in range(5)]
    response = await any_client.get("/api/tasks", params={"limit": 2}, headers=headers)
    assert [t["id"] for t in response.json()] == ids[::-1][:2]
    assert response.headers["x-total-count"] == "5"
    seen = [t["id"] for t in response.json()]
    while "link" in response.headers:
        next_url = response.headers["link"].split(">")[0].lstrip("<")
        response = await any_client.get(next_url, headers=headers)
        seen += [t["id"] for t in response.json()]
    assert seen == ids[::-1]


async def test_offset_paging_links_by_offset(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await create(client, title=f"t{i}")
    response = await client.get("/api/tasks", params={"limit": 2, "skip": 0}, headers=A)
    assert "offset=2" in response.headers["link"]


@pytest.mark.parametrize(
    ("params", "titles"),
    [
        ({"status": "completed"}, ["done"]),
        ({"status": "active"}, ["doing", "todo"]),
        ({"status": ["pending", "in_progress"]}, ["doing", "todo"]),
        ({"status": "pending,completed"}, ["done", "todo"]),
        ({"status": "all"}, ["doing", "done", "todo"]),
        ({"completed": "false"}, ["doing", "todo"]),
        ({"priority": "high"}, ["doing"]),
        ({"tag": ["home", "work"]}, ["todo"]),
        ({"q": "DO"}, ["doing", "done", "todo"]),
        ({"q": "oin"}, ["doing"]),
        ({"due_before": "2026-01-02"}, ["todo"]),
        ({"due_after": "2026-01-02"}, ["doing"]),
        ({"overdue": "true"}, ["doing", "todo"]),
        ({"sort": "title"}, ["doing", "done", "todo"]),
        ({"sort": "-title"}, ["todo", "done", "doing"]),
        ({"sort_by": "due_date", "order": "desc"}, ["doing", "todo", "done"]),
        ({"sort": "-priority"}, ["doing", "todo", "done"]),
    ],
)
async def test_filters_and_sorts(
    client: httpx.AsyncClient, params: dict[str, Any], titles: list[str]
) -> None:
    await create(client, title="todo", tags=["home", "work"], due_date="2026-01-01")
    await create(client, title="doing", status="in_progress", priority="high", due_date="2026-02-01")
    await create(client, title="done", status="done", priority="low")
    response = await client.get("/api/tasks", params=params, headers=A)
    got = [t["title"] for t in response.json()]
    assert got == titles if "sort" in params or "sort_by" in params else sorted(got) == titles


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"status": "sleeping"}, "status"),
        ({"priority": "meh"}, "priority"),
        ({"sort": "colour"}, "sort"),
        ({"order": "sideways"}, "order"),
        ({"cursor": "garbage"}, "cursor"),
        ({"due_before": "yesterday"}, "due_before"),
        ({"q": "x" * 201}, "q"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_invalid_list_parameters_are_422_naming_them(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(await client.get("/api/tasks", params=params, headers=A), 422, "validation_error")
    assert field in {e["field"] for e in body["errors"]}


# -- ownership and conditional requests ----------------------------------------------------------------


async def test_another_users_task_is_not_found_on_every_verb(any_client: httpx.AsyncClient) -> None:
    owner, intruder = auth(f"a{uuid.uuid4().hex}"), auth(f"b{uuid.uuid4().hex}")
    task = await create(any_client, owner)
    url = f"/api/tasks/{task['id']}"
    for response in [
        await any_client.get(url, headers=intruder),
        await any_client.put(url, json={"title": "x"}, headers=intruder),
        await any_client.patch(url, json={"title": "x"}, headers=intruder),
        await any_client.patch(f"{url}/complete", headers=intruder),
        await any_client.delete(url, headers=intruder),
    ]:
        assert_problem(response, 404, "not_found")
    assert (await any_client.get(url, headers=owner)).json() == task
    assert (await any_client.get("/api/tasks", headers=intruder)).json() == []


async def test_if_none_match_gives_304(client: httpx.AsyncClient) -> None:
    task = await create(client)
    response = await client.get(f"/api/tasks/{task['id']}", headers={**A, "If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'
    changed = await client.get(f"/api/tasks/{task['id']}", headers={**A, "If-None-Match": '"7"'})
    assert changed.status_code == 200


@pytest.mark.parametrize("if_match", ['"1"', "*", '"5", "1"'])
async def test_a_matching_if_match_applies_the_write(client: httpx.AsyncClient, if_match: str) -> None:
    task = await create(client)
    response = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": "v2"}, headers={**A, "If-Match": if_match}
    )
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "COMPLETE"])
async def test_a_stale_if_match_is_412_with_the_current_etag(
    any_client: httpx.AsyncClient, method: str
) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    task = await create(any_client, headers)
    await any_client.patch(f"/api/tasks/{task['id']}", json={"title": "v2"}, headers=headers)
    stale = {**headers, "If-Match": '"1"'}
    url = f"/api/tasks/{task['id']}"
    if method == "COMPLETE":
        response = await any_client.patch(f"{url}/complete", headers=stale)
    elif method == "DELETE":
        response = await any_client.delete(url, headers=stale)
    else:
        response = await any_client.request(method, url, json={"title": "v3"}, headers=stale)
    assert_problem(response, 412, "precondition_failed")
    assert response.headers["etag"] == '"2"'
    assert (await any_client.get(url, headers=headers)).json()["title"] == "v2"


# -- the status table (SPEC §6.9) ----------------------------------------------------------------------


async def test_400_for_a_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/tasks", content=b"{nope", headers={**A, "content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "Bearer"),
        ({"Authorization": "Bearer not-a-jwt"}, "malformed"),
        (auth(ALICE, ttl_seconds=-120), "expired"),
        ({"Authorization": "Bearer " + auth(ALICE)["Authorization"][7:-4] + "AAAA"}, "signature"),
    ],
)
async def test_401_says_why_and_challenges(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await client.get("/api/tasks", headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert reason in body["detail"]
    assert response.headers["www-authenticate"].startswith(
        'Bearer error="invalid_token", error_description="'
    )
    assert "Bearer ey" not in response.text


async def test_403_when_the_path_names_another_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/api/{BOB}/tasks", headers=A), 403, "forbidden")


@pytest.mark.parametrize(
    "path", ["/api/tasks/not-a-uuid", f"/api/tasks/{uuid.uuid4()}", "/api/nothing-here", "/nope"]
)
async def test_404_for_missing_tasks_and_routes(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path, headers=A), 404, "not_found")


async def test_405_lists_the_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.post("/health", headers=A)
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_413_for_a_declared_large_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tasks", json={"title": "x", "description": "d" * 300_000}, headers=A)
    assert_problem(response, 413, "payload_too_large")


async def test_413_for_a_chunked_body_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "x", "description": "'
        for _ in range(40):
            yield b"d" * 10_000
        yield b'"}'

    response = await client.post(
        "/api/tasks", content=chunks(), headers={**A, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_415_for_a_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/tasks", content=b"title=x", headers={**A, "content-type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_500_is_a_problem_without_internals() -> None:
    class Exploding(TaskService):
        async def list(self, owner: str, query: object = None) -> Any:
            raise RuntimeError("secret internals: password=hunter2")

    container = Container(settings=make_settings())
    container.service.override(Exploding(await provide(container.unit_of_work)))
    async with serve(app_for_container(container), raise_app_exceptions=False) as c:
        response = await c.get("/api/tasks", headers=A)
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in body["detail"]


async def test_503_with_retry_after_when_the_database_is_down() -> None:
    class Down:
        def begin(self) -> Any:
            raise StorageUnavailable("the database is unreachable")

    container = Container(settings=make_settings())
    container.unit_of_work.override(Down())
    async with serve(app_for_container(container)) as c:
        response = await c.post("/api/tasks", json={"title": "x"}, headers=A)
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) >= 1


async def test_pages_of_more_than_100_tasks_are_built_a_few_at_a_time() -> None:
    """Memory stays bounded under many concurrent large pages (Adapters.large_pages); pages of
    the default size are not held back, and every answer is still whole."""
    inside, most = 0, 0

    class Counting(TaskService):
        async def _counted(self, call: Any) -> Any:
            nonlocal inside, most
            inside += 1
            most = max(most, inside)
            try:
                await asyncio.sleep(0.2)  # long enough for all twelve to be let in, even on a slow box
                return await call
            finally:
                inside -= 1

        async def list(self, owner: str, query: Any = None) -> Any:
            return await self._counted(super().list(owner, query))

        async def list_changes(self, owner: str, since: str | None = None, limit: int = 100) -> Any:
            return await self._counted(super().list_changes(owner, since, limit))

    container = Container(settings=make_settings())
    container.service.override(Counting(await provide(container.unit_of_work)))
    async with serve(app_for_container(container)) as c:
        for i in range(3):
            assert (await c.post("/api/tasks", json={"title": f"t{i}"}, headers=A)).status_code == 201
        for path, tasks_key in (("/api/tasks?limit=1000", None), ("/api/tasks/changes?limit=101", "changes")):
            most = 0
            answers = await asyncio.gather(*(c.get(path, headers=A) for _ in range(12)))
            bodies = [r.json() if tasks_key is None else r.json()[tasks_key] for r in answers]
            assert [len(b) for b in bodies] == [3] * 12
            assert most == LARGE_PAGES_AT_ONCE, path
        most = 0
        small = await asyncio.gather(*(c.get("/api/tasks?limit=100", headers=A) for _ in range(12)))
        assert [len(r.json()) for r in small] == [3] * 12
        assert most == 12


def app_for_container(container: Container) -> Any:
    from todo_entrypoints.http.app import create_app

    return create_app(container)


# -- operations, CORS, request ids ---------------------------------------------------------------------


async def test_request_ids_are_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    insane = await client.get("/health", headers={"X-Request-ID": "a b\tc" * 50})
    assert insane.headers["x-request-id"] != "a b\tc" * 50
    assert len(insane.headers["x-request-id"]) == 32


async def test_cors_allows_the_configured_origin_and_exposes_headers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/api/tasks",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,if-match"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    response = await client.get("/api/tasks", headers={**A, "Origin": "http://localhost:3000"})
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("etag", "location", "link", "x-total-count", "x-request-id", "retry-after"):
        assert header in exposed
    refused = await client.get("/api/tasks", headers={**A, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


async def test_health_and_readiness(store_url: str) -> None:
    async with serve(app_for(database_url=store_url)) as c:
        assert (await c.get("/health")).json() == {"status": "ok"}
        ready = await c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ok"
        if store_url != "memory://":
            assert "db_pool_connections_in_use 0.0" in (await c.get("/metrics")).text


async def test_readiness_is_503_when_the_database_is_down() -> None:
    settings = make_settings(
        database_url="postgresql://u:p@127.0.0.1:1/x?connect_timeout=1", auto_migrate=False
    )
    async with serve(app_for(settings)) as c:
        response = await c.get("/health/ready")
        assert (await c.get("/health")).status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "stream_notifications": "unavailable"}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    task = await create(client)
    await client.get(f"/api/tasks/{task['id']}", headers=A)
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/api/tasks/{task_id}",status="200"} 1.0' in text
    assert task["id"] not in text


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200
    document = (await client.get("/openapi.json")).json()
    assert "/api/tasks/{task_id}/complete" in document["paths"]
    assert "/api/{user_id}/tasks" in document["paths"]


async def test_the_python_api_and_http_share_one_store() -> None:
    container = Container(settings=make_settings())
    task = await (await provide(container.service)).create(ALICE, NewTask(title="from python"))
    async with serve(app_for_container(container)) as c:
        assert (await c.get(f"/api/tasks/{task.id}", headers=A)).json()["title"] == "from python"


# -- idempotency and the change feed (SPEC §6.7, §6.8) ----------------------------------------------


async def test_a_retried_post_replays_the_original_response_byte_for_byte(
    any_client: httpx.AsyncClient,
) -> None:
    headers = {**auth(f"u{uuid.uuid4().hex}"), "Idempotency-Key": "retry-1"}
    first = await any_client.post("/api/tasks", json={"title": "once", "tags": ["a"]}, headers=headers)
    again = await any_client.post("/api/tasks", json={"tags": ["A"], "title": "once"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    listed = await any_client.get("/api/tasks", headers=headers)
    assert listed.headers["x-total-count"] == "1"


async def test_a_reused_key_with_another_body_is_422(client: httpx.AsyncClient) -> None:
    headers = {**A, "Idempotency-Key": "retry-2"}
    await client.post("/api/tasks", json={"title": "once"}, headers=headers)
    response = await client.post("/api/tasks", json={"title": "twice"}, headers=headers)
    body = assert_problem(response, 422, "idempotency_key_reused")
    assert [e["field"] for e in body["errors"]] == ["Idempotency-Key"]  # the header, as HTTP names it


async def test_a_malformed_key_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/tasks", json={"title": "x"}, headers={**A, "Idempotency-Key": "has space"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["Idempotency-Key"]
    assert body["detail"].startswith("Idempotency-Key: ")  # the detail spells it as the errors do


async def test_racing_retries_make_one_task(any_client: httpx.AsyncClient) -> None:
    import asyncio

    headers = {**auth(f"u{uuid.uuid4().hex}"), "Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(any_client.post("/api/tasks", json={"title": "race"}, headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert_problem(conflict, 409, "conflict")
    assert (await any_client.get("/api/tasks", headers=headers)).headers["x-total-count"] == "1"


async def test_the_change_feed_reports_changes_and_deletions(any_client: httpx.AsyncClient) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    kept = await create(any_client, headers, title="kept")
    gone = await create(any_client, headers, title="gone")
    full = (await any_client.get("/api/tasks/changes", headers=headers)).json()
    assert {t["id"] for t in full["changes"]} == {kept["id"], gone["id"]}
    assert (full["deleted"], full["has_more"]) == ([], False)
    await any_client.delete(f"/api/tasks/{gone['id']}", headers=headers)
    await any_client.patch(f"/api/tasks/{kept['id']}", json={"title": "kept 2"}, headers=headers)
    delta = (
        await any_client.get("/api/tasks/changes", params={"since": full["next"]}, headers=headers)
    ).json()
    assert [t["title"] for t in delta["changes"]] == ["kept 2"]
    assert delta["deleted"] == [gone["id"]]


async def test_an_expired_change_token_is_410(client: httpx.AsyncClient) -> None:
    from datetime import UTC, datetime

    from todo_domain.sync import ChangeToken

    old = ChangeToken(1, datetime(2020, 1, 1, tzinfo=UTC)).encode()
    response = await client.get("/api/tasks/changes", params={"since": old}, headers=A)
    assert_problem(response, 410, "sync_expired")


async def test_tokens_and_secrets_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from todo_entrypoints.logging_setup import JsonFormatter

    token = A["Authorization"].removeprefix("Bearer ")
    settings = make_settings(
        database_url="postgresql://app:hunter2@127.0.0.1:1/x?connect_timeout=1", auto_migrate=False
    )
    caplog.set_level(logging.DEBUG)
    async with serve(app_for(settings), raise_app_exceptions=False) as c:
        await c.get("/api/tasks", headers=A)  # 503: the database is down
        await c.get("/api/tasks", headers={"Authorization": f"Bearer {token[:-3]}xyz"})  # 401
        await c.get("/health/ready")
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "GET /api/tasks 503" in caplog.text
    for secret in (token, token[:-3], "hunter2", make_settings().auth_jwt_secret.get_secret_value()):  # type: ignore[union-attr]
        assert secret not in text
