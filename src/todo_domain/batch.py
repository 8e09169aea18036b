"""Batch commands (SPEC §18): an offline client's queue, or an import, in one call.

A batch is a list of `Command`s run in order, each answered like its single use case. A create
may name a `temp_id` that later commands use wherever a task id goes (`task_id`, a parent,
`after`, `before`); a command leaning on a create that failed fails with `FailedDependency`.
Each command id is kept like an Idempotency-Key (per user, for the idempotency retention), in
the command's own transaction, so a batch sent again replays what was applied and applies
nothing twice. `TaskService.run_batch` runs them.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from todo_domain.errors import DomainError, FieldError, InvalidTask, ValidationFailed
from todo_domain.model import UNSET, NewTask, Task, TaskPatch, Unset
from todo_domain.sync import IdempotencyKey

__all__ = [
    "MAX_COMMANDS",
    "BatchFailed",
    "BatchResult",
    "Command",
    "FailedDependency",
    "Op",
    "Outcome",
    "check_batch",
]

MAX_COMMANDS = 1000


class Op(enum.StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    UPDATE = "update"
    COMPLETE = "complete"
    REOPEN = "reopen"
    TOGGLE = "toggle"
    DELETE = "delete"
    MOVE = "move"


Ref = str
"""A task id, or the temp_id an earlier create of the same batch declared."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command. `draft` is a NewTask (create, replace) or a TaskPatch (update) whose
    parent is given as `parent` instead (it may be a temp id): UNSET keeps it (update, move),
    None is the top level; a replace without one goes to the top level, as PUT does."""

    id: str
    op: Op
    task_id: Ref | None = None
    temp_id: str | None = None
    expected_version: int | None = None
    draft: NewTask | TaskPatch | None = None
    parent: Ref | Unset | None = UNSET
    after: Ref | Unset | None = UNSET
    before: Ref | Unset | None = UNSET
    refused: DomainError | None = None
    """Why the caller could not even build this command (its body did not parse): it is
    answered with this error without running, and counts as failed for its temp_id."""

    def fingerprint(self) -> str:
        """What "the same command" means (the draft's normalised values, not their spelling)."""
        parts = [self.op.value, self.task_id, self.temp_id, self.expected_version]
        parts += [repr(self.draft), repr(self.parent), repr(self.after), repr(self.before)]
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def storage_key(self) -> IdempotencyKey:
        """Where the command id is kept: beside Idempotency-Keys, in a namespace of its own."""
        key = f"batch:{self.id}"
        return IdempotencyKey(key if len(key) <= 255 else "batch#" + hashlib.sha256(key.encode()).hexdigest())


class FailedDependency(DomainError):
    """A command names the temp_id of a create that failed in the same batch."""

    def __init__(self, field: str, temp_id: str) -> None:
        super().__init__(f"{field}: the create of temp_id {temp_id!r} failed, so this command did not run")
        self.field = field
        self.temp_id = temp_id


class BatchFailed(DomainError):
    """An atomic batch stopped at command `index`: nothing was applied."""

    def __init__(self, index: int, cause: DomainError) -> None:
        super().__init__(f"command {index} failed, so nothing was applied: {cause}")
        self.index = index
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's answer: the task it produced (the tombstone for a delete), or its error."""

    command_id: str
    op: Op
    task: Task | None = None
    error: DomainError | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcomes: tuple[Outcome, ...]
    temp_ids: dict[str, UUID] = field(default_factory=dict)


def check_batch(commands: Sequence[Command]) -> None:
    """What makes a batch malformed as a whole (422 before anything runs): too many commands,
    a command id or temp_id used twice, a temp_id on something other than a create."""
    if len(commands) > MAX_COMMANDS:
        raise ValidationFailed.one("commands", f"must hold at most {MAX_COMMANDS} commands", "too_many")
    errors: list[FieldError] = []
    ids: set[str] = set()
    temps: set[str] = set()
    for index, command in enumerate(commands):
        try:
            command.storage_key()
        except ValidationFailed:
            errors.append(
                FieldError(f"commands[{index}].id", "must be 1–255 visible ASCII characters", "invalid")
            )
        if command.id in ids:
            errors.append(FieldError(f"commands[{index}].id", "is used by an earlier command", "duplicate"))
        ids.add(command.id)
        if command.temp_id is not None:
            if command.op is not Op.CREATE:
                errors.append(
                    FieldError(f"commands[{index}].temp_id", "only a create declares one", "not_allowed")
                )
            elif command.temp_id in temps:
                errors.append(FieldError(f"commands[{index}].temp_id", "is declared twice", "duplicate"))
            temps.add(command.temp_id)
        if command.op is not Op.CREATE and command.task_id is None and command.refused is None:
            errors.append(FieldError(f"commands[{index}].task_id", "is required for this op", "missing"))
    if errors:
        raise ValidationFailed(errors)


class TempIds:
    """The temp ids of one batch as it runs: which creates made which task, which failed."""

    def __init__(self) -> None:
        self.made: dict[str, UUID] = {}
        self.failed: set[str] = set()

    def copy(self) -> TempIds:
        other = TempIds()
        other.made, other.failed = dict(self.made), set(self.failed)
        return other

    def resolve(self, ref: Ref, field: str) -> UUID:
        if ref in self.failed:
            raise FailedDependency(field, ref)
        if ref in self.made:
            return self.made[ref]
        try:
            return UUID(ref)
        except ValueError:
            raise InvalidTask.one(
                field, "is neither a task id nor the temp_id of an earlier create", "unknown_temp_id"
            ) from None

    def optional(self, ref: Ref | Unset | None, field: str) -> UUID | Unset | None:
        if ref is None or isinstance(ref, Unset):
            return ref
        return self.resolve(ref, field)
