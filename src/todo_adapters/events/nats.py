"""NATS JetStream sink: the stream is created if missing; every event goes to
`<prefix>.<type>` with `Nats-Msg-Id` = its id, so JetStream keeps one copy per id within the
stream's duplicate window (2 minutes by default; this sink creates streams with 5).

A batch is written to the connection in order without waiting for each ack (publish_async),
then the acks are awaited together: the server stores one connection's messages in the order
they arrive, so every owner's events are in the stream in sequence order. When some fail (a
dropped connection, a restart), the acked ones are reported in `SinkUnavailable.done` and the
relay marks each owner's events up to its first unacked one; the rest come again, and any of
them that did get stored is dropped then as a duplicate (its Nats-Msg-Id). Only a failure
that hits one message and spares the next of the same owner on the same connection could put
them out of order, and JetStream rejects messages for reasons that hold for the whole batch
(no stream, a full store) — or it times out, after storing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

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
        try:
            js = await self._context()
        except Exception as exc:  # nats-py raises many kinds: all mean "not now"
            raise SinkUnavailable(self.name, f"cannot reach {self._url}: {exc!r}") from None
        acks: list[asyncio.Future[Any]] = []
        try:
            for event in events:  # written to the one connection in this order
                acks.append(
                    await js.publish_async(
                        f"{self._prefix}.{event.type.value}",
                        self._envelopes.encode(event),
                        headers={"Nats-Msg-Id": str(event.id)},
                        stream=self._stream,
                    )
                )
            async with asyncio.timeout(_ACK_TIMEOUT_SECONDS):
                results = await asyncio.gather(*acks, return_exceptions=True)
        except Exception as exc:  # a dropped connection, a stalled publish, acks too late
            for ack in acks:
                ack.cancel()
            results = [a.exception() if a.done() and not a.cancelled() else exc for a in acks]
            results += [exc] * (len(events) - len(acks))
        failures = [r for r in results if isinstance(r, BaseException)]
        failure = failures[0] if failures else None
        done = frozenset(
            (e.owner, e.sequence)
            for e, r in zip(events, results, strict=True)
            if not isinstance(r, BaseException)
        )
        if failure is not None:
            await self.close()  # start again from a fresh connection
            raise SinkUnavailable(self.name, f"publish failed: {failure!r}", done)

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            try:
                await client.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing the NATS connection failed", exc_info=True)
