"""Hypothesis strategies for valid domain inputs, built by construction (no filtering).

    from hypothesis import given, strategies as st
    from todo_domain import NewTask
    from todo_testing.strategies import new_tasks, patches, queries

    @given(st.from_type(NewTask))        # registered: the same as new_tasks()
    def test_titles_survive(draft): ...

Needs hypothesis (`pip install 'todo-service[testing]'`). Installing todo-service registers
these with hypothesis through its `hypothesis` entry point, so `st.from_type(NewTask)`,
`st.from_type(TaskPatch)` and `st.from_type(TaskQuery)` build valid values even in a test
that never imports this module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

try:
    from hypothesis import strategies as st
except ImportError as missing:  # pragma: no cover  (exercised by the install test)
    raise ImportError(
        "todo_testing.strategies needs hypothesis: pip install 'todo-service[testing]'"
    ) from missing

from todo_domain.model import NewTask, TaskPatch
from todo_domain.query import Sort, SortField, TaskQuery
from todo_domain.values import Frequency, Priority, Recurrence, Status

__all__ = [
    "advances",
    "descriptions",
    "moments",
    "new_tasks",
    "patches",
    "priorities",
    "queries",
    "recurrences",
    "statuses",
    "tag_lists",
    "titles",
]

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
    """Top-level drafts of every shape: with or without due date, reminder and recurrence."""
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
    """Patches of any subset of the fields; valid on any task (a due date is never cleared, so
    an existing recurrence stays valid)."""
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
        fields["due_date"] = draw(moments)
    return TaskPatch(**fields)  # type: ignore[arg-type]


@st.composite
def queries(draw: st.DrawFn) -> TaskQuery:
    """List queries: any filters, any sort, a first page of any size."""
    due_after = draw(st.none() | moments)
    due_before = draw(st.none() | moments)
    if due_after is not None and due_before is not None and due_before < due_after:
        due_after, due_before = due_before, due_after
    return TaskQuery(
        statuses=frozenset(draw(st.sets(statuses, max_size=2))),
        completed=draw(st.none() | st.booleans()),
        priorities=frozenset(draw(st.sets(priorities, max_size=2))),
        tags=tuple(draw(st.lists(st.sampled_from(["home", "work", "errands"]), max_size=2))),
        text=draw(st.none() | st.text(safe_chars, max_size=8)),
        due_before=due_before,
        due_after=due_after,
        overdue=draw(st.none() | st.booleans()),
        sort=Sort(draw(st.sampled_from(list(SortField))), draw(st.booleans())),
        limit=draw(st.integers(1, 1000)),
    )
