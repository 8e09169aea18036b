"""Redis Streams sink: each event is one entry (field `event` = the JSON envelope) of the
stream, trimmed to about `maxlen` entries.

Redis has no de-duplication of its own, so one Lua script per event adds it only when its
sequence is above the last one added for that owner (kept in the hash `<stream>:sequences`),
atomically: a batch sent again after a failure adds nothing twice, and each owner's entries
stay in sequence order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from todo_adapters._extras import require

require("todo_adapters.events.redis_streams", "redis", "redis")

import redis.asyncio as redis
from redis.exceptions import RedisError

from todo_adapters.events.envelope import CloudEvents
from todo_domain.errors import SinkUnavailable
from todo_domain.events import RecordedEvent

__all__ = ["RedisStreamSink"]

_ADD_ONCE = """
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


class RedisStreamSink:
    name = "redis"

    def __init__(self, url: str, stream: str, envelopes: CloudEvents, *, maxlen: int = 1_000_000) -> None:
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._stream = stream
        self._sequences = f"{stream}:sequences"
        self._maxlen = maxlen
        self._envelopes = envelopes
        self._script = self._client.register_script(_ADD_ONCE)

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event in events:
                    await self._script(
                        keys=[self._stream, self._sequences],
                        args=[event.owner, event.sequence, self._envelopes.encode(event), self._maxlen],
                        client=pipe,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Which entries went in is unknown; the script makes sending them again harmless.
            raise SinkUnavailable(self.name, repr(exc)) from None

    async def close(self) -> None:
        await self._client.aclose()
