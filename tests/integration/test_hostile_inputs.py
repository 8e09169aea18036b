"""Inputs an attacker sends to get a 500 (SPEC §13, first rows of issue 14): each answers a 4xx
problem instead, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from .http_support import SECRET, app_for, auth, serve

OWNER = f"hostile-{uuid.uuid4().hex[:10]}"
A = auth(OWNER)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    url = {"memory": "memory://"}.get(request.param) or str(request.getfixturevalue(f"{request.param}_url"))
    async with serve(app_for(database_url=url)) as c:
        yield c


def _b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor(*parts: Any) -> str:
    return _b64(json.dumps(list(parts)))


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in response.json()["detail"]


@pytest.mark.parametrize("raw", [b'"\xb2"', b'"\xc2\xb2"', b'"\xb9"'], ids=["latin-1 ²", "utf-8 ²", "¹"])
async def test_a_superscript_digit_in_if_match_is_a_412(client: httpx.AsyncClient, raw: bytes) -> None:
    task = (await client.post("/api/tasks", json={"title": "t"}, headers=A)).json()
    headers = [(k.encode(), v.encode()) for k, v in A.items()] + [(b"If-Match", raw)]
    response = await client.patch(f"/api/tasks/{task['id']}", json={"title": "u"}, headers=headers)
    assert_problem(response, 412)


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("title", _b64("[" * 5000 + "]" * 5000)),  # recursion in the JSON decoder
        ("title", _cursor("title", False, "a\ud800", str(uuid.uuid4()))),  # a lone surrogate
        ("title", _cursor("title", False, "a\u0000", str(uuid.uuid4()))),  # NUL: PostgreSQL refuses it
        ("-created_at", _cursor("created_at", True, "9999-12-31T23:59:59-14:00", str(uuid.uuid4()))),
        ("-created_at", _cursor("created_at", True, "0001-01-01T00:00:00+14:00", str(uuid.uuid4()))),
        ("title", "A" * 20_000),
    ],
    ids=["nested", "surrogate", "nul", "year-10000", "year-0", "huge"],
)
async def test_a_hostile_cursor_is_a_422_naming_cursor(
    client: httpx.AsyncClient, sort: str, cursor: str
) -> None:
    response = await client.get("/api/tasks", params={"sort": sort, "cursor": cursor}, headers=A)
    assert_problem(response, 422, "cursor")


@pytest.mark.parametrize("revision", ["9223372036854775808", "99999999999999999999999", "-1", "١٢"])
async def test_a_change_token_past_bigint_is_a_422_naming_since(
    client: httpx.AsyncClient, revision: str
) -> None:
    token = _b64(f"v1:{revision}:{int(time.time())}")
    response = await client.get("/api/tasks/changes", params={"since": token}, headers=A)
    assert_problem(response, 422, "since")


@pytest.mark.parametrize(
    "claims",
    [{"exp": 1e400}, {"exp": "1800000000"}, {"exp": True}, {"nbf": "0"}, {"iat": float("nan")}],
    ids=["exp-infinite", "exp-string", "exp-bool", "nbf-string", "iat-nan"],
)
async def test_time_claims_that_are_not_numbers_are_a_401(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    body = {"sub": OWNER, "exp": int(time.time()) + 600, **claims}
    token = jwt.encode(body, SECRET, algorithm="HS256")
    response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)


async def test_a_subject_with_a_lone_surrogate_is_a_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode({"sub": "a\ud800", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)
