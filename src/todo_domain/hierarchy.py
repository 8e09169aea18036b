"""The family rules of SPEC §17: who may be whose parent, and where a move lands.

Pure functions over what the store reports (a parent's chain of ancestors, a subtree's height,
a sibling list), so every store obeys the same rules and the use cases stay short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from todo_domain import positions
from todo_domain.errors import InvalidTask
from todo_domain.model import UNSET, Placement, Task, Unset

__all__ = ["MAX_DEPTH", "Sibling", "changes_subtree", "check_parent", "follow", "place"]

MAX_DEPTH = 5
"""Levels of a task tree: a top-level task is level 1, its subtasks level 2, … up to 5."""


@dataclass(frozen=True, slots=True)
class Sibling:
    id: UUID
    position: str


def check_parent(task_id: UUID | None, chain: Sequence[UUID], height: int) -> None:
    """May a task (`task_id`, None for a new one) whose own subtree is `height` levels tall
    (1: no subtasks) go under the parent whose chain is `chain` — the parent's id, then its
    ancestors up to the top level, as the owner's store found them (empty: not a live task of
    this owner)?"""
    if not chain:
        raise InvalidTask.one("parent_id", "must name one of your live tasks", "parent_not_found")
    if task_id is not None and task_id in chain:
        raise InvalidTask.one("parent_id", "cannot be the task itself or one of its subtasks", "parent_cycle")
    if len(chain) + height > MAX_DEPTH:
        raise InvalidTask.one("parent_id", f"would nest tasks deeper than {MAX_DEPTH} levels", "too_deep")


def place(
    siblings: Sequence[Sibling],
    parent_id: UUID | None,
    *,
    after: UUID | Unset | None = UNSET,
    before: UUID | Unset | None = UNSET,
    current: str | None = None,
) -> tuple[Placement, list[tuple[UUID, Placement]]]:
    """Where a task goes among `siblings` (in order, the task itself not among them).

    `after=X` is right after sibling X, `after=None` first; `before=Y` right before Y,
    `before=None` last; both must then name the same gap; neither: last. `current` is the
    task's own position when it stays under the same parent: already in the wanted gap, it
    keeps it (a move to where a task is writes nothing). Returns the task's placement and,
    when the gap has grown too fine for a key of at most positions.MAX_LENGTH characters, the
    new placements of every sibling (a rebalance: fresh short keys for the whole list, all
    above the current ones so none collides mid-way).
    """
    index = {s.id: i for i, s in enumerate(siblings)}

    def gap_of(name: str, target: UUID | Unset | None, none_gap: int, offset: int) -> int | None:
        if target is UNSET:
            return None
        if target is None:
            return none_gap
        assert isinstance(target, UUID)
        if target not in index:
            raise InvalidTask.one(name, "must be a sibling in the target parent", "not_a_sibling")
        return index[target] + offset

    low_gap = gap_of("after", after, 0, 1)
    high_gap = gap_of("before", before, len(siblings), 0)
    if low_gap is not None and high_gap is not None and low_gap != high_gap:
        raise InvalidTask.one("before", "must directly follow `after` in the target parent", "not_adjacent")
    gap = (
        len(siblings)
        if low_gap is None and high_gap is None
        else (low_gap if low_gap is not None else high_gap)
    )
    assert gap is not None
    low = siblings[gap - 1].position if gap > 0 else None
    high = siblings[gap].position if gap < len(siblings) else None
    if current is not None and (low is None or low < current) and (high is None or current < high):
        return Placement(parent_id, current), []
    key = positions.between(low, high)
    if len(key) <= positions.MAX_LENGTH:
        return Placement(parent_id, key), []
    above = max([s.position for s in siblings] + ([current] if current is not None else []))
    fresh = positions.spread(len(siblings) + 1, above)
    mine = fresh.pop(gap)
    return Placement(parent_id, mine), [
        (s.id, Placement(parent_id, k)) for s, k in zip(siblings, fresh, strict=True)
    ]


def follow(
    parent: Task, was_completed: bool, was_deleted: bool, subtree: Sequence[Task], now: datetime
) -> list[Task]:
    """What a task's change does to its subtasks (all levels, live): deleting it deletes them;
    completing it (for good: a recurring task that rolled forward is not completed) completes
    the open ones — a recurring subtask by its own rule, rolling forward. Reopening reopens
    nothing. Returns the subtasks that changed."""
    if parent.deleted and not was_deleted:
        for task in subtree:
            task.delete(now)
        return list(subtree)
    if parent.completed and not was_completed:
        changed = []
        for task in subtree:
            if not task.completed:
                task.complete(now)
                changed.append(task)
        return changed
    return []


def changes_subtree(parent: Task, was_completed: bool, was_deleted: bool) -> bool:
    """Whether `follow` would have anything to do (so the subtree is only read when needed)."""
    return (parent.deleted and not was_deleted) or (parent.completed and not was_completed)
