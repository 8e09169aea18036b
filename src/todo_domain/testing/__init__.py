"""Helpers for testing code built on the tasks service (SPEC §19), standard library only.

    from todo_adapters.memory import InMemoryStore
    from todo_domain import TaskService
    from todo_domain.testing import ManualClock, SequentialIds

    clock = ManualClock()
    tasks = TaskService(InMemoryStore(), clock=clock, ids=SequentialIds())
    ...
    clock.advance(timedelta(days=1))  # overdue tasks are overdue now

- `ManualClock`, `SequentialIds`: a clock you move by hand and predictable, increasing ids;
  `task_event(kind)`: the event a store's `add`/`save` records, for tests that write through
  a unit of work directly.
- hypothesis strategies for drafts, patches and queries are in `todo_testing.strategies` (the
  `[testing]` extra: they need hypothesis, and the domain imports the standard library only);
  they are registered with hypothesis, so `st.from_type(NewTask)` builds valid drafts.
- `todo_domain.testing.contract`: the checks every `TaskStore` must pass, for people writing
  their own store.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from todo_domain.events import EventType, TaskEvent

__all__ = ["T0", "ManualClock", "SequentialIds", "task_event"]

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
"""Where a ManualClock starts unless told otherwise."""


class ManualClock:
    """A `Clock` that moves only when told: `advance(delta)`, `set(moment)`, or `tick` (added
    after each reading, so consecutive writes get distinct times). Refuses naive datetimes at
    once, rather than letting them fail deep inside a store later."""

    def __init__(self, start: datetime = T0, *, tick: timedelta = timedelta(0)) -> None:
        self.current = _aware(start)
        if tick < timedelta(0):
            raise ValueError("tick must not be negative: a clock that runs backwards breaks ordering")
        self.tick = tick

    def now(self) -> datetime:
        moment = self.current
        self.current += self.tick
        return moment

    def advance(self, delta: timedelta) -> None:
        self.current += delta

    def set(self, moment: datetime) -> None:
        self.current = _aware(moment)


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"a ManualClock needs timezone-aware datetimes, got {moment!r}")
    return moment.astimezone(UTC)


class SequentialIds:
    """An `IdGenerator` of UUIDv7-shaped ids in strictly increasing order (…0001, …0002, …), so
    tests can predict ids and their order; each instance starts again at 1."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self) -> UUID:
        n = next(self._counter)
        return UUID(int=(0x0190_0000_0000 << 80) | (0x7 << 76) | (0b10 << 62) | n)


def task_event(kind: EventType = EventType.TASK_UPDATED) -> TaskEvent:
    """A fresh event of `kind` (a random id) for `uow.tasks.add(task, event)` / `save(..., event=…)`."""
    return TaskEvent(uuid.uuid4(), kind)
