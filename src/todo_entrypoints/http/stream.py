"""The live stream (SPEC §15): `GET /api/tasks/stream`, Server-Sent Events of the caller's
changes as they commit, and `POST /api/tasks/stream/tickets` for EventSource clients.

A stream is a reader of the change feed that is woken, not a second delivery path: it
subscribes to its owner's commits (`Adapters.changes`, see todo_adapters.changes) first, then
reads the feed after its token whenever it is woken and at least once per heartbeat. So the
replay of `?since=` / `Last-Event-ID` and the live part are the same loop — no gap and no
duplicate at the seam, out-of-order commits included (the feed's guarantee) — and a lost
wake-up only delays an event until the next heartbeat.

Frames: `ready` first (`id:` the token the stream starts from), then `task` (the task, as every
route answers it), `deleted` (`{"id"}`) or `reminder` (`{"task", "remind_at", "late"}`, fired by
`todo-api worker` with the owner's next revision, so it replays like the rest), each with `id:`
the token right after it, and a
`: heartbeat` comment every STREAM_HEARTBEAT_SECONDS. At most STREAM_MAX_PER_USER streams per
user (429 beyond): per instance, and across instances when Redis is configured. On SIGTERM the
server closes streams at once (server.py), so clients reconnect — with `Last-Event-ID` — to an
instance that stays.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from todo_adapters.changes import Subscription, TooManyFollowers
from todo_domain import ChangeLog, ChangeToken, ChangeTokenExpired, StorageUnavailable, TaskService
from todo_entrypoints.container import Adapters
from todo_entrypoints.http.deps import (
    AdaptersDep,
    RateLimitedOwnerDep,
    ServiceDep,
    StreamOwnerDep,
    require_path_owner,
)
from todo_entrypoints.http.middleware import HEAD_SCOPE_KEY
from todo_entrypoints.http.openapi import ERRORS
from todo_entrypoints.http.problems import HttpProblem
from todo_entrypoints.http.schemas import dump_json, task_to_wire

__all__ = ["EVENT_STREAM_SCOPE_KEY", "router"]

log = logging.getLogger("todo.stream")

EVENT_STREAM_SCOPE_KEY = "todo.event_stream"
"""Set in a stream's ASGI scope: the server closes such connections at once on shutdown."""
RECONNECT_MILLISECONDS = 2000
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

router = APIRouter(tags=["live stream"], responses=ERRORS(401, 403, 422, 429, 500, 503))


class TicketOut(BaseModel):
    ticket: str
    expires_at: datetime


STREAM_DOC: dict[str, Any] = {
    "summary": "Live stream of the caller's changes (Server-Sent Events)",
    "description": (
        "`text/event-stream`: `ready` (id: the starting token), then `task` / `deleted` per "
        "committed change and `reminder` per fired reminder (id: the token after it), heartbeat "
        "comments. `?since=` or "
        "`Last-Event-ID` replays everything after that token first; an expired token is 410. "
        "Authenticate with a bearer token, or `?ticket=` from POST …/stream/tickets (EventSource)."
    ),
    "response_class": StreamingResponse,
    "responses": {
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {  # one event of the stream, as an SSE parser reads it
                        "type": "object",
                        "properties": {
                            "event": {"type": "string", "enum": ["ready", "task", "deleted", "reminder"]},
                            "id": {"type": "string", "description": "the change token after this event"},
                            "data": {
                                "type": "string",
                                "description": "JSON: the task, {id}, {task, remind_at, late} or {token}",
                            },
                            "retry": {"type": "integer"},
                        },
                        "required": ["event", "id", "data"],
                    }
                }
            }
        },
        **ERRORS(410),
    },
}


async def stream(
    request: Request,
    owner: StreamOwnerDep,
    service: ServiceDep,
    adapters: AdaptersDep,
    since: Annotated[str | None, Query(max_length=200, description="a change token")] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=200, description="what EventSource resends")
    ] = None,
) -> Response:
    given = last_event_id or since
    token = None if given is None else ChangeToken.decode(given)  # 422 before any event
    resources = AsyncExitStack()
    try:
        subscription = resources.enter_context(adapters.changes.follow(owner))
        refresh = await _claim_shared_slot(adapters, owner, resources)
        # Subscribed first, then one read: a commit after it wakes the stream, none is missed.
        # With a token that read checks it (410 before any event) and is the replay's first page.
        if token is None:
            token = await service.current_token(owner)
            first = ChangeLog((), token, has_more=False)
        else:
            first = await service.changes_after(owner, token)
    except TooManyFollowers:
        await resources.aclose()
        limit = adapters.changes.max_per_owner
        raise HttpProblem(
            429,
            "rate_limited",
            f"At most {limit} open streams per user; close one first.",
            headers={"Retry-After": "5"},
        ) from None
    except BaseException:
        await resources.aclose()
        raise
    if request.scope.get(HEAD_SCOPE_KEY):  # the GET's headers; a body that never ends is not sent
        await resources.aclose()
        return Response(media_type="text/event-stream", headers=STREAM_HEADERS)
    request.scope[EVENT_STREAM_SCOPE_KEY] = True
    heartbeat = request.app.state.container.settings().stream_heartbeat_seconds
    return StreamingResponse(
        _events(service, owner, token, first, subscription, heartbeat, refresh),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
        background=BackgroundTask(resources.aclose),  # runs however the stream ends
    )


async def _claim_shared_slot(
    adapters: Adapters, owner: str, resources: AsyncExitStack
) -> Callable[[], Awaitable[None]] | None:
    """With Redis, the per-user cap holds across instances: a slot per stream, refreshed at each
    heartbeat, released when the stream ends (and expiring if its instance dies)."""
    shared = adapters.open_streams
    if shared is None:
        return None
    slot = uuid.uuid4().hex
    if not await shared.claim(owner, slot):
        raise TooManyFollowers(owner)
    resources.push_async_callback(shared.release, owner, slot)
    return functools.partial(shared.refresh, owner, slot)


async def _events(
    service: TaskService,
    owner: str,
    token: ChangeToken,
    first: ChangeLog,
    subscription: Subscription,
    heartbeat: float,
    refresh: Callable[[], Awaitable[None]] | None,
) -> AsyncIterator[bytes]:
    yield b"retry: %d\n" % RECONNECT_MILLISECONDS + _frame("ready", token, {"token": token.encode()})
    refresh_due = time.monotonic() + heartbeat
    changes: ChangeLog | None = first
    while True:
        if changes is None:
            try:
                changes = await service.changes_after(owner, token)
            except ChangeTokenExpired:
                return  # the client reconnects with its Last-Event-ID and is told 410
            except StorageUnavailable:
                log.warning(
                    "stream of %s: the database is unavailable; retrying at the next heartbeat", owner
                )
        if changes is not None:
            for change in changes.entries:
                task = change.task
                if change.remind_at is not None:
                    reminder = {
                        "task": task_to_wire(task),
                        "remind_at": change.remind_at,
                        "late": change.late,
                    }
                    yield _frame("reminder", change.token, reminder)
                elif task.deleted:
                    yield _frame("deleted", change.token, {"id": str(task.id)})
                else:
                    yield _frame("task", change.token, task_to_wire(task))
            token, more, changes = changes.next, changes.has_more, None
            if more:
                continue
        if not await subscription.wait(heartbeat):
            yield b": heartbeat\n\n"
        if refresh is not None and time.monotonic() >= refresh_due:
            await refresh()
            refresh_due = time.monotonic() + heartbeat


def _frame(event: str, token: ChangeToken, data: Any) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), token.encode().encode(), dump_json(data))


async def issue_ticket(owner: RateLimitedOwnerDep, adapters: AdaptersDep) -> TicketOut:
    if adapters.tickets is None:
        raise HttpProblem(503, "service_unavailable", "Stream tickets are not configured here.")
    ticket, expires_at = adapters.tickets.issue(owner)
    return TicketOut(ticket=ticket, expires_at=expires_at)


def _path_user(
    user_id: Annotated[str, Path(min_length=1, max_length=255, description="must equal the caller")],
) -> None:
    """Declares `{user_id}`; the stream's caller dependency checks it names the caller."""


TICKET_DOC: dict[str, Any] = {
    "status_code": 201,
    "response_model": TicketOut,
    "summary": "A ticket that opens your streams for 60 s (for EventSource, which cannot send headers)",
    "methods": ["POST"],
}
for prefix, checks in (("/api", []), ("/api/{user_id}", [Depends(_path_user)])):
    router.add_api_route(f"{prefix}/tasks/stream", stream, methods=["GET"], dependencies=checks, **STREAM_DOC)
for prefix, checks in (("/api", []), ("/api/{user_id}", [Depends(require_path_owner)])):
    router.add_api_route(f"{prefix}/tasks/stream/tickets", issue_ticket, dependencies=checks, **TICKET_DOC)
