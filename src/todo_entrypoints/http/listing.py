"""Query parameters of `GET /tasks` → a domain TaskQuery, and the paging headers of the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query, Request
from pydantic import TypeAdapter, ValidationError

from todo_domain import Cursor, FieldError, InvalidQuery, Page, Priority, Sort, SortField, Status, TaskQuery
from todo_entrypoints.http.schemas import UtcDateTime, _priority_alias, _status_alias

__all__ = ["list_query", "paging_headers"]

_NOT_COMPLETED = frozenset({Status.PENDING, Status.IN_PROGRESS})
_DATETIME = TypeAdapter(UtcDateTime)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or () for v in raw.split(",") if v.strip()]


def _statuses(values: list[str] | None) -> frozenset[Status]:
    chosen: set[Status] = set()
    for value in _split(values):
        lowered = value.lower()
        if lowered == "all":
            return frozenset()
        if lowered in ("active", "incomplete"):
            chosen |= _NOT_COMPLETED
            continue
        try:
            chosen.add(Status(_status_alias(lowered)))
        except ValueError:
            raise InvalidQuery.one("status", f"unknown status {value!r}", "invalid_choice") from None
    return frozenset(chosen)


def _priorities(values: list[str] | None) -> frozenset[Priority]:
    try:
        return frozenset(Priority(_priority_alias(v)) for v in _split(values))
    except ValueError:
        raise InvalidQuery.one("priority", "must be low, medium or high", "invalid_choice") from None


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return _DATETIME.validate_python(value)
    except ValidationError:
        raise InvalidQuery.one(name, "must be an RFC 3339 date-time or a date", "invalid_datetime") from None


# Sort keys as other frontends spell them (SPEC §21), lower-cased (so camelCase works too).
SORT_ALIASES = {
    "created": "created_at",
    "createdat": "created_at",
    "updated": "updated_at",
    "updatedat": "updated_at",
    "due": "due_date",
    "due_at": "due_date",
    "duedate": "due_date",
}


def _one_of(spellings: dict[str, str | None]) -> str | None:
    """The value of a parameter given under one or more of its names; 422 naming them all
    when they disagree."""
    given = {name: value for name, value in spellings.items() if value is not None}
    if len(set(given.values())) > 1:
        names = ", ".join(given)
        raise InvalidQuery(
            [
                FieldError(name, f"{names} are the same parameter and disagree", "alias_conflict")
                for name in given
            ]
        )
    return next(iter(given.values()), None)


def _sort(sort: str | None, sort_by: str | None, order: str | None) -> Sort:
    spec = sort or sort_by
    if spec is None:
        if order is not None:
            return Sort(SortField.CREATED_AT, _descending(order))
        return Sort()
    descending = spec.startswith("-")
    name = spec.lstrip("-+").strip().lower()
    try:
        field = SortField(SORT_ALIASES.get(name, name))
    except ValueError:
        allowed = ", ".join(f.value for f in SortField)
        raise InvalidQuery.one(
            "sort", f"must be one of {allowed} (prefix - to descend)", "invalid_choice"
        ) from None
    if order is not None:
        descending = _descending(order)
    return Sort(field, descending)


def _parent(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidQuery.one("parent_id", "must be a task id or none", "invalid_parent") from None


def _descending(order: str) -> bool:
    lowered = order.lower()
    if lowered not in ("asc", "desc"):
        raise InvalidQuery.one("order", "must be asc or desc", "invalid_choice")
    return lowered == "desc"


async def list_query(
    status: Annotated[
        list[str] | None,
        Query(description="repeatable or comma-separated: pending, in_progress, completed, all, active"),
    ] = None,
    completed: Annotated[bool | None, Query()] = None,
    priority: Annotated[list[str] | None, Query(description="repeatable: low, medium, high")] = None,
    tag: Annotated[list[str] | None, Query(description="repeatable; a task must have all of them")] = None,
    q: Annotated[str | None, Query(description="case-insensitive text in title or description")] = None,
    due_before: Annotated[str | None, Query(description="exclusive upper bound (RFC 3339 or date)")] = None,
    due_after: Annotated[str | None, Query(description="inclusive lower bound (RFC 3339 or date)")] = None,
    overdue: Annotated[bool | None, Query()] = None,
    parent_id: Annotated[
        str | None, Query(description="a task id: its subtasks; none: top-level tasks; omitted: all tasks")
    ] = None,
    sort: Annotated[
        str | None,
        Query(
            description="created_at, updated_at, due_date, priority, title or position (manual order, "
            "ascending by default); prefix - to descend "
            "(also created, updated, due, due_at, createdAt, updatedAt, dueDate)"
        ),
    ] = None,
    sort_by: Annotated[str | None, Query(description="alternative to sort, with order")] = None,
    order: Annotated[str | None, Query(description="asc or desc")] = None,
    sort_order: Annotated[str | None, Query(description="alias of order", deprecated=True)] = None,
    direction: Annotated[str | None, Query(description="alias of order", deprecated=True)] = None,
    search: Annotated[str | None, Query(description="alias of q", deprecated=True)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="opaque; from the Link header")] = None,
    offset: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
    skip: Annotated[int | None, Query(ge=0, le=1_000_000_000, description="alias of offset")] = None,
) -> TaskQuery:
    ordering = _one_of({"order": order, "sort_order": sort_order, "direction": direction})
    try:
        return TaskQuery(
            statuses=_statuses(status),
            completed=completed,
            priorities=_priorities(priority),
            tags=tuple(_split(tag)),
            text=_one_of({"q": q, "search": search}),
            due_before=_moment("due_before", due_before),
            due_after=_moment("due_after", due_after),
            overdue=overdue,
            parent_id=None if parent_id is None or parent_id.lower() == "none" else _parent(parent_id),
            top_level=parent_id is not None and parent_id.lower() == "none",
            sort=_sort(sort, sort_by, ordering),
            limit=limit,
            cursor=None if cursor is None else Cursor.decode(cursor),
            offset=offset if offset is not None else (skip or 0),
        )
    except InvalidQuery as exc:  # the domain's field names, as this route's parameters
        raise InvalidQuery(
            [FieldError(_PARAMETERS.get(e.field, e.field), e.message, e.code) for e in exc.errors]
        ) from None


# TaskQuery's fields that this route's parameters name otherwise.
_PARAMETERS = {
    "statuses": "status",
    "priorities": "priority",
    "tags": "tag",
    "text": "q",
    "top_level": "parent_id",
}


def paging_headers(request: Request, query: TaskQuery, page: Page) -> dict[str, str]:
    headers = {"X-Total-Count": str(page.total)}
    by_offset = "offset" in request.query_params or "skip" in request.query_params
    if by_offset and page.next_offset is not None:
        url = request.url.remove_query_params(["skip", "cursor"]).include_query_params(
            offset=page.next_offset
        )
    elif page.next_cursor is not None:
        url = request.url.remove_query_params(["offset", "skip"]).include_query_params(
            cursor=page.next_cursor.encode()
        )
    else:
        return headers
    headers["Link"] = f'<{url}>; rel="next"'
    return headers
