"""Every error response is RFC 9457 problem+json; this module is the one table that maps errors.

Domain errors, auth failures, HTTP-level refusals, framework validation and the last-resort
500 all end here, so a client only ever sees one error shape with a string `detail`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from todo_adapters.auth import AuthUnavailable, InvalidToken
from todo_domain.batch import FailedDependency
from todo_domain.errors import (
    ChangeTokenExpired,
    DomainError,
    FieldError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    PositionTaken,
    StorageUnavailable,
    TaskNotFound,
    ValidationFailed,
    VersionConflict,
)
from todo_entrypoints.http import context

__all__ = [
    "PROBLEM_JSON",
    "DomainProblem",
    "HttpProblem",
    "describe",
    "field_errors",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("todo.http")


class HttpProblem(Exception):
    """An HTTP-level refusal raised by our own glue (auth, preconditions, bodies, media types)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = tuple(errors)
        self.extra = dict(extra or {})


TITLES = {
    400: "Malformed request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    410: "Sync token expired",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Request validation failed",
    424: "Failed dependency",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
DEFAULT_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    410: "sync_expired",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    424: "failed_dependency",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
RETRY_AFTER_SECONDS = "5"


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_body(
        status,
        detail,
        code=code,
        instance=request.url.path,
        request_id=context.current().request_id,
        errors=errors,
        extra=extra,
    )
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    errors: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 document; also written by the server itself, before any request exists."""
    code = code or DEFAULT_CODES.get(status, "error")
    body: dict[str, Any] = {
        "type": f"/problems/{code.replace('_', '-')}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body["code"] = code
    if request_id is not None:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message, "code": e.code} for e in errors]
    body.update(extra or {})
    # Extension members for clients of other conventions (SPEC §21); `detail` stays canonical.
    body["message"] = detail
    body["error"] = {"code": code, "message": detail}
    return body


@dataclass(frozen=True, slots=True)
class DomainProblem:
    """How a domain error is answered, whatever the transport (HTTP here, MCP tool results)."""

    status: int
    code: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


def describe(exc: DomainError) -> DomainProblem | None:
    """The one table from domain errors to answers; None for an error it does not know (a bug)."""
    match exc:
        case TaskNotFound():
            return DomainProblem(404, "not_found", "The task does not exist.")
        case FailedDependency():
            error = FieldError(
                exc.field, f"names temp_id {exc.temp_id!r}, whose create failed", "failed_dependency"
            )
            return DomainProblem(424, "failed_dependency", str(exc), (error,))
        case IdempotencyKeyReused():
            return DomainProblem(422, "idempotency_key_reused", str(exc), exc.errors)
        case ValidationFailed():
            return DomainProblem(422, "validation_error", str(exc), exc.errors)
        case IdempotencyKeyInFlight() | PositionTaken():
            return DomainProblem(409, "conflict", str(exc), headers={"Retry-After": "1"})
        case VersionConflict():
            detail = f"The task is at version {exc.current}, not {exc.expected}."
            return DomainProblem(412, "precondition_failed", detail, headers={"ETag": f'"{exc.current}"'})
        case ChangeTokenExpired():
            return DomainProblem(410, "sync_expired", str(exc))
        case StorageUnavailable():
            log.warning("storage unavailable: %s", exc)
            detail = "The database is unavailable; retry shortly."
            return DomainProblem(
                503, "service_unavailable", detail, headers={"Retry-After": RETRY_AFTER_SECONDS}
            )
    return None


# Domain field names that HTTP spells otherwise (the rest are the same on the wire).
_ON_THE_WIRE = {"idempotency_key": "Idempotency-Key", "owner": "user_id"}


def _domain_problem(request: Request, exc: DomainError) -> Response:
    problem = describe(exc)
    if problem is None:
        return _internal(request, exc)
    errors = [FieldError(_ON_THE_WIRE.get(e.field, e.field), e.message, e.code) for e in problem.errors]
    return problem_response(
        request,
        problem.status,
        # a validation detail lists the fields: spelled as in `errors`
        "; ".join(map(str, errors)) if errors and problem.detail == str(exc) else problem.detail,
        code=problem.code,
        errors=errors,
        headers=problem.headers,
    )


def _internal(request: Request, exc: BaseException) -> Response:
    log.error("unhandled error (request %s)", context.current().request_id, exc_info=exc)
    # Answered by Starlette's outermost middleware, past our request-id middleware: add it here.
    return problem_response(
        request,
        500,
        "An unexpected error occurred; it has been logged.",
        headers={"X-Request-ID": context.current().request_id},
    )


def _validation_field(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def field_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as ours: the field as a dotted path (under `prefix`), message, type."""
    return [
        FieldError(
            ".".join(p for p in (prefix, _validation_field(e.get("loc", ()))) if p),
            str(e.get("msg", "is invalid")),
            str(e.get("type")),
        )
        for e in errors
    ]


def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
    errors = field_errors(exc.errors())
    if any(e.code == "json_invalid" for e in errors):
        return problem_response(request, 400, "The request body is not valid JSON.")
    return problem_response(request, 422, "; ".join(str(e) for e in errors), errors=errors)


def _http_problem(request: Request, exc: HttpProblem) -> Response:
    return problem_response(
        request,
        exc.status,
        exc.detail,
        code=exc.code,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _starlette_problem(request: Request, exc: StarletteHTTPException) -> Response:
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404:
        detail = "No such resource."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed here."
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request, exc.status_code, detail, headers=headers)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path (Starlette names only the first route's),
    found by asking the routes themselves; HEAD wherever GET is, as the middleware serves it."""
    methods = {
        method
        for route in request.app.router.routes
        for method in _METHODS
        if route.matches({**request.scope, "method": method})[0] is Match.FULL
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _unauthorized(request: Request, exc: InvalidToken) -> Response:
    description = exc.description.replace('"', "'")
    return problem_response(
        request,
        401,
        exc.description,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


def _auth_unavailable(request: Request, exc: AuthUnavailable) -> Response:
    log.warning("token verification unavailable: %s", exc)
    return problem_response(
        request,
        503,
        "Tokens cannot be verified right now; retry shortly.",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_problem)  # type: ignore[arg-type]
    app.add_exception_handler(HttpProblem, _http_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _starlette_problem)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidToken, _unauthorized)  # type: ignore[arg-type]
    app.add_exception_handler(AuthUnavailable, _auth_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)
