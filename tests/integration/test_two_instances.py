"""Two `todo-api serve` processes on one PostgreSQL database and one Redis (SPEC §11): the
write budget, optimistic locking and idempotency hold across instances."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

import httpx
import pytest

from todo_adapters.auth import mint_token

from .servers import running_server

SECRET = "two-instances-secret-" + "x" * 32


@pytest.fixture(scope="module")
def instances(postgres_url: str) -> Iterator[list[str]]:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": postgres_url,
        "AUTH_JWT_SECRET": SECRET,
        "REDIS_URL": "redis://127.0.0.1:6379",
        "RATE_LIMIT_KEY_PREFIX": f"two-{uuid.uuid4().hex}",
        "RATE_LIMIT_WRITE": "30/minute",
        "RATE_LIMIT_READ": "1000/minute",
        "AUTO_MIGRATE": "false",
    }
    with running_server(env) as first, running_server(env) as second:
        yield [first, second]


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


async def test_the_write_budget_is_shared_by_all_instances(instances: list[str]) -> None:
    auth = headers(f"u{uuid.uuid4().hex}")
    async with httpx.AsyncClient(timeout=20) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{base}/api/tasks", json={"title": f"t{i}"}, headers=auth)
                for i, base in zip(range(50), itertools.cycle(instances), strict=False)
            )
        )
    assert sorted(r.status_code for r in responses) == [201] * 30 + [429] * 20


async def test_if_match_has_one_winner_across_instances(instances: list[str]) -> None:
    auth = headers(f"u{uuid.uuid4().hex}")
    async with httpx.AsyncClient(timeout=20) as client:
        task = (await client.post(f"{instances[0]}/api/tasks", json={"title": "v1"}, headers=auth)).json()
        responses = await asyncio.gather(
            *(
                client.patch(
                    f"{base}/api/tasks/{task['id']}",
                    json={"title": f"w{i}"},
                    headers={**auth, "If-Match": '"1"'},
                )
                for i, base in zip(range(10), itertools.cycle(instances), strict=False)
            )
        )
        final = (await client.get(f"{instances[1]}/api/tasks/{task['id']}", headers=auth)).json()
    assert sorted(r.status_code for r in responses) == [200] + [412] * 9
    assert final["version"] == 2


async def test_one_idempotency_key_makes_one_task_across_instances(instances: list[str]) -> None:
    auth = {**headers(f"u{uuid.uuid4().hex}"), "Idempotency-Key": "once-across"}
    async with httpx.AsyncClient(timeout=20) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{base}/api/tasks", json={"title": "once"}, headers=auth)
                for _, base in zip(range(20), itertools.cycle(instances), strict=False)
            )
        )
        listed = await client.get(f"{instances[0]}/api/tasks", headers=auth)
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert listed.headers["x-total-count"] == "1"
