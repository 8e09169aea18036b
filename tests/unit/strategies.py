"""Hypothesis strategies for valid domain inputs, built by construction (no filtering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from todo_domain import NewTask, Priority, Recurrence, Status, TaskPatch
from todo_domain.values import Frequency

# Printable text without control characters or surrogates, so every draw is a valid title.
safe_chars = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))
titles = st.text(safe_chars, min_size=1, max_size=40).map(lambda s: "x" + s.strip())
descriptions = st.none() | st.text(safe_chars | st.sampled_from("\n\t"), max_size=60)
tag_lists = st.lists(st.sampled_from(["home", "work", "errands", "Urgent", " later "]), max_size=4)
statuses = st.sampled_from(list(Status))
priorities = st.sampled_from(list(Priority))
# Moments between 2000 and 2100, to the microsecond, always UTC.
moments = st.integers(0, 100 * 365 * 24 * 3600 * 10**6).map(
    lambda us: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
)
recurrences = st.builds(Recurrence, st.sampled_from(list(Frequency)), st.integers(1, 365))
small_recurrences = st.builds(Recurrence, st.sampled_from(list(Frequency)), st.integers(1, 12))
advances = st.integers(0, 40 * 24 * 3600).map(lambda s: timedelta(seconds=s))


@st.composite
def new_tasks(draw: st.DrawFn) -> NewTask:
    due = draw(st.none() | moments)
    return NewTask(
        title=draw(titles),
        description=draw(descriptions),
        status=draw(statuses),
        priority=draw(priorities),
        tags=draw(tag_lists),
        due_date=due,
        remind_at=None if due is None else due - draw(advances),
        recurrence=None if due is None else draw(st.none() | small_recurrences),
    )


@st.composite
def patches(draw: st.DrawFn) -> TaskPatch:
    fields: dict[str, object] = {}
    if draw(st.booleans()):
        fields["title"] = draw(titles)
    if draw(st.booleans()):
        fields["description"] = draw(descriptions)
    if draw(st.booleans()):
        fields["priority"] = draw(priorities)
    if draw(st.booleans()):
        fields["tags"] = draw(tag_lists)
    if draw(st.booleans()):
        fields["status"] = draw(statuses)
    if draw(st.booleans()):
        due = draw(moments)
        fields["due_date"] = due  # never cleared here, so any existing recurrence stays valid
    return TaskPatch(**fields)  # type: ignore[arg-type]
