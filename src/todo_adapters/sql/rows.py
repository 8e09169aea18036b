"""Row ↔ entity mapping shared by the two SQL repositories (SQLAlchemy and asyncpg).

Rows are plain mappings of column name to value, so an asyncpg Record and a SQLAlchemy
RowMapping both work; the per-status counting rules of the `owners` row live here too.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from todo_adapters.sql.tables import EVENT_BUCKETS
from todo_domain.events import EventType, RecordedEvent
from todo_domain.model import Task
from todo_domain.query import TaskQuery, fold, search_text
from todo_domain.values import Description, Owner, Priority, Recurrence, Status, Tags, TimeZone, Title

__all__ = [
    "STATUS_COUNT",
    "TagChanges",
    "bucket_of",
    "count_changes",
    "counted",
    "counted_statuses",
    "event_from_row",
    "from_snapshot",
    "snapshot",
    "tag_changes",
    "task_from_row",
    "task_to_row",
]


def task_to_row(task: Task) -> dict[str, Any]:
    recurrence = task.recurrence
    return {
        "user_id": task.owner,
        "id": task.id,
        "title": str(task.title),
        "title_key": fold(task.title),
        "search_text": search_text(task.title, task.description),
        "description": None if task.description is None else str(task.description),
        "status": task.status.value,
        "priority": task.priority.rank,
        "tags": json.dumps(list(task.tags), ensure_ascii=False),
        "due_date": task.due_date,
        "remind_at": task.remind_at,
        "recurrence_frequency": None if recurrence is None else recurrence.frequency.value,
        "recurrence_interval": None if recurrence is None else recurrence.interval,
        "recurrence_anchor": None if recurrence is None else recurrence.anchor_day,
        "completed_at": task.completed_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "deleted_at": task.deleted_at,
        "version": task.version,
        "parent_id": task.parent_id,
        "position": task.position,
        "time_zone": None if task.time_zone is None else task.time_zone.name,
    }


def task_from_row(row: Mapping[Any, Any], owner: Owner | None = None) -> Task:
    """Rebuilds the entity from stored values, through the value objects (a row edited by hand
    still cannot produce an invalid task). Lists pass the owner they asked for, built once."""
    frequency = row["recurrence_frequency"]
    return Task(
        id=row["id"],
        owner=owner if owner is not None else Owner(row["user_id"]),
        title=Title(row["title"]),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        description=None if row["description"] is None else Description(row["description"]),
        status=_STATUSES[row["status"]],
        priority=Priority.from_rank(row["priority"]),
        tags=_tags(row["tags"]),
        due_date=_aware(row["due_date"]),
        remind_at=_aware(row["remind_at"]),
        recurrence=None
        if frequency is None
        else Recurrence(frequency, row["recurrence_interval"], row["recurrence_anchor"]),
        completed_at=_aware(row["completed_at"]),
        version=row["version"],
        deleted_at=_aware(row["deleted_at"]),
        parent_id=row["parent_id"],
        position=row["position"],
        time_zone=_zone(row["time_zone"]),
    )


_STATUSES = {s.value: s for s in Status}


@lru_cache(maxsize=1024)
def _zone(name: str | None) -> TimeZone | None:
    return None if name is None else TimeZone(name)


@lru_cache(maxsize=4096)
def _tags(stored: str) -> Tags:
    """Tag lists repeat across an owner's tasks: each stored form is parsed and checked once."""
    return Tags(json.loads(stored))


def _aware(value: Any) -> Any:
    """asyncpg stores datetime.max/min as timestamptz ±infinity and reads them back naive."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


_DATETIMES = ("due_date", "remind_at", "completed_at", "created_at", "updated_at", "deleted_at")


def snapshot(task: Task, row: dict[str, Any] | None = None) -> str:
    """The task as JSON text, for the idempotency record (replayed byte for byte later) and the
    outbox; `row` is its task_to_row if the caller has it already (it is not changed)."""
    row = task_to_row(task) if row is None else dict(row)
    row["id"] = str(task.id)
    row["parent_id"] = None if task.parent_id is None else str(task.parent_id)
    for name in _DATETIMES:
        row[name] = None if row[name] is None else row[name].isoformat()
    return json.dumps(row, ensure_ascii=False)


def from_snapshot(text: str) -> Task:
    row = json.loads(text)
    row["id"] = UUID(row["id"])
    parent = row.get("parent_id")  # snapshots from before 0.3 have no family fields
    row["parent_id"] = None if parent is None else UUID(parent)
    row.setdefault("position", "a0")
    row.setdefault("time_zone", None)
    row.setdefault("recurrence_anchor", None)  # nor an anchor before 0.3
    for name in _DATETIMES:
        row[name] = None if row[name] is None else datetime.fromisoformat(row[name])
    return task_from_row(row)


@dataclass(frozen=True, slots=True)
class TagChanges:
    """What `task_tags` needs to equal the live task's tags (a deleted task has none there)."""

    clear_all: bool  # the stored tags are unknown: delete them all first
    gone: list[str]
    new: list[str]
    after: Tags


def tag_changes(task: Task, before: Sequence[str] | None) -> TagChanges:
    """`before` is what the transaction last read or wrote for this task; None if unknown."""
    after = Tags() if task.deleted else task.tags
    wanted = set(after)
    known = set(before or ())
    return TagChanges(before is None, sorted(known - wanted), sorted(wanted - known), after)


STATUS_COUNT = {
    Status.PENDING: "pending_count",
    Status.IN_PROGRESS: "in_progress_count",
    Status.COMPLETED: "completed_count",
}


def count_changes(before: Status | None, after: Status | None) -> dict[str, int]:
    """How each per-status count column of `owners` moves when a task goes from `before` to
    `after` (None: not counted, i.e. new or deleted)."""
    change = dict.fromkeys(STATUS_COUNT.values(), 0)
    if before is not after:
        if before is not None:
            change[STATUS_COUNT[before]] -= 1
        if after is not None:
            change[STATUS_COUNT[after]] += 1
    return change


def counted(task: Task) -> Status | None:
    """Which per-status count a task belongs to (tombstones belong to none)."""
    return None if task.deleted else task.status


def counted_statuses(query: TaskQuery) -> frozenset[Status] | None:
    """The statuses whose counters add up to this query's total, when it filters on nothing
    else; None when the total needs a count(*)."""
    if query.tags or query.text or query.priorities or query.due_before or query.due_after:
        return None
    if query.parent_id is not None or query.top_level:
        return None
    if query.overdue is not None:
        return None
    statuses = query.statuses or frozenset(Status)
    if query.completed is not None:
        statuses = frozenset(s for s in statuses if (s is Status.COMPLETED) == query.completed)
    return statuses


def bucket_of(owner: str) -> int:
    """Stable across processes and versions (not Python's hash, which is salted)."""
    return zlib.crc32(owner.encode()) % EVENT_BUCKETS


_EVENT_TYPES = {t.value: t for t in EventType}


def event_from_row(row: Mapping[Any, Any]) -> RecordedEvent:
    return RecordedEvent(
        id=row["id"],
        owner=row["user_id"],
        sequence=int(row["sequence"]),
        type=_EVENT_TYPES[row["type"]],
        task=from_snapshot(row["task"]),
        time=_aware(row["occurred_at"]),
        occurrence=_aware(row["occurrence"]),
        remind_at=_aware(row["remind_at"]),
        late=bool(row["late"]),
    )
