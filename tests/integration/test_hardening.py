"""SPEC §13, the parts built so far: text that renders as nothing or lies (2), datetimes as
strings (3), what production exposes (4), no redirect from the Host header (5), headers and
file modes (9), HTTP semantics (10), proxy headers (8, through a real server)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Scope

from tests.integration.http_support import SECRET, app_for, auth, serve
from tests.integration.servers import running_server

A = auth("hardening")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_for()) as c:
        yield c


def _fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {e["field"] for e in response.json()["errors"]}


# -- 2, 3: text and datetimes ----------------------------------------------------------------------


@pytest.mark.parametrize("title", ["\u200b", "\ufeff\u200b", "a\u0085b", "invoice\u202egpj.exe", "a\u2028b"])
async def test_invisible_or_misleading_titles_are_422(client: httpx.AsyncClient, title: str) -> None:
    assert _fields(await client.post("/api/tasks", json={"title": title}, headers=A)) == {"title"}


async def test_misleading_tags_are_422_and_emoji_sequences_are_fine(client: httpx.AsyncClient) -> None:
    refused = await client.post("/api/tasks", json={"title": "t", "tags": ["a\u2066b"]}, headers=A)
    assert _fields(refused) == {"tags"}
    ok = await client.post("/api/tasks", json={"title": "\U0001f469\u200d\U0001f4bb"}, headers=A)
    assert ok.status_code == 201


@pytest.mark.parametrize("subject", ["user\u202e", "\u200b", "x\u0085"])
async def test_a_subject_that_misleads_is_401(client: httpx.AsyncClient, subject: str) -> None:
    response = await client.get("/api/tasks", headers=auth(subject))
    assert response.status_code == 401


@pytest.mark.parametrize("value", [1_800_000_000, -62135596801, 1.5e12, 0])
async def test_a_number_where_a_datetime_belongs_is_422(client: httpx.AsyncClient, value: float) -> None:
    for field in ("due_date", "remind_at"):
        response = await client.post("/api/tasks", json={"title": "t", field: value}, headers=A)
        assert _fields(response) == {field}


# -- 4: production exposes only the API -------------------------------------------------------------


async def test_production_hides_docs_and_metrics() -> None:
    async with serve(app_for(environment="production")) as c:
        for path in ("/docs", "/openapi.json", "/docs-assets/swagger-ui-bundle.js", "/metrics"):
            assert (await c.get(path)).status_code == 404, path
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/api/tasks", headers=A)).status_code == 200


async def test_docs_can_be_enabled_and_metrics_need_their_token() -> None:
    async with serve(app_for(environment="production", docs_enabled=True, metrics_token="m" * 32)) as c:
        assert (await c.get("/openapi.json")).status_code == 200
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        metrics = await c.get("/metrics", headers={"Authorization": f"Bearer {'m' * 32}"})
        assert metrics.status_code == 200
        assert "http_requests" in metrics.text or "todo_" in metrics.text


async def test_development_keeps_docs_and_metrics_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


# -- 5: no redirect built from Host ------------------------------------------------------------------


async def test_a_trailing_slash_is_served_not_redirected(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/tasks/", json={"title": "slash"}, headers={**A, "Host": "evil.example"})
    assert created.status_code == 201
    assert "evil.example" not in created.headers.get("location", "")
    listed = await client.get("/api/tasks/?limit=5", headers={**A, "Host": "evil.example"})
    assert listed.status_code == 200
    assert [t["title"] for t in listed.json()] == ["slash"]
    one = await client.get(f"/api/tasks/{created.json()['id']}/", headers=A)
    assert one.status_code == 200


# -- 9: headers ---------------------------------------------------------------------------------------


async def test_security_headers(client: httpx.AsyncClient) -> None:
    api = await client.get("/api/tasks", headers=A)
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["cache-control"] == "private, no-cache"
    assert "server" not in api.headers
    problem = await client.get("/api/tasks")
    assert problem.headers["cache-control"] == "private, no-cache"
    docs = await client.get("/docs")
    assert docs.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert (await client.get("/health")).headers["x-content-type-options"] == "nosniff"


async def test_etag_revalidation_still_works_with_no_cache(client: httpx.AsyncClient) -> None:
    task = (await client.post("/api/tasks", json={"title": "t"}, headers=A)).json()
    first = await client.get(f"/api/tasks/{task['id']}", headers=A)
    again = await client.get(
        f"/api/tasks/{task['id']}", headers={**A, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


def test_sqlite_files_are_created_private(tmp_path: Path) -> None:
    database = tmp_path / "private" / "todo.db"
    env = {"ENVIRONMENT": "test", "DATABASE_URL": f"sqlite:///{database}", "AUTH_JWT_SECRET": SECRET}
    with running_server(env) as base:
        assert httpx.post(f"{base}/api/tasks", json={"title": "t"}, headers=A).status_code == 201
    for path in database.parent.iterdir():
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, (path.name, oct(mode))


# -- 10: HTTP semantics -------------------------------------------------------------------------------


async def test_405_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/tasks", headers=A)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    task = (await client.post("/api/tasks", json={"title": "t"}, headers=A)).json()
    one = await client.post(f"/api/tasks/{task['id']}", headers=A)
    assert set(one.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "PATCH", "PUT"}


async def test_head_answers_every_get_route(client: httpx.AsyncClient) -> None:
    task = (await client.post("/api/tasks", json={"title": "t"}, headers=A)).json()
    for path in ("/api/tasks", f"/api/tasks/{task['id']}", "/api/tags", "/health", "/api/tasks/changes"):
        get, head = await client.get(path, headers=A), await client.head(path, headers=A)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        for name in ("content-type", "etag", "x-total-count"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


async def test_if_match_uses_strong_comparison(client: httpx.AsyncClient) -> None:
    task = (await client.post("/api/tasks", json={"title": "t"}, headers=A)).json()
    url = f"/api/tasks/{task['id']}"
    weak = await client.patch(url, json={"title": "u"}, headers={**A, "If-Match": 'W/"1"'})
    assert weak.status_code == 412
    assert (await client.get(url, headers=A)).json()["title"] == "t"
    weak_none_match = await client.get(url, headers={**A, "If-None-Match": 'W/"1"'})
    assert weak_none_match.status_code == 304  # If-None-Match compares weakly


# -- 8: proxy headers ---------------------------------------------------------------------------------


def test_forwarded_for_is_not_trusted_by_default(tmp_path: Path) -> None:
    env: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": "memory://",
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_READ": "3/minute",
    }
    with running_server(env) as base:
        statuses = [
            httpx.get(
                f"{base}/api/tasks",
                headers={"Authorization": "Bearer bad", "X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(5)
        ]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]  # a rotating X-Forwarded-For did not reset the per-IP budget


async def test_development_has_an_index_and_production_does_not(client: httpx.AsyncClient) -> None:
    index = (await client.get("/")).json()
    assert index["docs"] == "/docs"
    assert index["openapi"] == "/openapi.json"
    assert index["health"] == "/health"
    assert (await client.get(index["health"])).status_code == 200
    async with serve(app_for(environment="production")) as production:
        assert (await production.get("/")).status_code == 404


# -- 7: hang-ups and real 500s ------------------------------------------------------------------------


async def test_a_real_500_logs_one_traceback_and_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.integration.http_support import make_settings
    from todo_domain import TaskService
    from todo_entrypoints.container import Container, provide
    from todo_entrypoints.http.app import create_app

    class Exploding(TaskService):
        async def list(self, owner: str, query: object = None) -> Any:
            raise RuntimeError("boom")

    container = Container(settings=make_settings())
    container.service.override(Exploding(await provide(container.unit_of_work)))
    with caplog.at_level(logging.INFO):
        async with serve(create_app(container), raise_app_exceptions=False) as c:
            response = await c.get("/api/tasks", headers=A)
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert response.json()["code"] == "internal_error"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    exc_info = tracebacks[0].exc_info
    assert exc_info is not None
    assert "boom" in str(exc_info[1])


async def test_a_client_hanging_up_mid_body_is_499_at_info(caplog: pytest.LogCaptureFixture) -> None:
    app = app_for()
    token = A["Authorization"].encode()
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/tasks",
        "raw_path": b"/api/tasks",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", token),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    partial: Message = {"type": "http.request", "body": b'{"tit', "more_body": True}
    messages: Iterator[Message] = iter([partial, {"type": "http.disconnect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(dict(message))

    async with serve(app):
        with caplog.at_level(logging.INFO):
            await app(scope, receive, send)
    access = [r for r in caplog.records if r.name == "todo.access"]
    assert [getattr(r, "status", None) for r in access] == [499]
    assert access[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
