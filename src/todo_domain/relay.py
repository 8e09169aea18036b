"""The worker's use cases (SPEC §16): relay the outbox to the sinks, fire reminders, deliver
webhooks with retries, purge what is published.

Guarantees come from the order of steps, not from the sinks: a batch is marked published
only after every sink took all of it, in the same transaction that schedules its webhook
deliveries, so a worker killed at any point leaves the batch to the next claim (at least
once, never a gap). Sinks keep one copy per event id (JetStream's Nats-Msg-Id) or per owner's
sequence (the Redis sink), so a batch published twice reaches consumers once and in order.
A webhook delivery that fails is retried on its own schedule and never holds back the next
events (receivers order by `sequence`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from todo_domain.errors import SinkUnavailable
from todo_domain.events import Delivery, RecordedEvent
from todo_domain.ports import Clock, EventOutbox, EventSink, IdGenerator, WebhookSender
from todo_domain.system import SystemClock, Uuid7Generator

__all__ = ["DeliveryReport", "EventRelay", "RelaySettings"]


@dataclass(frozen=True, slots=True)
class RelaySettings:
    batch_size: int = 500
    webhook_urls: tuple[str, ...] = ()
    webhook_retry: timedelta = timedelta(hours=24)
    reminder_max_lateness: timedelta = timedelta(hours=24)
    # a reminder fired later than this after its time says `late: true`
    reminder_grace: timedelta = timedelta(seconds=60)
    retention: timedelta = timedelta(hours=72)
    first_retry: timedelta = timedelta(seconds=1)
    longest_retry: timedelta = timedelta(hours=1)
    webhook_concurrency: int = 16  # (owner, endpoint) chains sent at once
    webhook_round: timedelta = timedelta(seconds=15)  # no send starts later than this in a round


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


class EventRelay:
    """One worker's loop bodies; each call is one round of work and says what it did."""

    def __init__(
        self,
        outbox: EventOutbox,
        sinks: Sequence[EventSink] = (),
        *,
        webhooks: WebhookSender | None = None,
        settings: RelaySettings | None = None,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        self._outbox = outbox
        self._sinks = tuple(sinks)
        self._webhooks = webhooks
        self._settings = settings or RelaySettings()
        self._clock = clock or SystemClock()
        self._ids = ids or Uuid7Generator()
        if self._settings.webhook_urls and webhooks is None:
            raise ValueError("webhook endpoints need a WebhookSender")

    @property
    def sinks(self) -> tuple[EventSink, ...]:
        return self._sinks

    async def relay(self) -> Sequence[RecordedEvent]:
        """Publishes one batch of the outbox to every sink; returns it (empty: caught up).
        Raises SinkUnavailable (nothing marked; the same events come again next time) or
        StorageUnavailable."""
        async with self._outbox.claim(self._settings.batch_size) as batch:
            events = batch.events
            if not events:
                return ()
            failure: SinkUnavailable | None = None
            taken = {(e.owner, e.sequence) for e in events}  # by every sink so far
            for sink in self._sinks:
                try:
                    await sink.publish(events)
                except SinkUnavailable as exc:
                    failure = failure or exc
                    taken &= exc.done
            # Each owner's events that every sink took, up to the first one some sink did not:
            # marked now, so a retry after a long outage does not send them again.
            done = _prefixes(events, taken) if failure is not None else events
            await batch.published(done, self._settings.webhook_urls, self._clock.now())
            if failure is not None:
                raise failure
            return events

    async def fire_reminders(self) -> Sequence[RecordedEvent]:
        """Records a `reminder.due` event for up to one batch of the reminders due now."""
        settings, now = self._settings, self._clock.now()
        return await self._outbox.fire_reminders(
            now,
            skip_before=now - settings.reminder_max_lateness,
            late_before=now - settings.reminder_grace,
            ids=self._ids,
            limit=settings.batch_size,
        )

    async def deliver_webhooks(self) -> DeliveryReport:
        """Tries the webhook deliveries due now: each owner's to one endpoint in sequence order,
        one after another, up to `webhook_concurrency` owners and endpoints at once. A failure is
        retried after 1 s, 2 s, 4 s … (at most an hour apart) until `webhook_retry` has passed
        since the first try, then kept as a dead letter; it does not hold back the owner's next
        deliveries. No new send starts after `webhook_round` (slow endpoints cannot hold a round,
        or a SIGTERM, for long): what was not tried stays due for the next round."""
        if self._webhooks is None:
            return DeliveryReport()
        sender, settings = self._webhooks, self._settings
        counts = {"delivered": 0, "retried": 0, "dead": 0}
        async with self._outbox.due_deliveries(self._clock.now(), settings.batch_size) as batch:
            chains: dict[tuple[str, str], list[Delivery]] = {}
            for delivery in batch.deliveries:
                chains.setdefault((delivery.event.owner, delivery.url), []).append(delivery)
            deadline = self._clock.now() + settings.webhook_round
            gate = asyncio.Semaphore(settings.webhook_concurrency)

            async def in_order(chain: list[Delivery]) -> None:
                async with gate:
                    for delivery in chain:
                        if self._clock.now() >= deadline:
                            return
                        error = await sender.send(delivery)
                        now = self._clock.now()
                        if error is None:
                            await batch.delivered(delivery)
                            counts["delivered"] += 1
                        elif now - delivery.first_attempt_at >= settings.webhook_retry:
                            await batch.give_up(delivery, error)
                            counts["dead"] += 1
                        else:
                            attempts = min(delivery.attempts, 20)
                            wait = min(settings.first_retry * 2**attempts, settings.longest_retry)
                            await batch.retry(delivery, now + wait, error)
                            counts["retried"] += 1

            await asyncio.gather(*(in_order(chain) for chain in chains.values()))
            await batch.commit()
        return DeliveryReport(counts["delivered"], counts["retried"], counts["dead"])

    async def purge(self) -> int:
        """Drops events published longer than `retention` ago (with no delivery pending)."""
        return await self._outbox.purge(self._clock.now() - self._settings.retention)

    async def lag(self) -> float | None:
        """Seconds since the oldest unpublished event was recorded (None: all published)."""
        return await self._outbox.lag(self._clock.now())

    async def dead_letters(self, limit: int = 100) -> Sequence[Delivery]:
        return await self._outbox.dead_letters(limit)

    async def replay_dead(self) -> int:
        """Every dead letter is due again now, with a fresh retry budget; how many."""
        return await self._outbox.replay_dead(self._clock.now())


def _prefixes(events: Sequence[RecordedEvent], taken: set[tuple[str, int]]) -> list[RecordedEvent]:
    """Per owner, the events in `taken` before that owner's first one not in it."""
    stopped: set[str] = set()
    prefix = []
    for event in events:
        if event.owner in stopped:
            continue
        if (event.owner, event.sequence) in taken:
            prefix.append(event)
        else:
            stopped.add(event.owner)
    return prefix
