"""Pure-ASGI middleware for every request: request id, body size and time limits, access log,
metrics.

Written against raw ASGI (not BaseHTTPMiddleware) because it sits on the hot path and must
also see bodies that arrive in chunks without a Content-Length.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_entrypoints.http import context
from todo_entrypoints.http.problems import problem_response

__all__ = ["BodyTimedOut", "BodyTooLarge", "Metrics", "RequestContextMiddleware"]

access_log = logging.getLogger("todo.access")
error_log = logging.getLogger("todo.http")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metrics:
    """Prometheus collectors of one app (its own registry, so apps in one process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "rate_limited_requests_total",
            "Requests refused by the rate limits",
            ["kind"],
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool",
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "db_pool_connections_open", "Database connections the pool holds open", registry=self.registry
        )

        self.streams_open = Gauge(
            "event_streams_open", "Event streams open on this process (SPEC §15)", registry=self.registry
        )

    def watch_streams(self, count: Callable[[], int]) -> None:
        """Reads the number of open event streams at scrape time."""
        self.streams_open.set_function(count)

    def watch_pool(self, usage: Callable[[], tuple[int, int]]) -> None:
        """Reads the pool's numbers (in use, open) at scrape time."""
        self.pool_in_use.set_function(lambda: usage()[0])
        self.pool_size.set_function(lambda: usage()[1])


def BodyTooLarge(limit: int) -> HTTPException:  # noqa: N802  (an error constructor)
    """Raised while the app reads the body: an HTTPException, the one kind FastAPI's body
    reader lets through (it turns any other error into a 400); answered as problem+json."""
    return HTTPException(413, f"The request body exceeds {limit} bytes.")


def BodyTimedOut(seconds: float) -> HTTPException:  # noqa: N802
    """The body did not arrive within HTTP_BODY_TIMEOUT_SECONDS of the headers (SPEC §13.6);
    the connection is closed after the answer (its unread rest would be taken for a request)."""
    return HTTPException(
        408, f"The request body did not arrive within {seconds:g} seconds.", headers={"Connection": "close"}
    )


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, body_timeout_seconds: float = 30.0
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD"
        if head or (path.endswith("/") and path != "/"):
            scope = _normalised(scope, head)
        extra_headers = _SECURITY_HEADERS.get(_area(scope["path"]), _SECURITY_HEADERS[""])
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        # Not reset afterwards: each request runs in its own task (its own context copy), and
        # the last-resort 500 handler runs after this middleware has returned.
        facts = context.start(request_id)
        started = time.perf_counter()
        status = 500
        raw_id = request_id.encode()

        started_response = False
        hung_up = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                headers = message.get("headers", [])
                present = {name.lower() for name, _ in headers}
                message["headers"] = [
                    *headers,
                    (b"x-request-id", raw_id),
                    *((k.lower().encode(), v.encode()) for k, v in facts.response_headers.items()),
                    *((name, value) for name, value in extra_headers if name not in present),
                ]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}  # HEAD: the GET's headers, no body
            await send(message)

        # Bodies over the limit are refused, declared or not; so are bodies that take longer
        # than the body timeout from the headers (a trickle); a hang-up is noticed.
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        received = 0
        deadline: float | None = None
        body_complete = False

        async def receiving() -> Message:
            nonlocal received, hung_up, deadline, body_complete
            if too_large:
                raise BodyTooLarge(limit)
            if body_complete:  # later reads wait for a disconnect (streams): no deadline
                message = await receive()
            else:
                if deadline is None:
                    waited = time.perf_counter() - started
                    deadline = asyncio.get_running_loop().time() + self.body_timeout - waited
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise BodyTimedOut(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_complete = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                hung_up = True
            return message

        try:
            await self.app(scope, receiving, send_with_id)
        except Exception as exc:  # past every handler: a bug, or a client that is gone
            if hung_up or isinstance(exc, ClientDisconnect):
                hung_up = True
            else:
                # Logged here once (the server would log it a second time if it saw it).
                error_log.error("unhandled error (request %s)", request_id, exc_info=exc)
                if not started_response:
                    answer = problem_response(
                        Request(scope),
                        500,
                        "An unexpected error occurred; it has been logged.",
                        headers={"Connection": "close"},  # the connection's state is unknown
                    )
                    await answer(scope, receive, send_with_id)
                status = 500
        finally:
            if hung_up:
                status = 499  # nginx's "client closed request": not an error of ours
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "%s %s %s %.1fms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user": facts.user,
                    "request_id": request_id,
                },
            )


# SPEC §13.9, by area of the path: nosniff everywhere; private JSON never stored by shared
# caches (ETag revalidation still works); the docs page framed by nobody, its scripts its own.
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_SECURITY_HEADERS: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    "": (_NOSNIFF,),
    "api": (_NOSNIFF, (b"cache-control", b"private, no-cache")),
    "docs": (
        _NOSNIFF,
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data:; frame-ancestors 'none'",
        ),
    ),
}


def _area(path: str) -> str:
    if path.startswith("/api/") or path == "/api":
        return "api"
    if path == "/docs" or path.startswith("/docs-assets/"):
        return "docs"
    return ""


HEAD_SCOPE_KEY = "todo.head"
"""Set in the scope of a HEAD request served as its GET (a response that never ends, like the
event stream, answers its headers at once instead)."""


def _normalised(scope: Scope, head: bool) -> Scope:
    """`/api/tasks/` is served as `/api/tasks` (no redirect built from the Host header, SPEC
    §13.5), and HEAD as the GET it asks about (SPEC §13.10)."""
    path: str = scope["path"].rstrip("/") or "/"
    raw_path: bytes = scope.get("raw_path") or path.encode()  # ASGI: the path only, no query
    changed = {**scope, "path": path, "raw_path": raw_path.rstrip(b"/") or b"/"}
    if head:
        changed["method"] = "GET"
        changed[HEAD_SCOPE_KEY] = True
    return changed


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), never the raw path.

    FastAPI ≥ 0.16x keeps included routers as groups and records the full template on its
    per-request route context; older versions put the prefixed route itself in the scope.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) and template else "<unmatched>"


def _header(scope: Scope, name: bytes) -> Any:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
