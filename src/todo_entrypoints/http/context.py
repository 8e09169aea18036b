"""The facts of one request that several layers need: who asked, its id, headers to add.

The request middleware starts one `RequestContext` per request; authentication fills in the
user, rate limiting the headers every response carries, and the error handlers and log lines
read the request id from it. One typed object in a context variable, instead of string keys in
`request.state` and the ASGI scope (each request runs in its own task, so its own context).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["RequestContext", "current", "start"]


@dataclass(slots=True)
class RequestContext:
    request_id: str
    user: str | None = None
    # Added to whatever response the route returns (e.g. the RateLimit-* headers).
    response_headers: dict[str, str] = field(default_factory=dict)
    # The token could not be checked (a key source down): inside the MCP SDK, which can only
    # say 401, this makes /mcp answer 503 instead (mcp_endpoint.py).
    auth_unavailable: bool = False


_OUTSIDE = RequestContext("-")  # log lines and errors outside any request
_current: ContextVar[RequestContext] = ContextVar("request_context", default=_OUTSIDE)


def start(request_id: str) -> RequestContext:
    """A new context for the request now starting in this task."""
    context = RequestContext(request_id)
    _current.set(context)
    return context


def current() -> RequestContext:
    return _current.get()
