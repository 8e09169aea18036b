"""A client syncs at random points between random writes; after every sync its replica equals
the server's list (nothing missed, nothing resurrected, everything in its latest state)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule

from todo_adapters.memory import InMemoryStore
from todo_domain import NewTask, TaskNotFound, TaskPatch, TaskQuery, TaskService
from todo_domain.testing import ManualClock, SequentialIds

OWNER = "alice"


class SyncingClient(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.service = TaskService(InMemoryStore(), clock=ManualClock(), ids=SequentialIds())
        self.replica: dict[UUID, tuple[str, int]] = {}
        self.token: str | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @rule(target=ids, title=st.sampled_from(["a", "b", "c"]), other_owner=st.booleans())
    def create(self, title: str, other_owner: bool) -> UUID:
        task = self.run(self.service.create("bob" if other_owner else OWNER, NewTask(title=title)))
        return task.id  # type: ignore[no-any-return]

    @rule(task_id=ids, title=st.sampled_from(["x", "y"]))
    def edit(self, task_id: UUID, title: str) -> None:
        with contextlib.suppress(TaskNotFound):
            self.run(self.service.update(OWNER, task_id, TaskPatch(title=title)))

    @rule(task_id=ids)
    def toggle(self, task_id: UUID) -> None:
        with contextlib.suppress(TaskNotFound):
            self.run(self.service.set_completed(OWNER, task_id, None))

    @rule(task_id=ids)
    def delete(self, task_id: UUID) -> None:
        with contextlib.suppress(TaskNotFound):
            self.run(self.service.delete(OWNER, task_id))

    @rule(limit=st.integers(1, 4))
    def sync(self, limit: int) -> None:
        while True:
            page = self.run(self.service.list_changes(OWNER, self.token, limit))
            for task in page.changes:
                self.replica[task.id] = (task.title, task.version)
            for task_id in page.deleted:
                self.replica.pop(task_id, None)
            self.token = page.next.encode()
            if not page.has_more:
                break
        server = self.run(self.service.list(OWNER, TaskQuery(limit=1000)))
        assert self.replica == {t.id: (t.title, t.version) for t in server.items}


SyncingClient.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_a_syncing_client_always_converges = SyncingClient.TestCase
