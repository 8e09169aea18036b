"""A hypothesis state machine drives TaskService (in-memory) against a plain dict model.

Every query result — filters, sorts, cursor paging, totals, tag counts — is checked against
what the model says, for two owners who must never see each other's tasks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from todo_adapters.memory import InMemoryStore
from todo_domain import NewTask, Sort, SortField, Status, TaskNotFound, TaskPatch, TaskQuery, TaskService
from todo_domain.testing import ManualClock, SequentialIds
from todo_testing.strategies import moments

OWNERS = ("alice", "bob")
PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2}
WORDS = ["Milk", "milk run", "Bread", "ÉCOLE", "école", "Straße", "strasse", "zebra"]


@dataclass
class Model:
    owner: str
    title: str
    priority: str
    tags: list[str]
    due_date: datetime | None
    created_at: datetime
    status: str = "pending"
    version: int = 1
    updated_at: datetime | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def expected_order(rows: list[tuple[UUID, Model]], sort: Sort) -> list[UUID]:
    def value(m: Model) -> Any:
        return {
            SortField.CREATED_AT: m.created_at,
            SortField.UPDATED_AT: m.updated_at,
            SortField.DUE_DATE: m.due_date,
            SortField.PRIORITY: PRIORITY_RANK[m.priority],
            SortField.TITLE: m.title.casefold(),
            # every task here is top level and new ones go last: manual order is creation order
            SortField.POSITION: m.created_at,
        }[sort.field]

    present = sorted(((value(m), i) for i, m in rows if value(m) is not None), reverse=sort.descending)
    absent = sorted((i for i, m in rows if value(m) is None), reverse=sort.descending)
    return [i for _, i in present] + absent


class TaskServiceMachine(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.service = TaskService(InMemoryStore(), clock=self.clock, ids=SequentialIds())
        self.model: dict[UUID, Model] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    def live(self, owner: str) -> list[tuple[UUID, Model]]:
        return [(i, m) for i, m in self.model.items() if m.owner == owner and not m.deleted]

    def touch(self, m: Model) -> None:
        m.version += 1
        assert m.updated_at is not None
        now = self.clock.current
        m.updated_at = now if now > m.updated_at else m.updated_at + timedelta(microseconds=1)

    @rule(
        target=ids,
        owner=st.sampled_from(OWNERS),
        title=st.sampled_from(WORDS),
        priority=st.sampled_from(list(PRIORITY_RANK)),
        tags=st.lists(st.sampled_from(["home", "Work", "x"]), max_size=3),
        due=st.none() | moments,
        advance=st.sampled_from([0, 1, 3600]),
    )
    def create(
        self, owner: str, title: str, priority: str, tags: list[str], due: datetime | None, advance: int
    ) -> UUID:
        self.clock.advance(timedelta(seconds=advance))
        draft = NewTask(title=title, priority=priority, tags=tags, due_date=due)
        task = self.run(self.service.create(owner, draft))
        now = self.clock.current
        self.model[task.id] = Model(
            owner, title, priority, sorted({t.lower() for t in tags}), due, now, updated_at=now
        )
        return task.id  # type: ignore[no-any-return]

    @rule(task_id=ids, completed=st.none() | st.booleans())
    def set_completed(self, task_id: UUID, completed: bool | None) -> None:
        m = self.model[task_id]
        if m.deleted:
            with pytest.raises(TaskNotFound):
                self.run(self.service.set_completed(m.owner, task_id, completed))
            return
        self.clock.advance(timedelta(seconds=1))
        task = self.run(self.service.set_completed(m.owner, task_id, completed))
        target = (m.status != "completed") if completed is None else completed
        new_status = "completed" if target else ("pending" if m.status == "completed" else m.status)
        if new_status != m.status:
            m.status = new_status
            self.touch(m)
        assert (task.status, task.version) == (m.status, m.version)

    @rule(task_id=ids, title=st.sampled_from(WORDS), priority=st.sampled_from(list(PRIORITY_RANK)))
    def edit(self, task_id: UUID, title: str, priority: str) -> None:
        m = self.model[task_id]
        if m.deleted:
            return
        self.clock.advance(timedelta(seconds=1))
        patch = TaskPatch(title=title, priority=priority)
        task = self.run(self.service.update(m.owner, task_id, patch))
        if (m.title, m.priority) != (title, priority):
            m.title, m.priority = title, priority
            self.touch(m)
        assert (task.title, task.priority, task.version) == (m.title, m.priority, m.version)

    @rule(task_id=consumes(ids))
    def delete(self, task_id: UUID) -> None:
        m = self.model[task_id]
        if m.deleted:
            return
        self.run(self.service.delete(m.owner, task_id))
        m.deleted = True
        with pytest.raises(TaskNotFound):
            self.run(self.service.get(m.owner, task_id))

    @rule(task_id=ids)
    def the_other_owner_cannot_see_it(self, task_id: UUID) -> None:
        m = self.model[task_id]
        other = OWNERS[1 - OWNERS.index(m.owner)]
        with pytest.raises(TaskNotFound):
            self.run(self.service.get(other, task_id))

    @rule(
        owner=st.sampled_from(OWNERS),
        statuses=st.sets(st.sampled_from(list(Status)), max_size=2),
        priorities=st.sets(st.sampled_from(list(PRIORITY_RANK)), max_size=2),
        tag=st.none() | st.sampled_from(["home", "work"]),
        text=st.none() | st.sampled_from(["milk", "É", "SS", "z"]),
        sort_field=st.sampled_from(list(SortField)),
        descending=st.booleans(),
        limit=st.integers(1, 4),
    )
    def query(
        self,
        owner: str,
        statuses: set[Status],
        priorities: set[str],
        tag: str | None,
        text: str | None,
        sort_field: SortField,
        descending: bool,
        limit: int,
    ) -> None:
        sort = Sort(sort_field, descending)
        base = {
            "statuses": frozenset(statuses),
            "priorities": frozenset(priorities),
            "tags": (tag,) if tag else (),
            "text": text,
            "sort": sort,
            "limit": limit,
        }
        rows = [
            (i, m)
            for i, m in self.live(owner)
            if (not statuses or m.status in statuses)
            and (not priorities or m.priority in priorities)
            and (tag is None or tag in m.tags)
            and (text is None or text.casefold() in m.title.casefold())
        ]
        expected = expected_order(rows, sort)
        seen: list[UUID] = []
        cursor = None
        while True:
            page = self.run(self.service.list(owner, TaskQuery(**base, cursor=cursor)))  # type: ignore[arg-type]
            assert page.total == len(expected)
            assert len(page.items) <= limit
            seen.extend(t.id for t in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected

    @invariant()
    def tag_counts_match_the_model(self) -> None:
        for owner in OWNERS:
            counts = self.run(self.service.list_tags(owner))
            expected: dict[str, list[int]] = {}
            for _, m in self.live(owner):
                for t in m.tags:
                    e = expected.setdefault(t, [0, 0])
                    e[0] += m.status != "completed"
                    e[1] += 1
            assert [(c.name, c.open, c.total) for c in counts] == [
                (name, o, t) for name, (o, t) in sorted(expected.items())
            ]


TaskServiceMachine.TestCase.settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
test_the_service_agrees_with_a_dict_model = TaskServiceMachine.TestCase
