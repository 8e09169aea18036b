"""The entity's rules (SPEC §3.2) and invariants (§3.1), as examples and as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from todo_domain import InvalidTask, NewTask, Recurrence, Status, Task, TaskPatch
from todo_domain.values import Frequency
from todo_testing.strategies import advances, moments, new_tasks, patches, recurrences

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def make(draft: NewTask | None = None, now: datetime = NOW) -> Task:
    return Task.create(uuid4(), "alice", draft or NewTask(title="Buy milk"), now)


def assert_invariants(task: Task) -> None:
    assert task.completed == (task.status is Status.COMPLETED) == (task.completed_at is not None)
    assert task.created_at <= task.updated_at
    assert task.version >= 1
    for moment in (task.created_at, task.updated_at, task.due_date, task.remind_at, task.completed_at):
        assert moment is None or moment.utcoffset() == timedelta(0)
    assert task.recurrence is None or task.due_date is not None


# -- examples --------------------------------------------------------------------------------


def test_a_new_task_starts_pending_at_version_1_with_medium_priority() -> None:
    task = make()
    assert (task.status, task.priority, task.version, task.completed) == ("pending", "medium", 1, False)
    assert task.created_at == task.updated_at == NOW


def test_completing_sets_completed_at_and_bumps_the_version() -> None:
    task = make()
    task.complete(NOW + timedelta(hours=1))
    assert task.completed
    assert task.completed_at == NOW + timedelta(hours=1)
    assert task.version == 2
    assert task.updated_at == NOW + timedelta(hours=1)


def test_completing_a_completed_task_changes_nothing() -> None:
    task = make()
    task.complete(NOW)
    before = (task.version, task.updated_at, task.completed_at)
    task.complete(NOW + timedelta(hours=1))
    assert (task.version, task.updated_at, task.completed_at) == before


def test_reopening_a_pending_task_changes_nothing() -> None:
    task = make()
    task.reopen(NOW + timedelta(hours=1))
    assert (task.version, task.status) == (1, "pending")


def test_reopening_clears_completed_at() -> None:
    task = make()
    task.complete(NOW)
    task.reopen(NOW + timedelta(minutes=1))
    assert (task.status, task.completed_at, task.version) == ("pending", None, 3)


def test_reopening_an_in_progress_task_leaves_it_in_progress() -> None:
    task = make()
    task.start(NOW)
    task.reopen(NOW)
    assert task.status == "in_progress"


def test_toggle_completes_then_reopens() -> None:
    task = make()
    task.toggle(NOW)
    assert task.completed
    task.toggle(NOW)
    assert task.status == "pending"


def test_an_edit_that_changes_nothing_changes_nothing() -> None:
    task = make(NewTask(title="Buy milk", tags=["home"]))
    task.update(TaskPatch(title=" Buy milk ", tags=["HOME"]), NOW + timedelta(hours=1))
    assert (task.version, task.updated_at) == (1, NOW)


def test_a_replacement_resets_omitted_fields_to_defaults() -> None:
    task = make(NewTask(title="a", description="d", priority="high", tags=["x"]))
    task.replace(NewTask(title="b"), NOW)
    assert (task.title, task.description, task.priority, task.tags) == ("b", None, "medium", ())
    assert task.version == 2


def test_updated_at_moves_forward_even_when_the_clock_goes_back() -> None:
    task = make()
    task.update(TaskPatch(title="later"), NOW - timedelta(hours=1))
    assert task.updated_at > NOW


def test_completing_a_recurring_task_moves_its_due_date() -> None:
    due = NOW + timedelta(days=2)
    task = make(NewTask(title="water plants", due_date=due, recurrence=Recurrence(Frequency.WEEKLY)))
    task.complete(NOW)
    assert task.due_date == due + timedelta(weeks=1)
    assert (task.status, task.completed_at, task.version) == ("pending", None, 2)


def test_an_overdue_recurring_task_catches_up_past_now() -> None:
    due = NOW - timedelta(days=10, hours=1)
    task = make(NewTask(title="t", due_date=due, recurrence=Recurrence(Frequency.DAILY, 3)))
    task.complete(NOW)
    assert task.due_date == due + timedelta(days=12)


def test_the_reminder_moves_by_the_same_amount_as_the_due_date() -> None:
    due = NOW + timedelta(days=1)
    draft = NewTask(
        title="t", due_date=due, remind_at=due - timedelta(hours=2), recurrence=Recurrence(Frequency.DAILY)
    )
    task = make(draft)
    task.complete(NOW)
    assert task.remind_at == due + timedelta(days=1) - timedelta(hours=2)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, tzinfo=UTC), datetime(2028, 2, 29, 9, tzinfo=UTC)),
        (datetime(2026, 3, 31, 9, tzinfo=UTC), datetime(2026, 4, 30, 9, tzinfo=UTC)),
    ],
)
def test_monthly_steps_clamp_to_the_last_day_of_the_month(due: datetime, expected: datetime) -> None:
    task = make(NewTask(title="rent", due_date=due, recurrence=Recurrence(Frequency.MONTHLY)), now=due)
    task.complete(due - timedelta(days=1))
    assert task.due_date == expected


def test_a_yearly_step_from_february_29_lands_on_february_28() -> None:
    due = datetime(2028, 2, 29, tzinfo=UTC)
    task = make(NewTask(title="t", due_date=due, recurrence=Recurrence(Frequency.YEARLY)))
    task.complete(due - timedelta(days=1))
    assert task.due_date == datetime(2029, 2, 28, tzinfo=UTC)


def test_reopening_never_moves_a_recurring_task_back() -> None:
    due = NOW + timedelta(days=1)
    task = make(NewTask(title="t", due_date=due, recurrence=Recurrence(Frequency.DAILY)))
    task.complete(NOW)
    task.reopen(NOW)
    assert task.due_date == due + timedelta(days=1)


def test_a_recurrence_that_would_pass_year_9999_is_refused_and_changes_nothing() -> None:
    due = datetime(9999, 12, 31, tzinfo=UTC)
    task = make(NewTask(title="t", due_date=due, recurrence=Recurrence(Frequency.YEARLY)))
    with pytest.raises(InvalidTask):
        task.complete(due)
    assert (task.due_date, task.version) == (due, 1)


def test_clearing_the_due_date_of_a_recurring_task_is_refused() -> None:
    task = make(NewTask(title="t", due_date=NOW, recurrence=Recurrence(Frequency.DAILY)))
    with pytest.raises(InvalidTask):
        task.update(TaskPatch(due_date=None), NOW)
    assert task.due_date == NOW


def test_deleting_sets_a_tombstone_and_bumps_the_version() -> None:
    task = make()
    task.delete(NOW)
    assert task.deleted
    assert task.version == 2


def test_tasks_are_equal_by_identity() -> None:
    task = make()
    twin = Task.create(task.id, "alice", NewTask(title="other"), NOW)
    assert task == twin
    assert hash(task) == hash(twin)
    assert task != make()


# -- properties ------------------------------------------------------------------------------


@given(recurrences, moments, moments)
def test_roll_forward_lands_strictly_after_now_on_the_smallest_grid_step(
    recurrence: Recurrence, due: datetime, now: datetime
) -> None:
    """Invariant: next = due + k·interval with k ≥ 1 the smallest such that next > now."""
    try:
        result = recurrence.next_after(due, now)
    except OverflowError:
        return  # past year 9999: the entity turns this into InvalidTask
    assert result > now
    k = grid_steps(recurrence, due, result)
    assert k >= 1, "result is not on the interval grid"
    assert recurrence.step(due, k) == result
    assert k == 1 or recurrence.step(due, k - 1) <= now


def grid_steps(recurrence: Recurrence, start: datetime, end: datetime) -> int:
    """How many intervals separate start and end (computed directly, not by stepping)."""
    if recurrence.frequency in (Frequency.DAILY, Frequency.WEEKLY):
        days = 7 if recurrence.frequency is Frequency.WEEKLY else 1
        steps, rest = divmod(end - start, timedelta(days=days * recurrence.interval))
        return steps if not rest else -1
    months = (end.year - start.year) * 12 + end.month - start.month
    per_step = recurrence.interval * (12 if recurrence.frequency is Frequency.YEARLY else 1)
    return months // per_step if months % per_step == 0 else -1


Operation = tuple[str, object, timedelta]
operations = st.lists(
    st.tuples(
        st.sampled_from(["complete", "reopen", "start", "toggle", "update", "replace", "delete"]),
        patches() | new_tasks(),
        advances,
    ),
    max_size=12,
)


@given(new_tasks(), operations)
def test_invariants_hold_after_any_sequence_of_operations(draft: NewTask, ops: list[Operation]) -> None:
    """Invariant: completed ⇔ status ⇔ completed_at, created ≤ updated, UTC everywhere,
    recurrence ⇒ due date; version rises by exactly one on a change and not at all otherwise."""
    now = NOW
    task = make(draft, now)
    assert_invariants(task)
    for name, arg, advance in ops:
        now += advance
        before = (task.version, task.updated_at, task.status, task.due_date, task.title)
        try:
            if name == "update" and isinstance(arg, TaskPatch):
                task.update(arg, now)
            elif name == "replace" and isinstance(arg, NewTask):
                task.replace(arg, now)
            elif name in ("complete", "reopen", "start", "toggle", "delete"):
                getattr(task, name)(now)
        except InvalidTask:
            assert (task.version, task.updated_at, task.status, task.due_date, task.title) == before
            continue
        assert_invariants(task)
        if task.version != before[0]:
            assert task.version == before[0] + 1
            assert task.updated_at > before[1]
        else:
            assert (task.updated_at, task.status, task.due_date, task.title) == before[1:]


@given(new_tasks(), advances)
def test_complete_and_reopen_are_idempotent(draft: NewTask, advance: timedelta) -> None:
    """Invariant: a second complete() (non-recurring) or reopen() changes nothing."""
    task = make(draft)
    if task.recurrence is None:
        task.complete(NOW + advance)
        version = task.version
        task.complete(NOW + 2 * advance)
        assert task.version == version
    task.reopen(NOW + advance)
    version = task.version
    task.reopen(NOW + 2 * advance)
    assert task.version == version


@given(new_tasks(), patches())
def test_an_edit_applied_twice_changes_things_only_once(draft: NewTask, patch: TaskPatch) -> None:
    """Invariant: applying the same non-status edit again is a no-op (no version bump)."""
    task = make(draft)
    fields_only = TaskPatch(**patch.given())
    try:
        task.update(fields_only, NOW)
    except InvalidTask:
        return
    version = task.version
    task.update(fields_only, NOW + timedelta(seconds=1))
    assert task.version == version


# -- the day of month a monthly recurrence aims for ----------------------------------------------


def _monthly(due: datetime, **extra: object) -> Task:
    draft = NewTask(title="rent", due_date=due, recurrence=Recurrence(Frequency.MONTHLY), **extra)  # type: ignore[arg-type]
    return Task.create(uuid4(), "alice", draft, due - timedelta(days=1))


def _completions(task: Task, count: int) -> list[int]:
    days = []
    for _ in range(count):
        assert task.due_date is not None
        task.complete(task.due_date)  # on time: the next occurrence is one month on
        assert task.due_date is not None
        days.append(task.due_date.day)
    return days


def test_a_month_end_task_comes_back_to_its_day_after_a_short_month() -> None:
    task = _monthly(datetime(2027, 1, 31, 9, tzinfo=UTC))
    assert _completions(task, 5) == [28, 31, 30, 31, 30]


def test_the_30th_stays_the_30th_after_february() -> None:
    task = _monthly(datetime(2027, 1, 30, 9, tzinfo=UTC))
    assert _completions(task, 3) == [28, 30, 30]


def test_a_new_due_date_moves_the_anchor_and_the_same_rule_keeps_it() -> None:
    task = _monthly(datetime(2027, 1, 31, 9, tzinfo=UTC))
    _completions(task, 1)  # Feb 28, still aiming for the 31st
    task.replace(
        NewTask(
            title="rent",
            due_date=task.due_date,
            recurrence=Recurrence(Frequency.MONTHLY),
        ),
        datetime(2027, 2, 2, tzinfo=UTC),
    )  # a PUT that resends what it read keeps the aim
    assert _completions(task, 1) == [31]
    task.update(TaskPatch(due_date=datetime(2027, 4, 15, 9, tzinfo=UTC)), datetime(2027, 3, 2, tzinfo=UTC))
    assert _completions(task, 2) == [15, 15]


def test_the_anchor_is_the_local_day_in_the_tasks_zone() -> None:
    from todo_domain import TimeZone

    # 23:30 on Jan 31 in New York is Feb 1 in UTC: the anchor is the 31st, New York's day
    task = _monthly(datetime(2027, 2, 1, 4, 30, tzinfo=UTC), time_zone=TimeZone("America/New_York"))
    assert task.recurrence is not None
    assert task.recurrence.anchor_day == 31


def test_an_anchor_is_not_part_of_a_recurrences_identity() -> None:
    assert Recurrence(Frequency.MONTHLY, 1, 31) == Recurrence(Frequency.MONTHLY, 1)
    with pytest.raises(InvalidTask):
        Recurrence(Frequency.MONTHLY, 1, 32)
