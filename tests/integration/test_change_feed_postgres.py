"""On PostgreSQL (the server's path), a write that started earlier but commits later is still
seen by a client that polled in between (the owner's revision row serialises its writes)."""

from __future__ import annotations

import asyncio
import uuid

from todo_adapters.sql import SqlStore
from todo_domain import NewTask, TaskPatch, TaskService
from todo_domain.testing import task_event


async def test_a_late_commit_is_not_skipped_by_a_polling_client(postgres_url: str) -> None:
    uow = SqlStore.from_url(postgres_url)
    service = TaskService(uow)
    owner = f"sync-{uuid.uuid4().hex}"
    try:
        early = await service.create(owner, NewTask(title="early"))
        token = (await service.list_changes(owner)).next.encode()

        async with uow.begin() as slow:  # starts first, commits last
            task = await slow.tasks.get(owner, early.id, for_update=True)
            assert task is not None
            task.update(TaskPatch(title="slow edit"), task.updated_at)
            await slow.tasks.save(task, expected_version=1, event=task_event())
            fast = asyncio.create_task(service.create(owner, NewTask(title="fast create")))
            await asyncio.sleep(0.3)
            polled = await service.list_changes(owner, token)  # while both are in flight
            assert polled.changes == ()
            token = polled.next.encode()
            await slow.commit()
        await fast

        seen: list[str] = []
        while True:
            page = await service.list_changes(owner, token, limit=1)
            seen += [t.title for t in page.changes]
            token = page.next.encode()
            if not page.has_more:
                break
        assert seen == ["slow edit", "fast create"]
    finally:
        await uow.dispose()


async def test_concurrent_writers_in_separate_transactions_all_reach_the_feed(postgres_url: str) -> None:
    uow = SqlStore.from_url(postgres_url)
    service = TaskService(uow)
    owner = f"sync-{uuid.uuid4().hex}"
    try:
        token = (await service.list_changes(owner)).next.encode()
        created = await asyncio.gather(*(service.create(owner, NewTask(title=f"t{i}")) for i in range(30)))
        ids: set[object] = set()
        while True:
            page = await service.list_changes(owner, token, limit=7)
            ids |= {t.id for t in page.changes}
            token = page.next.encode()
            if not page.has_more:
                break
        assert ids == {t.id for t in created}
    finally:
        await uow.dispose()
