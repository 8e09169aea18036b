"""The tasks domain: entity, rules, use cases and ports. Standard library only.

from todo_domain import TaskService, NewTask
from todo_adapters.memory import InMemoryStore

tasks = TaskService(InMemoryStore())
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from todo_domain.batch import BatchFailed, BatchResult, Command, FailedDependency, Op, Outcome
from todo_domain.errors import (
    ChangeTokenExpired,
    DomainError,
    FieldError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidQuery,
    InvalidTask,
    PositionTaken,
    SinkUnavailable,
    StorageUnavailable,
    TaskNotFound,
    ValidationFailed,
    VersionConflict,
    WriteConflict,
)
from todo_domain.events import Delivery, EventType, RecordedEvent, TaskEvent
from todo_domain.model import EDITABLE_FIELDS, UNSET, NewTask, Placement, Task, TaskPatch, Unset
from todo_domain.ports import (
    ChangeFeed,
    ChangeSignal,
    Clock,
    DeliveryBatch,
    EventOutbox,
    EventSink,
    IdempotencyKeys,
    IdGenerator,
    OutboxBatch,
    TaskRepository,
    TaskStore,
    UnitOfWork,
    WebhookSender,
)
from todo_domain.query import Cursor, Page, Sort, SortField, TagCount, TaskQuery
from todo_domain.relay import DeliveryReport, EventRelay, RelaySettings
from todo_domain.service import TaskService
from todo_domain.sync import Change, ChangeLog, ChangeSet, ChangeToken, Creation
from todo_domain.system import SystemClock, Uuid7Generator
from todo_domain.values import Frequency, Priority, Recurrence, Status, TimeZone

try:
    __version__ = _version("todo-service")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "EDITABLE_FIELDS",
    "UNSET",
    "BatchFailed",
    "BatchResult",
    "Change",
    "ChangeFeed",
    "ChangeLog",
    "ChangeSet",
    "ChangeSignal",
    "ChangeToken",
    "ChangeTokenExpired",
    "Clock",
    "Command",
    "Creation",
    "Cursor",
    "Delivery",
    "DeliveryBatch",
    "DeliveryReport",
    "DomainError",
    "EventOutbox",
    "EventRelay",
    "EventSink",
    "EventType",
    "FailedDependency",
    "FieldError",
    "Frequency",
    "IdGenerator",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "IdempotencyKeys",
    "InvalidQuery",
    "InvalidTask",
    "NewTask",
    "Op",
    "OutboxBatch",
    "Outcome",
    "Page",
    "Placement",
    "PositionTaken",
    "Priority",
    "RecordedEvent",
    "Recurrence",
    "RelaySettings",
    "SinkUnavailable",
    "Sort",
    "SortField",
    "Status",
    "StorageUnavailable",
    "SystemClock",
    "TagCount",
    "Task",
    "TaskEvent",
    "TaskNotFound",
    "TaskPatch",
    "TaskQuery",
    "TaskRepository",
    "TaskService",
    "TaskStore",
    "TimeZone",
    "UnitOfWork",
    "Unset",
    "Uuid7Generator",
    "ValidationFailed",
    "VersionConflict",
    "WebhookSender",
    "WriteConflict",
    "__version__",
]
