"""Manual order (SPEC §17): fractional position keys, compared as plain byte strings.

A key is an *integer part* and an optional *fraction*, both in base 62 over the ASCII-ordered
digits `0-9A-Za-z`. The integer part's first character says how long it is (`a` → 2 characters,
`b` → 3 … `z` → 27; `Z` → 2, `Y` → 3 … `A` → 27 for the negative side), so appending after the
last sibling or prepending before the first increments or decrements the integer part, and keys
grow by one character every ~62^n steps: short for ever. A key between two neighbours takes the
midpoint of their fractions, one character every ~6 halvings of the same gap; when that would
pass `MAX_LENGTH`, the caller rebalances the siblings (`spread`) instead.

This is the well-known "fractional indexing" scheme (as in Figma's and Rocicorp's write-ups),
written here in plain Python so the domain stays free of third-party imports.
"""

from __future__ import annotations

from uuid import UUID

__all__ = ["DIGITS", "MAX_LENGTH", "after_last", "between", "is_valid", "spread"]

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_LENGTH = 64
_INDEX = {d: i for i, d in enumerate(DIGITS)}
_SMALLEST_INTEGER = "A" + "0" * 26  # the lowest integer part; kept free so there is room before


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise ValueError(f"invalid position head {head!r}")


def _split(key: str) -> tuple[str, str]:
    integer = key[: _integer_length(key[0])]
    if len(integer) != _integer_length(key[0]):
        raise ValueError(f"invalid position {key!r}")
    return integer, key[len(integer) :]


def is_valid(key: object) -> bool:
    """Whether `key` is a position this module could have made."""
    if not isinstance(key, str) or not key or len(key) > 4 * MAX_LENGTH:
        return False
    if any(c not in _INDEX for c in key) or key.startswith(_SMALLEST_INTEGER):
        return False
    try:
        _, fraction = _split(key)
    except ValueError:
        return False
    return not fraction.endswith("0")


def _midpoint(low: str, high: str | None) -> str:
    """A fraction strictly between fractions `low` and `high` (None: above every fraction);
    neither ends in "0", so one always exists."""
    if high is not None:
        common = 0
        while common < len(high) and (low[common] if common < len(low) else "0") == high[common]:
            common += 1
        if common:
            return high[:common] + _midpoint(low[common:], high[common:])
    digit_low = _INDEX[low[0]] if low else 0
    digit_high = _INDEX[high[0]] if high else len(DIGITS)
    if digit_high - digit_low > 1:
        return DIGITS[(digit_low + digit_high + 1) // 2]
    if high is not None and len(high) > 1:
        return high[:1]
    return DIGITS[digit_low] + _midpoint(low[1:], None)


def _step(integer: str, up: bool) -> str | None:
    """The next integer part above (or below) `integer`; None past the end of the range."""
    head, digits = integer[0], list(integer[1:])
    edge, reset = (DIGITS[-1], "0") if up else ("0", DIGITS[-1])
    for i in reversed(range(len(digits))):
        if digits[i] != edge:
            digits[i] = DIGITS[_INDEX[digits[i]] + (1 if up else -1)]
            return head + "".join(digits)
        digits[i] = reset
    # every digit rolled over: the integer part gets longer (or shorter)
    if up:
        if head == "Z":
            return "a0"
        if head == "z":
            return None
        head = chr(ord(head) + 1)
        return head + "".join([*digits, "0"] if head > "a" else digits[:-1])
    if head == "a":
        return "Z" + DIGITS[-1]
    if head == "A":
        return None
    head = chr(ord(head) - 1)
    return head + "".join([*digits, DIGITS[-1]] if head < "Z" else digits[:-1])


def between(low: str | None, high: str | None) -> str:
    """A key strictly between `low` and `high` (None: no neighbour on that side)."""
    if low is not None and high is not None and not low < high:
        raise ValueError(f"{low!r} is not before {high!r}")
    if low is None and high is None:
        return "a0"
    if low is None and high is not None:
        integer, fraction = _split(high)
        if integer == _SMALLEST_INTEGER:
            return integer + _midpoint("", fraction)
        if integer < high:
            return integer
        lower = _step(integer, up=False)
        if lower is None:
            raise ValueError("no room before the first position")
        return lower
    assert low is not None
    integer, fraction = _split(low)
    if high is None:
        higher = _step(integer, up=True)
        return integer + _midpoint(fraction, None) if higher is None else higher
    high_integer, high_fraction = _split(high)
    if integer == high_integer:
        return integer + _midpoint(fraction, high_fraction)
    higher = _step(integer, up=True)
    if higher is None:
        raise ValueError("no room after the last position")
    return higher if higher < high else integer + _midpoint(fraction, None)


def spread(count: int, above: str | None = None) -> list[str]:
    """`count` short keys in ascending order, all after `above` (when given): what a sibling
    list is rebalanced to. Being above every current key, they never collide with one."""
    keys: list[str] = []
    last = above
    for _ in range(count):
        last = between(last, None)
        keys.append(last)
    return keys


def after_last(last: str | None, task_id: UUID) -> str:
    """A new last child's key: the next integer after `last` (short, as any append), then a
    fraction spelling the task's id (22 base-62 digits, never ending in "0"). Two creates that
    read the same last sibling at once so get different keys without any lock, in the order
    of their time-ordered (version 7) ids; a later append or move starts from them as usual."""
    n, digits = task_id.int, []
    for _ in range(22):
        n, digit = divmod(n, len(DIGITS))
        digits.append(DIGITS[digit])
    salt = "".join(reversed(digits))
    return between(last, None) + (salt + "1" if salt.endswith("0") else salt)
