"""The Task entity and the drafts that create or change it: every rule of SPEC §3.2 lives here.

The entity never reads a clock or makes an id: callers hand it `now` and the new id.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID

from todo_domain.errors import FieldError, InvalidTask
from todo_domain.values import (
    Description,
    Owner,
    Priority,
    Recurrence,
    Status,
    Tags,
    Title,
    utc,
)

__all__ = ["UNSET", "NewTask", "Task", "TaskPatch", "Unset"]


class Unset(enum.Enum):
    """Marks a field a partial update does not touch (distinct from None, which clears)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

_ONE_MICROSECOND = timedelta(microseconds=1)


def _collect(errors: list[FieldError], convert: Callable[[], Any]) -> Any:
    """Run one field's conversion, keeping its errors so every bad field is reported at once."""
    try:
        return convert()
    except InvalidTask as exc:
        errors.extend(exc.errors)
        return None


_E = TypeVar("_E", bound=enum.StrEnum)


def _choice(kind: type[_E], field_name: str, value: Any) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidTask.one(field_name, f"must be one of {allowed}", "invalid_choice") from None


def _status(value: Any) -> Status:
    return _choice(Status, "status", value)


def _priority(value: Any) -> Priority:
    return _choice(Priority, "priority", value)


def _recurrence(value: object) -> Recurrence | None:
    if value is None or isinstance(value, Recurrence):
        return value
    raise InvalidTask.one("recurrence", "must be a Recurrence or None", "type_error")


def _check_agreement(errors: list[FieldError], status: Status | None, completed: object) -> None:
    """`status` and `completed` may both be given only when they agree."""
    if not isinstance(completed, bool):
        errors.append(FieldError("completed", "must be true or false", "type_error"))
    elif status is not None and (status is Status.COMPLETED) != completed:
        errors.append(FieldError("completed", f"contradicts status '{status.value}'", "status_mismatch"))


@dataclass(frozen=True, slots=True)
class NewTask:
    """Every writable field of a task, validated on construction (create and full replacement).

    Status defaults to pending; `completed=True` alone means completed; given together, status
    and completed must agree.
    """

    title: str
    description: str | None = None
    status: Status | None = None
    completed: bool | None = None
    priority: Priority = Priority.MEDIUM
    tags: Iterable[str] = ()
    due_date: datetime | None = None
    remind_at: datetime | None = None
    recurrence: Recurrence | None = None

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        values = {
            "title": _collect(errors, lambda: Title(self.title)),
            "description": _collect(errors, lambda: Description.of(self.description)),
            "priority": _collect(errors, lambda: _priority(self.priority)),
            "tags": _collect(errors, lambda: Tags(self.tags)),
            "due_date": _collect(errors, lambda: utc("due_date", self.due_date)),
            "remind_at": _collect(errors, lambda: utc("remind_at", self.remind_at)),
            "recurrence": _collect(errors, lambda: _recurrence(self.recurrence)),
        }
        status = None if self.status is None else _collect(errors, lambda: _status(self.status))
        if self.completed is not None:
            _check_agreement(errors, status, self.completed)
            status = status or (Status.COMPLETED if self.completed is True else Status.PENDING)
        values["status"] = status or Status.PENDING
        if values["recurrence"] is not None and self.due_date is None:
            errors.append(_RECURRENCE_NEEDS_DUE)
        if errors:
            raise InvalidTask(errors)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def initial_status(self) -> Status:
        """The status this draft asks for (never None once constructed)."""
        return self.status or Status.PENDING


_RECURRENCE_NEEDS_DUE = FieldError(
    "recurrence", "needs a due_date to repeat from", "recurrence_needs_due_date"
)


@dataclass(frozen=True, slots=True)
class TaskPatch:
    """A partial change: fields left UNSET are untouched, None clears a nullable field."""

    title: str | Unset = UNSET
    description: str | Unset | None = UNSET
    status: Status | Unset = UNSET
    completed: bool | Unset = UNSET
    priority: Priority | Unset = UNSET
    tags: Iterable[str] | Unset | None = UNSET
    due_date: datetime | Unset | None = UNSET
    remind_at: datetime | Unset | None = UNSET
    recurrence: Recurrence | Unset | None = UNSET

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        converters: dict[str, Callable[[Any], Any]] = {
            "title": Title,
            "description": Description.of,
            "priority": _priority,
            "tags": lambda v: Tags(v or ()),
            "due_date": lambda v: utc("due_date", v),
            "remind_at": lambda v: utc("remind_at", v),
            "recurrence": _recurrence,
            "status": _status,
        }
        for name, convert in converters.items():
            raw = getattr(self, name)
            if raw is UNSET:
                continue
            if raw is None and name in ("title", "priority", "status"):
                errors.append(FieldError(name, "must not be null", "null_not_allowed"))
                continue
            object.__setattr__(self, name, _collect(errors, functools.partial(convert, raw)))
        if self.completed is not UNSET:
            _check_agreement(errors, None if self.status is UNSET else self.status, self.completed)
        if errors:
            raise InvalidTask(errors)

    def target_status(self, currently_completed: bool) -> Status | None:
        """The status this patch asks for: `completed=False` only reopens a completed task."""
        if not isinstance(self.status, Unset):
            return self.status
        if self.completed is True:
            return Status.COMPLETED
        if self.completed is False and currently_completed:
            return Status.PENDING
        return None

    def given(self) -> dict[str, Any]:
        """The writable fields this patch sets, by name (status and completed excluded)."""
        names = ("title", "description", "priority", "tags", "due_date", "remind_at", "recurrence")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not UNSET}


@dataclass(eq=False, slots=True)
class Task:
    """A user's task. Equality is identity (the id); the methods below are the only way to change it."""

    id: UUID
    owner: Owner
    title: Title
    created_at: datetime
    updated_at: datetime
    description: Description | None = None
    status: Status = Status.PENDING
    priority: Priority = Priority.MEDIUM
    tags: Tags = field(default_factory=Tags)
    due_date: datetime | None = None
    remind_at: datetime | None = None
    recurrence: Recurrence | None = None
    completed_at: datetime | None = None
    version: int = 1
    deleted_at: datetime | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def completed(self) -> bool:
        return self.status is Status.COMPLETED

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def create(cls, task_id: UUID, owner: str, draft: NewTask, now: datetime) -> Task:
        """A version-1 task; a draft that is already completed goes through `complete`'s rules."""
        task = cls(
            id=task_id,
            owner=Owner(owner),
            title=Title(draft.title),
            created_at=now,
            updated_at=now,
            description=draft.description,  # type: ignore[arg-type]  # normalised by NewTask
            priority=draft.priority,
            tags=draft.tags,  # type: ignore[arg-type]
            due_date=draft.due_date,
            remind_at=draft.remind_at,
            recurrence=draft.recurrence,
        )
        task._move_to(draft.initial_status, now)
        return task

    # -- status rules -------------------------------------------------------------------------

    def complete(self, now: datetime) -> None:
        """Completes the task; a recurring task instead rolls forward to its next occurrence."""
        if self._move_to(Status.COMPLETED, now):
            self._touch(now)

    def reopen(self, now: datetime) -> None:
        """A completed task goes back to pending; any other task is left as it is."""
        if self.completed and self._move_to(Status.PENDING, now):
            self._touch(now)

    def start(self, now: datetime) -> None:
        if self._move_to(Status.IN_PROGRESS, now):
            self._touch(now)

    def toggle(self, now: datetime) -> None:
        if self.completed:
            self.reopen(now)
        else:
            self.complete(now)

    def set_completed(self, completed: bool | None, now: datetime) -> None:
        """True completes, False reopens (both idempotent), None toggles."""
        if completed is None:
            self.toggle(now)
        elif completed:
            self.complete(now)
        else:
            self.reopen(now)

    # -- edits --------------------------------------------------------------------------------

    def replace(self, draft: NewTask, now: datetime) -> None:
        """Full replacement of the writable fields (PUT); unchanged values change nothing."""
        values = {
            "title": draft.title,
            "description": draft.description,
            "priority": draft.priority,
            "tags": draft.tags,
            "due_date": draft.due_date,
            "remind_at": draft.remind_at,
            "recurrence": draft.recurrence,
        }
        self._edit(values, draft.initial_status, now)

    def update(self, patch: TaskPatch, now: datetime) -> None:
        """Partial change (PATCH); fields the patch leaves UNSET keep their value."""
        self._edit(patch.given(), patch.target_status(self.completed), now)

    def delete(self, now: datetime) -> None:
        """Soft delete: the tombstone stays for the change feed; the task is invisible elsewhere."""
        if self.deleted_at is None:
            self.deleted_at = now
            self._touch(now)

    # -- internals ----------------------------------------------------------------------------

    def _edit(self, values: dict[str, Any], status: Status | None, now: datetime) -> None:
        due = values.get("due_date", self.due_date)
        recurrence = values.get("recurrence", self.recurrence)
        if recurrence is not None and due is None:
            raise InvalidTask((_RECURRENCE_NEEDS_DUE,))
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        backup = {k: getattr(self, k) for k in changed}
        for name, value in changed.items():
            setattr(self, name, value)
        try:
            moved = status is not None and status is not self.status and self._move_to(status, now)
        except InvalidTask:
            for name, value in backup.items():
                setattr(self, name, value)
            raise
        if changed or moved:
            self._touch(now)

    def _move_to(self, target: Status, now: datetime) -> bool:
        """Applies a status change without touching version; returns whether anything changed."""
        if target is Status.COMPLETED and self.recurrence is not None and self.due_date is not None:
            self._roll_forward(self.recurrence, self.due_date, now)
            self.status, self.completed_at = Status.PENDING, None
            return True
        if target is self.status:
            return False
        self.status = target
        self.completed_at = now if target is Status.COMPLETED else None
        return True

    def _roll_forward(self, recurrence: Recurrence, due: datetime, now: datetime) -> None:
        try:
            next_due = recurrence.next_after(due, now)
            next_remind = None if self.remind_at is None else self.remind_at + (next_due - due)
        except OverflowError:
            raise InvalidTask.one(
                "due_date", "the next occurrence would fall after the year 9999", "out_of_range"
            ) from None
        self.due_date, self.remind_at = next_due, next_remind

    def _touch(self, now: datetime) -> None:
        """Every change bumps the version and moves updated_at forward, even if the clock did not."""
        self.version += 1
        self.updated_at = now if now > self.updated_at else self.updated_at + _ONE_MICROSECOND
