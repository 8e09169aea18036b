"""The Task entity and the drafts that create or change it: every rule of SPEC §3.2 lives here.

The entity never reads a clock or makes an id: callers hand it `now` and the new id.
"""

from __future__ import annotations

import copy
import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID

from todo_domain.errors import FieldError, InvalidTask, TaskNotFound
from todo_domain.values import (
    Description,
    Owner,
    Priority,
    Recurrence,
    Status,
    Tags,
    TimeZone,
    Title,
    as_uuid,
    utc,
)

__all__ = ["EDITABLE_FIELDS", "UNSET", "NewTask", "Placement", "Task", "TaskPatch", "Unset"]


class Unset(enum.Enum):
    """Marks a field a partial update does not touch (distinct from None, which clears)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

_ONE_MICROSECOND = timedelta(microseconds=1)


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


def _parent(value: object) -> UUID | None:
    return reference("parent_id", value)


def reference(name: str, value: object) -> UUID | None:
    """A task named by field `name`: None, a UUID or its text; anything else is InvalidTask."""
    if value is None:
        return None
    if (parsed := as_uuid(value)) is None:
        raise InvalidTask.one(name, "must be a task id (a UUID) or null", "type_error")
    return parsed


def task_id_of(value: object) -> UUID:
    """The id a caller looks a task up by: a UUID or its text. Anything else names no task, in
    every store alike (TaskNotFound), rather than a driver error or a type error."""
    if (parsed := as_uuid(value)) is None:
        raise TaskNotFound(repr(value)[:80])
    return parsed


def _check_agreement(errors: list[FieldError], status: Status | None, completed: object) -> None:
    """`status` and `completed` may both be given only when they agree."""
    if not isinstance(completed, bool):
        errors.append(FieldError("completed", "must be true or false", "type_error"))
    elif status is not None and (status is Status.COMPLETED) != completed:
        errors.append(FieldError("completed", f"contradicts status '{status.value}'", "status_mismatch"))


_V = TypeVar("_V")
_D = TypeVar("_D", "NewTask", "TaskPatch")


class _Parse:
    """One parsing step for a draft: every field is converted, every error kept, so a caller
    learns about all bad fields at once (one InvalidTask with a FieldError each)."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def field(self, convert: Callable[[], _V]) -> _V:
        try:
            return convert()
        except InvalidTask as exc:
            self.errors.extend(exc.errors)
            return None  # type: ignore[return-value]  # never seen: done() raises

    def done(self) -> None:
        if self.errors:
            raise InvalidTask(self.errors)


@dataclass(frozen=True, slots=True, init=False)
class NewTask:
    """Every writable field of a task (create, or a full replacement) as value objects, parsed
    by the constructor in one step: `NewTask(title="Buy milk", tags=["home"])`.

    Status defaults to pending; `completed=True` alone means completed; given together, status
    and completed must agree (`completed` is folded into `status`, not kept).
    """

    title: Title
    description: Description | None
    priority: Priority
    tags: Tags
    due_date: datetime | None
    remind_at: datetime | None
    recurrence: Recurrence | None
    parent_id: UUID | None
    time_zone: TimeZone | None
    status: Status

    def __init__(
        self,
        title: str,
        description: str | None = None,
        status: Status | str | None = None,
        completed: bool | None = None,
        priority: Priority | str = Priority.MEDIUM,
        tags: Iterable[str] = (),
        due_date: datetime | None = None,
        remind_at: datetime | None = None,
        recurrence: Recurrence | None = None,
        parent_id: UUID | str | None = None,
        time_zone: TimeZone | str | None = None,
    ) -> None:
        parse = _Parse()
        values: dict[str, Any] = {
            "title": parse.field(lambda: Title.parse(title)),
            "description": parse.field(lambda: Description.of(description)),
            "priority": parse.field(lambda: _priority(priority)),
            "tags": parse.field(lambda: Tags.parse(tags)),
            "due_date": parse.field(lambda: utc("due_date", due_date)),
            "remind_at": parse.field(lambda: utc("remind_at", remind_at)),
            "recurrence": parse.field(lambda: _recurrence(recurrence)),
            "parent_id": parse.field(lambda: _parent(parent_id)),
            "time_zone": parse.field(lambda: TimeZone.of(time_zone)),
        }
        chosen = None if status is None else parse.field(lambda: _status(status))
        if completed is not None:
            _check_agreement(parse.errors, chosen, completed)
            chosen = chosen or (Status.COMPLETED if completed is True else Status.PENDING)
        values["status"] = chosen or Status.PENDING
        if values["recurrence"] is not None and due_date is None:
            parse.errors.append(_RECURRENCE_NEEDS_DUE)
        parse.done()
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def with_parent(self, parent_id: UUID | None) -> NewTask:
        """The same draft under another parent (batches resolve temp ids into one)."""
        return _with_parent(self, parent_id)


def _with_parent(draft: _D, parent_id: UUID | None) -> _D:
    changed = copy.copy(draft)
    object.__setattr__(changed, "parent_id", parent_id)
    return changed


EDITABLE_FIELDS: Final = tuple(f.name for f in fields(NewTask) if f.name not in ("status", "parent_id"))
"""The fields a replacement or a patch sets directly (status moves by the task's rules, the
parent by a Placement the use cases check)."""

_RECURRENCE_NEEDS_DUE = FieldError(
    "recurrence", "needs a due_date to repeat from", "recurrence_needs_due_date"
)
_NOT_NULL = frozenset({"title", "priority", "status"})


@dataclass(frozen=True, slots=True, init=False)
class TaskPatch:
    """A partial change, parsed by the constructor in one step like NewTask: fields left UNSET
    are untouched, None clears a nullable field (None tags clear them all)."""

    title: Title | Unset
    description: Description | Unset | None
    priority: Priority | Unset
    tags: Tags | Unset
    due_date: datetime | Unset | None
    remind_at: datetime | Unset | None
    recurrence: Recurrence | Unset | None
    parent_id: UUID | Unset | None
    time_zone: TimeZone | Unset | None
    status: Status | Unset
    completed: bool | Unset
    add_tags: Tags
    """Tags joined to the task's (or to `tags`, when the patch sets them too)."""

    def __init__(
        self,
        *,
        title: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        status: Status | str | Unset = UNSET,
        completed: bool | Unset = UNSET,
        priority: Priority | str | Unset = UNSET,
        tags: Iterable[str] | Unset | None = UNSET,
        due_date: datetime | Unset | None = UNSET,
        remind_at: datetime | Unset | None = UNSET,
        recurrence: Recurrence | Unset | None = UNSET,
        parent_id: UUID | str | Unset | None = UNSET,
        time_zone: TimeZone | str | Unset | None = UNSET,
        add_tags: Iterable[str] = (),
    ) -> None:
        parse = _Parse()
        converters: dict[str, tuple[object, Callable[[Any], Any]]] = {
            "title": (title, Title.parse),
            "description": (description, Description.of),
            "priority": (priority, _priority),
            "tags": (tags, lambda v: Tags.parse(v or ())),
            "due_date": (due_date, lambda v: utc("due_date", v)),
            "remind_at": (remind_at, lambda v: utc("remind_at", v)),
            "recurrence": (recurrence, _recurrence),
            "parent_id": (parent_id, _parent),
            "time_zone": (time_zone, TimeZone.of),
            "status": (status, _status),
        }
        for name, (raw, convert) in converters.items():
            value: object = UNSET
            if raw is None and name in _NOT_NULL:
                parse.errors.append(FieldError(name, "must not be null", "null_not_allowed"))
            elif raw is not UNSET:
                value = parse.field(functools.partial(convert, raw))
            object.__setattr__(self, name, value)
        if completed is not UNSET:
            _check_agreement(parse.errors, None if status is UNSET else self.status, completed)  # type: ignore[arg-type]
        object.__setattr__(self, "completed", completed)
        object.__setattr__(self, "add_tags", parse.field(lambda: Tags.parse(add_tags)))
        parse.done()

    def with_parent(self, parent_id: UUID | Unset | None) -> TaskPatch:
        """The same patch with another parent (UNSET: leaves the task's)."""
        return _with_parent(self, parent_id)  # type: ignore[arg-type]

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
        """The editable fields this patch sets, by name (status and completed excluded)."""
        return {n: v for n in EDITABLE_FIELDS if (v := getattr(self, n)) is not UNSET}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a task stands: its parent (None: the top level) and its position among that
    parent's children (a key of todo_domain.positions). Made by the use cases once the family
    rules hold (todo_domain.hierarchy)."""

    parent_id: UUID | None = None
    position: str = "a0"


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
    parent_id: UUID | None = None
    position: str = "a0"
    time_zone: TimeZone | None = None
    # Not stored: set when a change of this object rolled a recurring task forward, to the due
    # date of the occurrence it completed (what its `task.completed` event reports).
    occurrence_done: datetime | None = field(default=None, init=False, repr=False)

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

    @property
    def placement(self) -> Placement:
        return Placement(self.parent_id, self.position)

    @classmethod
    def create(
        cls, task_id: UUID, owner: str, draft: NewTask, now: datetime, placement: Placement | None = None
    ) -> Task:
        """A version-1 task; a draft that is already completed goes through `complete`'s rules.
        Without a placement it stands alone at the top level (the use cases always give one)."""
        editable = {name: getattr(draft, name) for name in EDITABLE_FIELDS}
        where = placement or Placement(draft.parent_id)
        task = cls(
            id=task_id,
            owner=Owner(owner),
            created_at=now,
            updated_at=now,
            parent_id=where.parent_id,
            position=where.position,
            **editable,
        )
        task._anchor()
        task._move_to(draft.status, now)
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

    def replace(self, draft: NewTask, now: datetime, placement: Placement | None = None) -> None:
        """Full replacement of the writable fields (PUT); unchanged values change nothing. The
        position is kept unless a placement (a new parent) is given."""
        values = {name: getattr(draft, name) for name in EDITABLE_FIELDS}
        self._edit(_placed(values, placement), draft.status, now)

    def update(self, patch: TaskPatch, now: datetime, placement: Placement | None = None) -> None:
        """Partial change (PATCH); fields the patch leaves UNSET keep their value."""
        values = patch.given()
        if patch.add_tags:
            values["tags"] = Tags((*values.get("tags", self.tags), *patch.add_tags))
        self._edit(_placed(values, placement), patch.target_status(self.completed), now)

    def move(self, placement: Placement, now: datetime) -> None:
        """A new parent and/or position (SPEC §17 moves); only this task is written."""
        self._edit(_placed({}, placement), None, now)

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
        backup = {k: getattr(self, k) for k in (*changed, "recurrence")}
        for name, value in changed.items():
            setattr(self, name, value)
        if changed.keys() & _ANCHORING or _new_rule(backup["recurrence"], self.recurrence):
            self._anchor()
        try:
            moved = status is not None and status is not self.status and self._move_to(status, now)
        except InvalidTask:
            for name, value in backup.items():
                setattr(self, name, value)
            raise
        if changed or moved:
            self._touch(now)

    def _anchor(self) -> None:
        """The recurrence aims for the due date's day of month, as the user set it (a roll
        forward keeps the anchor: Jan 31 → Feb 28 → Mar 31)."""
        if self.recurrence is not None and self.due_date is not None:
            self.recurrence = self.recurrence.anchored(self.due_date, self.time_zone)

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
        zone = self.time_zone
        try:
            next_due = recurrence.next_after(due, now, zone)
            if self.remind_at is None:
                next_remind = None
            elif zone is None:
                next_remind = self.remind_at + (next_due - due)
            else:  # the same wall-clock distance before the due time, in the task's zone
                lead = zone.wall_clock(due) - zone.wall_clock(self.remind_at)
                next_remind = zone.instant(zone.wall_clock(next_due) - lead)
        except OverflowError:
            raise InvalidTask.one(
                "due_date", "the next occurrence would fall after the year 9999", "out_of_range"
            ) from None
        self.occurrence_done = due
        self.due_date, self.remind_at = next_due, next_remind

    def _touch(self, now: datetime) -> None:
        """Every change bumps the version and moves updated_at forward, even if the clock did not."""
        self.version += 1
        self.updated_at = now if now > self.updated_at else self.updated_at + _ONE_MICROSECOND


# A new due date or time zone moves the day of month a recurrence aims for.
_ANCHORING = frozenset({"due_date", "time_zone"})


def _new_rule(before: Recurrence | None, after: Recurrence | None) -> bool:
    """A recurrence set where there was none, or another frequency or interval (equality of
    recurrences ignores the anchor, so a PUT resending the same rule keeps it)."""
    return after is not None and (before is None or before != after)


def _placed(values: dict[str, Any], placement: Placement | None) -> dict[str, Any]:
    if placement is not None:
        values["parent_id"], values["position"] = placement.parent_id, placement.position
    return values
