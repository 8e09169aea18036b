"""Value objects of a task: immutable and validated on construction, so bad states stop at the edge."""

from __future__ import annotations

import calendar
import enum
import functools
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Self
from uuid import UUID

from todo_domain.errors import InvalidTask

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_OWNER",
    "MAX_TAG",
    "MAX_TAGS",
    "MAX_TITLE",
    "Description",
    "Frequency",
    "Owner",
    "Priority",
    "Recurrence",
    "Status",
    "Tags",
    "TimeZone",
    "Title",
    "as_utc",
    "is_clean_text",
    "utc",
]

MAX_TITLE = 255
MAX_DESCRIPTION = 10_000
MAX_TAG = 50
MAX_TAGS = 20
MAX_OWNER = 255


# Control characters (C0 and DEL) and lone surrogates, found by one regular-expression scan
# (a per-character Python loop cost ~1 µs per title on every read).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_FORBIDDEN_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def is_clean_text(value: str) -> bool:
    """No control character (C0, DEL) and no lone surrogate: the rule of titles, owners and
    search text, for values that are not built into one of those (cursors, queries)."""
    return _FORBIDDEN.search(value) is None


def _check_text(field: str, value: str, *, multiline: bool = False) -> None:
    found = (_FORBIDDEN_BUT_WHITESPACE if multiline else _FORBIDDEN).search(value)
    if found is None:
        return
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        raise InvalidTask.one(field, "must not contain lone surrogates", "invalid_unicode")
    raise InvalidTask.one(field, f"must not contain control character U+{ord(char):04X}", "control_character")


# What new titles, tags and owners may not hold besides that (SPEC §13.2): C1 controls,
# bidirectional overrides and isolates, and line/paragraph separators — text that renders as
# something else than it is. Stored text is read back under the rules above only, so a task
# written before these rules still loads.
_MISLEADING = re.compile("[\x80-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# Text with nothing visible: whitespace and the format characters that render as nothing.
_INVISIBLE = re.compile(
    "[\\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u2060-\u2064\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]*"
)


def _check_input_text(field: str, text: str) -> None:
    """The rules for text a caller sends (titles, tags, token subjects), on top of `_check_text`."""
    if _INVISIBLE.fullmatch(text):
        raise InvalidTask.one(field, "must have at least 1 visible character", "too_short")
    found = _MISLEADING.search(text)
    if found is not None:
        char = f"U+{ord(found.group()):04X}"
        raise InvalidTask.one(
            field, f"must not contain {char} (it renders misleadingly)", "invisible_or_bidi"
        )


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidTask.one(field, "must be a string", "type_error")
    return value


class Title(str):
    """Trimmed, 1–255 characters, no control characters or lone surrogates."""

    __slots__ = ()

    def __new__(cls, value: object) -> Self:
        text = _require_str("title", value).strip()
        if not text:
            raise InvalidTask.one("title", "must have at least 1 character", "too_short")
        if len(text) > MAX_TITLE:
            raise InvalidTask.one("title", f"must have at most {MAX_TITLE} characters", "too_long")
        _check_text("title", text)
        return super().__new__(cls, text)

    @classmethod
    def parse(cls, value: object) -> Title:
        """A title a caller sends: also something visible, nothing that renders misleadingly."""
        title = cls(value)
        _check_input_text("title", title)
        return title


class Description(str):
    """At most 10,000 characters; newlines and tabs allowed. Use `Description.of` to map '' to None."""

    __slots__ = ()

    def __new__(cls, value: object) -> Self:
        text = _require_str("description", value)
        if len(text) > MAX_DESCRIPTION:
            raise InvalidTask.one(
                "description", f"must have at most {MAX_DESCRIPTION} characters", "too_long"
            )
        _check_text("description", text, multiline=True)
        return super().__new__(cls, text)

    @classmethod
    def of(cls, value: object) -> Description | None:
        """None and the empty string both mean "no description"."""
        if value is None or value == "":
            return None
        return cls(value)


class Owner(str):
    """The opaque id of the acting user (the token's subject): 1–255 characters, no control characters."""

    __slots__ = ()

    def __new__(cls, value: object) -> Self:
        if not isinstance(value, str) or not value:
            raise InvalidTask.one("owner", "must be a non-empty string", "invalid_owner")
        if len(value) > MAX_OWNER:
            raise InvalidTask.one("owner", f"must have at most {MAX_OWNER} characters", "too_long")
        _check_text("owner", value)
        _check_input_text("owner", value)
        return super().__new__(cls, value)


class Tags(tuple[str, ...]):
    """A set of tags, each trimmed and lower-cased (1–50 chars); at most 20; kept sorted."""

    __slots__ = ()

    def __new__(cls, values: Iterable[object] = ()) -> Self:
        if isinstance(values, str):
            raise InvalidTask.one("tags", "must be a list of strings", "type_error")
        seen: set[str] = set()
        for raw in values:
            tag = _require_str("tags", raw).strip().lower()
            if not tag:
                raise InvalidTask.one("tags", "a tag must have at least 1 character", "too_short")
            if len(tag) > MAX_TAG:
                raise InvalidTask.one("tags", f"a tag must have at most {MAX_TAG} characters", "too_long")
            _check_text("tags", tag)
            seen.add(tag)
        if len(seen) > MAX_TAGS:
            raise InvalidTask.one("tags", f"must have at most {MAX_TAGS} tags", "too_many")
        return super().__new__(cls, sorted(seen))

    @classmethod
    def parse(cls, values: Iterable[object] = ()) -> Tags:
        """Tags a caller sends: each also visible, nothing that renders misleadingly."""
        tags = cls(values)
        for tag in tags:
            _check_input_text("tags", tag)
        return tags


class Status(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Priority(enum.StrEnum):
    """Ordered low < medium < high; `rank` is what sorts."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _RANK_PRIORITY[rank]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}
_RANK_PRIORITY = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


def _add_months(moment: datetime, months: int, anchor_day: int | None = None) -> datetime:
    """The same day of month (`anchor_day`, else the moment's own) `months` later, clamped to
    the month's last day: Jan 31 + 1 = Feb 28/29, and with anchor 31, Feb 28 + 1 = Mar 31."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    day = min(anchor_day or moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Repeat every `interval` days/weeks/months/years (interval 1–365).

    `anchor_day` is the day of month monthly and yearly steps aim for: the due date's (local)
    day when it was set, so a task due on the 31st comes back on the 31st after a shorter month
    clamped it to the 30th or 28th. Tasks set it themselves (`anchored`); it is not part of a
    recurrence's identity (equality ignores it) and None means "the due date's own day".
    """

    frequency: Frequency
    interval: int = 1
    anchor_day: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "frequency", Frequency(self.frequency))
        except ValueError:
            allowed = ", ".join(f.value for f in Frequency)
            raise InvalidTask.one(
                "recurrence.frequency", f"must be one of {allowed}", "invalid_choice"
            ) from None
        if isinstance(self.interval, bool) or not isinstance(self.interval, int):
            raise InvalidTask.one("recurrence.interval", "must be an integer", "type_error")
        if not 1 <= self.interval <= 365:
            raise InvalidTask.one("recurrence.interval", "must be between 1 and 365", "out_of_range")
        anchor = self.anchor_day
        if anchor is not None and (
            isinstance(anchor, bool) or not isinstance(anchor, int) or not 1 <= anchor <= 31
        ):
            raise InvalidTask.one("recurrence.anchor_day", "must be a day of month (1–31)", "out_of_range")

    def anchored(self, due: datetime, zone: TimeZone | None = None) -> Recurrence:
        """This recurrence aiming for `due`'s day of month (on the zone's wall clock)."""
        if self.frequency not in (Frequency.MONTHLY, Frequency.YEARLY):
            return self if self.anchor_day is None else Recurrence(self.frequency, self.interval)
        day = (due if zone is None else zone.wall_clock(due)).day
        return Recurrence(self.frequency, self.interval, day)

    def step(self, moment: datetime, k: int, zone: TimeZone | None = None) -> datetime:
        """`moment` moved forward by k intervals; raises OverflowError past year 9999.

        In a `zone`, the step is taken on the local wall clock (09:00 stays 09:00 across a
        daylight-saving change; a month-end clamps to the local month's last day), and the
        result is UTC again. A wall-clock time that does not exist that day (in a spring-forward
        gap) comes out as the instant the offset before the change gives it (02:30 → 03:30).
        """
        if zone is None:
            return self._step(moment, k)
        return zone.instant(self._step(zone.wall_clock(moment), k))

    def _step(self, moment: datetime, k: int) -> datetime:
        n = k * self.interval
        match self.frequency:
            case Frequency.DAILY:
                return moment + timedelta(days=n)
            case Frequency.WEEKLY:
                return moment + timedelta(weeks=n)
            case Frequency.MONTHLY:
                return _add_months(moment, n, self.anchor_day)
            case Frequency.YEARLY:
                return _add_months(moment, 12 * n, self.anchor_day)

    def next_after(self, due: datetime, now: datetime, zone: TimeZone | None = None) -> datetime:
        """`due + k × interval` for the smallest k ≥ 1 that lands strictly after `now`.

        k is estimated arithmetically (so a due date decades overdue costs nothing), then
        corrected by at most a couple of steps; monthly steps are computed from the original
        due date so the day of month is kept within one roll-forward.
        """
        k = 1
        if due <= now:
            if self.frequency in (Frequency.DAILY, Frequency.WEEKLY):
                unit = timedelta(days=self.interval * (7 if self.frequency is Frequency.WEEKLY else 1))
                k = (now - due) // unit + 1
            else:
                months_per_step = self.interval * (12 if self.frequency is Frequency.YEARLY else 1)
                months = (now.year - due.year) * 12 + (now.month - due.month)
                k = max(1, months // months_per_step)
        while k > 1 and self.step(due, k - 1, zone) > now:
            k -= 1
        while self.step(due, k, zone) <= now:
            k += 1
        return self.step(due, k, zone)


MAX_TIME_ZONE = 64


@functools.cache
def _known_zones() -> frozenset[str]:
    """The IANA zones the system's tz database holds, less the host's own `localtime` link
    and tzdata's internal `posixrules` (neither names a place)."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}


@functools.cache
def _zone_info(name: str) -> tzinfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class TimeZone:
    """An IANA time zone name (`Europe/Paris`), checked against the zones the system knows;
    recurrence steps and reminder shifts happen on its wall clock (SPEC §17)."""

    name: str

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str):
            raise InvalidTask.one("time_zone", "must be an IANA time zone name", "type_error")
        if len(name) > MAX_TIME_ZONE or name not in _known_zones():
            raise InvalidTask.one(
                "time_zone", "is not a known IANA time zone name (e.g. Europe/Paris)", "unknown_time_zone"
            )

    @classmethod
    def of(cls, value: str | TimeZone | None) -> TimeZone | None:
        if value is None or isinstance(value, TimeZone):
            return value
        return cls(value)

    @property
    def info(self) -> tzinfo:
        return _zone_info(self.name)

    def wall_clock(self, moment: datetime) -> datetime:
        """`moment` as a naive local time in this zone."""
        return moment.astimezone(self.info).replace(tzinfo=None)

    def instant(self, local: datetime) -> datetime:
        """A naive local time of this zone as an aware UTC instant."""
        return local.replace(tzinfo=self.info).astimezone(UTC)

    def __str__(self) -> str:
        return self.name


def as_uuid(value: object) -> UUID | None:
    """A UUID given as itself or as its text (at most 64 characters); None for anything else.
    The one reading of task ids: each caller decides what a non-id means where it stands."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value)
        except ValueError:
            return None
    return None


def as_utc(value: datetime) -> datetime:
    """`value` in UTC, a naive one read as UTC: how the wire format and the stores spell UTC
    (the domain's own inputs must carry an offset: see `utc`). OverflowError if converting
    leaves years 1–9999."""
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc(field: str, value: datetime | None) -> datetime | None:
    """An aware datetime converted to UTC; naive datetimes and overflowing offsets are refused."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidTask.one(field, "must be a datetime", "type_error")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTask.one(field, "must include a timezone offset", "naive_datetime")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidTask.one(
            field, "is out of range once converted to UTC (years 1–9999)", "out_of_range"
        ) from None
