"""The change feed under fire, through a real server: six writers create tasks for one user while
three clients poll `?since=<next>` as fast as it can. Every created task must reach the poller.

This is the regression test of a lost-write bug: the feed once read its page and the owner's
revision in two statements, so an empty page could hand out a token past a commit that landed
between them (4–6 of 2,400 creates were never delivered on PostgreSQL). Each page now comes
from one snapshot; see `todo_domain.sync`.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from todo_adapters.auth import mint_token

from .servers import running_server

SECRET = "feed-race-secret-" + "x" * 32
WRITERS = 6
CREATES_PER_WRITER = 400
POLLERS = 3  # more polls, more chances to land between two reads


async def _race(base: str) -> tuple[set[str], list[set[str]], int]:
    """(created ids, the ids each poller saw, polls made)."""
    auth = {"Authorization": f"Bearer {mint_token(SECRET, f'racer-{uuid.uuid4().hex}')}"}
    created: set[str] = set()
    seen: list[set[str]] = [set() for _ in range(POLLERS)]
    polls = 0
    writing = True
    limits = httpx.Limits(max_connections=WRITERS + POLLERS)
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30, limits=limits) as client:
        start = await client.get("/api/tasks/changes")
        assert start.status_code == 200, start.text
        tokens = [start.json()["next"]] * POLLERS

        async def writer(n: int) -> None:
            for i in range(CREATES_PER_WRITER):
                response = await client.post("/api/tasks", json={"title": f"w{n} #{i}"})
                assert response.status_code == 201, response.text
                created.add(response.json()["id"])

        async def poll_once(p: int) -> bool:
            nonlocal polls
            response = await client.get("/api/tasks/changes", params={"since": tokens[p], "limit": 1000})
            assert response.status_code == 200, response.text
            body = response.json()
            seen[p].update(t["id"] for t in body["changes"])
            tokens[p] = body["next"]
            polls += 1
            return bool(body["has_more"])

        async def poller(p: int) -> None:
            while writing:
                await poll_once(p)
            while await poll_once(p):  # drain what committed after the last poll
                pass

        polling = [asyncio.create_task(poller(p)) for p in range(POLLERS)]
        try:
            await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        finally:
            writing = False
            await asyncio.gather(*polling)
    return created, seen, polls


def _assert_everything_arrived(created: set[str], seen: list[set[str]], polls: int) -> None:
    assert len(created) == WRITERS * CREATES_PER_WRITER
    assert polls > 100, "the pollers must have raced the writers"
    missing = [len(created - mine) for mine in seen]
    assert missing == [0] * POLLERS, f"creates (of {len(created)}) that never reached each poller: {missing}"


@pytest.mark.postgres
async def test_a_polling_client_receives_every_create_on_postgres(postgres_url: str) -> None:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": postgres_url,
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
    }
    with running_server(env) as base:
        _assert_everything_arrived(*await _race(base))


async def test_a_polling_client_receives_every_create_on_sqlite_with_two_processes(tmp_path: Path) -> None:
    env = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'race.db'}",
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    # Two worker processes share the file: a poll in one can race a commit in the other.
    with running_server(env, workers=2) as base:
        _assert_everything_arrived(*await _race(base))
