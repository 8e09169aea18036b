"""The outbox, reminders and webhook deliveries of SPEC §16, on every store (memory, SQLite,
PostgreSQL), through the worker's use cases (todo_domain.relay) with in-test sinks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from todo_adapters.memory import InMemoryStore
from todo_adapters.sql import SqlStore
from todo_domain import NewTask, TaskPatch, TaskService, TaskStore
from todo_domain.errors import SinkUnavailable, VersionConflict
from todo_domain.events import Delivery, EventType, RecordedEvent
from todo_domain.ports import EventOutbox
from todo_domain.relay import EventRelay, RelaySettings
from todo_domain.testing import T0, ManualClock
from todo_domain.values import Frequency, Recurrence

HOUR = timedelta(hours=1)


class RecordingSink:
    """Takes everything, or fails on the events named in `refuse` (taking those before them)."""

    name = "recording"

    def __init__(self) -> None:
        self.received: list[RecordedEvent] = []
        self.refuse: set[tuple[str, int]] = set()

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        done: set[tuple[str, int]] = set()
        stopped: set[str] = set()
        for event in events:
            key = (event.owner, event.sequence)
            if event.owner in stopped or key in self.refuse:
                stopped.add(event.owner)
                continue
            self.received.append(event)
            done.add(key)
        if stopped:
            raise SinkUnavailable(self.name, "refused", frozenset(done))

    async def close(self) -> None:
        """Nothing to close."""

    def of(self, owner: str) -> list[RecordedEvent]:
        return [e for e in self.received if e.owner == owner]


class Endpoint:
    """A webhook sender whose endpoint answers from a script: None delivers, text fails."""

    def __init__(self) -> None:
        self.answers: list[str | None] = []
        self.sent: list[Delivery] = []

    async def send(self, delivery: Delivery) -> str | None:
        self.sent.append(delivery)
        return self.answers.pop(0) if self.answers else None

    async def close(self) -> None:
        """Nothing to close."""


def outbox_of(store: TaskStore) -> EventOutbox:
    assert isinstance(store, InMemoryStore | SqlStore)
    return store.outbox


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(tick=timedelta(milliseconds=1))


@pytest.fixture
def service(uow: TaskStore, clock: ManualClock) -> TaskService:
    return TaskService(uow, clock=clock)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def relay(uow: TaskStore, sink: RecordingSink, clock: ManualClock) -> EventRelay:
    return EventRelay(outbox_of(uow), [sink], clock=clock)


async def deliver_all(relay: EventRelay) -> None:
    """Webhook rounds until one delivers nothing."""
    while (await relay.deliver_webhooks()).delivered:
        pass


async def drain(relay: EventRelay) -> None:
    """Relays until the outbox is empty (a shared test database holds other tests' events)."""
    while await relay.relay():
        pass


async def test_every_write_records_one_event_of_its_type_in_sequence_order(
    service: TaskService, relay: EventRelay, sink: RecordingSink, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="write the report"))
    await service.update(alice, task.id, TaskPatch(title="write the annual report"))
    await service.set_completed(alice, task.id, True)
    await service.set_completed(alice, task.id, False)
    await service.delete(alice, task.id)
    await drain(relay)
    events = sink.of(alice)
    assert [e.type for e in events] == [
        EventType.TASK_CREATED,
        EventType.TASK_UPDATED,
        EventType.TASK_COMPLETED,
        EventType.TASK_REOPENED,
        EventType.TASK_DELETED,
    ]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert [e.task.version for e in events] == [1, 2, 3, 4, 5]
    assert events[1].task.title == "write the annual report"
    assert events[4].task.deleted
    assert events[4].task.id == task.id
    assert len({e.id for e in events}) == 5


async def test_a_recurring_completion_is_a_completed_event_with_the_occurrence_done(
    service: TaskService, relay: EventRelay, sink: RecordingSink, alice: str
) -> None:
    due = T0 + timedelta(days=1)
    task = await service.create(
        alice, NewTask(title="water plants", due_date=due, recurrence=Recurrence(Frequency.WEEKLY))
    )
    rolled = await service.set_completed(alice, task.id, True)
    await drain(relay)
    completed = sink.of(alice)[-1]
    assert completed.type is EventType.TASK_COMPLETED
    assert completed.occurrence == due
    assert completed.task.due_date == rolled.due_date == due + timedelta(days=7)
    assert not completed.task.completed


async def test_completing_a_parent_records_an_event_for_each_subtask_it_completes(
    service: TaskService, relay: EventRelay, sink: RecordingSink, alice: str
) -> None:
    parent = await service.create(alice, NewTask(title="move house"))
    child = await service.create(alice, NewTask(title="pack books", parent_id=parent.id))
    await service.set_completed(alice, parent.id, True)
    await drain(relay)
    last_two = {(e.task.id, e.type) for e in sink.of(alice)[-2:]}
    assert last_two == {(parent.id, EventType.TASK_COMPLETED), (child.id, EventType.TASK_COMPLETED)}


async def test_a_write_that_rolls_back_records_no_event(
    service: TaskService, relay: EventRelay, sink: RecordingSink, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="kept"))
    with pytest.raises(VersionConflict):
        await service.update(alice, task.id, TaskPatch(title="stale"), expected_version=7)
    await drain(relay)
    assert [e.type for e in sink.of(alice)] == [EventType.TASK_CREATED]


async def test_events_a_sink_did_not_take_come_again_and_those_it_took_do_not(
    service: TaskService, relay: EventRelay, sink: RecordingSink, alice: str
) -> None:
    for n in range(4):
        await service.create(alice, NewTask(title=f"task {n}"))
    sink.refuse = {(alice, 3)}
    with pytest.raises(SinkUnavailable):
        await drain(relay)
    assert [e.sequence for e in sink.of(alice)] == [1, 2]
    sink.refuse = set()
    await drain(relay)
    assert [e.sequence for e in sink.of(alice)] == [1, 2, 3, 4]  # once each, in order
    assert await relay.lag() is None


async def test_lag_is_the_age_of_the_oldest_unpublished_event(
    service: TaskService, relay: EventRelay, clock: ManualClock, alice: str
) -> None:
    await drain(relay)
    await service.create(alice, NewTask(title="waiting"))
    clock.advance(timedelta(seconds=30))
    lag = await relay.lag()
    assert lag is not None
    assert 29 < lag < 32
    await drain(relay)
    assert await relay.lag() is None


# -- reminders ---------------------------------------------------------------------------------------


async def reminders_of(relay: EventRelay, owner: str) -> list[RecordedEvent]:
    fired: list[RecordedEvent] = []
    while batch := await relay.fire_reminders():
        fired += [e for e in batch if e.owner == owner]
    return fired


async def test_a_reminder_fires_once_when_its_time_comes(
    service: TaskService, relay: EventRelay, sink: RecordingSink, clock: ManualClock, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="call mum", remind_at=clock.current + HOUR))
    assert await reminders_of(relay, alice) == []
    clock.advance(HOUR)
    fired = await reminders_of(relay, alice)
    assert [(e.type, e.task.id, e.remind_at, e.late) for e in fired] == [
        (EventType.REMINDER_DUE, task.id, task.remind_at, False)
    ]
    assert fired[0].sequence == 2  # the owner's next revision: ordered with the writes
    clock.advance(HOUR)
    assert await reminders_of(relay, alice) == []
    await drain(relay)
    assert [e.type for e in sink.of(alice)] == [EventType.TASK_CREATED, EventType.REMINDER_DUE]


async def test_changing_remind_at_arms_it_again_and_completing_or_deleting_disarms_it(
    service: TaskService, relay: EventRelay, clock: ManualClock, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="again", remind_at=clock.current + HOUR))
    done = await service.create(alice, NewTask(title="done", remind_at=clock.current + HOUR))
    gone = await service.create(alice, NewTask(title="gone", remind_at=clock.current + HOUR))
    await service.set_completed(alice, done.id, True)
    await service.delete(alice, gone.id)
    clock.advance(HOUR)
    assert [e.task.id for e in await reminders_of(relay, alice)] == [task.id]
    later = clock.current + HOUR
    await service.update(alice, task.id, TaskPatch(remind_at=later))
    clock.advance(HOUR)
    fired = await reminders_of(relay, alice)
    assert [(e.task.id, e.remind_at) for e in fired] == [(task.id, later)]


async def test_a_recurring_roll_forward_arms_the_next_reminder(
    service: TaskService, relay: EventRelay, clock: ManualClock, alice: str
) -> None:
    due = clock.current + 2 * HOUR
    task = await service.create(
        alice,
        NewTask(title="standup", due_date=due, remind_at=due - HOUR, recurrence=Recurrence(Frequency.DAILY)),
    )
    clock.advance(HOUR)
    assert len(await reminders_of(relay, alice)) == 1
    rolled = await service.set_completed(alice, task.id, True)
    assert rolled.remind_at == due - HOUR + timedelta(days=1)
    clock.advance(timedelta(days=1))
    fired = await reminders_of(relay, alice)
    assert [e.remind_at for e in fired] == [rolled.remind_at]


async def test_a_missed_reminder_fires_late_and_one_past_the_lateness_limit_is_skipped(
    uow: TaskStore, service: TaskService, sink: RecordingSink, clock: ManualClock, alice: str
) -> None:
    relay = EventRelay(
        outbox_of(uow), [sink], clock=clock, settings=RelaySettings(reminder_max_lateness=timedelta(hours=24))
    )
    late = await service.create(alice, NewTask(title="late", remind_at=clock.current + HOUR))
    await service.create(alice, NewTask(title="too late", remind_at=clock.current - 30 * HOUR))
    clock.advance(5 * HOUR)  # the worker was down for hours
    fired = await reminders_of(relay, alice)
    assert [(e.task.id, e.late) for e in fired] == [(late.id, True)]
    assert await reminders_of(relay, alice) == []  # the skipped one is disarmed, not retried


async def test_the_stream_reads_reminders_in_order_with_the_changes(
    service: TaskService, relay: EventRelay, clock: ManualClock, alice: str
) -> None:
    task = await service.create(alice, NewTask(title="ping", remind_at=clock.current + HOUR))
    start = await service.current_token(alice)
    clock.advance(HOUR)
    await reminders_of(relay, alice)
    await service.update(alice, task.id, TaskPatch(title="ping back"))
    log = await service.changes_after(alice, start)
    assert [(c.remind_at is not None, c.token.revision) for c in log.entries] == [(True, 2), (False, 3)]
    assert log.entries[0].remind_at == task.remind_at
    plain = await service.list_changes(alice, start.encode())
    assert [t.title for t in plain.changes] == ["ping back"]  # the sync feed has tasks only
    after_reminder = await service.changes_after(alice, log.entries[0].token)
    assert [c.remind_at is None for c in after_reminder.entries] == [True]  # just the write
    one_at_a_time = await service.changes_after(alice, start, limit=1)
    assert [c.remind_at for c in one_at_a_time.entries] == [task.remind_at]
    assert one_at_a_time.has_more


# -- webhooks ------------------------------------------------------------------------------------------


async def test_webhooks_are_retried_with_backoff_then_kept_as_dead_letters_and_replayed(
    uow: TaskStore, service: TaskService, sink: RecordingSink, clock: ManualClock, alice: str
) -> None:
    endpoint = Endpoint()
    settings = RelaySettings(webhook_urls=("http://hooks.test/a",), webhook_retry=timedelta(seconds=10))
    relay = EventRelay(outbox_of(uow), [sink], webhooks=endpoint, settings=settings, clock=clock)
    await drain(relay)
    await deliver_all(relay)  # other tests' deliveries, if the database is shared
    endpoint.sent.clear()
    await service.create(alice, NewTask(title="hooked"))
    await drain(relay)
    endpoint.answers = ["HTTP 500", "HTTP 503"]
    first = await relay.deliver_webhooks()
    assert (first.delivered, first.retried) == (0, 1)
    assert (await relay.deliver_webhooks()).retried == 0  # not due yet: 1 s later
    clock.advance(timedelta(seconds=1.5))
    assert (await relay.deliver_webhooks()).retried == 1
    clock.advance(timedelta(seconds=2.5))
    endpoint.answers = ["HTTP 500"]
    clock.advance(timedelta(seconds=10))
    assert (await relay.deliver_webhooks()).dead == 1
    dead = [d for d in await relay.dead_letters() if d.event.owner == alice]
    assert [(d.attempts, d.last_error, d.url) for d in dead] == [(3, "HTTP 500", "http://hooks.test/a")]
    assert await relay.replay_dead() >= 1
    assert (await relay.deliver_webhooks()).delivered >= 1
    assert [d for d in await relay.dead_letters() if d.event.owner == alice] == []
    assert {d.event.owner for d in endpoint.sent} == {alice}
    assert len({d.event.id for d in endpoint.sent}) == 1  # the same event id on every try


async def test_published_events_are_purged_after_the_retention(
    uow: TaskStore, service: TaskService, sink: RecordingSink, clock: ManualClock, alice: str
) -> None:
    relay = EventRelay(outbox_of(uow), [sink], clock=clock, settings=RelaySettings(retention=HOUR))
    await service.create(alice, NewTask(title="short-lived"))
    await drain(relay)
    await relay.purge()  # other tests' old events may go; ours are fresh and stay
    before = len(sink.of(alice))
    assert before == 1
    clock.advance(2 * HOUR)
    purged = await relay.purge()
    assert purged >= 1
    await drain(relay)
    assert len(sink.of(alice)) == before  # purged events are not sent again


class SlowEndpoint(Endpoint):
    """Each send takes `seconds` of the manual clock."""

    def __init__(self, clock: ManualClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    async def send(self, delivery: Delivery) -> str | None:
        self.clock.advance(timedelta(seconds=self.seconds))
        return await super().send(delivery)


async def test_a_webhook_round_keeps_each_owners_order_and_stops_starting_sends_after_its_time(
    uow: TaskStore, service: TaskService, sink: RecordingSink, clock: ManualClock, alice: str, bob: str
) -> None:
    endpoint = SlowEndpoint(clock, seconds=10)
    settings = RelaySettings(webhook_urls=("http://hooks.test/slow",), webhook_round=timedelta(seconds=15))
    relay = EventRelay(outbox_of(uow), [sink], webhooks=endpoint, settings=settings, clock=clock)
    await drain(relay)
    await deliver_all(relay)  # other tests' deliveries, if the database is shared
    endpoint.sent.clear()
    for n in range(3):
        await service.create(alice, NewTask(title=f"alice {n}"))
        await service.create(bob, NewTask(title=f"bob {n}"))
    await drain(relay)
    first = await relay.deliver_webhooks()
    assert first.delivered < 6  # the round ran out of time: the rest wait for the next one
    await deliver_all(relay)
    for owner in (alice, bob):
        sequences = [d.event.sequence for d in endpoint.sent if d.event.owner == owner]
        assert sequences == [1, 2, 3]  # each once, in order


async def test_an_in_memory_store_told_not_to_keep_events_keeps_none_and_syncs_the_same() -> None:
    store = InMemoryStore(keep_events=False)
    service = TaskService(store)
    task = await service.create("kim", NewTask(title="no outbox here"))
    await service.update("kim", task.id, TaskPatch(title="still none"))
    assert await store.outbox.lag(T0) is None
    changes = await service.list_changes("kim")
    assert [t.title for t in changes.changes] == ["still none"]
    assert changes.next.revision == 2  # each write still its own revision
