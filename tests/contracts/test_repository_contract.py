"""One contract for every unit of work: memory, SQLite and PostgreSQL must behave identically.

The `uow` fixture (tests/conftest.py) runs each test once per adapter.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from todo_domain import (
    InvalidQuery,
    NewTask,
    Priority,
    Recurrence,
    Sort,
    SortField,
    Status,
    Task,
    TaskNotFound,
    TaskPatch,
    TaskQuery,
    TaskService,
    TaskStore,
    ValidationFailed,
    VersionConflict,
)
from todo_domain.events import EventType
from todo_domain.model import Placement
from todo_domain.query import compare, sort_value
from todo_domain.testing import T0, ManualClock, SequentialIds, task_event
from todo_domain.values import Frequency


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(tick=timedelta(microseconds=7))


@pytest.fixture
def service(uow: TaskStore, clock: ManualClock) -> TaskService:
    return TaskService(uow, clock=clock, ids=SequentialIds())


def reference(tasks: list[Task], query: TaskQuery, now: datetime) -> list[Task]:
    """The list order and filter every adapter must reproduce, in plain Python."""
    field, descending = query.sort.field, query.sort.descending

    def order(a: Task, b: Task) -> int:
        return compare((sort_value(a, field), a.id), (sort_value(b, field), b.id), descending)

    return sorted((t for t in tasks if query.matches(t, now)), key=functools.cmp_to_key(order))


async def walk(service: TaskService, owner: str, query: TaskQuery) -> list[Task]:
    seen: list[Task] = []
    while True:
        page = await service.list(owner, query)
        seen.extend(page.items)
        if page.next_cursor is None:
            return seen
        query = TaskQuery(**{**_fields(query), "cursor": page.next_cursor})


def _fields(query: TaskQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


async def seed(service: TaskService, owner: str) -> list[Task]:
    """A varied set: ties on every sort key, missing due dates, mixed case and accents."""
    titles = ["Milk", "milk", "Bread 100%", "école", "École", "Straße", "zebra_1", "apple"]
    created = []
    for i, (title, priority, status) in enumerate(
        zip(itertools.cycle(titles), itertools.cycle(list(Priority)), itertools.cycle(list(Status)))
    ):
        if i == 24:
            break
        due = None if i % 3 == 0 else T0 + timedelta(days=(i % 5) - 2)
        draft = NewTask(
            title=title,
            description="Remember the 50% discount" if i % 4 == 0 else None,
            priority=priority,
            status=status,
            tags=[["home"], ["work", "home"], [], ["errands"]][i % 4],
            due_date=due,
        )
        created.append(await service.create(owner, draft))
    return [await service.get(owner, t.id) for t in created]


# -- storage basics --------------------------------------------------------------------------


async def test_values_at_the_edges_survive_a_round_trip(service: TaskService, alice: str) -> None:
    draft = NewTask(
        title="𝔘" * 255,
        description="d\n\t" + "é" * 9_997,
        priority=Priority.HIGH,
        tags=[f"tag{i}" for i in range(20)],
        due_date=datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        remind_at=datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        recurrence=Recurrence("monthly", 365),  # type: ignore[arg-type]
    )
    created = await service.create(alice, draft)
    loaded = await service.get(alice, created.id)
    for name in Task.__dataclass_fields__:
        assert getattr(loaded, name) == getattr(created, name), name
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)


async def test_a_returned_task_is_a_copy(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="original"))
    loaded = await service.get(alice, task.id)
    loaded.update(TaskPatch(title="changed"), T0)
    assert (await service.get(alice, task.id)).title == "original"


async def test_work_left_without_commit_is_rolled_back(uow: TaskStore, alice: str) -> None:
    service = TaskService(uow, clock=ManualClock())
    kept = await service.create(alice, NewTask(title="kept"))
    draft = Task.create(SequentialIds().new_id(), alice, NewTask(title="dropped"), T0, Placement(None, "Zz"))
    async with uow.begin() as tx:
        await tx.tasks.add(draft, task_event(EventType.TASK_CREATED))
        loaded = await tx.tasks.get(alice, kept.id, for_update=True)
        assert loaded is not None
        loaded.update(TaskPatch(title="uncommitted"), T0 + timedelta(seconds=1))
        await tx.tasks.save(loaded, expected_version=1, event=task_event())
    assert (await service.get(alice, kept.id)).title == "kept"
    with pytest.raises(TaskNotFound):
        await service.get(alice, draft.id)


async def test_an_exception_inside_a_transaction_rolls_it_back(uow: TaskStore, alice: str) -> None:
    draft = Task.create(SequentialIds().new_id(), alice, NewTask(title="dropped"), T0, Placement(None, "Zz"))
    with pytest.raises(RuntimeError):
        async with uow.begin() as tx:
            await tx.tasks.add(draft, task_event(EventType.TASK_CREATED))
            raise RuntimeError("boom")
    async with uow.begin() as tx:
        assert await tx.tasks.get(alice, draft.id) is None


async def test_another_owner_cannot_read_or_change_a_task(service: TaskService, alice: str, bob: str) -> None:
    task = await service.create(alice, NewTask(title="private"))
    with pytest.raises(TaskNotFound):
        await service.get(bob, task.id)
    with pytest.raises(TaskNotFound):
        await service.update(bob, task.id, TaskPatch(title="mine now"))
    with pytest.raises(TaskNotFound):
        await service.delete(bob, task.id)
    assert (await service.list(bob)).total == 0
    assert (await service.get(alice, task.id)).version == 1


async def test_a_deleted_task_is_invisible_everywhere(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="gone", tags=["home"]))
    await service.delete(alice, task.id)
    with pytest.raises(TaskNotFound):
        await service.get(alice, task.id)
    with pytest.raises(TaskNotFound):
        await service.delete(alice, task.id)
    page = await service.list(alice, TaskQuery(tags=("home",)))
    assert (page.total, page.items) == (0, ())
    assert list(await service.list_tags(alice)) == []


async def test_a_stale_compare_and_set_is_a_version_conflict(
    uow: TaskStore, service: TaskService, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="v1"))
    await service.update(alice, task.id, TaskPatch(title="v2"))
    task.update(TaskPatch(title="stale"), T0 + timedelta(days=1))
    async with uow.begin() as tx:
        with pytest.raises(VersionConflict):
            await tx.tasks.save(task, expected_version=1, event=task_event())
    assert (await service.get(alice, task.id)).title == "v2"


async def test_an_expected_version_that_is_not_current_is_refused(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="v1"))
    with pytest.raises(VersionConflict) as exc:
        await service.update(alice, task.id, TaskPatch(title="v2"), expected_version=7)
    assert (exc.value.expected, exc.value.current) == (7, 1)
    updated = await service.update(alice, task.id, TaskPatch(title="v2"), expected_version=1)
    assert updated.version == 2


async def test_concurrent_writers_of_one_version_have_exactly_one_winner(
    service: TaskService, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="race"))

    async def attempt(i: int) -> bool:
        try:
            await service.update(alice, task.id, TaskPatch(title=f"writer {i}"), expected_version=1)
        except VersionConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(results) == 1
    assert (await service.get(alice, task.id)).version == 2


async def test_concurrent_writers_without_a_version_lose_no_update(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="counter"))
    await asyncio.gather(*(service.update(alice, task.id, TaskPatch(title=f"edit {i}")) for i in range(20)))
    assert (await service.get(alice, task.id)).version == 21


# -- queries ---------------------------------------------------------------------------------

QUERIES = [
    TaskQuery(),
    TaskQuery(statuses=frozenset({Status.PENDING, Status.IN_PROGRESS})),
    TaskQuery(completed=True),
    TaskQuery(completed=False),
    TaskQuery(priorities=frozenset({Priority.HIGH})),
    TaskQuery(tags=("home",)),
    TaskQuery(tags=("home", "work")),
    TaskQuery(text="MILK"),
    TaskQuery(text="école"),
    TaskQuery(text="strasse"),
    TaskQuery(text="100%"),
    TaskQuery(text="_"),
    TaskQuery(text="50% disc"),
    TaskQuery(due_before=T0),
    TaskQuery(due_after=T0),
    TaskQuery(due_after=T0 - timedelta(days=1), due_before=T0 + timedelta(days=1)),
    TaskQuery(overdue=True),
    TaskQuery(overdue=False),
    TaskQuery(completed=False, tags=("home",), priorities=frozenset({Priority.LOW, Priority.MEDIUM})),
]


async def test_every_filter_matches_the_reference(service: TaskService, alice: str, bob: str) -> None:
    tasks = await seed(service, alice)
    await seed(service, bob)
    now = T0 + timedelta(hours=1)
    service._clock = ManualClock(now)  # overdue is relative to the service's now
    for query in QUERIES:
        page = await service.list(alice, TaskQuery(**{**_fields(query), "limit": 1000}))
        expected = reference(tasks, query, now)
        assert [t.id for t in page.items] == [t.id for t in expected], query
        assert page.total == len(expected), query


@pytest.mark.parametrize("field", list(SortField))
@pytest.mark.parametrize("descending", [False, True])
async def test_walking_pages_returns_every_task_once_in_order(
    service: TaskService, alice: str, field: SortField, descending: bool
) -> None:
    tasks = await seed(service, alice)
    query = TaskQuery(sort=Sort(field, descending), limit=5)
    walked = await walk(service, alice, query)
    assert [t.id for t in walked] == [t.id for t in reference(tasks, query, T0)]


async def test_cursor_pages_stay_stable_while_tasks_come_and_go(service: TaskService, alice: str) -> None:
    tasks = await seed(service, alice)
    query = TaskQuery(sort=Sort(SortField.DUE_DATE, descending=False), limit=4)
    seen: list[Task] = []
    deleted: set[object] = set()
    while True:
        page = await service.list(alice, query)
        seen.extend(page.items)
        unseen = [t for t in tasks if t not in seen and t.id not in deleted]
        if unseen:  # between pages: delete a not-yet-seen task and add a new one
            await service.delete(alice, unseen[-1].id)
            deleted.add(unseen[-1].id)
        await service.create(alice, NewTask(title="newcomer", due_date=T0))
        if page.next_cursor is None:
            break
        query = TaskQuery(sort=query.sort, limit=4, cursor=page.next_cursor)
    survivors = [t.id for t in tasks if t.id not in deleted]
    seen_ids = [t.id for t in seen]
    assert len(seen_ids) == len(set(seen_ids))
    assert set(survivors) <= set(seen_ids)


async def test_offset_paging_walks_the_same_order(service: TaskService, alice: str) -> None:
    tasks = await seed(service, alice)
    expected = [t.id for t in reference(tasks, TaskQuery(), T0)]
    got: list[object] = []
    offset = 0
    while True:
        page = await service.list(alice, TaskQuery(limit=7, offset=offset))
        got.extend(t.id for t in page.items)
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert got == expected


@pytest.mark.parametrize(
    "filters",
    [{}, {"completed": False}, {"priorities": frozenset({Priority.HIGH})}],
    ids=["unfiltered", "from-counters", "counted"],
)
async def test_every_page_reports_the_whole_total_even_past_the_end(
    service: TaskService, alice: str, filters: dict[str, Any]
) -> None:
    tasks = await seed(service, alice)
    expected = len(reference(tasks, TaskQuery(**filters), T0))
    query = TaskQuery(limit=5, **filters)
    while True:
        page = await service.list(alice, query)
        assert page.total == expected, query
        if page.next_cursor is None:
            break
        query = TaskQuery(**{**_fields(query), "cursor": page.next_cursor})
    beyond = await service.list(alice, TaskQuery(limit=5, offset=expected + 3, **filters))
    assert (beyond.items, beyond.total) == ((), expected)


async def test_a_cursor_is_only_valid_with_its_own_sort(service: TaskService, alice: str) -> None:
    await seed(service, alice)
    page = await service.list(alice, TaskQuery(limit=2))
    with pytest.raises(InvalidQuery):
        TaskQuery(sort=Sort(SortField.TITLE), cursor=page.next_cursor)


async def test_tag_counts_count_open_and_all_live_tasks(service: TaskService, alice: str, bob: str) -> None:
    a = await service.create(alice, NewTask(title="a", tags=["home", "work"]))
    await service.create(alice, NewTask(title="b", tags=["home"]))
    c = await service.create(alice, NewTask(title="c", tags=["home"]))
    await service.create(bob, NewTask(title="d", tags=["home"]))
    await service.set_completed(alice, a.id, True)
    await service.delete(alice, c.id)
    counts = [(c.name, c.open, c.total) for c in await service.list_tags(alice)]
    assert counts == [("home", 1, 2), ("work", 0, 1)]


async def test_changing_tags_updates_tag_filters(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="a", tags=["home", "work"]))
    await service.update(alice, task.id, TaskPatch(tags=["work", "errands"]))
    assert (await service.list(alice, TaskQuery(tags=("home",)))).total == 0
    assert (await service.list(alice, TaskQuery(tags=("errands", "work")))).total == 1


async def test_totals_follow_status_changes_and_deletes(service: TaskService, alice: str, bob: str) -> None:
    created = [await service.create(alice, NewTask(title=f"t{i}")) for i in range(8)]
    await service.create(bob, NewTask(title="other owner"))
    await service.set_completed(alice, created[0].id, True)
    await service.set_completed(alice, created[1].id, True)
    await service.update(alice, created[2].id, TaskPatch(status=Status.IN_PROGRESS))
    await service.delete(alice, created[1].id)  # a completed one
    await service.delete(alice, created[3].id)  # a pending one
    await service.set_completed(alice, created[0].id, None)  # reopened
    await service.replace(alice, created[4].id, NewTask(title="replaced", completed=True))
    queries = [
        TaskQuery(),
        TaskQuery(completed=True),
        TaskQuery(completed=False),
        *(TaskQuery(statuses=frozenset({s})) for s in Status),
        TaskQuery(statuses=frozenset({Status.PENDING, Status.COMPLETED}), completed=False),
    ]
    for query in queries:
        page = await service.list(alice, TaskQuery(**{**_fields(query), "limit": 1000}))
        assert page.total == len(page.items), query
    assert (await service.list(alice)).total == 6
    assert (await service.list(alice, TaskQuery(completed=True))).total == 1


# -- one typed surface whatever the store (SPEC §19) ----------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", 42, None, b"\x00" * 16, "x" * 10_000])
async def test_an_id_that_is_no_uuid_is_task_not_found_in_every_store(
    service: TaskService, alice: str, bad_id: Any
) -> None:
    await service.create(alice, NewTask(title="t"))
    calls = [
        service.get(alice, bad_id),
        service.update(alice, bad_id, TaskPatch(title="x")),
        service.replace(alice, bad_id, NewTask(title="x")),
        service.set_completed(alice, bad_id, True),
        service.delete(alice, bad_id),
        service.move(alice, bad_id, after=None),
    ]
    for call in calls:
        with pytest.raises(TaskNotFound):
            await call


async def test_a_task_id_as_text_works_in_every_store(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="t"))
    text: Any = str(task.id)
    assert (await service.get(alice, text)).id == task.id
    assert (await service.set_completed(alice, text.upper(), True)).completed
    child = await service.create(alice, NewTask(title="c", parent_id=text))
    assert child.parent_id == task.id
    assert (await service.list(alice, TaskQuery(parent_id=text))).items[0].id == child.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"statuses": {"bogus"}}, "statuses"),
        ({"statuses": "pending"}, "statuses"),
        ({"priorities": [7]}, "priorities"),
        ({"limit": "10"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2.5}, "offset"),
        ({"tags": "home"}, "tags"),
        ({"tags": 5}, "tags"),
        ({"tags": ["a\x00b"]}, "tags"),
        ({"text": 5}, "text"),
        ({"text": "x" * 201}, "text"),
        ({"completed": "yes"}, "completed"),
        ({"overdue": 1.0}, "overdue"),
        ({"top_level": None}, "top_level"),
        ({"parent_id": "nope"}, "parent_id"),
        ({"sort": "title"}, "sort"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": 12}, "cursor"),
        ({"due_before": "tomorrow"}, "due_before"),
    ],
)
def test_bad_query_values_are_invalid_query_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        TaskQuery(**fields)
    assert [e.field for e in refused.value.errors] == [field]


async def test_a_cursor_may_travel_as_text(service: TaskService, alice: str) -> None:
    for i in range(3):
        await service.create(alice, NewTask(title=f"t{i}"))
    first = await service.list(alice, TaskQuery(limit=2))
    assert first.next_cursor is not None
    token: Any = first.next_cursor.encode()  # e.g. passed through a service of yours as text
    rest = await service.list(alice, TaskQuery(limit=2, cursor=token))
    assert len(rest.items) == 1


async def test_expected_version_must_be_an_integer(service: TaskService, alice: str) -> None:
    task = await service.create(alice, NewTask(title="t"))
    with pytest.raises(ValidationFailed) as refused:
        await service.update(alice, task.id, TaskPatch(title="x"), expected_version="1")  # type: ignore[arg-type]
    assert refused.value.errors[0].field == "expected_version"


async def test_owner_errors_name_the_owner(service: TaskService) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await service.create("", NewTask(title="t"))
    assert refused.value.errors[0].field == "owner"


async def test_a_monthly_task_keeps_its_day_of_month_in_every_store(service: TaskService, alice: str) -> None:
    """Jan 31 → Feb 28 → Mar 31: the day the recurrence aims for is stored with the task."""
    due = datetime(2027, 1, 31, 9, tzinfo=UTC)
    draft = NewTask(title="rent", due_date=due, recurrence=Recurrence(Frequency.MONTHLY))
    made = (await service.create_with_key(alice, draft, "rent-key")).task
    days = []
    for _ in range(3):
        current = await service.get(alice, made.id)  # read back from the store each time
        assert current.due_date is not None
        days.append((await service.set_completed(alice, made.id, True)).due_date.day)  # type: ignore[union-attr]
    assert days == [28, 31, 30]
    replayed = await service.create_with_key(alice, draft, "rent-key")
    assert replayed.replayed
    assert replayed.task.recurrence is not None
    assert replayed.task.recurrence.anchor_day == 31
