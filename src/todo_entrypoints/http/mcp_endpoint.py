"""`/mcp` in the HTTP app: the MCP server of `todo_entrypoints.mcp_tools`, loaded on first use.

The SDK's own Starlette app (Streamable HTTP, stateless, JSON responses, its bearer
middleware over our verifiers, the RFC 9728 metadata) serves exactly two paths, inside our
middleware (request ids, body limit, CORS, access log). The SDK and the tools are imported
and the session manager started on the first MCP request, not at start-up: they cost ≈ 17 MB
per process that a deployment serving only `/api` never needs. DNS-rebinding protection is
off: it guards unauthenticated local servers, and every MCP request here needs a bearer token
that a rebinding page cannot read.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_entrypoints.container import Adapters
from todo_entrypoints.http import context
from todo_entrypoints.http.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, problem_body
from todo_entrypoints.settings import Settings

__all__ = ["MCP_PATH", "METADATA_PATH", "McpEndpoint", "mount_mcp"]

log = logging.getLogger("todo")

MCP_PATH = "/mcp"
# RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_PATH


AdaptersSource = Callable[[], Awaitable[Adapters]]


def mount_mcp(app: FastAPI, settings: Settings, adapters: AdaptersSource) -> McpEndpoint | None:
    """Routes `/mcp` and its metadata to one lazily started endpoint (None without the SDK)."""
    if importlib.util.find_spec("mcp") is None:
        log.warning("MCP is off: the mcp SDK is not installed (pip install 'todo-service[mcp]')")
        return None
    endpoint = McpEndpoint(lambda: _sdk_app(settings, adapters))
    for path in (MCP_PATH, METADATA_PATH):
        app.router.routes.append(Route(path, endpoint=endpoint, include_in_schema=False))
    return endpoint


def _sdk_app(
    settings: Settings, adapters: AdaptersSource
) -> tuple[ASGIApp, AbstractAsyncContextManager[None]]:
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.transport_security import TransportSecuritySettings

    from todo_entrypoints.mcp_tools import BearerVerifier, TaskTools

    public = settings.public_url.rstrip("/")
    auth = AuthSettings(
        issuer_url=settings.auth_issuer or public,
        resource_server_url=public + MCP_PATH,
        validate_token_resource=False,  # our verifiers check the audience themselves
    )
    server = TaskTools(adapters, auth=auth, verifier=BearerVerifier(adapters))
    sdk_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=True,
        stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return sdk_app, server.session_manager.run()


class McpEndpoint:
    """The SDK's app as one ASGI endpoint: built and started on the first request after each
    start of our app (the SDK's session manager runs only once per instance, and an app may be
    started again, as tests do), stopped with it."""

    def __init__(self, build: Callable[[], tuple[ASGIApp, AbstractAsyncContextManager[None]]]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._running: AbstractAsyncContextManager[None] | None = None
        self._starting: asyncio.Lock | None = None

    def reset(self) -> None:
        """At our app's start: nothing built yet (a lock for this event loop)."""
        self._app, self._running, self._starting = None, None, asyncio.Lock()

    async def stop(self) -> None:
        running, self._running, self._app = self._running, None, None
        if running is not None:
            await running.__aexit__(None, None, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app or await self._start()
        await app(scope, receive, _unavailable_not_unauthorized(send))

    async def _start(self) -> ASGIApp:
        if self._starting is None:
            self.reset()
        assert self._starting is not None
        async with self._starting:
            if self._app is None:
                sdk_app, run = self._build()
                running = _held_in_own_task(run)
                await running.__aenter__()
                self._running, self._app = running, sdk_app
        return self._app


def _unavailable_not_unauthorized(send: Send) -> Send:
    """The SDK answers 401 to any token its verifier did not accept; when ours could not check
    it at all (a JWKS endpoint down, the session database unreachable) the answer is 503, as on
    `/api`, so a client retries instead of discarding a good token."""
    replaced = False

    async def guarded(message: Message) -> None:
        nonlocal replaced
        if replaced:
            return
        if (
            message["type"] == "http.response.start"
            and message["status"] == 401
            and context.current().auth_unavailable
        ):
            replaced = True
            body = orjson.dumps(problem_body(503, "Tokens cannot be verified right now; retry shortly."))
            headers = [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", RETRY_AFTER_SECONDS.encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return guarded


@asynccontextmanager
async def _held_in_own_task(context: AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
    """Enters and leaves `context` in one task of its own: the session manager holds an anyio
    task group, whose cancel scope must be left by the task that entered it, and neither a
    request nor a lifespan (test fixtures) stays in one task that long."""
    entered, leave = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with context:
            entered.set()
            await leave.wait()

    holder = asyncio.create_task(hold())
    waiting = asyncio.create_task(entered.wait())
    await asyncio.wait({holder, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if holder.done():
        waiting.cancel()
        holder.result()  # it failed to enter: raise why
    try:
        yield
    finally:
        leave.set()
        await holder
