"""MCP: the use cases as tools for AI agents (SPEC §14), on the official `mcp` SDK (2.x).

The same service, verifiers, validation, rate limits and idempotency keys as `/api`:

- **Identity comes from the token.** Over Streamable HTTP the SDK's bearer middleware asks
  `BearerVerifier` (our verifiers wrapped as the SDK's `TokenVerifier`); without a valid token
  the request is a 401 whose `WWW-Authenticate` names the RFC 9728 metadata. Over stdio the
  server acts for one user fixed at start (`todo-api mcp --user/--token`). A tool's optional
  `user_id` argument never selects anyone: it must be the caller, else `forbidden`.
- **Errors are tool results** (`isError`, a readable text, `{"error": {"code", "message",
  "errors"?}}`), from the domain's one error table (`http.problems.describe`); arguments that
  break the input schema come back the same way, as `validation_error` naming the fields.
- **Rate limits** count each call as a read (list/get tools) or a write, on the same budget as
  the HTTP API.

Tools the SDK cannot know about in advance (time zones, subtasks) arrive with their issues.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from todo_adapters.auth import AuthUnavailable, InvalidToken
from todo_adapters.ratelimit import RateLimitUnavailable
from todo_domain import DomainError, FieldError, Task, TaskNotFound
from todo_entrypoints.container import Adapters
from todo_entrypoints.http import context
from todo_entrypoints.http.listing import list_query
from todo_entrypoints.http.problems import describe
from todo_entrypoints.http.schemas import (
    RecurrenceIn,
    TagOut,
    TaskCreateIn,
    TaskOut,
    TaskPatchIn,
    dump_json,
    tag_to_wire,
    task_to_wire,
    to_new_task,
    to_patch,
)

__all__ = ["BearerVerifier", "TaskTools", "acting_for"]

log = logging.getLogger("todo.mcp")

AdaptersSource = Callable[[], Awaitable[Adapters]]

_stdio_owner: contextvars.ContextVar[str | None] = contextvars.ContextVar("mcp_stdio_owner", default=None)


def acting_for(owner: str) -> contextvars.Token[str | None]:
    """Fixes the caller of every tool call in this context (stdio: one user per process)."""
    return _stdio_owner.set(owner)


class BearerVerifier:
    """Our token verifiers (JWKS, shared secret, Better Auth sessions) as the SDK's."""

    def __init__(self, adapters: AdaptersSource) -> None:
        self._adapters = adapters

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = await (await self._adapters()).verifier.verify(token)
        except InvalidToken:
            return None
        except AuthUnavailable:
            context.current().auth_unavailable = True  # /mcp answers 503, not the SDK's 401
            return None
        expires = None if principal.expires_at is None else int(principal.expires_at)
        return AccessToken(
            token=token, client_id=principal.subject, scopes=[], subject=principal.subject, expires_at=expires
        )


# -- what tools answer ---------------------------------------------------------------------------


class TaskChangeOut(BaseModel):
    task_id: str
    status: Literal["created", "updated", "completed", "rescheduled", "reopened"]
    title: str
    task: TaskOut


class TaskDeletedOut(BaseModel):
    task_id: str
    status: Literal["deleted"]
    title: str


class TaskListOut(BaseModel):
    tasks: list[TaskOut]
    total: int = Field(description="all tasks matching the filters")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class OneTaskOut(BaseModel):
    task: TaskOut


class TagsOut(BaseModel):
    tags: list[TagOut]


class _Refused(Exception):
    """A tool call answered with an error result (code, message, field errors, extra members)."""

    def __init__(self, code: str, message: str, errors: tuple[FieldError, ...] = (), **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.errors, self.extra = code, message, errors, extra


def _error_result(refused: _Refused) -> CallToolResult:
    error: dict[str, Any] = {"code": refused.code, "message": refused.message}
    text = f"{refused.code}: {refused.message}"
    if refused.errors:
        error["errors"] = [{"field": e.field, "message": e.message, "code": e.code} for e in refused.errors]
        text += " (" + "; ".join(f"{e.field}: {e.message}" for e in refused.errors) + ")"
    error.update(refused.extra)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content={"error": error}, is_error=True
    )


# HTTP status of the domain's answer → the tool error code of SPEC §14.
_TOOL_CODES = {
    404: "not_found",
    409: "service_unavailable",
    412: "version_conflict",
    503: "service_unavailable",
}


def _from_domain(exc: DomainError) -> _Refused:
    problem = describe(exc)
    if problem is None:
        raise exc
    code = _TOOL_CODES.get(problem.status, problem.code)
    return _Refused(code, problem.detail, tuple(problem.errors))


def _from_validation(exc: ValidationError) -> _Refused:
    errors = tuple(
        FieldError(".".join(str(p) for p in e["loc"]) or "arguments", e["msg"], e["type"])
        for e in exc.errors()
    )
    return _Refused("validation_error", "the arguments are invalid", errors)


def _wire(task: Task) -> dict[str, Any]:
    """The §6.2 representation as JSON values (datetimes as RFC 3339 text)."""
    value: dict[str, Any] = orjson.loads(dump_json(task_to_wire(task)))
    return value


def _change(status: str, task: Task) -> dict[str, Any]:
    return {"task_id": str(task.id), "status": status, "title": task.title, "task": _wire(task)}


def _task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise TaskNotFound(raw) from None


# -- argument types a model reads ---------------------------------------------------------------

UserId = Annotated[
    str | None, Field(description="optional; if given it must be you (the token's user), else `forbidden`")
]
TaskId = Annotated[str, Field(description="the task's id (a UUID, from add_task or list_tasks)")]
Priority = Annotated[Literal["low", "medium", "high"] | None, Field(description="default medium")]
Moment = Annotated[
    str | None,
    Field(description="RFC 3339 date-time (2026-12-24T09:00:00+01:00) or a date (2026-12-24, midnight UTC)"),
]
Tags = Annotated[
    list[str] | None, Field(description="up to 20 tags, each 1–50 characters, stored lower-cased")
]
Recurrence = Annotated[
    Literal["daily", "weekly", "monthly", "yearly"] | RecurrenceIn | None,
    Field(description="repeat from due_date (needed): a frequency, or {frequency, interval 1–365}"),
]
ExpectedVersion = Annotated[
    int | None, Field(ge=1, description="the task's `version` you last saw; a newer one is version_conflict")
]
ZoneName = Annotated[
    str | None,
    Field(description="IANA name such as Europe/Paris: a recurring task keeps its local time there"),
]
ParentId = Annotated[str | None, Field(description="make it a subtask of this task id (≤ 5 levels deep)")]
Clearable = Literal["description", "due_date", "remind_at", "recurrence", "tags", "time_zone", "parent_id"]

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


def _given(**arguments: Any) -> dict[str, Any]:
    """The arguments a call sets, as an HTTP body would carry them (for the same schemas)."""
    given = {name: value for name, value in arguments.items() if value is not None}
    if isinstance(given.get("recurrence"), RecurrenceIn):
        given["recurrence"] = given["recurrence"].model_dump()
    return given


class TaskTools(MCPServer[Any]):
    """The MCP server: the eight tools of SPEC §14 over one `Adapters` source."""

    def __init__(
        self,
        adapters: AdaptersSource,
        *,
        auth: AuthSettings | None = None,
        verifier: BearerVerifier | None = None,
    ) -> None:
        super().__init__(
            "tasks",
            title="Tasks",
            instructions=(
                "Tasks of the signed-in user. Datetimes are RFC 3339 or plain dates (UTC). Errors come "
                "back as results with error.code: not_found, validation_error (error.errors names the "
                "fields), version_conflict, forbidden, rate_limited (retry_after seconds), "
                "service_unavailable (retry shortly)."
            ),
            auth=auth,
            token_verifier=verifier,
            log_level="WARNING",
        )
        self._adapters = adapters
        tools = (
            (self.add_task, WRITE),
            (self.list_tasks, READ),
            (self.get_task, READ),
            (self.update_task, IDEMPOTENT_WRITE),
            (self.complete_task, IDEMPOTENT_WRITE),
            (self.reopen_task, IDEMPOTENT_WRITE),
            (self.delete_task, DESTRUCTIVE),
            (self.list_tags, READ),
        )
        for tool, hints in tools:
            self.add_tool(tool, annotations=hints, structured_output=True)
        self._tool_names = tuple(tool.__name__ for tool, _ in tools)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Arguments that break the input schema, and a tool that does not exist, answer like
        every other refusal (the SDK's own answer to the latter has no structured error)."""
        if name not in self._tool_names:
            message = f"there is no tool {name!r}; the tools are {', '.join(self._tool_names)}"
            return _error_result(_Refused("not_found", message))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc, UnexpectedToolError) and isinstance(exc.__cause__, ValidationError):
                return _error_result(_from_validation(exc.__cause__))
            raise

    async def _run(
        self, kind: str, user_id: str | None, work: Callable[[Adapters, str], Awaitable[Mapping[str, Any]]]
    ) -> CallToolResult:
        """Who calls, within the limits, acting for nobody else; the answer or the refusal."""
        try:
            adapters = await self._adapters()
            owner = self._caller()
            await self._count(adapters, kind, owner)
            if user_id is not None and user_id != owner:
                raise _Refused("forbidden", "user_id is not the signed-in user; nothing was done")
            try:
                data = dict(await work(adapters, owner))
            except DomainError as exc:
                raise _from_domain(exc) from None
            except ValidationError as exc:
                raise _from_validation(exc) from None
        except _Refused as refused:
            return _error_result(refused)
        return CallToolResult(
            content=[TextContent(type="text", text=orjson.dumps(data).decode())], structured_content=data
        )

    @staticmethod
    def _caller() -> str:
        token = get_access_token()
        if token is not None and token.subject:
            return token.subject
        owner = _stdio_owner.get()
        if owner is None:
            raise _Refused("unauthorized", "no signed-in user")
        return owner

    @staticmethod
    async def _count(adapters: Adapters, kind: str, owner: str) -> None:
        limiter = adapters.rate_limiter
        if limiter is None:
            return
        item = adapters.read_limit if kind == "read" else adapters.write_limit
        try:
            decision = await limiter.hit(item, f"{kind}:user:{owner}")
        except RateLimitUnavailable:
            raise _Refused("service_unavailable", "rate limiting is unavailable; retry shortly") from None
        if not decision.allowed:
            raise _Refused(
                "rate_limited",
                f"too many {kind}s; retry in {decision.reset_seconds} s",
                retry_after=decision.reset_seconds,
            )

    # -- the tools ---------------------------------------------------------------------------

    async def add_task(
        self,
        title: Annotated[str, Field(description="1–255 characters; no control characters")],
        description: Annotated[str | None, Field(description="up to 10,000 characters")] = None,
        priority: Priority = None,
        due_date: Moment = None,
        remind_at: Moment = None,
        tags: Tags = None,
        recurrence: Recurrence = None,
        time_zone: ZoneName = None,
        parent_id: ParentId = None,
        idempotency_key: Annotated[
            str | None,
            Field(description="1–255 visible ASCII characters; calling again with it returns the same task"),
        ] = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskChangeOut]:
        """Create a task for the signed-in user; returns it with status "created"."""
        body = _given(
            title=title,
            description=description,
            priority=priority,
            due_date=due_date,
            remind_at=remind_at,
            tags=tags,
            recurrence=recurrence,
            time_zone=time_zone,
            parent_id=parent_id,
        )

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            draft = to_new_task(TaskCreateIn.model_validate(body))
            if idempotency_key is None:
                task = await adapters.service.create(owner, draft)
            else:
                task = (await adapters.service.create_with_key(owner, draft, idempotency_key)).task
            return _change("created", task)

        return await self._run("write", user_id, work)

    async def list_tasks(
        self,
        status: Annotated[
            Literal["all", "pending", "in_progress", "completed", "active"],
            Field(description="active = not completed"),
        ] = "all",
        q: Annotated[str | None, Field(description="text in the title or description")] = None,
        tags: Annotated[list[str] | None, Field(description="tasks having all of these tags")] = None,
        priority: Priority = None,
        due_before: Moment = None,
        due_after: Moment = None,
        overdue: Annotated[bool | None, Field(description="due before now and not completed")] = None,
        sort: Annotated[
            str | None,
            Field(
                description="created_at (default, newest first), updated_at, due_date, priority or title; "
                "prefix - to descend"
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="page size")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskListOut]:
        """List the signed-in user's tasks, newest first, filtered and paged."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            query = await list_query(
                status=[status],
                completed=None,
                priority=None if priority is None else [priority],
                tag=tags,
                q=q,
                due_before=due_before,
                due_after=due_after,
                overdue=overdue,
                sort=sort,
                sort_by=None,
                order=None,
                sort_order=None,
                direction=None,
                search=None,
                limit=limit,
                cursor=cursor,
                offset=None,
                skip=None,
            )
            page = await adapters.service.list(owner, query)
            following = None if page.next_cursor is None else page.next_cursor.encode()
            return {"tasks": [_wire(t) for t in page.items], "total": page.total, "next_cursor": following}

        return await self._run("read", user_id, work)

    async def get_task(
        self, task_id: TaskId, user_id: UserId = None
    ) -> Annotated[CallToolResult, OneTaskOut]:
        """One task of the signed-in user."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            return {"task": _wire(await adapters.service.get(owner, _task_id(task_id)))}

        return await self._run("read", user_id, work)

    async def update_task(
        self,
        task_id: TaskId,
        title: Annotated[str | None, Field(description="1–255 characters")] = None,
        description: Annotated[str | None, Field(description="up to 10,000 characters")] = None,
        status: Annotated[Literal["pending", "in_progress", "completed"] | None, Field()] = None,
        priority: Priority = None,
        due_date: Moment = None,
        remind_at: Moment = None,
        tags: Annotated[list[str] | None, Field(description="replaces the tags (up to 20)")] = None,
        recurrence: Recurrence = None,
        time_zone: ZoneName = None,
        parent_id: Annotated[
            str | None,
            Field(
                description="move it under this task id, after its last subtask; clear it for the top level"
            ),
        ] = None,
        clear: Annotated[
            list[Clearable] | None, Field(description='fields to empty (null), e.g. ["due_date"]')
        ] = None,
        expected_version: ExpectedVersion = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskChangeOut]:
        """Change some fields of a task; omitted fields keep their value, `clear` empties fields."""
        body: dict[str, Any] = _given(
            title=title,
            description=description,
            status=status,
            priority=priority,
            due_date=due_date,
            remind_at=remind_at,
            tags=tags,
            recurrence=recurrence,
            time_zone=time_zone,
            parent_id=parent_id,
        )

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            for name in clear or ():
                if name in body:
                    message = "is both given and cleared"
                    raise _Refused(
                        "validation_error", f"{name} {message}", (FieldError(name, message, "conflict"),)
                    )
                body[name] = None
            patch = to_patch(TaskPatchIn.model_validate(body))
            task = await adapters.service.update(
                owner, _task_id(task_id), patch, expected_version=expected_version
            )
            return _change("updated", task)

        return await self._run("write", user_id, work)

    async def complete_task(
        self, task_id: TaskId, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskChangeOut]:
        """Mark a task done; a recurring task moves to its next occurrence ("rescheduled")."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            task = await adapters.service.set_completed(owner, _task_id(task_id), True)
            return _change("completed" if task.completed else "rescheduled", task)

        return await self._run("write", user_id, work)

    async def reopen_task(
        self, task_id: TaskId, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskChangeOut]:
        """Mark a completed task pending again (no change for a task that is not completed)."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            return _change("reopened", await adapters.service.set_completed(owner, _task_id(task_id), False))

        return await self._run("write", user_id, work)

    async def delete_task(
        self, task_id: TaskId, expected_version: ExpectedVersion = None, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskDeletedOut]:
        """Delete a task (it leaves every list; the change feed reports the deletion)."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            task = await adapters.service.delete(owner, _task_id(task_id), expected_version=expected_version)
            return {"task_id": str(task.id), "status": "deleted", "title": task.title}

        return await self._run("write", user_id, work)

    async def list_tags(self, user_id: UserId = None) -> Annotated[CallToolResult, TagsOut]:
        """The signed-in user's tags with open and total task counts."""

        async def work(adapters: Adapters, owner: str) -> Mapping[str, Any]:
            return {"tags": [tag_to_wire(t) for t in await adapters.service.list_tags(owner)]}

        return await self._run("read", user_id, work)
