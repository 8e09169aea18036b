"""todo_domain.testing: the helpers other services test with behave as documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todo_domain import NewTask, TaskPatch, TaskQuery
from todo_domain.testing import T0, ManualClock, SequentialIds


def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(tick=timedelta(seconds=1))
    assert clock.now() == T0
    assert clock.now() == T0 + timedelta(seconds=1)
    clock.advance(timedelta(days=1))
    assert clock.now() == T0 + timedelta(days=1, seconds=2)
    clock.set(datetime(2030, 1, 1, 12, tzinfo=UTC))
    assert clock.now().year == 2030


@pytest.mark.parametrize("naive", [datetime(2026, 1, 1), "2026-01-01T00:00:00Z"])
def test_the_manual_clock_refuses_what_is_not_an_aware_datetime(naive: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(naive)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock().set(naive)  # type: ignore[arg-type]


def test_the_manual_clock_never_runs_backwards() -> None:
    with pytest.raises(ValueError, match="negative"):
        ManualClock(tick=timedelta(seconds=-1))


def test_sequential_ids_are_increasing_uuid7s() -> None:
    ids = SequentialIds()
    drawn = [ids.new_id() for _ in range(5)]
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == 5
    assert {i.version for i in drawn} == {7}
    assert SequentialIds().new_id() == drawn[0]


@settings(max_examples=300)
@given(st.from_type(NewTask), st.from_type(TaskPatch), st.from_type(TaskQuery))
def test_registered_strategies_build_valid_values(draft: NewTask, patch: TaskPatch, query: TaskQuery) -> None:
    assert isinstance(draft, NewTask)
    assert draft.title
    assert isinstance(patch, TaskPatch)
    assert isinstance(query, TaskQuery)
    assert 1 <= query.limit <= 1000
