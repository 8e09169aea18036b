"""The tasks domain: entity, rules, use cases and ports. Standard library only.

from todo_domain import TaskService, NewTask
from todo_adapters.memory import InMemoryStore

tasks = TaskService(InMemoryStore())
"""

from todo_domain.batch import BatchFailed, BatchResult, Command, FailedDependency, Op, Outcome
from todo_domain.errors import (
    ChangeTokenExpired,
    DomainError,
    FieldError,
    IdempotencyKeyReused,
    InvalidQuery,
    InvalidTask,
    PositionTaken,
    StorageUnavailable,
    TaskNotFound,
    ValidationFailed,
    VersionConflict,
)
from todo_domain.model import EDITABLE_FIELDS, UNSET, NewTask, Placement, Task, TaskPatch
from todo_domain.ports import (
    ChangeFeed,
    Clock,
    IdempotencyKeys,
    IdGenerator,
    TaskRepository,
    TaskStore,
    UnitOfWork,
)
from todo_domain.query import Cursor, Page, Sort, SortField, TagCount, TaskQuery
from todo_domain.service import TaskService
from todo_domain.system import SystemClock, Uuid7Generator
from todo_domain.values import Frequency, Priority, Recurrence, Status, TimeZone

__all__ = [
    "EDITABLE_FIELDS",
    "UNSET",
    "BatchFailed",
    "BatchResult",
    "ChangeFeed",
    "ChangeTokenExpired",
    "Clock",
    "Command",
    "Cursor",
    "DomainError",
    "FailedDependency",
    "FieldError",
    "Frequency",
    "IdGenerator",
    "IdempotencyKeyReused",
    "IdempotencyKeys",
    "InvalidQuery",
    "InvalidTask",
    "NewTask",
    "Op",
    "Outcome",
    "Page",
    "Placement",
    "PositionTaken",
    "Priority",
    "Recurrence",
    "Sort",
    "SortField",
    "Status",
    "StorageUnavailable",
    "SystemClock",
    "TagCount",
    "Task",
    "TaskNotFound",
    "TaskPatch",
    "TaskQuery",
    "TaskRepository",
    "TaskService",
    "TaskStore",
    "TimeZone",
    "UnitOfWork",
    "Uuid7Generator",
    "ValidationFailed",
    "VersionConflict",
]
