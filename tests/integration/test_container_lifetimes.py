"""The container opens what holds connections on first use and closes it at shutdown: the
store's pool and the rate limiter's Redis client end with `shut_down`, seen from the servers."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis

from tests.integration.http_support import make_settings
from todo_domain import NewTask, TaskService
from todo_entrypoints.container import Container, provide, shut_down

REDIS = "redis://127.0.0.1:6379"


async def _backends(postgres_url: str) -> set[int]:
    admin = await asyncpg.connect(postgres_url)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return {row["pid"] for row in rows}


async def _redis_clients() -> set[str]:
    client = redis.Redis.from_url(REDIS)
    try:
        return {str(c["id"]) for c in await client.client_list()} - {str(await client.client_id())}
    finally:
        await client.aclose()


async def test_the_store_pool_and_redis_are_closed_at_shutdown(postgres_url: str) -> None:
    container = Container(
        settings=make_settings(
            database_url=postgres_url, rate_limit_enabled=True, redis_url=REDIS, rate_limit_key_prefix="life"
        )
    )
    before_pg, before_redis = await _backends(postgres_url), await _redis_clients()
    adapters = await provide(container.adapters)
    await adapters.service.create("lifetimes", NewTask(title="opens the pool"))
    assert adapters.rate_limiter is not None
    assert (await adapters.rate_limiter.hit(adapters.write_limit, "write:user:lifetimes")).allowed
    opened_pg = await _backends(postgres_url) - before_pg
    opened_redis = await _redis_clients() - before_redis
    assert opened_pg
    assert opened_redis
    assert adapters.pool_usage is not None
    assert adapters.pool_usage()[1] >= 1

    await shut_down(container)

    assert not (await _backends(postgres_url)) & opened_pg
    assert not (await _redis_clients()) & opened_redis


async def test_a_test_overrides_a_resource_with_a_plain_object() -> None:
    from todo_adapters.memory import InMemoryStore

    shared = InMemoryStore()
    container = Container(settings=make_settings())
    container.unit_of_work.override(shared)
    service = await provide(container.service)
    task = await service.create("override", NewTask(title="in the shared store"))
    assert (await TaskService(shared).get("override", task.id)).title == "in the shared store"
    await shut_down(container)
