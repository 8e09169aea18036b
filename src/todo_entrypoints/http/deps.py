"""What handlers may ask for, as Annotated aliases; the only module wired to the container.

Handlers never build adapters: they name `ServiceDep`, `OwnerDep`… and FastAPI plus
dependency-injector hand them what the composition root built.
"""

from __future__ import annotations

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from todo_adapters.auth import InvalidToken, TokenVerifier
from todo_domain import TaskService
from todo_entrypoints.container import Container, HealthCheck
from todo_entrypoints.http.problems import HttpProblem

__all__ = ["HealthChecksDep", "OwnerDep", "ServiceDep", "require_path_owner"]

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
async def _owner(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    verifier: TokenVerifier = Depends(Provide[Container.verifier]),
) -> str:
    """The token's subject: every task this request touches belongs to it."""
    if credentials is None:
        header = request.headers.get("authorization")
        raise InvalidToken(
            "the Authorization header is missing"
            if header is None
            else "the Authorization header is not 'Bearer <token>'"
        )
    principal = await verifier.verify(credentials.credentials)
    request.state.user = principal.subject
    return principal.subject


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
