"""The contract suite shipped in todo_domain.testing.contract, run on this package's own stores,
and shown to catch a store that breaks a promise."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from todo_adapters.memory import InMemoryStore
from todo_domain import TaskStore
from todo_domain.testing.contract import CHECKS, Check, run_contract


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_every_store_keeps_the_packaged_contract(uow: TaskStore, check: Check) -> None:
    await check(uow)


class _ForgetfulFeed(InMemoryStore):
    """Loses what the change feed should hand out: its feed always says nothing changed."""

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        async with super().begin(read_only=read_only) as uow:
            original = uow.feed.since

            async def since(owner: str, revision: int, limit: int, *, include_deleted: bool) -> Any:
                page = await original(owner, revision, limit, include_deleted=include_deleted)
                return type(page)((), page.owner_revision, page.purged_revision) if revision else page

            uow.feed.since = since  # type: ignore[method-assign]
            yield uow


class _OwnOrder(InMemoryStore):
    """Lists each page in an order of its own (by title only, ties as they come)."""

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        async with super().begin(read_only=read_only) as uow:
            original = uow.tasks.find

            async def find(owner: str, query: Any, now: Any) -> Any:
                page = await original(owner, query, now)
                return dataclasses.replace(page, items=tuple(sorted(page.items, key=lambda t: t.title)))

            uow.tasks.find = find  # type: ignore[method-assign]
            yield uow


@pytest.mark.parametrize(
    ("store", "failing"),
    [
        (_ForgetfulFeed(), "the_change_feed_hands_out_every_write_once"),
        (_OwnOrder(), "lists_filter_sort_and_page_like_the_reference"),
    ],
)
async def test_the_contract_catches_a_broken_store(store: TaskStore, failing: str) -> None:
    failures = await run_contract(store)
    assert failing in {name for name, _ in failures}


async def test_the_in_memory_store_passes_the_whole_run() -> None:
    assert await run_contract(InMemoryStore()) == []
