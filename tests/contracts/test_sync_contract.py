"""Idempotent creation and the change feed, on every adapter (SPEC §6.7, §6.8)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest

from todo_domain import (
    ChangeTokenExpired,
    IdempotencyKeyReused,
    InvalidQuery,
    NewTask,
    Task,
    TaskPatch,
    TaskService,
    TaskStore,
    ValidationFailed,
)
from todo_domain.events import EventType
from todo_domain.model import Placement
from todo_domain.sync import ChangeToken, fingerprint
from todo_domain.testing import T0, ManualClock, SequentialIds, task_event


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(tick=timedelta(milliseconds=1))


@pytest.fixture
def service(uow: TaskStore, clock: ManualClock) -> TaskService:
    return TaskService(uow, clock=clock, ids=SequentialIds())


async def sync_all(
    service: TaskService, owner: str, since: str | None, limit: int = 3
) -> tuple[dict[object, object], set[object], str]:
    """Follows `next` until `has_more` is false; returns live tasks by id, deleted ids, token."""
    live: dict[object, object] = {}
    deleted: set[object] = set()
    while True:
        page = await service.list_changes(owner, since, limit)
        for task in page.changes:
            live[task.id] = task
            deleted.discard(task.id)
        for task_id in page.deleted:
            live.pop(task_id, None)
            deleted.add(task_id)
        since = page.next.encode()
        if not page.has_more:
            return live, deleted, since


# -- idempotency ----------------------------------------------------------------------------------


async def test_the_same_key_and_draft_replays_the_original_task(service: TaskService, alice: str) -> None:
    first = await service.create_with_key(alice, NewTask(title="once"), "key-1")
    await service.update(alice, first.task.id, TaskPatch(title="changed later"))
    again = await service.create_with_key(alice, NewTask(title=" once "), "key-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.task.id == first.task.id
    assert (again.task.title, again.task.version) == ("once", 1)
    assert (await service.list(alice)).total == 1


async def test_the_same_key_with_another_draft_is_refused(service: TaskService, alice: str) -> None:
    await service.create_with_key(alice, NewTask(title="once"), "key-1")
    with pytest.raises(IdempotencyKeyReused):
        await service.create_with_key(alice, NewTask(title="twice"), "key-1")


async def test_keys_are_per_owner(service: TaskService, alice: str, bob: str) -> None:
    mine = await service.create_with_key(alice, NewTask(title="a"), "shared")
    theirs = await service.create_with_key(bob, NewTask(title="b"), "shared")
    assert not theirs.replayed
    assert theirs.task.id != mine.task.id


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "ünïcode", "tab\t"])
async def test_bad_keys_are_refused(service: TaskService, alice: str, key: str) -> None:
    with pytest.raises(ValidationFailed):
        await service.create_with_key(alice, NewTask(title="a"), key)


async def test_concurrent_requests_with_one_key_make_one_task(service: TaskService, alice: str) -> None:
    """Every store waits for the key's first holder and replays its task: none is refused."""
    results = await asyncio.gather(
        *(service.create_with_key(alice, NewTask(title="race"), "race-key") for _ in range(20))
    )
    assert (await service.list(alice)).total == 1
    assert len({r.task.id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19


@pytest.mark.parametrize("outcome", ["commits", "rolls back"])
async def test_a_key_in_flight_waits_for_its_holder(uow: TaskStore, alice: str, outcome: str) -> None:
    """A slow first transaction holds the key; a second request with it waits, then replays
    the committed task, or makes its own if the first rolled back (as SQL's unique index does)."""
    service = TaskService(uow, ids=SequentialIds())
    draft = NewTask(title="slow")
    holder = Task.create(uuid.uuid4(), alice, draft, T0, Placement(None, "a0"))
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_first() -> None:
        with contextlib.suppress(RuntimeError):
            async with uow.begin() as tx:
                await tx.tasks.add(holder, task_event(EventType.TASK_CREATED))
                await tx.keys.remember(alice, "slow-key", fingerprint(draft), holder)
                holding.set()
                await release.wait()
                if outcome == "rolls back":
                    raise RuntimeError("rolled back")
                await tx.commit()

    first = asyncio.create_task(slow_first())
    await holding.wait()
    second = asyncio.create_task(service.create_with_key(alice, draft, "slow-key"))
    await asyncio.sleep(0.05)
    assert not second.done()  # waiting on the key, neither refused nor duplicated
    release.set()
    await first
    created = await asyncio.wait_for(second, 10)
    if outcome == "commits":
        assert created.replayed
        assert created.task.id == holder.id
    else:
        assert not created.replayed
        assert created.task.id != holder.id
    assert (await service.list(alice)).total == 1


async def test_a_key_is_stored_with_its_task_or_not_at_all(uow: TaskStore, alice: str) -> None:
    task = Task.create(SequentialIds().new_id(), alice, NewTask(title="t"), T0, Placement(None, "Zz"))
    with pytest.raises(RuntimeError):
        async with uow.begin() as tx:
            await tx.tasks.add(task, task_event(EventType.TASK_CREATED))
            await tx.keys.remember(alice, "k", "fingerprint", task)
            raise RuntimeError("crash before commit")
    async with uow.begin() as tx:
        assert await tx.keys.find(alice, "k") is None
        assert await tx.tasks.get(alice, task.id) is None


# -- change feed ------------------------------------------------------------------------------------


async def test_a_full_sync_then_increments_see_every_change_once(service: TaskService, alice: str) -> None:
    a = await service.create(alice, NewTask(title="a"))
    b = await service.create(alice, NewTask(title="b"))
    live, _deleted, token = await sync_all(service, alice, None)
    assert set(live) == {a.id, b.id}
    c = await service.create(alice, NewTask(title="c"))
    await service.update(alice, a.id, TaskPatch(title="a2"))
    await service.update(alice, a.id, TaskPatch(title="a3"))
    await service.delete(alice, b.id)
    page = await service.list_changes(alice, token)
    assert [t.title for t in page.changes] == ["c", "a3"]
    assert page.deleted == (b.id,)
    assert not page.has_more
    empty = await service.list_changes(alice, page.next.encode())
    assert (empty.changes, empty.deleted) == ((), ())
    assert c.id in {t.id for t in page.changes}


async def test_a_full_sync_omits_tombstones(service: TaskService, alice: str) -> None:
    gone = await service.create(alice, NewTask(title="gone"))
    await service.delete(alice, gone.id)
    page = await service.list_changes(alice)
    assert (page.changes, page.deleted) == ((), ())


async def test_another_owners_writes_never_appear(service: TaskService, alice: str, bob: str) -> None:
    _, _, token = await sync_all(service, alice, None)
    await service.create(bob, NewTask(title="not yours"))
    assert (await service.list_changes(alice, token)).changes == ()


async def test_a_token_older_than_the_retention_is_expired(
    service: TaskService, clock: ManualClock, alice: str
) -> None:
    await service.create(alice, NewTask(title="a"))
    _, _, token = await sync_all(service, alice, None)
    clock.advance(timedelta(days=31))
    with pytest.raises(ChangeTokenExpired):
        await service.list_changes(alice, token)


async def test_a_token_ahead_of_the_store_is_expired_not_silently_caught_up(
    service: TaskService, clock: ManualClock, alice: str, bob: str
) -> None:
    """A token from another database (say, taken before a restore) would otherwise wait, silent,
    until this store's revisions pass it; every live reader is told to sync in full instead."""
    await service.create(alice, NewTask(title="a"))
    current = (await service.list_changes(alice)).next
    ahead = ChangeToken(current.revision + 5, clock.current).encode()
    with pytest.raises(ChangeTokenExpired, match="ahead"):
        await service.list_changes(alice, ahead)
    with pytest.raises(ChangeTokenExpired):
        await service.changes_after(alice, ChangeToken.decode(ahead))
    with pytest.raises(ChangeTokenExpired):  # an owner who never wrote is at revision 0
        await service.list_changes(bob, ahead)
    assert (await service.list_changes(alice, current.encode())).changes == ()  # the current one is fine


async def test_purging_tombstones_expires_tokens_that_could_miss_them(
    service: TaskService, clock: ManualClock, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="a"))
    old_token = (await service.list_changes(alice)).next
    await service.delete(alice, task.id)
    clock.advance(timedelta(days=31))
    purged = await service.purge()
    assert purged.tombstones >= 1
    fresh = ChangeToken(old_token.revision, clock.current)
    with pytest.raises(ChangeTokenExpired):
        await service.list_changes(alice, fresh.encode())
    assert (await service.list_changes(alice)).changes == ()


async def test_purge_drops_idempotency_keys_after_their_retention(
    service: TaskService, clock: ManualClock, alice: str
) -> None:
    await service.create_with_key(alice, NewTask(title="a"), "old-key")
    clock.advance(timedelta(hours=25))
    assert (await service.purge()).idempotency_keys >= 1
    assert not (await service.create_with_key(alice, NewTask(title="b"), "old-key")).replayed


@pytest.mark.parametrize("token", ["garbage", "djI6MTox", "!!!"])
async def test_a_malformed_token_is_invalid(service: TaskService, alice: str, token: str) -> None:
    with pytest.raises(InvalidQuery):
        await service.list_changes(alice, token)


async def test_pollers_racing_concurrent_creators_receive_every_create(
    service: TaskService, alice: str
) -> None:
    """Every page is one snapshot: a poll that lands between two commits never hands out a
    token past a write it did not show (on memory the calls interleave at each round trip)."""
    token = (await service.list_changes(alice)).next.encode()
    created: list[Task] = []
    seen: set[object] = set()
    writing = True

    async def creator(n: int) -> None:
        for i in range(15):
            created.append(await service.create(alice, NewTask(title=f"c{n}-{i}")))

    async def poller() -> None:
        nonlocal token
        while True:
            still_writing = writing
            page = await service.list_changes(alice, token, 1000)
            seen.update(t.id for t in page.changes)
            token = page.next.encode()
            if not still_writing and not page.has_more:
                return

    polling = asyncio.create_task(poller())
    await asyncio.gather(*(creator(n) for n in range(4)))
    writing = False
    await polling
    assert {t.id for t in created} <= seen
    assert len(created) == 60
