"""NATS JetStream sink: the stream is created if missing; every event goes to
`<prefix>.<type>` with `Nats-Msg-Id` = its id, so JetStream keeps one copy per id within the
stream's duplicate window (2 minutes by default; this sink creates streams with 5).

Each owner's events are published one after another, each waiting for its ack (different
owners in parallel): an event is stored only after the owner's previous one was, so the stream
holds every owner's events in sequence order even when a publish fails half-way; what was
acked is reported in `SinkUnavailable.done` and not sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from todo_adapters._extras import require

require("todo_adapters.events.nats", "events", "nats")

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from todo_adapters.events.envelope import CloudEvents
from todo_domain.errors import SinkUnavailable
from todo_domain.events import RecordedEvent

__all__ = ["JetStreamSink"]

log = logging.getLogger("todo.events.nats")

DUPLICATE_WINDOW_SECONDS = 300.0
_ACK_TIMEOUT_SECONDS = 5.0


class JetStreamSink:
    name = "nats"

    def __init__(self, url: str, stream: str, subject_prefix: str, envelopes: CloudEvents) -> None:
        self._url = url
        self._stream = stream
        self._prefix = subject_prefix
        self._envelopes = envelopes
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    async def _context(self) -> JetStreamContext:
        if self._js is not None and self._client is not None and self._client.is_connected:
            return self._js
        await self.close()
        client = await nats.connect(
            self._url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False
        )
        js = client.jetstream(timeout=_ACK_TIMEOUT_SECONDS)
        try:
            await js.stream_info(self._stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self._stream,
                    subjects=[f"{self._prefix}.>"],
                    duplicate_window=DUPLICATE_WINDOW_SECONDS,
                )
            )
            log.info("created JetStream stream %s for %s.>", self._stream, self._prefix)
        self._client, self._js = client, js
        return js

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        done: set[tuple[str, int]] = set()
        try:
            js = await self._context()
        except Exception as exc:  # nats-py raises many kinds: all mean "not now"
            raise SinkUnavailable(f"nats: cannot reach {self._url}: {exc!r}") from None
        by_owner: dict[str, list[RecordedEvent]] = {}
        for event in events:
            by_owner.setdefault(event.owner, []).append(event)

        async def owners_events(chain: list[RecordedEvent]) -> None:
            for event in chain:
                await js.publish(
                    f"{self._prefix}.{event.type.value}",
                    self._envelopes.encode(event),
                    headers={"Nats-Msg-Id": str(event.id)},
                )
                done.add((event.owner, event.sequence))

        results = await asyncio.gather(*(owners_events(c) for c in by_owner.values()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()  # start again from a fresh connection
            raise SinkUnavailable(f"nats: publish failed: {failures[0]!r}", frozenset(done))

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            try:
                await client.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing the NATS connection failed", exc_info=True)
