"""Test doubles for our own ports (fakes, not mocks) and small helpers shared by the suites."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand; each reading can optionally advance it by `tick`."""

    def __init__(self, start: datetime = T0, tick: timedelta = timedelta(0)) -> None:
        self.current = start
        self.tick = tick

    def now(self) -> datetime:
        moment = self.current
        self.current += self.tick
        return moment

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class SequentialIds:
    """UUIDv7-shaped ids in strictly increasing order, so tests can predict id order."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self) -> UUID:
        n = next(self._counter)
        return UUID(int=(0x0190_0000_0000 << 80) | (0x7 << 76) | (0b10 << 62) | n)
