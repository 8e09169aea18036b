"""Safe retries and incremental sync: idempotency keys for creation, and the change feed.

Change feed design: every write of an owner's task takes the next value of that owner's
revision counter, bumped in the same transaction (on SQL, an upsert of the owner's row, which
also locks it until commit). An owner's writes are therefore serialised and commit in revision
order, so a client that asks for "revisions after N" can never skip a write that commits late:
a transaction holding revision N+1 cannot commit before the one holding N. Deletes are soft
(tombstones carry a revision too), so deletions flow through the same feed until they are
purged; a token older than the tombstone retention, or older than the newest purged
tombstone, is expired (the client must do a full sync).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from todo_domain.errors import ChangeTokenExpired, InvalidQuery, ValidationFailed
from todo_domain.model import NewTask, Task

__all__ = [
    "Change",
    "ChangeLog",
    "ChangeSet",
    "ChangeToken",
    "Creation",
    "FeedPage",
    "IdempotencyKey",
    "Purged",
    "StoredKey",
    "fingerprint",
]

MAX_CHANGES = 1000
MAX_REVISION = 2**63 - 1


class IdempotencyKey(str):
    """1–255 visible ASCII characters (what the Idempotency-Key header may carry)."""

    __slots__ = ()

    def __new__(cls, value: str) -> IdempotencyKey:
        if not 1 <= len(value) <= 255 or not all("!" <= c <= "~" for c in value):
            raise ValidationFailed.one(
                "idempotency_key", "must be 1–255 visible ASCII characters", "invalid_idempotency_key"
            )
        return super().__new__(cls, value)


def fingerprint(draft: NewTask) -> str:
    """What "the same request" means: the normalised draft, not its JSON spelling."""
    recurrence = draft.recurrence
    canonical = [
        draft.title,
        draft.description,
        draft.status.value,
        draft.priority.value,
        list(draft.tags),
        None if draft.due_date is None else draft.due_date.isoformat(),
        None if draft.remind_at is None else draft.remind_at.isoformat(),
        None if recurrence is None else [recurrence.frequency.value, recurrence.interval],
    ]
    if draft.parent_id is not None or draft.time_zone is not None:  # only then: older keys still match
        parent = None if draft.parent_id is None else str(draft.parent_id)
        canonical += [parent, None if draft.time_zone is None else draft.time_zone.name]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Creation:
    """The task a create produced; `replayed` when an earlier request with the key made it."""

    task: Task
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ChangeToken:
    """Where a client's sync stands: the owner's revision it has seen, and when it was issued."""

    revision: int
    issued_at: datetime

    def encode(self) -> str:
        raw = f"v1:{self.revision}:{int(self.issued_at.timestamp())}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> ChangeToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            version, revision, issued = raw.split(":")
            if version != "v1" or not (revision.isascii() and revision.isdigit()):
                raise ValueError(version)
            if int(revision) > MAX_REVISION:  # revisions are BIGINT in the database
                raise ValueError(revision)
            return cls(int(revision), datetime.fromtimestamp(int(issued), UTC))
        except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
            raise InvalidQuery.one(
                "since", "is not a change token from this service", "invalid_token"
            ) from None

    def check_fresh(self, now: datetime, retention: timedelta, purged_revision: int) -> None:
        if self.issued_at < now - retention or self.revision < purged_revision:
            raise ChangeTokenExpired()


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed, for readers that follow it live: the task in its latest
    state (`task.deleted` for a tombstone) and the token that stands right after it. With
    `remind_at` set, it is a fired reminder of that task instead (SPEC §15 `event: reminder`;
    `late` when it fired well after its time)."""

    task: Task
    token: ChangeToken
    remind_at: datetime | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class ChangeLog:
    """Changes after a token in revision order (each task once), and where to go on from."""

    entries: tuple[Change, ...]
    next: ChangeToken
    has_more: bool


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Changed tasks in their latest state, ids of deleted ones, and where to continue."""

    changes: tuple[Task, ...]
    deleted: tuple[UUID, ...]
    next: ChangeToken
    has_more: bool


@dataclass(frozen=True, slots=True)
class FeedPage:
    """What a repository hands the change feed: (revision, task) rows in revision order (up to
    limit + 1), the owner's newest revision, and the newest revision purged."""

    entries: tuple[tuple[int, Task], ...]
    owner_revision: int
    purged_revision: int


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An idempotency key as stored: the request's fingerprint and the task as created."""

    fingerprint: str
    task: Task


@dataclass(frozen=True, slots=True)
class Purged:
    tombstones: int
    idempotency_keys: int
