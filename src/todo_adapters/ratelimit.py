"""Rate limits on the `limits` library: a moving window per key, in memory or in Redis.

With Redis every instance shares one budget. Redis calls have short timeouts; when Redis is
down or hung, requests are counted by a per-process fallback window instead (the service stays
up and still limited, and reports itself degraded), unless `fail_closed`, which refuses them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from todo_adapters._extras import require

require("todo_adapters.ratelimit", "server", "limits", "redis")

import redis.asyncio as redis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

__all__ = ["Decision", "RateLimitUnavailable", "RateLimiter", "SharedOpenLimit", "parse_limit"]

log = logging.getLogger("todo.ratelimit")
REDIS_TIMEOUT_SECONDS = 0.25


class RateLimitUnavailable(Exception):
    """The shared store is down and the limiter is configured to fail closed."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window has room again (≥ 1 when refused)


def parse_limit(text: str) -> RateLimitItem:
    """`"100/minute"`, `"30 per minute"`…; ValueError with the offending text otherwise."""
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"not a rate limit: {text!r} (e.g. '100/minute')") from None


class RateLimiter:
    def __init__(
        self,
        *,
        redis_url: str | None = None,
        key_prefix: str = "todo",
        fail_closed: bool = False,
        timeout: float = REDIS_TIMEOUT_SECONDS,
    ) -> None:
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        self._storage: RedisStorage | None = None
        self._pool: redis.ConnectionPool | None = None
        if redis_url is not None:
            plain = redis_url.removeprefix("async+")
            # Our own pool (limits would build one it never closes), so close() can end it.
            self._pool = redis.ConnectionPool.from_url(
                plain, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            self._storage = RedisStorage(
                f"async+{plain}",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=key_prefix,
                connection_pool=self._pool,  # type: ignore[arg-type]  # limits types options as scalars
            )
            self._shared = MovingWindowRateLimiter(self._storage)
        self._timeout = timeout
        self._fail_closed = fail_closed
        self.degraded = False
        self._last_warning = 0.0

    async def hit(self, item: RateLimitItem, key: str, cost: int = 1) -> Decision:
        """Counts `cost` hits (a batch's commands) in one go: all of them, or none if they
        do not fit in what is left of the window."""
        if self._shared is not None:
            try:
                decision = await asyncio.wait_for(self._hit(self._shared, item, key, cost), self._timeout * 2)
            except (StorageError, TimeoutError, OSError) as exc:
                self._storage_failed(exc)
            else:
                self.degraded = False
                return decision
        return await self._hit(self._fallback, item, key, cost)

    async def check(self) -> None:
        """For readiness: raises if the shared store does not answer."""
        if self._storage is not None:
            try:
                healthy = await asyncio.wait_for(self._storage.check(), self._timeout * 2)
            except (StorageError, TimeoutError, OSError) as exc:
                raise ConnectionError("Redis is unreachable") from exc
            if not healthy:
                raise ConnectionError("Redis is unreachable")

    async def close(self) -> None:
        """Closes the Redis connections."""
        if self._pool is not None:
            await self._pool.aclose()

    @staticmethod
    async def _hit(strategy: MovingWindowRateLimiter, item: RateLimitItem, key: str, cost: int) -> Decision:
        allowed = await strategy.hit(item, key, cost=cost)
        stats = await strategy.get_window_stats(item, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset)

    def _storage_failed(self, exc: BaseException) -> None:
        self.degraded = True
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning(
                "rate-limit store unavailable (%s); %s",
                type(exc).__name__,
                "refusing requests" if self._fail_closed else "using the per-process fallback",
            )
        if self._fail_closed:
            raise RateLimitUnavailable("the rate-limit store is unavailable") from exc


# Atomically: drop expired slots, refuse when `limit` remain, else take one until `expires`.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class SharedOpenLimit:
    """At most `limit` things open at once per key across every instance sharing one Redis
    (the event streams of a user, SPEC §15): each holds a slot that expires `ttl` seconds after
    its last `refresh`, so a killed instance's slots free themselves. When Redis cannot answer,
    a claim is allowed (each instance's own cap still holds) and a warning is logged."""

    def __init__(self, redis_url: str, *, limit: int, ttl: float, key_prefix: str = "todo") -> None:
        self._redis = redis.Redis.from_url(
            redis_url.removeprefix("async+"),
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._claim = self._redis.register_script(_CLAIM)
        self.limit, self._ttl, self._prefix = limit, ttl, key_prefix
        self._last_warning = 0.0

    def _key(self, owner: str) -> str:
        return f"{self._prefix}:open-streams:{owner}"

    async def claim(self, owner: str, slot: str) -> bool:
        now = time.time()
        arguments: list[str | int | float] = [now, self.limit, now + self._ttl, slot, int(self._ttl * 2000)]
        try:
            return bool(await self._claim(keys=[self._key(owner)], args=arguments))
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return True

    async def refresh(self, owner: str, slot: str) -> None:
        try:
            await self._redis.zadd(self._key(owner), {slot: time.time() + self._ttl}, xx=True)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    async def release(self, owner: str, slot: str) -> None:
        try:
            await self._redis.zrem(self._key(owner), slot)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._redis.aclose()

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("open-stream limit store unavailable (%s); only the per-instance cap holds", exc)
