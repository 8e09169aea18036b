"""What handlers may ask for, as Annotated aliases; the only module wired to the container.

Handlers never build adapters: they name `ServiceDep`, `OwnerDep`… and FastAPI plus
dependency-injector hand them what the composition root built.
"""

from __future__ import annotations

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from todo_adapters.auth import InvalidToken, Principal, TokenVerifier
from todo_adapters.ratelimit import RateLimiter, RateLimitUnavailable, parse_limit
from todo_domain import TaskService
from todo_entrypoints.container import Container, HealthCheck
from todo_entrypoints.http.problems import HttpProblem
from todo_entrypoints.settings import Settings

__all__ = ["HealthChecksDep", "OwnerDep", "ServiceDep", "rate_limit", "require_path_owner"]

_bearer = HTTPBearer(
    auto_error=False, description="A JWT (Better Auth JWKS or shared secret) or a Better Auth session token"
)


@inject
async def _service(service: TaskService = Depends(Provide[Container.service])) -> TaskService:
    return service


@inject
async def _health_checks(
    checks: list[HealthCheck] = Depends(Provide[Container.health_checks]),
) -> list[HealthCheck]:
    return checks


@inject
async def _authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    verifier: TokenVerifier = Depends(Provide[Container.verifier]),
) -> Principal | InvalidToken:
    """The caller, or why not; checked once per request (rate limits and owner both use it)."""
    if credentials is None:
        header = request.headers.get("authorization")
        return InvalidToken(
            "the Authorization header is missing"
            if header is None
            else "the Authorization header is not 'Bearer <token>'"
        )
    try:
        principal = await verifier.verify(credentials.credentials)
    except InvalidToken as refused:
        return refused
    request.state.user = principal.subject
    return principal


async def _owner(caller: Annotated[Principal | InvalidToken, Depends(_authenticate)]) -> str:
    """The token's subject: every task this request touches belongs to it."""
    if isinstance(caller, InvalidToken):
        raise caller
    return caller.subject


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@inject
async def rate_limit(
    request: Request,
    caller: Annotated[Principal | InvalidToken, Depends(_authenticate)],
    limiter: RateLimiter | None = Depends(Provide[Container.rate_limiter]),
    settings: Settings = Depends(Provide[Container.settings]),
) -> None:
    """Per token subject (per client IP without one), reads and writes counted separately."""
    if limiter is None:
        return
    reading = request.method in _READ_METHODS
    item = parse_limit(settings.rate_limit_read if reading else settings.rate_limit_write)
    who = f"user:{caller.subject}" if isinstance(caller, Principal) else f"ip:{_client_ip(request)}"
    try:
        decision = await limiter.hit(item, f"{'read' if reading else 'write'}:{who}")
    except RateLimitUnavailable:
        raise HttpProblem(
            503,
            "service_unavailable",
            "Rate limiting is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        ) from None
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        raise HttpProblem(
            429,
            "rate_limited",
            f"Too many {'reads' if reading else 'writes'}; retry in {decision.reset_seconds} s.",
            headers={**headers, "Retry-After": str(decision.reset_seconds)},
            extra={"retry_after": decision.reset_seconds},
        )
    request.state.response_headers = headers  # added to whatever response the route returns


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ServiceDep = Annotated[TaskService, Depends(_service)]
OwnerDep = Annotated[str, Depends(_owner)]
HealthChecksDep = Annotated[list[HealthCheck], Depends(_health_checks)]


async def require_path_owner(
    user_id: Annotated[str, Path(min_length=1, max_length=255, description="must equal the token's subject")],
    owner: OwnerDep,
) -> None:
    """For the `/api/{user_id}/…` routes: the path names the caller, or the request is refused."""
    if user_id != owner:
        raise HttpProblem(403, "forbidden", "The user in the path is not the user of the token.")
