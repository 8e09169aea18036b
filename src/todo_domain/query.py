"""What "list my tasks" means — filters, sorts, keyset cursors, pages — independent of any storage.

Ordering contract shared by every adapter: sort by the field's value in the chosen direction,
ties broken by id in the same direction, tasks with no due date last in both directions. Titles
sort and search case-insensitively through `fold` (Unicode case folding, compared by code point),
so every store orders the same way.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from todo_domain import positions
from todo_domain.errors import InvalidQuery, InvalidTask
from todo_domain.values import Priority, Status, Tags, as_uuid, is_clean_text, utc

if TYPE_CHECKING:
    from todo_domain.model import Task

__all__ = [
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_TEXT",
    "Cursor",
    "Page",
    "Sort",
    "SortField",
    "SortValue",
    "TagCount",
    "TaskQuery",
    "compare",
    "fold",
    "search_text",
    "sort_value",
]

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_TEXT = 200

SortValue = datetime | int | str | None


def fold(text: str) -> str:
    """The case-insensitive form used for title sorting and text search."""
    return text.casefold()


def search_text(title: str, description: str | None) -> str:
    """What text search looks in; the newline keeps a query from matching across the two parts."""
    return fold(title) + "\n" + fold(description or "")


class SortField(enum.StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    DUE_DATE = "due_date"
    PRIORITY = "priority"
    TITLE = "title"
    POSITION = "position"  # manual order among siblings (SPEC §17)


@dataclass(frozen=True, slots=True)
class Sort:
    """Default: newest first. Priority ascends low → high (so `descending` puts high first)."""

    field: SortField = SortField.CREATED_AT
    descending: bool = True


def sort_value(task: Task, sort_field: SortField) -> SortValue:
    match sort_field:
        case SortField.CREATED_AT:
            return task.created_at
        case SortField.UPDATED_AT:
            return task.updated_at
        case SortField.DUE_DATE:
            return task.due_date
        case SortField.PRIORITY:
            return task.priority.rank
        case SortField.TITLE:
            return fold(task.title)
        case SortField.POSITION:
            return task.position


def compare(a: tuple[SortValue, UUID], b: tuple[SortValue, UUID], descending: bool) -> int:
    """-1, 0 or 1: where (value, id) `a` stands relative to `b` in the list order (None last)."""
    (va, ia), (vb, ib) = a, b
    if (va is None) != (vb is None):
        return 1 if va is None else -1
    key_a: tuple[Any, ...] = (ia,) if va is None else (va, ia)
    key_b: tuple[Any, ...] = (ib,) if vb is None else (vb, ib)
    result = (key_a > key_b) - (key_a < key_b)
    return -result if descending else result


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position after which the next page starts: the last item's sort value and id.

    Encoded as opaque URL-safe text; a cursor is only valid with the sort it was made for.
    """

    sort: Sort
    value: SortValue
    task_id: UUID

    @classmethod
    def after(cls, task: Task, sort: Sort) -> Cursor:
        return cls(sort, sort_value(task, sort.field), task.id)

    def encode(self) -> str:
        value: Any = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = [self.sort.field.value, self.sort.descending, value, str(self.task_id)]
        data = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            if len(token) > _MAX_CURSOR:  # also keeps json.loads from recursing without end
                raise ValueError("cursor too long")
            padded = token + "=" * (-len(token) % 4)
            field_name, descending, value, task_id = json.loads(base64.urlsafe_b64decode(padded))
            sort = Sort(SortField(field_name), bool(descending))
            return cls(sort, _decode_value(sort.field, value), UUID(task_id))
        except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
            raise InvalidQuery.one("cursor", "is not a valid cursor", "invalid_cursor") from None


# A cursor holds one sort value (a title key of ≤ 255 characters folded, at most a few times
# longer) and an id: anything longer is not ours.
_MAX_CURSOR = 4096


def _decode_value(sort_field: SortField, value: object) -> SortValue:
    if value is None and sort_field is SortField.DUE_DATE:
        return None
    if sort_field in (SortField.CREATED_AT, SortField.UPDATED_AT, SortField.DUE_DATE):
        if not isinstance(value, str):
            raise ValueError("bad datetime")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment.astimezone(UTC)  # OverflowError past year 9999 in UTC
    if sort_field is SortField.PRIORITY:
        if not isinstance(value, int) or isinstance(value, bool) or value not in (0, 1, 2):
            raise ValueError("bad rank")
        return value
    if sort_field is SortField.POSITION:
        if not positions.is_valid(value):
            raise ValueError("bad position")
        return str(value)
    if not isinstance(value, str) or not is_clean_text(value):  # NUL, a lone surrogate…
        raise ValueError("bad title")
    return value


_E = TypeVar("_E", Status, Priority)


def _choices(name: str, kind: type[_E], values: object) -> frozenset[_E]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidQuery.one(name, f"must be a collection of {kind.__name__} values", "type_error")
    try:
        return frozenset(kind(v) for v in values)
    except ValueError:
        allowed = ", ".join(str(v.value) for v in kind)
        raise InvalidQuery.one(name, f"must each be one of {allowed}", "invalid_choice") from None


def _count(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidQuery.one(name, f"must be an integer between {low} and {high}", "out_of_range")


def _task_id(name: str, value: object) -> UUID:
    if (parsed := as_uuid(value)) is None:
        raise InvalidQuery.one(name, "must be a task id (a UUID)", "type_error")
    return parsed


def _query_error(exc: InvalidTask, field_name: str) -> InvalidQuery:
    return InvalidQuery.one(field_name, exc.errors[0].message, exc.errors[0].code)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Filters (all combined with AND), one sort, and either a cursor or an offset.

    Empty `statuses`/`priorities` mean "any"; `tags` must all be present; `text` is a
    case-insensitive substring of title or description; `due_before` is exclusive and
    `due_after` inclusive; `overdue` means due before now and not completed; `parent_id`
    keeps the children of one task, `top_level` the tasks without a parent (neither: all).
    `cursor` is a page's `next_cursor` (its `encode()`d text is accepted too).

    Raises InvalidQuery naming the field (`statuses`, `limit`, `tags`, `text`…) for any value
    of the wrong type or out of range, whatever store will run the query.
    """

    statuses: frozenset[Status] = frozenset()
    completed: bool | None = None
    priorities: frozenset[Priority] = frozenset()
    tags: tuple[str, ...] = ()
    text: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    parent_id: UUID | None = None
    top_level: bool = False
    sort: Sort = field(default_factory=Sort)
    limit: int = 100
    cursor: Cursor | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        """Checks every value once, whatever store runs the query: a bad one is InvalidQuery
        naming the field (the domain's name; the HTTP layer maps them to its parameters)."""
        object.__setattr__(self, "statuses", _choices("statuses", Status, self.statuses))
        object.__setattr__(self, "priorities", _choices("priorities", Priority, self.priorities))
        try:
            object.__setattr__(self, "tags", Tags(self.tags))
        except InvalidTask as exc:
            raise _query_error(exc, "tags") from None
        except TypeError:
            raise InvalidQuery.one("tags", "must be a collection of tags", "type_error") from None
        for name in ("due_before", "due_after"):
            try:
                object.__setattr__(self, name, utc(name, getattr(self, name)))
            except InvalidTask as exc:
                raise _query_error(exc, name) from None
        for name in ("completed", "overdue"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise InvalidQuery.one(name, "must be True, False or None", "type_error")
        if not isinstance(self.top_level, bool):
            raise InvalidQuery.one("top_level", "must be True or False", "type_error")
        if self.text is not None:
            self._check_text(self.text)
            object.__setattr__(self, "text", self.text or None)
        if self.parent_id is not None:
            object.__setattr__(self, "parent_id", _task_id("parent_id", self.parent_id))
        if not isinstance(self.sort, Sort):
            raise InvalidQuery.one("sort", "must be a Sort", "type_error")
        if isinstance(self.cursor, str):
            object.__setattr__(self, "cursor", Cursor.decode(self.cursor))
        elif self.cursor is not None and not isinstance(self.cursor, Cursor):
            raise InvalidQuery.one("cursor", "must be a Cursor, its text or None", "type_error")
        _count("limit", self.limit, 1, MAX_LIMIT)
        _count("offset", self.offset, 0, MAX_OFFSET)
        if self.parent_id is not None and self.top_level:
            raise InvalidQuery.one("parent_id", "is a task id or none, not both", "conflicting_filters")
        if self.cursor is not None and self.offset:
            raise InvalidQuery.one("cursor", "cannot be combined with offset", "cursor_and_offset")
        if self.cursor is not None and self.cursor.sort != self.sort:
            raise InvalidQuery.one("cursor", "was made for a different sort", "cursor_sort_mismatch")

    @staticmethod
    def _check_text(text: object) -> None:
        if not isinstance(text, str):
            raise InvalidQuery.one("text", "must be a string or None", "type_error")
        if len(text) > MAX_TEXT:
            raise InvalidQuery.one("text", f"must have at most {MAX_TEXT} characters", "too_long")
        if not is_clean_text(text):
            raise InvalidQuery.one("text", "must not contain control characters", "control_character")

    @property
    def folded_text(self) -> str | None:
        return None if self.text is None else fold(self.text)

    def matches(self, task: Task, now: datetime) -> bool:
        """The filter as plain Python: the reference every adapter's query must agree with."""
        if task.deleted:
            return False
        if self.statuses and task.status not in self.statuses:
            return False
        if self.completed is not None and task.completed != self.completed:
            return False
        if self.priorities and task.priority not in self.priorities:
            return False
        if self.tags and not set(self.tags) <= set(task.tags):
            return False
        if self.folded_text and self.folded_text not in search_text(task.title, task.description):
            return False
        due = task.due_date
        if self.due_before is not None and (due is None or not due < self.due_before):
            return False
        if self.due_after is not None and (due is None or not due >= self.due_after):
            return False
        if self.overdue is not None:
            is_overdue = due is not None and due < now and not task.completed
            if is_overdue != self.overdue:
                return False
        if self.top_level and task.parent_id is not None:
            return False
        return not (self.parent_id is not None and task.parent_id != self.parent_id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of tasks, the number of all matching tasks, and where the next page starts."""

    items: tuple[Task, ...]
    total: int
    next_cursor: Cursor | None = None
    next_offset: int | None = None

    @classmethod
    def build(cls, rows: list[Task], query: TaskQuery, total: int) -> Page:
        """From up to `limit + 1` rows in list order: the extra row only says "there is more".

        Both continuations are given; clients paging by offset use `next_offset`, the rest
        the (insert- and delete-stable) `next_cursor`.
        """
        items = tuple(rows[: query.limit])
        if len(rows) <= query.limit:
            return cls(items, total)
        return cls(
            items,
            total,
            next_cursor=Cursor.after(items[-1], query.sort),
            next_offset=query.offset + query.limit,
        )


@dataclass(frozen=True, slots=True)
class TagCount:
    name: str
    open: int
    total: int
