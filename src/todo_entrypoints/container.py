"""The composition root: the only place that chooses adapters. Nothing is built until asked.

What holds connections is a dependency-injector `Resource` (the store's pool, the rate
limiter's Redis client, the JWKS HTTP client, Better Auth's session engine): opened on first
use, closed by `await container.shutdown_resources()`. Because those resources are async, so
is every provider built on them: read values with `await provide(container.x)`, which also
accepts a provider a test `override()`s with a plain object.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from dependency_injector import containers, providers
from limits import RateLimitItem

from todo_adapters.auth import (
    JwksVerifier,
    SessionTable,
    SessionTokenVerifier,
    SharedSecretVerifier,
    StreamTickets,
    TokenRouter,
    TokenVerifier,
)
from todo_adapters.changes import ChangeHub
from todo_adapters.events.envelope import CloudEvents
from todo_adapters.memory import InMemoryStore
from todo_adapters.ratelimit import RateLimiter, SharedOpenLimit, parse_limit
from todo_adapters.sql import (
    DatabaseConfig,
    SqlStore,
    create_engine,
    safe_url,
)
from todo_domain import SystemClock, TaskService, TaskStore, Uuid7Generator
from todo_domain.ports import EventOutbox, EventSink, WebhookSender
from todo_domain.relay import EventRelay, RelaySettings
from todo_entrypoints.dev_secret import load_or_create_secret, signing_secret
from todo_entrypoints.settings import Environment, Settings

__all__ = ["LARGE_PAGES_AT_ONCE", "Adapters", "Container", "HealthCheck", "provide", "shut_down"]

T = TypeVar("T")

log = logging.getLogger("todo")

HealthCheck = tuple[str, Callable[[], Awaitable[None]], bool]
"""(name, probe, critical): a failing critical probe makes the service unready (503); a
failing non-critical one (e.g. Redis with the fallback limiter) only makes it degraded."""


@dataclass(frozen=True, slots=True)
class Adapters:
    """What the HTTP app needs, resolved once from the container when it starts; handlers
    receive it through one dependency (http/deps.py) instead of asking the container."""

    service: TaskService
    verifier: TokenVerifier
    rate_limiter: RateLimiter | None
    read_limit: RateLimitItem
    write_limit: RateLimitItem
    batch_command_limit: RateLimitItem
    health_checks: tuple[HealthCheck, ...]
    pool_usage: Callable[[], tuple[int, int]] | None
    """(connections in use, connections open) of the SQL store, for metrics."""
    changes: ChangeHub
    """Who follows which owner's changes here (the event streams), woken by each commit."""
    tickets: StreamTickets | None
    """Stream tickets (None: no secret to sign them with is configured)."""
    open_streams: SharedOpenLimit | None
    """STREAM_MAX_PER_USER across instances (with REDIS_URL; None: per instance only)."""
    large_pages: asyncio.Semaphore
    """Held while a page of more than 100 tasks is read and written out (http/routes.py)."""


LARGE_PAGES_AT_ONCE = 4
"""How many pages of more than 100 tasks (list or change feed) a process builds at once; the
others wait their turn, first come first served. A page of 1,000 holds ≈ 2 MB of rows, tasks
and JSON while it is built, and 32 clients listing 1,000 tasks at once grew a worker by 35 MB
(SPEC §10: ≤ 150 MB per worker); with 4 at a time it grows by ≈ 3 MB. Throughput does not
change: building a page is CPU work of this one process (README, Performance)."""


async def provide(provider: providers.Provider[T]) -> T:
    """A provider's value, awaited when resources make it async."""
    value: Any = provider()
    return await value if inspect.isawaitable(value) else value  # type: ignore[no-any-return]


async def shut_down(container: containers.Container) -> None:
    """Closes every resource the container opened, in reverse order of opening."""
    pending = container.shutdown_resources()
    if pending is not None:
        await pending


async def _unit_of_work(settings: Settings) -> AsyncIterator[TaskStore]:
    """In memory, or SQL (asyncpg for PostgreSQL, SQLAlchemy/aiosqlite for SQLite), its schema
    brought up to date first when AUTO_MIGRATE says so; the pool is closed at shutdown."""
    if settings.is_memory:
        yield InMemoryStore(keep_events=False)  # no worker can share this process's memory
        return
    uow = SqlStore.from_config(settings.database)
    try:
        if settings.should_migrate:
            await uow.migrate()
        yield uow
    finally:
        await uow.dispose()


def _shared_secret(settings: Settings) -> SharedSecretVerifier | None:
    """HS256 with AUTH_JWT_SECRET; in development with no auth configured, a generated secret."""
    secret = signing_secret(settings)
    if secret is None:
        return None
    if settings.auth_jwt_secret is None:
        log.info(
            "development auth: tokens signed with %s; mint one with `todo-api token USER_ID`",
            settings.secret_file,
        )
    return SharedSecretVerifier(
        secret,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        leeway=settings.auth_leeway_seconds,
    )


async def _jwks(settings: Settings) -> AsyncIterator[JwksVerifier | None]:
    """Keys fetched at start-up (not fatal: an unreachable JWKS means 503s until it answers),
    over one HTTP client kept for the process."""
    if settings.auth_jwks_url is None:
        yield None
        return
    async with httpx.AsyncClient() as client:
        verifier = JwksVerifier(
            settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway=settings.auth_leeway_seconds,
            timeout=settings.auth_jwks_timeout_seconds,
            client=client,
        )
        await verifier.warm_up()
        yield verifier


async def _session(settings: Settings) -> AsyncIterator[SessionTokenVerifier | None]:
    url, secret = settings.auth_session_database_url, settings.auth_jwt_secret
    if url is None or secret is None:
        yield None
        return
    engine = create_engine(DatabaseConfig(url.get_secret_value(), pool_size=5, max_overflow=5))
    table = SessionTable(
        settings.auth_session_table,
        settings.auth_session_token_column,
        settings.auth_session_user_column,
        settings.auth_session_expires_column,
    )
    verifier = SessionTokenVerifier(
        engine, secret.get_secret_value(), table=table, allow_unsigned=settings.auth_session_allow_unsigned
    )
    try:
        yield verifier
    finally:
        await verifier.dispose()


async def _rate_limiter(settings: Settings) -> AsyncIterator[RateLimiter | None]:
    if not settings.rate_limit_enabled:
        yield None
        return
    redis = None if settings.redis_url is None else settings.redis_url.get_secret_value()
    limiter = RateLimiter(
        redis_url=redis,
        key_prefix=settings.rate_limit_key_prefix,
        fail_closed=settings.rate_limit_fail_closed,
    )
    try:
        yield limiter
    finally:
        await limiter.close()


async def _change_hub(settings: Settings) -> AsyncIterator[ChangeHub]:
    """Within the process on memory and SQLite; across instances with PostgreSQL's LISTEN/NOTIFY."""
    limit = settings.stream_max_per_user
    hub: ChangeHub
    if settings.is_memory or settings.is_sqlite:
        hub = ChangeHub(max_per_owner=limit)
    else:
        from todo_adapters.sql.notify import PostgresChangeHub

        listen = settings.database_listen_url
        url = None if listen is None else listen.get_secret_value()
        hub = PostgresChangeHub(settings.database, listen_url=url, max_per_owner=limit)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def _open_streams(settings: Settings) -> AsyncIterator[SharedOpenLimit | None]:
    if settings.redis_url is None:
        yield None
        return
    # a slot outlives its stream's last refresh (one per heartbeat) by two heartbeats
    limit = SharedOpenLimit(
        settings.redis_url.get_secret_value(),
        limit=settings.stream_max_per_user,
        ttl=max(5.0, 3 * settings.stream_heartbeat_seconds),
        key_prefix=settings.rate_limit_key_prefix,
    )
    try:
        yield limit
    finally:
        await limit.close()


def _stream_tickets(settings: Settings) -> StreamTickets | None:
    if settings.stream_ticket_secret is not None:
        return StreamTickets(settings.stream_ticket_secret.get_secret_value())
    secret = signing_secret(settings)
    if secret is None and settings.environment is not Environment.PRODUCTION:
        secret = load_or_create_secret(settings.secret_file)
    if secret is None:
        log.warning("stream tickets are off: set STREAM_TICKET_SECRET (EventSource clients need them)")
        return None
    return StreamTickets(secret)


def _health_checks(
    uow: TaskStore,
    limiter: RateLimiter | None,
    jwks: JwksVerifier | None,
    hub: ChangeHub,
    settings: Settings,
) -> list[HealthCheck]:
    checks: list[HealthCheck] = []
    if hub.crosses_processes:  # PostgreSQL: other instances' commits wake our streams
        checks.append(("stream_notifications", hub.check, False))
    if isinstance(uow, SqlStore):
        checks.append(("database", uow.ping, True))
    if limiter is not None and settings.redis_url is not None:
        checks.append(("redis", limiter.check, settings.rate_limit_fail_closed))
    if jwks is not None:
        checks.append(("jwks", jwks.check, True))
    return checks


def _pool_usage(uow: TaskStore) -> Callable[[], tuple[int, int]] | None:
    return uow.pool_usage if isinstance(uow, SqlStore) else None


# -- events out (SPEC §16): what `todo-api worker` resolves ---------------------------------------


def _envelopes(settings: Settings) -> CloudEvents:
    from todo_entrypoints.http.schemas import dump_json, task_to_wire  # the task as GET shows it

    return CloudEvents(settings.events_source, task_to_wire, dump_json)


def _outbox(store: TaskStore) -> EventOutbox:
    if isinstance(store, InMemoryStore | SqlStore):
        return store.outbox
    raise TypeError(f"{type(store).__name__} has no outbox for the events worker")


async def _sinks(settings: Settings, envelopes: CloudEvents) -> AsyncIterator[tuple[EventSink, ...]]:
    """The brokers configured (EVENTS_NATS_URL, EVENTS_REDIS_URL), closed at shutdown."""
    sinks: list[EventSink] = []
    if settings.events_nats_url is not None:
        from todo_adapters.events.nats import JetStreamSink

        sinks.append(
            JetStreamSink(
                settings.events_nats_url,
                settings.events_nats_stream,
                settings.events_nats_subject_prefix,
                envelopes,
            )
        )
    if settings.events_redis_url is not None:
        from todo_adapters.events.redis_streams import RedisStreamSink

        sinks.append(
            RedisStreamSink(
                settings.events_redis_url.get_secret_value(),
                settings.events_redis_stream,
                envelopes,
                maxlen=settings.events_redis_maxlen,
            )
        )
    try:
        yield tuple(sinks)
    finally:
        for sink in sinks:
            await sink.close()


async def _webhooks(settings: Settings, envelopes: CloudEvents) -> AsyncIterator[WebhookSender | None]:
    if not settings.webhook_urls or settings.webhook_secret is None:
        yield None
        return
    from todo_adapters.events.webhooks import StandardWebhooks

    sender = StandardWebhooks(settings.webhook_secret.get_secret_value(), envelopes)
    try:
        yield sender
    finally:
        await sender.close()


def _relay_settings(settings: Settings) -> RelaySettings:
    return RelaySettings(
        batch_size=settings.worker_batch_size,
        webhook_urls=tuple(settings.webhook_urls),
        webhook_retry=timedelta(hours=settings.webhook_retry_hours),
        reminder_max_lateness=timedelta(hours=settings.reminder_max_lateness_hours),
        retention=timedelta(hours=settings.events_retention_hours),
    )


def _describe(settings: Settings) -> str:
    return "in-memory" if settings.is_memory else safe_url(settings.database_url.get_secret_value())


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(Uuid7Generator)
    unit_of_work = providers.Resource(_unit_of_work, settings)
    change_hub = providers.Resource(_change_hub, settings)
    service = providers.Singleton(
        TaskService,
        unit_of_work,
        signal=change_hub,
        clock=clock,
        ids=ids,
        tombstone_retention=providers.Callable(
            lambda s: timedelta(days=s.tombstone_retention_days), settings
        ),
        idempotency_retention=providers.Callable(
            lambda s: timedelta(hours=s.idempotency_retention_hours), settings
        ),
    )
    envelopes = providers.Singleton(_envelopes, settings)
    sinks = providers.Resource(_sinks, settings, envelopes)
    webhooks = providers.Resource(_webhooks, settings, envelopes)
    event_relay = providers.Singleton(
        EventRelay,
        providers.Callable(_outbox, unit_of_work),
        sinks,
        webhooks=webhooks,
        settings=providers.Callable(_relay_settings, settings),
        clock=clock,
        ids=ids,
    )
    shared_secret_verifier = providers.Singleton(_shared_secret, settings)
    jwks_verifier = providers.Resource(_jwks, settings)
    session_verifier = providers.Resource(_session, settings)
    verifier = providers.Singleton(
        TokenRouter, hmac=shared_secret_verifier, jwks=jwks_verifier, session=session_verifier
    )
    rate_limiter = providers.Resource(_rate_limiter, settings)
    read_limit = providers.Singleton(lambda s: parse_limit(s.rate_limit_read), settings)
    write_limit = providers.Singleton(lambda s: parse_limit(s.rate_limit_write), settings)
    batch_command_limit = providers.Singleton(lambda s: parse_limit(s.rate_limit_batch_commands), settings)
    health_checks = providers.Singleton(
        _health_checks, unit_of_work, rate_limiter, jwks_verifier, change_hub, settings
    )
    database_description = providers.Callable(_describe, settings)
    adapters = providers.Singleton(
        Adapters,
        service=service,
        verifier=verifier,
        rate_limiter=rate_limiter,
        read_limit=read_limit,
        write_limit=write_limit,
        batch_command_limit=batch_command_limit,
        health_checks=providers.Callable(tuple, health_checks),
        pool_usage=providers.Callable(_pool_usage, unit_of_work),
        changes=change_hub,
        tickets=providers.Singleton(_stream_tickets, settings),
        open_streams=providers.Resource(_open_streams, settings),
        large_pages=providers.Singleton(asyncio.Semaphore, LARGE_PAGES_AT_ONCE),
    )
