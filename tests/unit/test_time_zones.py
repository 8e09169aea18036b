"""Recurrence on a time zone's wall clock (SPEC §17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todo_domain import Frequency, InvalidTask, NewTask, Recurrence, Task, TaskPatch, TimeZone

ZONES = ["America/New_York", "Europe/Paris", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham", "UTC"]


def test_weekly_nine_oclock_in_new_york_stays_nine_across_the_march_change() -> None:
    zone = TimeZone("America/New_York")
    due = datetime(2030, 3, 4, 14, tzinfo=UTC)  # Monday 09:00 EST
    following = Recurrence(Frequency.WEEKLY).next_after(due, due, zone)
    assert following == datetime(2030, 3, 11, 13, tzinfo=UTC)  # Monday 09:00 EDT
    assert following.astimezone(ZoneInfo("America/New_York")).hour == 9
    assert Recurrence(Frequency.WEEKLY).next_after(due, due) == datetime(
        2030, 3, 11, 14, tzinfo=UTC
    )  # UTC: 10:00


def test_month_end_clamps_on_the_local_calendar() -> None:
    zone = TimeZone("Asia/Tokyo")  # Jan 31 09:00 local is Jan 31 00:00Z
    due = datetime(2030, 1, 31, 0, tzinfo=UTC)
    following = Recurrence(Frequency.MONTHLY).next_after(due, due, zone)
    assert following.astimezone(ZoneInfo("Asia/Tokyo")) == datetime(
        2030, 2, 28, 9, tzinfo=ZoneInfo("Asia/Tokyo")
    )
    in_utc = Recurrence(Frequency.MONTHLY).next_after(datetime(2030, 1, 31, 23, tzinfo=UTC), due, None)
    assert in_utc == datetime(2030, 2, 28, 23, tzinfo=UTC)


def test_a_reminder_keeps_its_local_lead_when_the_task_rolls_forward() -> None:
    now = datetime(2030, 3, 1, tzinfo=UTC)
    task = Task.create(
        uuid4(),
        "alice",
        NewTask(
            title="standup",
            due_date=datetime(2030, 3, 4, 14, tzinfo=UTC),
            remind_at=datetime(2030, 3, 4, 13, 30, tzinfo=UTC),
            recurrence=Recurrence(Frequency.WEEKLY),
            time_zone="America/New_York",
        ),
        now,
    )
    task.complete(now)
    assert task.due_date == datetime(2030, 3, 11, 13, tzinfo=UTC)
    assert task.remind_at == datetime(2030, 3, 11, 12, 30, tzinfo=UTC)  # 08:30 local, still 30 min before


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "localtime", "../../etc/passwd", "europe/paris", "a" * 65, "UTC\x00"]
)
def test_unknown_zones_are_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidTask) as refused:
        NewTask(title="t", time_zone=name)
    assert refused.value.errors[0].field == "time_zone"
    with pytest.raises(InvalidTask):
        TaskPatch(time_zone=name)


@settings(max_examples=200, derandomize=True)
@given(
    zone=st.sampled_from(ZONES),
    frequency=st.sampled_from(["daily", "weekly", "monthly", "yearly"]),
    interval=st.integers(1, 5),
    due=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    late=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
)
def test_the_next_occurrence_is_after_now_at_the_same_local_time(
    zone: str, frequency: str, interval: int, due: datetime, late: timedelta
) -> None:
    info = ZoneInfo(zone)
    local_due = due.astimezone(info)
    if local_due.replace(tzinfo=None).replace(tzinfo=info).astimezone(UTC) != due:
        return  # a due time inside a fall-back overlap's second pass: no single wall-clock time
    now = due + late
    following = Recurrence(Frequency(frequency), interval).next_after(due, now, TimeZone(zone))
    assert following > now
    local = following.astimezone(info)
    wanted = datetime.combine(local.date(), local_due.time())
    exists = wanted.replace(tzinfo=info).astimezone(UTC).astimezone(info).replace(tzinfo=None) == wanted
    if exists:  # else the wall-clock time fell in a spring-forward gap that day: moved on by it
        assert local.time() == local_due.time()
