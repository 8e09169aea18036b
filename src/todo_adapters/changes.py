"""Change notification within one process: who is following which owner's changes, and the
wake-up a commit gives them (the `ChangeSignal` port). Standard library only.

A follower (an open event stream) subscribes for its owner, then reads the change feed itself
whenever it is woken: the notification carries no data, so a lost or coalesced one can delay a
follower but never make it miss or repeat a change. Across processes, `todo_adapters.sql.notify`
adds PostgreSQL LISTEN/NOTIFY on top of this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ChangeHub", "Subscription", "TooManyFollowers"]


class TooManyFollowers(Exception):
    """The owner already has `max_per_owner` followers in this process."""


class Subscription:
    """One follower: `await wait(seconds)` is True when woken (by a change of its owner, or by a
    `wake_all`), False when the seconds passed first."""

    __slots__ = ("_event", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class ChangeHub:
    """The followers of this process, by owner; `changed(owner)` wakes that owner's followers.

    Methods must be called from the event loop's thread (a commit's `changed` is).
    """

    crosses_processes = False
    """Whether commits in other processes wake followers here (then `check` says if they can)."""

    def __init__(self, *, max_per_owner: int = 5) -> None:
        self.max_per_owner = max_per_owner
        self._followers: dict[str, set[Subscription]] = {}
        self._everyone: set[Subscription] = set()

    def changed(self, owner: str) -> None:
        for follower in self._followers.get(owner, ()):
            follower.wake()
        for follower in self._everyone:
            follower.wake()

    def wake_all(self) -> None:
        """After notifications may have been lost (a dropped LISTEN connection): everyone looks."""
        for followers in (*self._followers.values(), self._everyone):
            for follower in followers:
                follower.wake()

    @contextmanager
    def follow_all(self) -> Iterator[Subscription]:
        """Woken by every owner's changes (the events worker: a commit means "look at the
        outbox"); not counted against any owner's limit."""
        subscription = Subscription("*")
        self._everyone.add(subscription)
        try:
            yield subscription
        finally:
            self._everyone.discard(subscription)

    @contextmanager
    def follow(self, owner: str) -> Iterator[Subscription]:
        """Raises TooManyFollowers when the owner is at `max_per_owner` here."""
        followers = self._followers.setdefault(owner, set())
        if len(followers) >= self.max_per_owner:
            raise TooManyFollowers(owner)
        subscription = Subscription(owner)
        followers.add(subscription)
        try:
            yield subscription
        finally:
            followers.discard(subscription)
            if not followers:
                del self._followers[owner]

    @property
    def followers(self) -> int:
        return sum(len(f) for f in self._followers.values())

    async def start(self) -> None:
        """Nothing to start within one process (PostgreSQL's hub listens here)."""

    async def check(self) -> None:
        """For readiness: within one process there is nothing that can be down."""

    async def stop(self) -> None:
        """Wakes every follower one last time; nothing else to close here."""
        self.wake_all()
