"""`create_app()`: the FastAPI application, built from a container on demand (never at import)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from todo_entrypoints.container import Adapters, Container, shut_down
from todo_entrypoints.http import deps, operations, routes
from todo_entrypoints.http.middleware import Metrics, RequestContextMiddleware
from todo_entrypoints.http.openapi import install_problem_schema
from todo_entrypoints.http.problems import install_problem_handlers
from todo_entrypoints.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("todo")

EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Link",
    "X-Total-Count",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Mcp-Session-Id",
    "WWW-Authenticate",
]
ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Mcp-Protocol-Version",
    "Mcp-Session-Id",
    "Last-Event-ID",
]
# A list request allocates tens of thousands of short-lived objects; at the default gen-0
# threshold (700) the collector would run dozens of times per request.
GC_THRESHOLDS = (50_000, 20, 20)
_SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def create_app(container: Container | None = None, settings: Settings | None = None) -> FastAPI:
    """The app for one container; tests pass their own (with `override()`n adapters)."""
    if container is None:
        container = Container(settings=settings or Settings())
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            # Opens the store (migrating when AUTO_MIGRATE says so), the JWKS keys, Redis; fails
            # fast on auth misconfiguration and logs how to get a development token.
            adapters = await deps.resolve_adapters(app)
            if adapters.pool_usage is not None:
                app.state.metrics.watch_pool(adapters.pool_usage)
            log.info("tasks API ready (database: %s)", container.database_description())
            gc.collect()
            gc.freeze()  # start-up objects never need collecting again; keeps GC pauses short
            gc.set_threshold(*GC_THRESHOLDS)
            async with AsyncExitStack() as running:
                if mcp is not None:
                    await running.enter_async_context(_held_in_own_task(mcp.started()))
                yield
        finally:
            await shut_down(container)

    app = FastAPI(
        title="Tasks API",
        version="0.1.0",
        description="Multi-user tasks with bearer-token auth. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    app.state.metrics = Metrics()
    install_problem_handlers(app)

    if settings.bench_endpoint:

        @app.get("/_bench/hello", include_in_schema=False)
        async def hello() -> dict[str, str]:
            """The framework's ceiling on this machine: same app and middleware, no auth, no I/O
            (registered first, so it does not pay for matching the task routes)."""
            return {"hello": "world"}

    # Every task route names RateLimitedOwnerDep, which authenticates and applies the limits.
    # All `/api/…` routes match before any `/api/{user_id}/…` one.
    task_routes = (routes.list_router(settings.list_response_shape), routes.router)
    for task_router in task_routes:
        app.include_router(task_router, prefix="/api", tags=["tasks"])
    for task_router in task_routes:
        app.include_router(
            task_router,
            prefix="/api/{user_id}",
            tags=["tasks (user in path)"],
            dependencies=[Depends(deps.require_path_owner)],
        )
    app.include_router(operations.router)
    mcp = _mount_mcp(app, settings) if settings.mcp_enabled else None
    _install_docs(app)
    install_problem_schema(app)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, max_body_bytes=settings.max_body_bytes
    )
    return app


@asynccontextmanager
async def _held_in_own_task(context: AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
    """Enters and leaves `context` in one task of its own. The MCP session manager holds an
    anyio task group, whose cancel scope must be left by the task that entered it; a lifespan
    may start in one task and end in another (test fixtures do)."""
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


def _mount_mcp(app: FastAPI, settings: Settings) -> _McpEndpoint | None:
    """The MCP server (mcp_tools.py) at /mcp over Streamable HTTP, stateless with JSON
    responses, behind the SDK's bearer middleware; its RFC 9728 metadata at
    /.well-known/oauth-protected-resource/mcp. The SDK's Starlette app is routed to as is, for
    exactly those two paths, inside our middleware (request ids, body limit, CORS, access log).
    DNS-rebinding protection is off: it guards unauthenticated local servers, and every MCP
    request here carries a bearer token a rebinding page cannot read."""
    try:
        from mcp.server.auth.settings import AuthSettings
        from mcp.server.transport_security import TransportSecuritySettings

        from todo_entrypoints.mcp_tools import BearerVerifier, TaskTools
    except ModuleNotFoundError as missing:
        if missing.name is None or not missing.name.startswith("mcp"):
            raise
        log.warning("MCP is off: the mcp SDK is not installed (pip install 'todo-service[mcp]')")
        return None

    async def adapters() -> Adapters:
        return await deps.resolve_adapters(app)

    public = settings.public_url.rstrip("/")
    auth = AuthSettings(
        issuer_url=settings.auth_issuer or public,
        resource_server_url=f"{public}/mcp",
        validate_token_resource=False,  # our verifiers check the audience themselves
    )
    server = TaskTools(adapters, auth=auth, verifier=BearerVerifier(adapters))
    endpoint = _McpEndpoint(
        lambda: server.streamable_http_app(
            streamable_http_path="/mcp",
            json_response=True,
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        ),
        server,
    )
    for route in endpoint.app.routes:
        path = getattr(route, "path", "")
        app.router.routes.append(Route(path, endpoint=endpoint, include_in_schema=False))
    return endpoint


class _McpEndpoint:
    """The SDK's Starlette app as one ASGI endpoint, rebuilt each time the app starts: the
    SDK's session manager runs only once per instance, and an app may be started again
    (tests do)."""

    def __init__(self, build: Callable[[], Starlette], server: Any) -> None:
        self._build, self._server = build, server
        self.app = build()

    def started(self) -> AbstractAsyncContextManager[None]:
        self.app = self._build()
        run: AbstractAsyncContextManager[None] = self._server.session_manager.run()
        return run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from assets shipped in an installed package: works with no internet."""
    app.mount("/docs-assets", StaticFiles(directory=_SWAGGER_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="Tasks API – docs",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
        )
