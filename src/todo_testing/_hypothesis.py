"""The hook hypothesis runs when it is imported (the package's `hypothesis` entry point).

It must not import `todo_testing.strategies` itself: that module imports hypothesis, so
when it is the first to do so the hook runs while it is still half-imported. The strategies
are therefore registered deferred, and looked up at the first draw.
"""

from __future__ import annotations

from hypothesis import strategies as st

from todo_domain.model import NewTask, TaskPatch
from todo_domain.query import TaskQuery
from todo_testing import strategies as ours  # maybe half-imported here: used at draw time


def register() -> None:
    """`st.from_type(NewTask)`, `(TaskPatch)` and `(TaskQuery)` build valid values."""
    st.register_type_strategy(NewTask, st.deferred(lambda: ours.new_tasks()))
    st.register_type_strategy(TaskPatch, st.deferred(lambda: ours.patches()))
    st.register_type_strategy(TaskQuery, st.deferred(lambda: ours.queries()))
