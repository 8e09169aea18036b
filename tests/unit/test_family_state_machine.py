"""The family rules (SPEC §17) as a state machine: random creates under random parents, moves,
re-parenting, deletes and completions against a plain model of ordered child lists. After
every step the store holds exactly the model's trees, in the model's order: no cycle, no tree
deeper than five levels, no two siblings with one position."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from todo_adapters.memory import InMemoryStore
from todo_domain import InvalidTask, NewTask, Sort, SortField, Status, TaskPatch, TaskQuery, TaskService
from todo_domain.hierarchy import MAX_DEPTH
from todo_domain.testing import ManualClock, SequentialIds

OWNER = "alice"
BY_POSITION = Sort(SortField.POSITION, descending=False)


class FamilyMachine(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.service = TaskService(InMemoryStore(), clock=ManualClock(), ids=SequentialIds())
        self.parent: dict[UUID, UUID | None] = {}
        self.children: dict[UUID | None, list[UUID]] = {None: []}
        self.completed: set[UUID] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    # -- the model ------------------------------------------------------------------------------

    def depth(self, task: UUID | None) -> int:
        level = 0
        while task is not None:
            level, task = level + 1, self.parent[task]
        return level

    def subtree(self, task: UUID) -> list[UUID]:
        found, level = [], [task]
        while level:
            level = [c for t in level for c in self.children.get(t, [])]
            found += level
        return found

    def height(self, task: UUID) -> int:
        return 1 + max((self.depth(t) - self.depth(task) for t in self.subtree(task)), default=0)

    def may_go_under(self, task: UUID, parent: UUID | None) -> bool:
        if parent is None or parent == self.parent[task]:
            return True
        if parent == task or parent in self.subtree(task):
            return False
        return self.depth(parent) + self.height(task) <= MAX_DEPTH

    def pick(self, data: st.DataObject, label: str) -> UUID | None:
        """None, any live task, or the deepest one (so trees reach the depth limit often)."""
        live = sorted(self.parent, key=str)
        if not live:
            return None
        deepest = max(live, key=self.depth)
        return data.draw(st.none() | st.sampled_from(live) | st.just(deepest), label=label)

    # -- rules --------------------------------------------------------------------------------------

    @rule(target=ids, data=st.data())
    def create(self, data: st.DataObject) -> UUID:
        parent = self.pick(data, "parent")
        draft = NewTask(title="t", parent_id=parent)
        if self.depth(parent) >= MAX_DEPTH:
            with pytest.raises(InvalidTask):
                self.run(self.service.create(OWNER, draft))
            assert parent is not None  # only a parent can be too deep
            return parent
        task = self.run(self.service.create(OWNER, draft))
        self.parent[task.id] = parent
        self.children.setdefault(parent, []).append(task.id)
        self.children[task.id] = []
        return task.id  # type: ignore[no-any-return]

    @rule(
        task=ids,
        data=st.data(),
        slot=st.integers(0, 50),
        mode=st.sampled_from(["after", "before", "end"]),
        how=st.sampled_from(["move", "patch"]),
    )
    def move(self, task: UUID, data: st.DataObject, slot: int, mode: str, how: str) -> None:
        if task not in self.parent:
            return
        reparent = data.draw(st.booleans(), label="reparent")
        target = self.pick(data, "target") if reparent else self.parent[task]
        if not self.may_go_under(task, target):
            with pytest.raises(InvalidTask):
                if how == "move":
                    self.run(self.service.move(OWNER, task, parent_id=target))
                else:
                    self.run(self.service.update(OWNER, task, TaskPatch(parent_id=target)))
            return
        rest = [t for t in self.children.setdefault(target, []) if t != task]
        if how == "patch":  # a new parent by PATCH: last; the same parent: stays where it is
            gap = len(rest) if target != self.parent[task] else self.children[target].index(task)
            self.run(self.service.update(OWNER, task, TaskPatch(parent_id=target)))
        else:
            gap = slot % (len(rest) + 1)
            where: dict[str, Any] = {}
            if mode == "after":
                where["after"] = rest[gap - 1] if gap else None
            elif mode == "before":
                where["before"] = rest[gap] if gap < len(rest) else None
            else:
                gap = len(rest)
            self.run(self.service.move(OWNER, task, parent_id=target, **where))
        self.children[self.parent[task]].remove(task)
        self.children[target] = [*rest[:gap], task, *rest[gap:]]
        self.parent[task] = target

    @rule(task=ids)
    def delete(self, task: UUID) -> None:
        if task not in self.parent:
            return
        self.run(self.service.delete(OWNER, task))
        self.children[self.parent[task]].remove(task)
        for gone in [task, *self.subtree(task)]:
            del self.parent[gone]
            self.completed.discard(gone)

    @rule(task=ids, completed=st.booleans())
    def complete(self, task: UUID, completed: bool) -> None:
        if task not in self.parent:
            return
        self.run(self.service.set_completed(OWNER, task, completed))
        if completed:
            if task not in self.completed:
                self.completed.update([task, *self.subtree(task)])
        else:
            self.completed.discard(task)

    # -- what the store must hold ---------------------------------------------------------------------

    @invariant()
    def every_sibling_list_is_the_models(self) -> None:
        for parent in [None, *self.parent]:
            query = TaskQuery(top_level=True) if parent is None else TaskQuery(parent_id=parent)
            page = self.run(self.service.list(OWNER, TaskQuery(**{**_fields(query), "sort": BY_POSITION})))
            assert [t.id for t in page.items] == self.children.get(parent, [])
            keys = [t.position for t in page.items]
            assert len(set(keys)) == len(keys)
            for t in page.items:
                assert (t.status is Status.COMPLETED) == (t.id in self.completed)


def _fields(query: TaskQuery) -> dict[str, Any]:
    return {"parent_id": query.parent_id, "top_level": query.top_level, "limit": 1000}


FamilyMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
test_the_family_rules_agree_with_a_model_of_ordered_trees = FamilyMachine.TestCase
