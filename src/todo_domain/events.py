"""Events out (SPEC §16): what every write records in the store's outbox, in its transaction.

A use case tells the store, with each task it adds or saves, what that write did (a
`TaskEvent`: its type and id); the store records it with the write, numbered by the owner's
revision (the event's `sequence`), so an event exists exactly when its write committed. The
worker (todo_domain.relay) reads the recorded events (`RecordedEvent`) in sequence order and
hands them to the sinks. Reminders are recorded by the worker itself (`reminder.due`), with
the owner's next revision too, so one numbering orders everything a user sees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from todo_domain.model import Task

__all__ = ["Delivery", "EventType", "RecordedEvent", "TaskEvent", "classify"]


class EventType(enum.StrEnum):
    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_COMPLETED = "task.completed"
    TASK_REOPENED = "task.reopened"
    TASK_DELETED = "task.deleted"
    REMINDER_DUE = "reminder.due"


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """What one write did to one task; the store records it in the same transaction.

    `occurrence`: for a recurring task's completion (a roll-forward), the due date of the
    occurrence that was done (the task itself already shows the next one)."""

    id: UUID
    type: EventType
    occurrence: datetime | None = None


def classify(task: Task, *, was_completed: bool, was_deleted: bool) -> tuple[EventType, datetime | None]:
    """The type of a write to an existing task, from what it was before and what it is now.
    A roll-forward is a completion (the entity says which occurrence it completed)."""
    if task.deleted:
        return (EventType.TASK_DELETED, None) if not was_deleted else (EventType.TASK_UPDATED, None)
    if task.occurrence_done is not None:
        return EventType.TASK_COMPLETED, task.occurrence_done
    if task.completed and not was_completed:
        return EventType.TASK_COMPLETED, None
    if was_completed and not task.completed:
        return EventType.TASK_REOPENED, None
    return EventType.TASK_UPDATED, None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the outbox keeps it: numbered by the owner's revision (`sequence`), with the
    task as it was right after the write (for a reminder: when it fired)."""

    id: UUID
    owner: str
    sequence: int
    type: EventType
    task: Task
    time: datetime
    occurrence: datetime | None = None
    remind_at: datetime | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one webhook endpoint: tried `attempts` times so far, the next
    try due at `next_attempt_at`; `dead` once it gave up (kept until replayed)."""

    event: RecordedEvent
    url: str
    attempts: int
    first_attempt_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    dead: bool = False
