"""The CloudEvents 1.0 envelope (structured JSON) of a recorded event: built from what the
outbox stored, so a retried event is the same bytes with the same id."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from todo_domain.events import EventType, RecordedEvent
from todo_domain.model import Task

__all__ = ["CloudEvents", "JsonEncoder", "TaskRenderer"]

TaskRenderer = Callable[[Task], Mapping[str, Any]]
"""The task as the HTTP API shows it (SPEC §6.2); the entrypoints hand theirs in."""
JsonEncoder = Callable[[Any], bytes]
"""JSON bytes of the envelope, with the API's encoder (its datetimes as `…Z`), handed in too."""


def _iso(moment: Any) -> str:
    text: str = moment.isoformat().replace("+00:00", "Z")
    return text


class CloudEvents:
    """`encode(event)`: the JSON bytes every sink sends for that event."""

    def __init__(self, source: str, render_task: TaskRenderer, dump_json: JsonEncoder) -> None:
        self.source = source
        self._render = render_task
        self._dump = dump_json

    def envelope(self, event: RecordedEvent) -> dict[str, Any]:
        data: dict[str, Any] = {"task": self._render(event.task)}
        if event.type is EventType.REMINDER_DUE and event.remind_at is not None:
            data["remind_at"], data["late"] = _iso(event.remind_at), event.late
        if event.occurrence is not None:
            data["occurrence"] = {"due_date": _iso(event.occurrence)}
        return {
            "specversion": "1.0",
            "id": str(event.id),
            "source": self.source,
            "type": event.type.value,
            "subject": str(event.task.id),
            "time": _iso(event.time),
            "datacontenttype": "application/json",
            "userid": event.owner,
            "sequence": str(event.sequence),
            "data": data,
        }

    def encode(self, event: RecordedEvent) -> bytes:
        return self._dump(self.envelope(event))
