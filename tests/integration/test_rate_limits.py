"""Rate limits (SPEC §8): moving window per user, memory or shared Redis, and Redis outages."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .http_support import app_for, auth, serve
from .servers import free_port

REDIS = "redis://127.0.0.1:6379"


@pytest.fixture(params=["memory", "redis"])
def limiter_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "rate_limit_enabled": True,
        "rate_limit_write": "30/minute",
        "rate_limit_read": "100/minute",
        "rate_limit_key_prefix": f"test-{uuid.uuid4().hex}",
    }
    if request.param == "redis":
        settings["redis_url"] = REDIS
    return settings


async def test_the_write_after_the_budget_is_429_with_accurate_headers(
    limiter_settings: dict[str, Any],
) -> None:
    alice, bob = auth("alice"), auth("bob")
    async with serve(app_for(**limiter_settings)) as client:
        for i in range(30):
            ok = await client.post("/api/tasks", json={"title": f"t{i}"}, headers=alice)
            assert ok.status_code == 201
            assert ok.headers["ratelimit-limit"] == "30"
            assert ok.headers["ratelimit-remaining"] == str(29 - i)
        refused = await client.post("/api/tasks", json={"title": "one too many"}, headers=alice)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["code"] == "rate_limited"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert body["retry_after"] == retry_after
        assert refused.headers["ratelimit-remaining"] == "0"
        assert 'rate_limited_requests_total{kind="write"} 1.0' in (await client.get("/metrics")).text
        fresh_token = auth("alice", ttl_seconds=7200)
        assert (await client.post("/api/tasks", json={"title": "x"}, headers=fresh_token)).status_code == 429
        assert (await client.post("/api/tasks", json={"title": "x"}, headers=bob)).status_code == 201
        assert (await client.get("/api/tasks", headers=alice)).status_code == 200  # reads are separate
        for _ in range(5):
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200


async def test_concurrent_writes_get_exactly_the_budget(limiter_settings: dict[str, Any]) -> None:
    headers = auth(f"u{uuid.uuid4().hex}")
    async with serve(app_for(**limiter_settings)) as client:
        responses = await asyncio.gather(
            *(client.post("/api/tasks", json={"title": f"t{i}"}, headers=headers) for i in range(60))
        )
    assert sorted(r.status_code for r in responses) == [201] * 30 + [429] * 30


async def test_requests_without_a_token_are_limited_per_client_address() -> None:
    app = app_for(rate_limit_enabled=True, rate_limit_read="3/minute", rate_limit_key_prefix=uuid.uuid4().hex)
    async with serve(app) as client:
        statuses = [(await client.get("/api/tasks")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, on its own port, that the test may stop."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for the Redis outage test"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG"
    ):
        assert time.monotonic() < deadline, "private Redis did not start"
        time.sleep(0.05)
    yield url, process
    process.kill()
    process.wait()


async def test_a_redis_outage_falls_back_to_a_local_limit(
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = private_redis
    headers = auth(f"u{uuid.uuid4().hex}")
    app = app_for(
        rate_limit_enabled=True, redis_url=url, rate_limit_write="5/minute", rate_limit_key_prefix="o"
    )
    async with serve(app) as client:
        assert (await client.post("/api/tasks", json={"title": "before"}, headers=headers)).status_code == 201
        assert (await client.get("/health/ready")).json()["checks"]["redis"] == "ok"
        process.kill()
        process.wait()
        started = time.monotonic()
        statuses = [
            (await client.post("/api/tasks", json={"title": f"t{i}"}, headers=headers)).status_code
            for i in range(7)
        ]
        elapsed = time.monotonic() - started
        ready = await client.get("/health/ready")
    assert 500 not in statuses
    assert statuses[:5] == [201] * 5  # the fallback window starts empty, then limits again
    assert statuses[5:] == [429, 429]
    assert elapsed < 7 * 1.0  # every call gave up on Redis within its short timeout
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "checks": {"redis": "unavailable"}}


async def test_fail_closed_refuses_with_503_when_redis_is_down() -> None:
    app = app_for(
        rate_limit_enabled=True,
        redis_url="redis://127.0.0.1:1",
        rate_limit_fail_closed=True,
        rate_limit_key_prefix="x",
    )
    async with serve(app) as client:
        response = await client.get("/api/tasks", headers=auth("alice"))
        ready = await client.get("/health/ready")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert ready.status_code == 503
