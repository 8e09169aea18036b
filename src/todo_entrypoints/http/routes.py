"""Task and tag routes: parse → one use case → representation. One router, mounted twice
(`/api/…` and `/api/{user_id}/…`)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from todo_domain import Task, TaskNotFound, TaskQuery, TaskService
from todo_entrypoints.container import Adapters
from todo_entrypoints.http.bodies import JsonOnly
from todo_entrypoints.http.conditional import etag, expected_version, matches
from todo_entrypoints.http.deps import AdaptersDep, RateLimitedOwnerDep, ServiceDep
from todo_entrypoints.http.listing import list_query, paging_headers
from todo_entrypoints.http.openapi import ERRORS, merge_patch_too
from todo_entrypoints.http.schemas import (
    ChangesOut,
    CompleteIn,
    DataEnvelope,
    ItemsEnvelope,
    MoveIn,
    TagOut,
    TaskCreateIn,
    TaskOut,
    TaskPatchIn,
    TasksEnvelope,
    changes_to_wire,
    dump_json,
    tag_to_wire,
    task_to_wire,
    to_new_task,
    to_patch,
)
from todo_entrypoints.settings import ListShape

__all__ = ["list_router", "router"]

# Statuses any task route can answer (a malformed user in `/api/{user_id}/…` is a 422 too).
router = APIRouter(responses=ERRORS(422, 429, 500, 503))

IfMatch = Annotated[str | None, Header(description='"<version>" or *; a mismatch is 412')]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1–255 visible ASCII characters; a retry with the same key and body replays the original",
    ),
]
IfNoneMatch = Annotated[str | None, Header(description='"<version>"; a match is 304')]
ETAG_HEADER = {"ETag": {"description": 'the task version, "<n>"', "schema": {"type": "string"}}}


class JSONBytes(Response):
    media_type = "application/json"


def _task_id(raw: str) -> UUID:
    """Ids are opaque to clients: anything that is not one of ours is simply not found."""
    try:
        return UUID(raw)
    except ValueError:
        raise TaskNotFound(raw) from None


def _task_response(task: Task, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(dump_json(task_to_wire(task)), status, headers={"ETag": etag(task), **(headers or {})})


# A page longer than the default one is built under Adapters.large_pages (a few at a time).
_LARGE_PAGE = 100


def _page_slot(adapters: Adapters, limit: int) -> AbstractAsyncContextManager[Any]:
    return adapters.large_pages if limit > _LARGE_PAGE else nullcontext()


_LIST_HEADERS = {
    "X-Total-Count": {"description": "all matching tasks", "schema": {"type": "integer"}},
    "Link": {"description": '<…>; rel="next" when there is a next page', "schema": {"type": "string"}},
}
# LIST_RESPONSE_SHAPE → (documented model, key of the tasks, key of the total).
_SHAPES: dict[ListShape, tuple[Any, str | None, str | None]] = {
    ListShape.ARRAY: (list[TaskOut], None, None),
    ListShape.TASKS: (TasksEnvelope, "tasks", "total"),
    ListShape.ITEMS: (ItemsEnvelope, "items", "total"),
    ListShape.DATA: (DataEnvelope, "data", "count"),
}


def list_router(shape: ListShape) -> APIRouter:
    """`GET /tasks` answering in the configured shape (and documenting it): the one route
    whose body a setting decides, so it is built with the app, not at import."""
    model, items_key, total_key = _SHAPES[shape]

    async def list_tasks(
        request: Request,
        owner: RateLimitedOwnerDep,
        adapters: AdaptersDep,
        query: Annotated[TaskQuery, Depends(list_query)],
    ) -> Response:
        async with _page_slot(adapters, query.limit):
            page = await adapters.service.list(owner, query)
            items = [task_to_wire(t) for t in page.items]
            body = dump_json(items if items_key is None else {items_key: items, total_key: page.total})
        return JSONBytes(body, headers=paging_headers(request, query, page))

    listing = APIRouter(responses=router.responses)
    listing.add_api_route(
        "/tasks",
        list_tasks,
        methods=["GET"],
        response_model=model,
        summary="List tasks",
        responses={200: {"headers": _LIST_HEADERS}, **ERRORS(401, 403, 422)},
    )
    return listing


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskOut,
    summary="Create a task",
    responses={
        201: {
            "headers": {
                **ETAG_HEADER,
                "Location": {"description": "the new task", "schema": {"type": "string"}},
            }
        },
        **ERRORS(400, 401, 403, 413, 415, 422),
    },
)
async def create_task(
    request: Request,
    owner: RateLimitedOwnerDep,
    _: JsonOnly,
    body: TaskCreateIn,
    service: ServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    draft = to_new_task(body)
    if idempotency_key is None:
        task, replayed = await service.create(owner, draft), False
    else:
        creation = await service.create_with_key(owner, draft, idempotency_key)
        task, replayed = creation.task, creation.replayed
    headers = {"Location": f"{request.url.path}/{task.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _task_response(task, 201, headers)


@router.get(
    "/tasks/changes",
    response_model=ChangesOut,
    summary="Change feed for incremental sync",
    description=(
        "Without `since`: every live task (a full sync). With `since`: every create, update and "
        "delete committed after that token, exactly once, in its latest state. A token older than "
        "the tombstone retention is 410: do a full sync."
    ),
    responses=ERRORS(401, 403, 410, 422),
)
async def list_changes(
    owner: RateLimitedOwnerDep,
    adapters: AdaptersDep,
    since: Annotated[str | None, Query(max_length=200, description="`next` of the previous call")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    async with _page_slot(adapters, limit):
        body = dump_json(changes_to_wire(await adapters.service.list_changes(owner, since, limit)))
    return JSONBytes(body)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="Get a task",
    responses={200: {"headers": ETAG_HEADER}, 304: {"description": "not modified"}, **ERRORS(401, 403, 404)},
)
async def get_task(
    task_id: str, owner: RateLimitedOwnerDep, service: ServiceDep, if_none_match: IfNoneMatch = None
) -> Response:
    task = await service.get(owner, _task_id(task_id))
    if if_none_match is not None and matches(if_none_match, task):
        return Response(status_code=304, headers={"ETag": etag(task)})
    return _task_response(task)


async def _write_version(service: TaskService, owner: str, task_id: UUID, if_match: str | None) -> int | None:
    return await expected_version(if_match, lambda: service.get(owner, task_id))


@router.put(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="Replace a task",
    responses={200: {"headers": ETAG_HEADER}, **ERRORS(400, 401, 403, 404, 412, 413, 415, 422)},
)
async def replace_task(
    task_id: str,
    owner: RateLimitedOwnerDep,
    _: JsonOnly,
    body: TaskCreateIn,
    service: ServiceDep,
    if_match: IfMatch = None,
) -> Response:
    uid = _task_id(task_id)
    version = await _write_version(service, owner, uid, if_match)
    return _task_response(await service.replace(owner, uid, to_new_task(body), expected_version=version))


@router.patch(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="Change some fields of a task",
    openapi_extra=merge_patch_too(TaskPatchIn),
    responses={200: {"headers": ETAG_HEADER}, **ERRORS(400, 401, 403, 404, 412, 413, 415, 422)},
)
async def update_task(
    task_id: str,
    owner: RateLimitedOwnerDep,
    _: JsonOnly,
    body: TaskPatchIn,
    service: ServiceDep,
    if_match: IfMatch = None,
) -> Response:
    uid = _task_id(task_id)
    version = await _write_version(service, owner, uid, if_match)
    return _task_response(await service.update(owner, uid, to_patch(body), expected_version=version))


@router.delete(
    "/tasks/{task_id}",
    status_code=204,
    summary="Delete a task",
    response_class=Response,
    responses={204: {"description": "deleted"}, **ERRORS(401, 403, 404, 412)},
)
async def delete_task(
    task_id: str, owner: RateLimitedOwnerDep, service: ServiceDep, if_match: IfMatch = None
) -> Response:
    uid = _task_id(task_id)
    version = await _write_version(service, owner, uid, if_match)
    await service.delete(owner, uid, expected_version=version)
    return Response(status_code=204)


_COMPLETE_RESPONSES = {200: {"headers": ETAG_HEADER}, **ERRORS(400, 401, 403, 404, 412, 413, 415, 422)}


@router.patch(
    "/tasks/{task_id}/complete",
    response_model=TaskOut,
    summary="Complete, reopen or toggle a task",
    description='No body toggles; `{"completed": true|false}` sets (idempotent).',
    responses=_COMPLETE_RESPONSES,
)
async def complete_task(
    task_id: str,
    owner: RateLimitedOwnerDep,
    _: JsonOnly,
    service: ServiceDep,
    body: CompleteIn | None = None,
    if_match: IfMatch = None,
) -> Response:
    uid = _task_id(task_id)
    completed = None if body is None else body.completed
    version = await _write_version(service, owner, uid, if_match)
    return _task_response(await service.set_completed(owner, uid, completed, expected_version=version))


@router.post(
    "/tasks/{task_id}/move",
    response_model=TaskOut,
    summary="Move a task among its siblings or under another parent",
    description=(
        "`after`: right after that sibling (null: first); `before`: right before it (null: last); "
        "both must name the same gap; neither: last. `parent_id` (null: top level) moves it under "
        "another task first. Only the moved task is written, except when a sibling list is "
        "rebalanced (see the README)."
    ),
    responses={200: {"headers": ETAG_HEADER}, **ERRORS(400, 401, 403, 404, 409, 412, 413, 415, 422)},
)
async def move_task(
    task_id: str,
    owner: RateLimitedOwnerDep,
    _: JsonOnly,
    body: MoveIn,
    service: ServiceDep,
    if_match: IfMatch = None,
) -> Response:
    uid = _task_id(task_id)
    version = await _write_version(service, owner, uid, if_match)
    return _task_response(await service.move(owner, uid, **body.given(), expected_version=version))


# The spellings of other frontends (SPEC §21): exactly `PATCH …/complete`, deprecated.
for _alias in ("/tasks/{task_id}/toggle", "/tasks/{task_id}/toggle-completion"):
    router.add_api_route(
        _alias,
        complete_task,
        methods=["PATCH"],
        response_model=TaskOut,
        summary="Toggle a task (alias of …/complete)",
        description="The spelling of other frontends (SPEC §21); exactly `PATCH …/complete`.",
        deprecated=True,
        responses=_COMPLETE_RESPONSES,
    )


@router.get(
    "/tags",
    response_model=list[TagOut],
    summary="Tags with their open and total task counts",
    responses=ERRORS(401, 403),
)
async def list_tags(owner: RateLimitedOwnerDep, service: ServiceDep) -> Response:
    return JSONBytes(dump_json([tag_to_wire(t) for t in await service.list_tags(owner)]))
