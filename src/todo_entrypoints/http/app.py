"""`create_app()`: the FastAPI application, built from a container on demand (never at import)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from todo_adapters.auth import mint_token
from todo_domain.values import Owner
from todo_entrypoints.container import Container, shut_down
from todo_entrypoints.dev_secret import signing_secret
from todo_entrypoints.http import batch, deps, operations, routes, stream
from todo_entrypoints.http.mcp_endpoint import mount_mcp
from todo_entrypoints.http.middleware import Metrics, RequestContextMiddleware
from todo_entrypoints.http.openapi import install_problem_schema
from todo_entrypoints.http.problems import install_problem_handlers
from todo_entrypoints.settings import Environment, Settings

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
    # MCP: the handshake era's session header, and the 2026-07-28 routing headers that mirror
    # each request's method and tool name (the tools declare no `Mcp-Param-*` headers).
    "Mcp-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
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
            app.state.metrics.watch_streams(lambda: adapters.changes.followers)
            log.info("tasks API ready (database: %s)", container.database_description())
            gc.collect()
            gc.freeze()  # start-up objects never need collecting again; keeps GC pauses short
            gc.set_threshold(*GC_THRESHOLDS)
            if mcp is not None:
                mcp.reset()
            yield
        finally:
            if mcp is not None:
                await mcp.stop()
            await shut_down(container)

    app = FastAPI(
        title="Tasks API",
        version="0.1.0",
        description="Multi-user tasks with bearer-token auth. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url=None,
        openapi_url="/openapi.json" if settings.serves_docs else None,
        redoc_url=None,
    )
    app.state.container = container
    app.state.metrics = Metrics()
    app.state.metrics_token = (
        None if settings.metrics_token is None else settings.metrics_token.get_secret_value()
    )
    app.state.production = settings.environment is Environment.PRODUCTION
    install_problem_handlers(app)

    if settings.bench_endpoint:

        @app.get("/_bench/hello", include_in_schema=False)
        async def hello() -> dict[str, str]:
            """The framework's ceiling on this machine: same app and middleware, no auth, no I/O
            (registered first, so it does not pay for matching the task routes)."""
            return {"hello": "world"}

    # `/mcp` before the task routes: an MCP call would otherwise first try every one of them.
    mcp = mount_mcp(app, settings, lambda: deps.resolve_adapters(app)) if settings.mcp_enabled else None
    # The stream's routes first: `/api/tasks/stream` must not be read as a task id.
    app.include_router(stream.router)
    # Every task route names RateLimitedOwnerDep, which authenticates and applies the limits.
    # All `/api/…` routes match before any `/api/{user_id}/…` one.
    task_routes = (routes.list_router(settings.list_response_shape), batch.router, routes.router)
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
    if settings.serves_docs:
        _install_docs(app)
    if settings.environment is Environment.DEVELOPMENT:
        _install_browser_example(app, settings)
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
        RequestContextMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.http_body_timeout_seconds,
    )
    return app


# The reference page of SPEC §15, served from a source checkout (it is not in the wheel).
BROWSER_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "browser"


class _DevTokenIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=255)


def _install_browser_example(app: FastAPI, settings: Settings) -> None:
    """Development only: the browser example at /examples/browser/index.html, and POST /dev/token, which
    signs a token for any user with the development secret (what `todo-api token` does)."""
    if BROWSER_EXAMPLE.is_dir():
        app.mount(
            "/examples/browser", StaticFiles(directory=BROWSER_EXAMPLE, html=True), name="browser-example"
        )
    secret = signing_secret(settings)
    if secret is None:
        return

    @app.post("/dev/token", include_in_schema=False)
    async def dev_token(body: _DevTokenIn) -> dict[str, str]:
        Owner(body.user_id)  # the domain's rule for user ids (422 naming user_id otherwise)
        token = mint_token(secret, body.user_id, issuer=settings.auth_issuer, audience=settings.auth_audience)
        return {"token": token}


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
