"""Routes for operators: liveness, readiness, metrics. Never authenticated, never rate limited."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from todo_domain import StorageUnavailable
from todo_entrypoints.http.deps import HealthChecksDep
from todo_entrypoints.http.problems import HttpProblem
from todo_entrypoints.http.schemas import ReadinessOut

__all__ = ["router"]

router = APIRouter(tags=["operations"])
READINESS_TIMEOUT_SECONDS = 3.0


@router.get("/", include_in_schema=False)
async def index(request: Request) -> dict[str, str]:
    """Where to start, in development (SPEC §13.11); production answers 404 here."""
    if request.app.state.production:
        raise StarletteHTTPException(404)
    links = {"api": "/api/tasks", "health": "/health", "mcp": "/mcp"}
    if request.app.openapi_url:
        links |= {"docs": "/docs", "openapi": request.app.openapi_url}
    return {"name": request.app.title, **links}


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    response_model=ReadinessOut,
    summary="Readiness: every dependency answers",
    responses={503: {"model": ReadinessOut, "description": "a dependency is down"}},
)
async def ready(checks: HealthChecksDep) -> JSONResponse:
    results: dict[str, str] = {}
    status = "ok"
    for name, check, critical in checks:
        try:
            await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
            results[name] = "ok"
        except (StorageUnavailable, TimeoutError, OSError):
            results[name] = "unavailable"
            status = "unavailable" if critical else ("degraded" if status == "ok" else status)
    body = {"status": status, "checks": results}
    if status == "unavailable":
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse(body)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Open in development; in production 404 unless METRICS_TOKEN is set; with a token, only
    for `Authorization: Bearer <METRICS_TOKEN>` (SPEC §13.4)."""
    token: str | None = request.app.state.metrics_token
    if token is None and request.app.state.production:
        raise StarletteHTTPException(404)
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HttpProblem(
                401, "unauthorized", "The metrics need the METRICS_TOKEN bearer token.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )  # fmt: skip
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
