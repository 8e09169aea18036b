"""Hypothesis strategies for the tasks domain (SPEC §19), behind the `[testing]` extra.

They live beside the domain, not in it: `todo_domain` (its `testing` helpers included) imports
the standard library only, and these need hypothesis (`pip install 'todo-service[testing]'`).
Installing the package registers them with hypothesis, so `st.from_type(NewTask)`,
`st.from_type(TaskPatch)` and `st.from_type(TaskQuery)` build valid values without an import.
"""
