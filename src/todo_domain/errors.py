"""The one error tree of the domain; every adapter and entrypoint speaks in these terms.

DomainError
├── TaskNotFound            missing, deleted, or owned by someone else (indistinguishable)
├── ValidationFailed        carries field-level errors
│   ├── InvalidTask         a task's fields break a rule
│   ├── InvalidQuery        a list query (filter, sort, cursor, page) is malformed
│   └── IdempotencyKeyReused  the key was already used with a different request
├── VersionConflict         expected version differs from the current one
├── IdempotencyKeyInFlight  a request with the same key is still running; the use case replays it
├── PositionTaken           a concurrent move took the sibling position; the use case retries
├── ChangeTokenExpired      a change-feed token is older than the tombstone retention
├── StorageUnavailable      the store cannot be reached now; retrying later may work
│   └── WriteConflict       the store aborted a write for a concurrent one (a deadlock); redone
└── SinkUnavailable         an events sink (broker) refused or did not answer; the worker retries
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

__all__ = [
    "ChangeTokenExpired",
    "DomainError",
    "FieldError",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidQuery",
    "InvalidTask",
    "SinkUnavailable",
    "StorageUnavailable",
    "TaskNotFound",
    "ValidationFailed",
    "VersionConflict",
    "WriteConflict",
]


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which field, a human sentence, and a stable machine code."""

    field: str
    message: str
    code: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class TaskNotFound(DomainError):
    def __init__(self, task_id: object) -> None:
        super().__init__(f"task {task_id} was not found")
        self.task_id = task_id


class ValidationFailed(DomainError):
    """Input that breaks a rule; `errors` names every offending field."""

    def __init__(self, errors: tuple[FieldError, ...] | list[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @classmethod
    def one(cls, field: str, message: str, code: str) -> Self:
        return cls((FieldError(field, message, code),))


class InvalidTask(ValidationFailed):
    pass


class InvalidQuery(ValidationFailed):
    pass


class IdempotencyKeyReused(ValidationFailed):
    def __init__(self) -> None:
        super().__init__(
            (
                FieldError(
                    "idempotency_key",
                    "was already used with a different request body",
                    "idempotency_key_reused",
                ),
            )
        )


class IdempotencyKeyInFlight(DomainError):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; retry shortly")


class VersionConflict(DomainError):
    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected version {expected}, but the task is at version {current}")
        self.expected = expected
        self.current = current


class ChangeTokenExpired(DomainError):
    def __init__(
        self, reason: str = "the change token is older than the tombstone retention; do a full sync"
    ) -> None:
        super().__init__(reason)


class StorageUnavailable(DomainError):
    """The store is unreachable, exhausted or timed out; the message never holds secrets."""


class WriteConflict(StorageUnavailable):
    """The store aborted a unit of work to break a deadlock with a concurrent one (PostgreSQL
    40P01; 40001, a serialization failure, likewise): nothing of it was written. The use cases
    do it again; callers see it (as StorageUnavailable, "retry shortly") only when that keeps
    failing."""


class SinkUnavailable(DomainError):
    """A broker the worker publishes to failed (down, timed out, refused the batch); the batch
    stays in the outbox and is published again later. `sink` names it (its `name`); `done`
    holds the (owner, sequence) of the events it did take before failing (no retry needed)."""

    def __init__(self, sink: str, message: str, done: frozenset[tuple[str, int]] = frozenset()) -> None:
        super().__init__(f"{sink}: {message}")
        self.sink = sink
        self.done = done


class PositionTaken(DomainError):
    """Two writers gave siblings the same position at once; the store refused the second (a
    unique index on SQL). The use cases retry it with fresh neighbours; callers never see it
    unless retries run out."""

    def __init__(self) -> None:
        super().__init__("a concurrent move took this position; try again")
