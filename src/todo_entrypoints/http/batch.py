"""`POST /api/tasks/batch` (SPEC §18): the wire form of `TaskService.run_batch`.

Each command's body is what its single route takes and is parsed by the same model; a body
that does not parse is that command's 422 (the others still run). `parent_id`, `after` and
`before` may hold an earlier create's temp_id, so they are lifted out of the body before it is
parsed and resolved by the domain as the batch runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from todo_domain import UNSET, BatchFailed, BatchResult, Command, DomainError, Op, Outcome
from todo_domain.batch import MAX_COMMANDS
from todo_domain.errors import FieldError, InvalidTask
from todo_entrypoints.http import context
from todo_entrypoints.http.bodies import JsonOnly
from todo_entrypoints.http.conditional import NO_VERSION, parse_etags, version_of
from todo_entrypoints.http.deps import RateLimitedOwnerDep, ServiceDep, count_against, resolve_adapters
from todo_entrypoints.http.openapi import ERRORS
from todo_entrypoints.http.problems import describe, field_errors, problem_body, problem_response
from todo_entrypoints.http.schemas import (
    MoveIn,
    TaskCreateIn,
    TaskOut,
    TaskPatchIn,
    dump_json,
    task_to_wire,
    to_new_task,
    to_patch,
)

__all__ = ["router"]

router = APIRouter(responses=ERRORS(422, 429, 500, 503))


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="your command id, 1–255 visible ASCII; kept 24 h like an Idempotency-Key")
    op: Op
    task_id: str | None = Field(None, description="the task, or the temp_id of an earlier create")
    temp_id: str | None = Field(None, max_length=255, description="create only: a name later commands use")
    if_match: str | None = Field(None, description='"<version>": the command fails with 412 otherwise')
    body: dict[str, Any] | None = Field(
        None, description="what the single route takes (POST, PUT, PATCH, …/move); none for the others"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commands: list[CommandIn] = Field(max_length=MAX_COMMANDS)
    atomic: bool = Field(False, description="all or nothing, in one transaction")


class ResultOut(BaseModel):
    id: str
    status: int = Field(description="what the single route would have answered")
    task: TaskOut | None = None
    problem: dict[str, Any] | None = Field(None, description="the RFC 9457 body, for a failure")


class BatchOut(BaseModel):
    results: list[ResultOut]
    temp_ids: dict[str, str] = Field(description="each applied create's temp_id → its task id")


# The body fields that may name a temp id, by op (anything else stays for the model to judge).
_REFS = {
    Op.CREATE: ("parent_id",),
    Op.REPLACE: ("parent_id",),
    Op.UPDATE: ("parent_id",),
    Op.MOVE: ("parent_id", "after", "before"),
}
_SUCCESS = {Op.CREATE: 201, Op.DELETE: 204}


def _command(given: CommandIn) -> Command:
    """The domain command, or one `refused` with why it cannot run (answered without running)."""

    def refused(error: DomainError) -> Command:
        return Command(given.id, given.op, task_id=given.task_id, temp_id=given.temp_id, refused=error)

    body = dict(given.body or {})
    names = _REFS.get(given.op, ())
    refs: dict[str, Any] = {name: body.pop(name) for name in names if name in body}
    for name, value in refs.items():
        if value is not None and not isinstance(value, str):
            return refused(InvalidTask.one(name, "must be a task id, a temp_id or null", "type_error"))
    try:
        version = _expected_version(given.if_match)
        draft: Any = None
        match given.op:
            case Op.CREATE | Op.REPLACE:
                draft = to_new_task(TaskCreateIn.model_validate(body))
            case Op.UPDATE:
                draft = to_patch(TaskPatchIn.model_validate(body))
            case Op.MOVE:
                MoveIn.model_validate(dict.fromkeys(refs))  # only these three keys
                if body:
                    raise InvalidTask.one(next(iter(body)), "is not a field of a move", "extra_forbidden")
            case _:
                if body:
                    raise InvalidTask.one("body", f"{given.op.value} takes no body", "extra_forbidden")
    except ValidationError as exc:
        return refused(InvalidTask(field_errors(exc.errors())))
    except DomainError as exc:
        return refused(exc)
    if given.op in (Op.REPLACE,) and "parent_id" not in refs:
        refs["parent_id"] = None  # PUT semantics: an omitted parent is the top level
    return Command(
        given.id,
        given.op,
        task_id=given.task_id,
        temp_id=given.temp_id,
        expected_version=version,
        draft=draft,
        parent=refs.get("parent_id", UNSET),
        after=refs.get("after", UNSET),
        before=refs.get("before", UNSET),
    )


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    tags = parse_etags(if_match, weak=False)
    if tags is None:
        return None
    if len(tags) != 1:
        raise InvalidTask.one("if_match", 'must be one "<version>" or *', "invalid")
    version = version_of(tags.pop())
    return NO_VERSION if version is None else version


@router.post(
    "/tasks/batch",
    response_model=BatchOut,
    summary="Run many commands in one request (offline queues, imports)",
    description=(
        "Up to 1,000 commands in order, each answered with the status and body of its single route. "
        "A create's `temp_id` may be used by later commands as `task_id`, `parent_id`, `after` or "
        "`before`. Command ids are kept 24 h: the same batch sent again replays. `atomic: true` applies "
        "all or nothing: the first failure is the answer, with `errors` naming the command."
    ),
    responses=ERRORS(400, 401, 403, 409, 412, 413, 415, 424),
)
async def run_batch(
    request: Request, owner: RateLimitedOwnerDep, _: JsonOnly, body: BatchIn, service: ServiceDep
) -> Response:
    await _count_commands(request, owner, len(body.commands))
    commands = [_command(c) for c in body.commands]
    try:
        result = await service.run_batch(owner, commands, atomic=body.atomic)
    except BatchFailed as failed:
        return _atomic_failure(request, failed)
    return Response(dump_json(_wire(request, result)), media_type="application/json")


def _wire(request: Request, result: BatchResult) -> dict[str, Any]:
    return {
        "results": [_result(request, outcome) for outcome in result.outcomes],
        "temp_ids": {name: str(task_id) for name, task_id in result.temp_ids.items()},
    }


def _result(request: Request, outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        status = _SUCCESS.get(outcome.op, 200)
        answer: dict[str, Any] = {"id": outcome.command_id, "status": status}
        if status != 204 and outcome.task is not None:
            answer["task"] = task_to_wire(outcome.task)
        return answer
    problem = describe(outcome.error)
    if problem is None:  # not a domain error the table knows: a bug, as on the single routes
        raise outcome.error
    body = problem_body(
        problem.status,
        problem.detail,
        code=problem.code,
        instance=request.url.path,
        request_id=context.current().request_id,
        errors=problem.errors,
    )
    return {"id": outcome.command_id, "status": problem.status, "problem": body}


def _atomic_failure(request: Request, failed: BatchFailed) -> Response:
    problem = describe(failed.cause)
    if problem is None:
        raise failed.cause
    where = f"commands[{failed.index}]"
    errors = [FieldError(f"{where}.{e.field}", e.message, e.code) for e in problem.errors] or [
        FieldError(where, problem.detail, problem.code)
    ]
    detail = f"Command {failed.index} failed, so nothing was applied: {problem.detail}"
    return problem_response(
        request, problem.status, detail, code=problem.code, errors=errors, headers=problem.headers
    )


async def _count_commands(request: Request, owner: str, count: int) -> None:
    """The batch was counted as one write already; its commands count against their own limit."""
    adapters = await resolve_adapters(request.app)
    if adapters.rate_limiter is None or count == 0:
        return
    await count_against(
        request,
        adapters.rate_limiter,
        adapters.batch_command_limit,
        f"batch:user:{owner}",
        kind="batch",
        cost=count,
        refusal=lambda d: (
            f"A batch of {count} commands exceeds what is left of RATE_LIMIT_BATCH_COMMANDS "
            f"({d.remaining} of {d.limit}); retry in {d.reset_seconds} s."
        ),
    )
