"""A fuzz test per decoder (SPEC §13.1): cursors, change tokens, If-Match / If-None-Match,
datetimes in bodies and query strings, and JWT claims, driven through the HTTP app. Whatever
hypothesis draws, the answer is a documented status — a 4xx always with a problem body —
never a 5xx. Derandomized: CI runs the same examples every time."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.integration.http_support import SECRET, app_for, auth

A = auth("decoder-fuzz")
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


opaque_tokens = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(_b64),
    json_values.map(lambda v: _b64(json.dumps(v).encode())),
    st.tuples(st.integers(), st.text(max_size=40)).map(lambda t: _b64(f"v1:{t[0]}:{t[1]}".encode())),
)
latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
entity_tag = st.builds(
    lambda weak, body: ("W/" if weak else "") + f'"{body}"', st.booleans(), st.text(latin1, max_size=12)
)
header_text = st.one_of(
    st.text(latin1, max_size=60),
    entity_tag,
    st.lists(entity_tag, min_size=1, max_size=4).map(", ".join),
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(app_for(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def task_id(client: TestClient) -> str:
    response = client.post("/api/tasks", json={"title": "fuzzed", "due_date": "2026-12-24"}, headers=A)
    assert response.status_code == 201
    return str(response.json()["id"])


def _raw(base: dict[str, str], name: bytes, value: str) -> dict[bytes, bytes]:
    """Headers as bytes, so a value can carry any Latin-1 byte (e.g. 0xB2, a "²")."""
    return {**{k.lower().encode(): v.encode() for k, v in base.items()}, name: value.encode("latin-1")}


def _answers(response: Any, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert isinstance(response.json()["detail"], str)


@FUZZ
@given(
    cursor=opaque_tokens, sort=st.sampled_from(["title", "-created_at", "due_date", "priority", "updated_at"])
)
def test_cursors(client: TestClient, cursor: str, sort: str) -> None:
    _answers(client.get("/api/tasks", params={"sort": sort, "cursor": cursor}, headers=A), {200, 422})


@FUZZ
@given(since=opaque_tokens)
def test_change_tokens(client: TestClient, since: str) -> None:
    _answers(client.get("/api/tasks/changes", params={"since": since}, headers=A), {200, 410, 422})


@FUZZ
@given(value=header_text)
@example(value='"\u00b2"')  # a superscript digit: str.isdigit() says yes, int() says no
def test_if_match(client: TestClient, task_id: str, value: str) -> None:
    headers = _raw(A, b"if-match", value)
    _answers(client.patch(f"/api/tasks/{task_id}", json={"priority": "high"}, headers=headers), {200, 412})


@FUZZ
@given(value=header_text)
def test_if_none_match(client: TestClient, task_id: str, value: str) -> None:
    _answers(
        client.get(f"/api/tasks/{task_id}", headers=_raw(A, b"if-none-match", value)),
        {200, 304},
    )


@FUZZ
@given(value=json_values | st.text(max_size=40), field=st.sampled_from(["due_date", "remind_at", "due_at"]))
def test_datetimes_in_bodies(client: TestClient, value: Any, field: str) -> None:
    _answers(client.post("/api/tasks", json={"title": "t", field: value}, headers=A), {201, 422})


@FUZZ
@given(value=st.text(max_size=40), name=st.sampled_from(["due_before", "due_after"]))
def test_datetimes_in_queries(client: TestClient, value: str, name: str) -> None:
    _answers(client.get("/api/tasks", params={name: value}, headers=A), {200, 422})


@FUZZ
@given(
    claims=st.fixed_dictionaries(
        {},
        optional={
            "sub": json_values,
            "exp": json_values | st.integers(min_value=-(10**30), max_value=10**30),
            "nbf": json_values,
            "iat": json_values,
        },
    )
)
def test_jwt_claims(client: TestClient, claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    _answers(client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}), {200, 401})
