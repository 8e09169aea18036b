"""Fractional position keys and the family rules (SPEC §17), as properties."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todo_domain import InvalidTask
from todo_domain.hierarchy import MAX_DEPTH, Sibling, check_parent, place
from todo_domain.positions import MAX_LENGTH, after_last, between, is_valid, spread


def test_appends_and_prepends_stay_short_for_ever() -> None:
    last = first = between(None, None)
    for _ in range(10_000):
        last = between(last, None)
        first = between(None, first)
    assert first < "a0" < last
    assert len(last) <= 4
    assert len(first) <= 4
    assert is_valid(first)
    assert is_valid(last)


@settings(max_examples=200, derandomize=True)
@given(st.lists(st.tuples(st.integers(min_value=0), st.booleans()), min_size=1, max_size=200))
def test_any_sequence_of_insertions_keeps_keys_strictly_ordered_and_valid(
    steps: list[tuple[int, bool]],
) -> None:
    keys: list[str] = []
    for where, _ in steps:
        gap = where % (len(keys) + 1)
        low = keys[gap - 1] if gap else None
        high = keys[gap] if gap < len(keys) else None
        key = between(low, high)
        assert is_valid(key)
        assert low is None or low < key
        assert high is None or key < high
        keys.insert(gap, key)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("bad", ["", "a", "a00", "A" + "0" * 26, "b0", "a0!", "a\x000", 12, None, "é0"])
def test_foreign_keys_are_not_valid(bad: object) -> None:
    assert not is_valid(bad)


def test_a_spread_is_ordered_above_the_given_key() -> None:
    keys = spread(500, above="bzzV")
    assert keys == sorted(keys)
    assert keys[0] > "bzzV"
    assert len(set(keys)) == 500


def _siblings(keys: list[str], ids: list[UUID]) -> list[Sibling]:
    return [Sibling(i, k) for i, k in zip(ids, keys, strict=True)]


def test_ten_thousand_moves_into_one_gap_stay_within_64_characters() -> None:
    """The moved task always lands right after the first sibling: the gap between the first
    and the last moved task halves each time, until the list is rebalanced."""
    ids = [uuid4() for _ in range(4)]
    order = list(ids)
    keys = dict(zip(ids, spread(4), strict=True))
    rebalances = longest = 0
    for n in range(10_000):
        mover = ids[1 + n % 2]
        order.remove(mover)
        placement, others = place(
            [Sibling(i, keys[i]) for i in order], None, after=ids[0], current=keys[mover]
        )
        order.insert(1, mover)
        keys[mover] = placement.position
        for sibling_id, sibling_placement in others:
            keys[sibling_id] = sibling_placement.position
        rebalances += bool(others)
        longest = max(longest, len(placement.position))
        in_order = [keys[i] for i in order]
        assert in_order == sorted(in_order)
        assert len(set(in_order)) == len(in_order)
    assert longest <= MAX_LENGTH
    assert 1 <= rebalances <= 10_000 // 300  # rare: one per few hundred moves into one gap


@settings(max_examples=100, derandomize=True)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0), st.booleans()), max_size=120))
def test_positions_stay_strictly_ordered_after_any_sequence_of_moves(
    moves: list[tuple[int, int, bool]],
) -> None:
    ids = [uuid4() for _ in range(6)]
    keys = dict(zip(ids, spread(6), strict=True))
    order = list(ids)
    for who, where, use_before in moves:
        mover = order[who % len(order)]
        rest = [i for i in order if i != mover]
        gap = where % (len(rest) + 1)
        if use_before:
            target = {"before": rest[gap] if gap < len(rest) else None}
        else:
            target = {"after": rest[gap - 1] if gap else None}
        placement, others = place(
            [Sibling(i, keys[i]) for i in rest],
            None,
            current=keys[mover],
            **target,
        )
        keys[mover] = placement.position
        keys.update({i: p.position for i, p in others})
        order = sorted(ids, key=lambda i: keys[i])
        assert order.index(mover) == gap
    assert len(set(keys.values())) == len(ids)


def test_the_family_rules() -> None:
    task, parent, grandparent = uuid4(), uuid4(), uuid4()
    check_parent(task, [parent, grandparent], height=3)  # levels 3, 4, 5
    for chain, height, code in (
        ([], 1, "parent_not_found"),
        ([task, grandparent], 1, "parent_cycle"),
        ([parent, task], 1, "parent_cycle"),
        ([parent, grandparent], 4, "too_deep"),
        ([uuid4() for _ in range(MAX_DEPTH)], 1, "too_deep"),
    ):
        with pytest.raises(InvalidTask) as refused:
            check_parent(task, chain, height)
        assert refused.value.errors[0].field == "parent_id"
        assert refused.value.errors[0].code == code


def test_creates_that_read_the_same_last_sibling_still_get_distinct_ordered_keys() -> None:
    from todo_domain import Uuid7Generator

    ids = Uuid7Generator()
    last = between(None, None)
    racing = [ids.new_id() for _ in range(50)]
    keys = [after_last(last, task_id) for task_id in racing]  # all read the same `last`
    assert all(is_valid(k) and k > last for k in keys)
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys)  # version 7 ids: creation order
    chain = last
    for _ in range(10_000):
        chain = after_last(chain, ids.new_id())
    assert len(chain) <= 30
    assert after_last(None, UUID(int=0)).endswith("01")  # a fraction never ends in "0"
