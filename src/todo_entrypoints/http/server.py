"""The server's half of SPEC §13.6: slow clients cannot hold a worker's connections.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but it waits for ever on a
connection that sends nothing, or its headers a byte at a time, keeps reading a body that
trickles in after its response has gone, and accepts any number of connections. This is
uvicorn's httptools protocol with three rules more, read from the settings of the process
(each worker reads them as the app factory does):

- a request's headers must arrive within `HTTP_HEADER_TIMEOUT_SECONDS` of its first byte
  (of the connection, for the first request), else the connection is closed — with a 408 if
  part of a request had arrived;
- a body still arriving `HTTP_BODY_TIMEOUT_SECONDS` after its headers closes the connection.
  While the app is still reading it, the request middleware answers 408 at that moment; this
  protocol is the backstop (one second later) for a body nobody reads, e.g. after a 401;
- a connection beyond `HTTP_MAX_CONNECTIONS` is answered 503 and closed at once;
- at shutdown, a connection carrying an event stream (SPEC §15) is closed at once rather than
  waited for (a stream never ends by itself): its client reconnects to another instance, and
  the worker drains its other requests and exits in time.

`todo-api serve` names this class as uvicorn's `http` protocol.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from todo_entrypoints.http.problems import PROBLEM_JSON, TITLES, problem_body
from todo_entrypoints.http.stream import EVENT_STREAM_SCOPE_KEY
from todo_entrypoints.settings import Settings

__all__ = ["ConnectionLimits", "GuardedHttpProtocol"]

log = logging.getLogger("todo.http")
BACKSTOP_GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_seconds: float
    body_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            settings.http_header_timeout_seconds,
            settings.http_body_timeout_seconds,
            settings.http_max_connections,
        )


@functools.cache
def _limits() -> ConnectionLimits:
    return ConnectionLimits.from_settings(Settings())


def raw_problem(status: int, detail: str, *extra_headers: bytes) -> bytes:
    """A whole HTTP/1.1 problem response that closes the connection, for answers the server
    writes itself (no request has reached the app)."""
    body = orjson.dumps(problem_body(status, detail))
    head = [
        f"HTTP/1.1 {status} {TITLES[status]}".encode(),
        b"content-type: " + PROBLEM_JSON.encode(),
        b"content-length: " + str(len(body)).encode(),
        b"x-content-type-options: nosniff",
        *extra_headers,
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body backstop and a cap on
    connections (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = _limits()
        self._timer: asyncio.TimerHandle | None = None
        self._request_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            log.warning("connection refused: %d open (HTTP_MAX_CONNECTIONS)", len(self.connections) - 1)
            transport.write(
                raw_problem(503, "This server holds too many connections; try again.", b"retry-after: 1")
            )
            transport.close()
            return
        self._arm(self._limits.header_seconds, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope.get(EVENT_STREAM_SCOPE_KEY):
            self.transport.close()  # the app then sees a disconnect and ends the stream
            return
        super().shutdown()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._timer is None:  # a later request on a kept-alive connection
            self._arm(self._limits.header_seconds, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._arm(self._limits.body_seconds + BACKSTOP_GRACE_SECONDS, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._request_begun = False
        super().on_message_complete()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        log.info("connection closed: headers not received within %gs", self._limits.header_seconds)
        if self._request_begun:
            detail = f"The request headers did not arrive within {self._limits.header_seconds:g} seconds."
            self.transport.write(raw_problem(408, detail))
        self.transport.close()

    def _body_too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        log.info("connection closed: body not received within %gs", self._limits.body_seconds)
        self.transport.close()
