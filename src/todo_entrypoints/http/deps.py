"""What handlers may ask for, as Annotated aliases; the only module that reads the container.

Handlers never build adapters: they name `ServiceDep`, `RateLimitedOwnerDep`… and get them from the
`Adapters` record the container resolved once when the app started (`app.state.adapters`),
not from the container on every request. Not dependency-injector's `Depends(Provide[...])`
wiring: FastAPI treats a `Provide` marker as a synchronous dependency and runs it in a worker
thread, which measured at several milliseconds per request on this machine (bench/run.py).
Tests still swap adapters with the container's `override()` before the app starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem

from todo_adapters.auth import MAX_TOKEN_BYTES, InvalidToken, Principal, TokenVerifier
from todo_adapters.ratelimit import Decision, RateLimiter, RateLimitUnavailable
from todo_domain import TaskService
from todo_entrypoints.container import Adapters, Container, HealthCheck, provide
from todo_entrypoints.http import context
from todo_entrypoints.http.problems import HttpProblem

__all__ = [
    "AdaptersDep",
    "HealthChecksDep",
    "RateLimitedOwnerDep",
    "ServiceDep",
    "StreamOwnerDep",
    "require_path_owner",
]

_bearer = HTTPBearer(
    auto_error=False, description="A JWT (Better Auth JWKS or shared secret) or a Better Auth session token"
)


async def resolve_adapters(app: FastAPI) -> Adapters:
    """The app's Adapters, resolved from its container once: at start-up by the lifespan (a
    server run without one resolves them on its first request)."""
    adapters: Adapters | None = getattr(app.state, "adapters", None)
    if adapters is None:  # concurrent first calls share one resolution (an async Singleton)
        container: Container = app.state.container
        adapters = app.state.adapters = await provide(container.adapters)
    return adapters


async def _service(request: Request) -> TaskService:
    return (await resolve_adapters(request.app)).service


async def _health_checks(request: Request) -> tuple[HealthCheck, ...]:
    return (await resolve_adapters(request.app)).health_checks


async def _authenticated_within_limits(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> str:
    """The token's subject (every task this request touches belongs to it), once the request
    is counted against the rate limits: per subject, or per client IP without a valid token,
    so a flood of bad tokens is limited too. Authentication and limiting are two functions
    run by one dependency on purpose: FastAPI's dependency resolution costs tens of
    microseconds per node on every request."""
    caller = await _authenticate(request, credentials)
    await _rate_limit(request, caller)
    if isinstance(caller, InvalidToken):
        raise caller
    return caller.subject


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | InvalidToken:
    """The caller, or why not."""
    if credentials is None:
        header = request.headers.get("authorization")
        return InvalidToken(
            "the Authorization header is missing"
            if header is None
            else "the Authorization header is not 'Bearer <token>'"
        )
    verifier: TokenVerifier = (await resolve_adapters(request.app)).verifier
    try:
        principal = await verifier.verify(credentials.credentials)
    except InvalidToken as refused:
        return refused
    context.current().user = principal.subject
    return principal


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _rate_limit(request: Request, caller: Principal | InvalidToken) -> None:
    """Reads and writes are counted separately."""
    adapters = await resolve_adapters(request.app)
    if adapters.rate_limiter is None:
        return
    reading = request.method in _READ_METHODS
    item = adapters.read_limit if reading else adapters.write_limit
    kind = "read" if reading else "write"
    who = f"user:{caller.subject}" if isinstance(caller, Principal) else f"ip:{_client_ip(request)}"
    decision = await count_against(
        request,
        adapters.rate_limiter,
        item,
        f"{kind}:{who}",
        kind=kind,
        refusal=lambda d: f"Too many {kind}s; retry in {d.reset_seconds} s.",
    )
    context.current().response_headers.update(_limit_headers(decision))  # added to whatever follows


async def count_against(
    request: Request,
    limiter: RateLimiter,
    item: RateLimitItem,
    key: str,
    *,
    kind: str,
    refusal: Callable[[Decision], str],
    cost: int = 1,
) -> Decision:
    """Counts `cost` hits against one limit: 503 when the limiter cannot tell, 429 (with
    Retry-After and the RateLimit headers, counted in the metrics under `kind`) when over."""
    try:
        decision = await limiter.hit(item, key, cost)
    except RateLimitUnavailable:
        raise HttpProblem(
            503,
            "service_unavailable",
            "Rate limiting is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        ) from None
    if not decision.allowed:
        request.app.state.metrics.rate_limited.labels(kind).inc()
        raise HttpProblem(
            429,
            "rate_limited",
            refusal(decision),
            headers={**_limit_headers(decision), "Retry-After": str(decision.reset_seconds)},
            extra={"retry_after": decision.reset_seconds},
        )
    return decision


def _limit_headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
    }


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _adapters(request: Request) -> Adapters:
    return await resolve_adapters(request.app)


async def _stream_caller(
    request: Request,
    ticket: Annotated[
        str | None,
        Query(max_length=MAX_TOKEN_BYTES, description="from POST …/stream/tickets, for EventSource"),
    ] = None,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> str:
    """The owner of a stream: from its ticket (`?ticket=`, what EventSource can send) or its
    bearer token; counted as a read. Under `/api/{user_id}/…` the path must name them."""
    caller: Principal | InvalidToken
    if ticket is None:
        caller = await _authenticate(request, credentials)
    else:
        tickets = (await resolve_adapters(request.app)).tickets
        if tickets is None:
            raise HttpProblem(503, "service_unavailable", "Stream tickets are not configured here.")
        try:
            caller = tickets.verify(ticket)
            context.current().user = caller.subject
        except InvalidToken as refused:
            caller = refused
    await _rate_limit(request, caller)
    if isinstance(caller, InvalidToken):
        raise caller
    path_user = request.path_params.get("user_id")
    if path_user is not None:
        _check_path_owner(path_user, caller.subject)
    return caller.subject


ServiceDep = Annotated[TaskService, Depends(_service)]
AdaptersDep = Annotated[Adapters, Depends(_adapters)]
StreamOwnerDep = Annotated[str, Depends(_stream_caller)]
RateLimitedOwnerDep = Annotated[str, Depends(_authenticated_within_limits)]
HealthChecksDep = Annotated[tuple[HealthCheck, ...], Depends(_health_checks)]


async def require_path_owner(
    user_id: Annotated[str, Path(min_length=1, max_length=255, description="must equal the token's subject")],
    owner: RateLimitedOwnerDep,
) -> None:
    """For the `/api/{user_id}/…` routes: the path names the caller, or the request is refused."""
    _check_path_owner(user_id, owner)


def _check_path_owner(path_user: str, owner: str) -> None:
    if path_user != owner:
        raise HttpProblem(403, "forbidden", "The user in the path is not the user of the token.")
