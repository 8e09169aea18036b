"""ETags are the task version: `"<version>"`. Parsing of If-Match / If-None-Match lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from todo_domain import Task

__all__ = ["NO_VERSION", "etag", "expected_version", "matches", "parse_etags", "version_of"]

ANY = "*"


def etag(task: Task) -> str:
    return f'"{task.version}"'


def parse_etags(header: str, *, weak: bool) -> set[str] | None:
    """The entity tags of a header; None stands for `*`. With `weak` (If-None-Match's weak
    comparison) `W/"1"` counts as `"1"`; without it (If-Match's strong comparison, RFC 9110
    §13.1.1) a weak tag is kept as it is and so matches no version."""
    if header.strip() == ANY:
        return None
    tags = set()
    for part in header.split(","):
        part = part.strip()
        if weak and part.startswith("W/"):
            part = part[2:]
        if part:
            tags.add(part)
    return tags


def matches(header: str, task: Task) -> bool:
    """If-None-Match: does the header name the task's current version?"""
    tags = parse_etags(header, weak=True)
    return tags is None or etag(task) in tags


def version_of(tag: str) -> int | None:
    """The version a strong entity tag names, or None."""
    digits = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
    # isascii: str.isdigit() also accepts "²", which int() refuses.
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 else None


NO_VERSION = 0  # versions start at 1, so this never matches: a guaranteed 412


async def expected_version(header: str | None, current: Callable[[], Awaitable[Task]]) -> int | None:
    """The version an If-Match header asks the write to apply to (None: any).

    One tag is checked by the write's compare-and-set itself; for a list of tags the current
    version is read first and the write is then pinned to it, so it stays atomic.
    """
    if header is None:
        return None
    tags = parse_etags(header, weak=False)
    if tags is None:
        return None
    versions = {v for v in map(version_of, tags) if v is not None}
    if len(tags) == 1:
        return versions.pop() if versions else NO_VERSION
    task = await current()
    return task.version if task.version in versions else NO_VERSION
