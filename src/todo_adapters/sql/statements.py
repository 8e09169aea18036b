"""Every SQL statement of the tasks store, written once in SQLAlchemy Core over `tables.py`.

Parameters are bound by name (`:owner`, `:task_id`, one per column for row values); a back-end
compiles each statement object once for its driver (backends.py). Where the two databases
need different SQL, `Statements.for_dialect` holds both forms side by side:

- a write bumps the owner's change-feed revision and per-status counters, then writes the row.
  On PostgreSQL that is one round trip (the upsert is a data-modifying CTE of the write); on
  SQLite the upsert runs first and the write reads the new revision back in a subquery. A
  write is therefore a tuple of statements run in order with the same parameters;
- list queries are built per *shape* (which filters, which sort, cursor or not) and cached, so
  the same shape compiles once whatever its values.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from todo_adapters.sql.rows import STATUS_COUNT, counted_statuses
from todo_adapters.sql.tables import events, idempotency_keys, owners, task_tags, tasks
from todo_domain.events import EventType
from todo_domain.hierarchy import MAX_DEPTH
from todo_domain.query import SortField, TaskQuery
from todo_domain.values import Status

__all__ = [
    "COUNTERS",
    "READ_COLUMNS",
    "ROW_COLUMNS",
    "FindPlan",
    "Statements",
    "Write",
    "drop_tags",
    "find_plan",
    "record_event",
    "reminder_write",
    "row_params",
]

Write = tuple[sa.Executable, ...]
"""Statements run in order with the same parameters; the last one's row count is the write's."""

# What a read returns: every column the entity is rebuilt from (the derived search columns and
# the revision stay in the database).
_READ = [c for c in tasks.c if c.name not in ("title_key", "search_text", "revision", "reminded_for")]
READ_COLUMNS = tuple(_READ)
# What a write sets, by the names rows.task_to_row uses (the worker alone sets reminded_for).
ROW_COLUMNS = tuple(c.name for c in tasks.c if c.name not in ("revision", "reminded_for"))
_UPDATED = [name for name in ROW_COLUMNS if name not in ("user_id", "id", "created_at")]
# The per-status counters of the owner's row; a write moves each by the parameter "d_<name>".
COUNTERS = tuple(STATUS_COUNT.values())

_OWNER = sa.bindparam("owner", type_=tasks.c.user_id.type)
_TASK = sa.bindparam("task_id", type_=tasks.c.id.type)
_LIVE = tasks.c.deleted_at.is_(None)
_COMPLETED = Status.COMPLETED.value


class position_of(FunctionElement[int]):  # noqa: N801  (an SQL function, named like one)
    """1-based position of a substring, 0 when absent: strpos on PostgreSQL, instr on SQLite.
    No LIKE, so no wildcard in the searched text needs escaping."""

    type = sa.Integer()
    inherit_cache = True


@compiles(position_of, "postgresql")
def _strpos(element: position_of, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(position_of, "sqlite")
def _instr(element: position_of, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


def _bump(insert: Any) -> Any:
    """The owner's upsert: revision + 1 and the counter deltas; it locks the owner's row until
    commit, so an owner's writes commit in revision order (see todo_domain.sync)."""
    deltas = {name: sa.bindparam(f"d_{name}", type_=sa.BigInteger()) for name in COUNTERS}
    return (
        insert(owners)
        .values(user_id=_OWNER, revision=1, purged_revision=0, **deltas)
        .on_conflict_do_update(
            index_elements=[owners.c.user_id],
            set_={"revision": owners.c.revision + 1, **{n: owners.c[n] + deltas[n] for n in COUNTERS}},
        )
    )


def _row_values(names: Sequence[str]) -> dict[str, Any]:
    return {name: sa.bindparam(f"v_{name}", type_=tasks.c[name].type) for name in names}


_ROW_PARAMS = [(name, f"v_{name}") for name in ROW_COLUMNS]


def row_params(row: Mapping[str, Any]) -> dict[str, Any]:
    """A task row (rows.task_to_row) as the parameters of the write statements."""
    return {param: row[name] for name, param in _ROW_PARAMS}


def record_event(sequence: Any, *, reminder: bool = False) -> sa.Insert:
    """An event into the outbox (SPEC §16), numbered `sequence` (the bumped revision); its
    values are the `e_*` parameters (repository._write_params; a reminder's also `e_remind_at`
    and `e_late`)."""
    extra = {}
    if reminder:
        extra = {
            "remind_at": sa.bindparam("e_remind_at", type_=events.c.remind_at.type),
            "late": sa.bindparam("e_late", type_=events.c.late.type),
        }
    return events.insert().values(
        **extra,
        user_id=_OWNER,
        sequence=sequence,
        id=sa.bindparam("e_id", type_=events.c.id.type),
        bucket=sa.bindparam("e_bucket", type_=events.c.bucket.type),
        type=sa.bindparam("e_type", type_=events.c.type.type),
        task=sa.bindparam("e_task", type_=events.c.task.type),
        occurred_at=sa.bindparam("e_time", type_=events.c.occurred_at.type),
        occurrence=sa.bindparam("e_occurrence", type_=events.c.occurrence.type),
    )


def _writes(dialect: str) -> tuple[Write, Write]:
    """(insert, compare-and-set update), each with the owner's bump and the write's event."""
    insert_values = _row_values(ROW_COLUMNS)
    update_values = _row_values(_UPDATED)
    compare_and_set = (
        tasks.c.user_id == _OWNER,
        tasks.c.id == _TASK,
        tasks.c.version == sa.bindparam("expected_version", type_=sa.Integer()),
    )
    if dialect == "postgresql":
        bump = _bump(postgresql.insert).returning(owners.c.revision).cte("bump")
        revision = sa.select(bump.c.revision).scalar_subquery()
        # The new task's tags in the same statement (one round trip less per create): a
        # data-modifying CTE; the foreign key is checked at the end of the statement.
        new_tags = sa.bindparam("new_tags", type_=postgresql.ARRAY(task_tags.c.tag.type))
        tag_rows = sa.select(_OWNER, _TASK, sa.func.unnest(new_tags))
        add_tags = task_tags.insert().from_select(["user_id", "task_id", "tag"], tag_rows).cte("add_tags")
        # The event too: a CTE runs whether or not the main statement reads it. (When the
        # compare-and-set matches no row, the use case rolls the whole unit of work back.)
        outbox = record_event(revision).cte("outbox")
        insert = (
            tasks.insert()
            .values(**insert_values, revision=revision)
            .add_cte(bump)
            .add_cte(add_tags)
            .add_cte(outbox)
        )
        update = (
            tasks.update()
            .where(*compare_and_set)
            .values(**update_values, revision=revision)
            .add_cte(bump)
            .add_cte(outbox)
        )
        return (insert,), (update,)
    bumped = sa.select(owners.c.revision).where(owners.c.user_id == _OWNER).scalar_subquery()
    bump, record = _bump(sqlite.insert), record_event(bumped)
    return (
        (bump, record, tasks.insert().values(**insert_values, revision=bumped)),
        (bump, record, tasks.update().where(*compare_and_set).values(**update_values, revision=bumped)),
    )


def reminder_write(dialect: str) -> Write:
    """A fired reminder's event, with the owner's bump (counters unchanged: `d_*` = 0); the last
    statement returns the event's sequence."""
    if dialect == "postgresql":
        bump = _bump(postgresql.insert).returning(owners.c.revision).cte("bump")
        numbered = record_event(sa.select(bump.c.revision).scalar_subquery(), reminder=True)
        return (numbered.add_cte(bump).returning(events.c.sequence),)
    bumped = sa.select(owners.c.revision).where(owners.c.user_id == _OWNER).scalar_subquery()
    return (_bump(sqlite.insert), record_event(bumped, reminder=True).returning(events.c.sequence))


def _feed(include_deleted: bool) -> sa.Select[Any]:
    """A change-feed page joined to the owner's revision row: one statement, one snapshot, so
    the revision it reports covers exactly what the page could see. An empty page comes back
    as one row of NULL task columns (no row at all: the owner never wrote)."""
    since = tasks.c.revision > sa.bindparam("since", type_=sa.BigInteger())
    page = (
        sa.select(*_READ, tasks.c.revision)
        .where(tasks.c.user_id == _OWNER, since, *(() if include_deleted else (_LIVE,)))
        .order_by(tasks.c.revision)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .subquery("page")
    )
    return (
        sa.select(owners.c.revision.label("owner_revision"), owners.c.purged_revision, *page.c)
        .select_from(owners.outerjoin(page, sa.true()))
        .where(owners.c.user_id == _OWNER)
        .order_by(page.c.revision)
    )


def _children(top_level: bool) -> sa.ColumnElement[bool]:
    """Live children of `:parent_id`, or of the top level (two statements: `IS NULL` and `=`
    each read ix_tasks_siblings, `IS NOT DISTINCT FROM` would not)."""
    parent = tasks.c.parent_id
    of = parent.is_(None) if top_level else parent == sa.bindparam("parent_id", type_=parent.type)
    return sa.and_(tasks.c.user_id == _OWNER, of, _LIVE)


# Deep enough to walk any legal tree (MAX_DEPTH) and to stop on a corrupted one.
_WALK_LIMIT: sa.ColumnElement[int] = sa.literal_column(str(2 * MAX_DEPTH))


def _has_children() -> sa.Exists:
    child = tasks.alias("child")
    return sa.exists().where(
        child.c.user_id == tasks.c.user_id, child.c.parent_id == tasks.c.id, child.c.deleted_at.is_(None)
    )


def _ancestors() -> sa.Select[Any]:
    """`:task_id` if live, then each parent up to the top level, nearest first."""
    start = sa.select(tasks.c.id, tasks.c.parent_id, sa.literal_column("0").label("depth"))
    chain = start.where(tasks.c.user_id == _OWNER, tasks.c.id == _TASK, _LIVE).cte("chain", recursive=True)
    up = tasks.alias("up")
    chain = chain.union_all(
        sa.select(up.c.id, up.c.parent_id, chain.c.depth + 1).where(
            up.c.user_id == _OWNER,
            up.c.id == chain.c.parent_id,
            up.c.deleted_at.is_(None),
            chain.c.depth < _WALK_LIMIT,
        )
    )
    return sa.select(chain.c.id).order_by(chain.c.depth)


def _descendants() -> sa.Select[Any]:
    """Every live subtask below `:task_id` with its depth (1: a child)."""
    start = sa.select(tasks.c.id, sa.literal_column("1").label("depth"))
    tree = start.where(tasks.c.user_id == _OWNER, tasks.c.parent_id == _TASK, _LIVE).cte(
        "tree", recursive=True
    )
    down = tasks.alias("down")
    tree = tree.union_all(
        sa.select(down.c.id, tree.c.depth + 1).where(
            down.c.user_id == _OWNER,
            down.c.parent_id == tree.c.id,
            down.c.deleted_at.is_(None),
            tree.c.depth < _WALK_LIMIT,
        )
    )
    return (
        sa.select(*_READ, tree.c.depth)
        .join(tree, tasks.c.id == tree.c.id)
        .where(tasks.c.user_id == _OWNER)
        .order_by(tree.c.depth, tasks.c.position)
        # locked before the owner's row (the bump), like the task itself: a cascade never
        # waits for a subtask's row while holding what that subtask's writer waits for
        .with_for_update(of=tasks)
    )


_MINE = (task_tags.c.user_id == _OWNER, task_tags.c.task_id == _TASK)
_OLD_TOMBSTONE = tasks.c.deleted_at < sa.bindparam("tombstones_before", type_=tasks.c.deleted_at.type)


@dataclass(frozen=True, slots=True)
class Statements:
    """The statement table of one dialect."""

    insert_writes_tags: bool  # PostgreSQL: `insert` stores the new task's tags (`:new_tags`) too
    get: sa.Select[Any]
    get_for_update: sa.Select[Any]
    insert: Write
    update: Write
    status_of: sa.Select[Any]
    version_of: sa.Select[Any]
    clear_tags: sa.Delete
    add_tag: sa.Insert
    feed_live: sa.Select[Any]
    feed_all: sa.Select[Any]
    find_key: sa.Select[Any]
    find_keys: sa.Select[Any]
    remember_key: sa.Insert
    tag_counts: sa.Select[Any]
    purge_revisions: sa.Update
    purge_tasks: sa.Delete
    purge_keys: sa.Delete
    ancestors: sa.Select[Any]
    descendants: sa.Select[Any]
    siblings_top: sa.Select[Any]
    siblings_in: sa.Select[Any]
    last_position_top: sa.Select[Any]
    last_position_in: sa.Select[Any]
    reminders_since: sa.Select[Any]

    @staticmethod
    @functools.cache
    def for_dialect(dialect: str) -> Statements:
        get = sa.select(*_READ).where(tasks.c.user_id == _OWNER, tasks.c.id == _TASK, _LIVE)
        insert, update = _writes(dialect)
        open_count = sa.func.count().filter(tasks.c.status != _COMPLETED)
        # Correlated, so it runs on both databases: each owner's newest purged revision.
        newest_gone = (
            sa.select(sa.func.max(tasks.c.revision))
            .where(tasks.c.user_id == owners.c.user_id, _OLD_TOMBSTONE)
            .scalar_subquery()
        )
        key = (idempotency_keys.c.user_id == _OWNER, idempotency_keys.c.key == sa.bindparam("k_key"))
        return Statements(
            insert_writes_tags=dialect == "postgresql",
            get=get,
            # what a write reads: also whether the task has live subtasks, so that completing
            # or deleting a leaf (nearly every task) needs no subtree query
            get_for_update=get.add_columns(_has_children().label("has_children")).with_for_update(),
            insert=insert,
            update=update,
            status_of=sa.select(tasks.c.status, tasks.c.deleted_at).where(
                tasks.c.user_id == _OWNER, tasks.c.id == _TASK
            ),
            version_of=sa.select(tasks.c.version).where(tasks.c.user_id == _OWNER, tasks.c.id == _TASK),
            clear_tags=task_tags.delete().where(*_MINE),
            add_tag=task_tags.insert().values(user_id=_OWNER, task_id=_TASK, tag=sa.bindparam("tag_name")),
            feed_live=_feed(include_deleted=False),
            feed_all=_feed(include_deleted=True),
            find_key=sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.task).where(*key),
            find_keys=_find_keys(dialect),
            remember_key=idempotency_keys.insert().values(
                user_id=_OWNER,
                key=sa.bindparam("k_key"),
                fingerprint=sa.bindparam("k_fingerprint"),
                task=sa.bindparam("k_snapshot"),
                created_at=sa.bindparam("k_created_at", type_=idempotency_keys.c.created_at.type),
            ),
            tag_counts=sa.select(task_tags.c.tag, open_count.label("open"), sa.func.count().label("total"))
            .join(tasks, sa.and_(tasks.c.user_id == task_tags.c.user_id, tasks.c.id == task_tags.c.task_id))
            .where(task_tags.c.user_id == _OWNER, _LIVE)
            .group_by(task_tags.c.tag)
            .order_by(task_tags.c.tag),
            purge_revisions=owners.update()
            .where(newest_gone > owners.c.purged_revision)
            .values(purged_revision=newest_gone),
            purge_tasks=tasks.delete().where(_OLD_TOMBSTONE),
            purge_keys=idempotency_keys.delete().where(
                idempotency_keys.c.created_at
                < sa.bindparam("keys_before", type_=idempotency_keys.c.created_at.type)
            ),
            ancestors=_ancestors(),
            descendants=_descendants(),
            siblings_top=_siblings(top_level=True),
            siblings_in=_siblings(top_level=False),
            last_position_top=_last_position(top_level=True),
            last_position_in=_last_position(top_level=False),
            reminders_since=sa.select(events)
            .where(
                events.c.user_id == _OWNER,
                events.c.sequence > sa.bindparam("since", type_=sa.BigInteger()),
                events.c.type == EventType.REMINDER_DUE.value,
            )
            .order_by(events.c.sequence)
            .limit(sa.bindparam("limit", type_=sa.Integer())),
        )


# PostgreSQL treats `parent_id IS NULL` as a filter, not as an equality that fixes the index
# column, so ordering by position alone would sort every top-level task instead of reading
# ix_tasks_siblings in order: these statements order by (parent_id, position), the same order.
_BY_SIBLING = (tasks.c.parent_id, tasks.c.position)


def _find_keys(dialect: str) -> sa.Select[Any]:
    """Many keys of one owner in one statement (`:k_keys`, a list): ANY of an array on
    PostgreSQL (one prepared statement for any count), an expanding IN on SQLite."""
    column = idempotency_keys.c.key
    if dialect == "postgresql":
        wanted = column == sa.func.any(sa.bindparam("k_keys", type_=postgresql.ARRAY(column.type)))
    else:
        wanted = column.in_(sa.bindparam("k_keys", expanding=True))
    return sa.select(column, idempotency_keys.c.fingerprint, idempotency_keys.c.task).where(
        idempotency_keys.c.user_id == _OWNER, wanted
    )


def _siblings(top_level: bool) -> sa.Select[Any]:
    return (
        sa.select(tasks.c.id, tasks.c.position).where(_children(top_level)).order_by(*_BY_SIBLING, tasks.c.id)
    )


def _last_position(top_level: bool) -> sa.Select[Any]:
    """The last child's position: one index entry (not max(), for the same reason)."""
    last = sa.select(tasks.c.position).where(_children(top_level)).order_by(*(c.desc() for c in _BY_SIBLING))
    return sa.select(last.limit(1).scalar_subquery().label("last"))


@functools.cache
def drop_tags(count: int) -> sa.Delete:
    """Removes `count` named tags (`:tag_0` …) of one task."""
    names = [sa.bindparam(f"tag_{i}", type_=task_tags.c.tag.type) for i in range(count)]
    return task_tags.delete().where(*_MINE, task_tags.c.tag.in_(names))


# -- listing ----------------------------------------------------------------------------------------

_SORT_COLUMNS: Mapping[SortField, sa.ColumnElement[Any]] = {
    SortField.CREATED_AT: tasks.c.created_at,
    SortField.UPDATED_AT: tasks.c.updated_at,
    SortField.DUE_DATE: tasks.c.due_date,
    SortField.PRIORITY: tasks.c.priority,
    SortField.TITLE: tasks.c.title_key,
    SortField.POSITION: tasks.c.position,
}


@dataclass(frozen=True, slots=True)
class _Shape:
    """Everything about a list query that changes its SQL text (its values do not)."""

    sort: SortField
    descending: bool
    statuses: int
    completed: bool | None
    priorities: int
    tags: int
    text: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    parent: str  # "" any, "top" top level only, "of" children of :parent_id
    cursor: str  # "" none, "null" after a NULL sort value, "value"
    offset: bool
    counters: tuple[Status, ...] | None  # the total from these counters, or None: count(*)


@dataclass(frozen=True, slots=True)
class FindPlan:
    """A list query as statements plus their parameters: the page with its total in one
    statement (the same snapshot), and the total alone for when the page is empty."""

    page: sa.Select[Any]
    total: sa.Select[Any]
    params: dict[str, Any]


def find_plan(owner: str, query: TaskQuery, now: datetime) -> FindPlan:
    """Each filter's parameters are set here, and its SQL in `_find` under the same name."""
    params: dict[str, Any] = {"owner": owner, "limit": query.limit + 1}
    statuses = sorted(s.value for s in query.statuses)
    params.update({f"status_{i}": s for i, s in enumerate(statuses)})
    priorities = sorted(p.rank for p in query.priorities)
    params.update({f"priority_{i}": p for i, p in enumerate(priorities)})
    params.update({f"tag_{i}": t for i, t in enumerate(query.tags)})
    if query.completed is not None or query.overdue is not None:
        params["completed_status"] = _COMPLETED
    if query.folded_text:
        params["text"] = query.folded_text
    if query.due_before is not None:
        params["due_before"] = query.due_before
    if query.due_after is not None:
        params["due_after"] = query.due_after
    if query.overdue is not None:
        params["now"] = now
    parent = "top" if query.top_level else ""
    if query.parent_id is not None:
        parent, params["parent_id"] = "of", query.parent_id
    cursor = ""
    if query.cursor is not None:
        cursor = "null" if query.cursor.value is None else "value"
        params["cursor_id"] = query.cursor.task_id
        if query.cursor.value is not None:
            params["cursor_value"] = query.cursor.value
    if query.offset:
        params["offset"] = query.offset
    counters = counted_statuses(query)
    shape = _Shape(
        sort=query.sort.field,
        descending=query.sort.descending,
        statuses=len(statuses),
        completed=query.completed,
        priorities=len(priorities),
        tags=len(query.tags),
        text=bool(query.folded_text),
        due_before=query.due_before is not None,
        due_after=query.due_after is not None,
        overdue=query.overdue,
        parent=parent,
        cursor=cursor,
        offset=bool(query.offset),
        counters=None if counters is None else tuple(sorted(counters)),
    )
    page, total = _find(shape)
    return FindPlan(page, total, params)


def _named(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


@functools.lru_cache(maxsize=512)
def _find(shape: _Shape) -> tuple[sa.Select[Any], sa.Select[Any]]:
    where: list[sa.ColumnElement[bool]] = [tasks.c.user_id == _OWNER, _LIVE]
    status, completed = tasks.c.status, _named("completed_status", tasks.c.status)
    if shape.statuses:
        where.append(status.in_([_named(f"status_{i}", status) for i in range(shape.statuses)]))
    if shape.completed is not None:
        where.append(status == completed if shape.completed else status != completed)
    if shape.priorities:
        ranks = [_named(f"priority_{i}", tasks.c.priority) for i in range(shape.priorities)]
        where.append(tasks.c.priority.in_(ranks))
    for i in range(shape.tags):
        where.append(
            sa.exists().where(
                task_tags.c.user_id == tasks.c.user_id,
                task_tags.c.task_id == tasks.c.id,
                task_tags.c.tag == _named(f"tag_{i}", task_tags.c.tag),
            )
        )
    if shape.text:
        where.append(position_of(tasks.c.search_text, sa.bindparam("text", type_=sa.Text())) > 0)
    if shape.due_before:
        where.append(tasks.c.due_date < _named("due_before", tasks.c.due_date))
    if shape.due_after:
        where.append(tasks.c.due_date >= _named("due_after", tasks.c.due_date))
    if shape.overdue is not None:
        overdue = sa.and_(
            tasks.c.due_date.is_not(None),
            tasks.c.due_date < _named("now", tasks.c.due_date),
            status != completed,
        )
        where.append(overdue if shape.overdue else sa.not_(overdue))
    if shape.parent:
        where.append(_children(top_level=shape.parent == "top"))
    if shape.counters is None:
        total = sa.select(sa.func.count().label("total")).select_from(tasks).where(*where)
    else:  # the per-status counters on the owner's row: O(1) whatever the owner's size
        summed: sa.ColumnElement[Any] = sum(
            (owners.c[STATUS_COUNT[s]] for s in shape.counters), sa.literal_column("0")
        )
        total = sa.select(summed.label("total")).where(owners.c.user_id == _OWNER)
    column = _SORT_COLUMNS[shape.sort]
    if shape.cursor:
        where.append(_after(column, shape.cursor == "null", shape.descending))
    by_value = column.desc() if shape.descending else column.asc()
    if column is tasks.c.due_date:
        # Only due_date can be NULL. Saying NULLS LAST on a NOT NULL column would stop
        # PostgreSQL from reading its (user_id, column, id) index backwards.
        by_value = by_value.nulls_last()
    order = [by_value, tasks.c.id.desc() if shape.descending else tasks.c.id.asc()]
    if shape.parent and column is tasks.c.position:  # one parent: read ix_tasks_siblings in order
        order.insert(0, tasks.c.parent_id.desc() if shape.descending else tasks.c.parent_id.asc())
    page = (
        sa.select(*_READ, total.scalar_subquery().label("total"))
        .where(*where)
        .order_by(*order)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if shape.offset:
        page = page.offset(sa.bindparam("offset", type_=sa.Integer()))
    return page, total


def _after(column: sa.ColumnElement[Any], null_value: bool, descending: bool) -> sa.ColumnElement[bool]:
    """Rows strictly after (:cursor_value, :cursor_id) in list order, where NULLs come last."""
    task_id = _named("cursor_id", tasks.c.id)
    if null_value:
        return sa.and_(column.is_(None), tasks.c.id < task_id if descending else tasks.c.id > task_id)
    position = sa.tuple_(column, tasks.c.id)
    cursor = sa.tuple_(_named("cursor_value", column), task_id)
    beyond = position < cursor if descending else position > cursor
    return sa.or_(beyond, column.is_(None)) if column is tasks.c.due_date else beyond
