"""The wire format: pydantic request/response models and the explicit mapping to the domain.

Lenient where clients differ (status/priority aliases, bare recurrence strings, naive or
date-only datetimes read as UTC), strict where it matters (unknown fields are named in a 422;
read-only fields of the representation are accepted and ignored).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from todo_domain import EDITABLE_FIELDS, NewTask, Priority, Recurrence, Status, TagCount, Task, TaskPatch
from todo_domain.errors import FieldError, InvalidTask
from todo_domain.sync import ChangeSet
from todo_domain.values import Frequency, as_utc

__all__ = [
    "READ_ONLY_FIELDS",
    "ChangesOut",
    "CompleteIn",
    "DataEnvelope",
    "ItemsEnvelope",
    "TagOut",
    "TaskCreateIn",
    "TaskOut",
    "TaskPatchIn",
    "TasksEnvelope",
    "changes_to_wire",
    "dump_json",
    "tag_to_wire",
    "task_to_wire",
    "to_new_task",
    "to_patch",
]

# `position` too: it changes only by POST …/move (a PUT keeps it, SPEC §17).
READ_ONLY_FIELDS = frozenset(
    {"id", "user_id", "created_at", "updated_at", "completed_at", "version", "position"}
)

_STATUS_ALIASES = {
    "todo": "pending",
    "not_started": "pending",
    "open": "pending",
    "in-progress": "in_progress",
    "doing": "in_progress",
    "done": "completed",
}
_PRIORITY_ALIASES = {"normal": "medium", "urgent": "high", "critical": "high"}


def _status_alias(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _STATUS_ALIASES.get(lowered, lowered)
    return value


def _priority_alias(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _PRIORITY_ALIASES.get(lowered, lowered)
    return value


def _as_utc(value: datetime) -> datetime:
    """Naive means UTC (never the server's local time); aware values are converted."""
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC (years 1–9999)") from None


def _bare_recurrence(value: Any) -> Any:
    return {"frequency": value} if isinstance(value, str) else value


StatusIn = Annotated[Status, BeforeValidator(_status_alias)]
PriorityIn = Annotated[Priority, BeforeValidator(_priority_alias)]


def _a_string(value: Any) -> Any:
    """Datetimes travel as text (SPEC §13.3): a JSON number is never guessed as seconds or ms."""
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 date-time or a date, as a string")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_a_string), AfterValidator(_as_utc)]
_MOMENT: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)


class RecurrenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frequency: Annotated[Frequency, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]
    interval: int = Field(1, ge=1, le=365)


RecurrenceField = Annotated[RecurrenceIn | None, BeforeValidator(_bare_recurrence)]


# Spellings of frontends written for this kind of API (SPEC §21), each mapped to ours.
FIELD_ALIASES = {"due_at": "due_date", "reminder_at": "remind_at", "is_completed": "completed"}
_DATETIME_FIELDS = frozenset({"due_date", "remind_at"})


def _same(field: str, a: Any, b: Any) -> bool:
    """An alias and its field agree: equal, or (datetimes) the same moment however spelled."""
    if a == b:
        return True
    if field in _DATETIME_FIELDS and isinstance(a, str) and isinstance(b, str):
        try:
            return bool(_MOMENT.validate_python(a) == _MOMENT.validate_python(b))
        except ValueError:
            return False
    return False


def _conflict(alias: str, field: str) -> InvalidTask:
    message = f"'{alias}' and '{field}' are the same field and disagree"
    return InvalidTask(
        [FieldError(alias, message, "alias_conflict"), FieldError(field, message, "alias_conflict")]
    )


def _split_tags(value: Any) -> Any:
    """`"work, urgent"` → `["work", "urgent"]`; a list stays as it is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _recurrence_alias(data: dict[str, Any]) -> None:
    """`is_recurring` + `recurrence_rule` → `recurrence` (false, or no rule with false: none)."""
    recurring = data.pop("is_recurring", None)
    has_rule = "recurrence_rule" in data
    rule = data.pop("recurrence_rule", None)
    if recurring is None and not has_rule:
        return
    if recurring is not None and not isinstance(recurring, bool):
        raise InvalidTask.one("is_recurring", "must be true or false", "type_error")
    if recurring is True and rule is None:
        raise InvalidTask.one("recurrence_rule", "is required when is_recurring is true", "missing")
    value = None if recurring is False else rule
    if "recurrence" in data and not _same(
        "recurrence", _bare_recurrence(data["recurrence"]), _bare_recurrence(value)
    ):
        raise _conflict("recurrence_rule" if has_rule else "is_recurring", "recurrence")
    data["recurrence"] = value


class _Body(BaseModel):
    """Shared by every write body: read-only representation fields are dropped, other unknown
    fields refused; the spellings of SPEC §21 are mapped to ours first (an alias that
    disagrees with its field is a 422 naming both)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        for alias, field in FIELD_ALIASES.items():
            if alias in data:
                value = data.pop(alias)
                if field in data and not _same(field, value, data[field]):
                    raise _conflict(alias, field)
                data[field] = value
        _recurrence_alias(data)
        if "tags" in data:
            data["tags"] = _split_tags(data["tags"])
        return data


def _alias_of(field: str) -> Any:
    return Field(None, description=f"alias of `{field}` (SPEC §21)", json_schema_extra={"deprecated": True})


class _Spellings(_Body):
    """What frontends of this kind send besides our fields (SPEC §21); documented, mapped to
    ours before validation (so never set on the model), except `category`, one more tag."""

    due_at: datetime | None = _alias_of("due_date")
    reminder_at: datetime | None = _alias_of("remind_at")
    is_completed: bool | None = _alias_of("completed")
    is_recurring: bool | None = Field(
        None,
        description="with `recurrence_rule`, alias of `recurrence`; false means none (SPEC §21)",
        json_schema_extra={"deprecated": True},
    )
    recurrence_rule: str | RecurrenceIn | None = Field(
        None,
        description="a frequency or {frequency, interval}; see `is_recurring` (SPEC §21)",
        json_schema_extra={"deprecated": True},
    )
    category: str | None = Field(None, description="one more tag (SPEC §21: tags called categories)")


class TaskCreateIn(_Spellings):
    """A new task (POST) or a full replacement (PUT): omitted optional fields take defaults."""

    title: str = Field(description="1–255 characters after trimming; no control characters")
    description: str | None = Field(None, description="≤ 10,000 characters; '' is stored as null")
    status: StatusIn | None = None
    completed: bool | None = Field(None, description="shorthand for status=completed; must agree with status")
    priority: PriorityIn = Priority.MEDIUM
    tags: list[str] = Field(default_factory=list, description="≤ 20 tags, each 1–50 characters")
    due_date: UtcDateTime | None = None
    remind_at: UtcDateTime | None = None
    recurrence: RecurrenceField = None
    parent_id: UUID | None = Field(
        None, description="a live task of yours (≤ 5 levels deep, no cycles); null or omitted: top level"
    )
    time_zone: str | None = Field(
        None,
        description="IANA name (e.g. Europe/Paris): recurrence keeps the wall-clock time there; null: UTC",
        max_length=64,
    )


class TaskPatchIn(_Spellings):
    """A partial change: absent fields are untouched, null clears a nullable field."""

    title: str | None = None
    description: str | None = None
    status: StatusIn | None = None
    completed: bool | None = None
    priority: PriorityIn | None = None
    tags: list[str] | None = None
    due_date: UtcDateTime | None = None
    remind_at: UtcDateTime | None = None
    recurrence: RecurrenceField = None
    parent_id: UUID | None = Field(None, description="a new parent goes with a place after its last child")
    time_zone: str | None = Field(None, max_length=64)


class CompleteIn(_Body):
    completed: bool | None = Field(None, description="true completes, false reopens, absent/null toggles")


class MoveIn(_Body):
    """Where to move a task (SPEC §17): omitted fields keep the parent / mean "last"."""

    parent_id: UUID | None = Field(None, description="the new parent; null: top level; omitted: same parent")
    after: UUID | None = Field(None, description="right after this sibling; null: first")
    before: UUID | None = Field(None, description="right before this sibling; null: last")

    def given(self) -> dict[str, Any]:
        """The fields the body sent, as TaskService.move's arguments (omitted stay UNSET)."""
        return {
            name: getattr(self, name)
            for name in ("parent_id", "after", "before")
            if name in self.model_fields_set
        }


def _recurrence(value: RecurrenceIn | None) -> Recurrence | None:
    return None if value is None else Recurrence(value.frequency, value.interval)


# The draft arguments a body carries (same names: the body models mirror NewTask/TaskPatch).
_DRAFT_ARGUMENTS = frozenset({*EDITABLE_FIELDS, "parent_id", "status", "completed"})


def _arguments(body: BaseModel, names: Iterable[str]) -> dict[str, Any]:
    """The named draft arguments of a body, recurrence turned into the domain's value."""
    given = {name: getattr(body, name) for name in names if name in _DRAFT_ARGUMENTS}
    if "recurrence" in given:
        given["recurrence"] = _recurrence(given["recurrence"])
    return given


def to_new_task(body: TaskCreateIn) -> NewTask:
    given = _arguments(body, TaskCreateIn.model_fields)
    if body.category:
        given["tags"] = [*body.tags, body.category]
    return NewTask(**given)


def to_patch(body: TaskPatchIn) -> TaskPatch:
    """A `category` joins the tags the patch sets, or, when it sets none, the task's own."""
    given = _arguments(body, body.model_fields_set)
    if body.category:
        if "tags" in given:
            given["tags"] = [*(given["tags"] or ()), body.category]
        else:
            given["add_tags"] = (body.category,)
    return TaskPatch(**given)


# -- responses ---------------------------------------------------------------------------------


class RecurrenceOut(BaseModel):
    frequency: Frequency
    interval: int


class TaskOut(BaseModel):
    """The task representation (documentation; responses are serialised by `task_to_wire`)."""

    id: str = Field(description="UUID version 7")
    user_id: str
    title: str
    description: str | None
    status: Status
    completed: bool
    priority: Priority
    tags: list[str]
    due_date: datetime | None
    remind_at: datetime | None
    recurrence: RecurrenceOut | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    parent_id: str | None = Field(description="the parent task's id; null: top level")
    position: str = Field(description="order among siblings: compare as plain bytes (sort=position)")
    time_zone: str | None = Field(description="IANA name recurrence steps in; null: UTC")


class TasksEnvelope(BaseModel):
    tasks: list[TaskOut]
    total: int = Field(description="all matching tasks (also X-Total-Count)")


class ItemsEnvelope(BaseModel):
    items: list[TaskOut]
    total: int = Field(description="all matching tasks (also X-Total-Count)")


class DataEnvelope(BaseModel):
    data: list[TaskOut]
    count: int = Field(description="all matching tasks (also X-Total-Count)")


class ChangesOut(BaseModel):
    """One page of the change feed: keep calling with `next` until `has_more` is false."""

    changes: list[TaskOut] = Field(description="created or updated tasks, in their latest state")
    deleted: list[str] = Field(description="ids of deleted tasks")
    next: str = Field(description="the token for the next call (?since=)")
    has_more: bool


class TagOut(BaseModel):
    name: str
    open: int = Field(description="tasks with this tag that are not completed")
    total: int


class ReadinessOut(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str]


def task_to_wire(task: Task) -> dict[str, Any]:
    recurrence = task.recurrence
    return {
        "id": str(task.id),
        "user_id": task.owner,
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
        "completed": task.completed,
        "priority": task.priority.value,
        "tags": list(task.tags),
        "due_date": task.due_date,
        "remind_at": task.remind_at,
        "recurrence": None
        if recurrence is None
        else {"frequency": recurrence.frequency.value, "interval": recurrence.interval},
        "completed_at": task.completed_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "version": task.version,
        "parent_id": None if task.parent_id is None else str(task.parent_id),
        "position": task.position,
        "time_zone": None if task.time_zone is None else task.time_zone.name,
    }


def changes_to_wire(changes: ChangeSet) -> dict[str, Any]:
    return {
        "changes": [task_to_wire(t) for t in changes.changes],
        "deleted": [str(i) for i in changes.deleted],
        "next": changes.next.encode(),
        "has_more": changes.has_more,
    }


def tag_to_wire(tag: TagCount) -> dict[str, Any]:
    return {"name": tag.name, "open": tag.open, "total": tag.total}


def dump_json(value: Any) -> bytes:
    """orjson with UTC datetimes written as `…Z` (RFC 3339)."""
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)
