"""`todo-api worker` (SPEC §16): relays the outbox to the configured sinks, fires reminders,
delivers webhooks and purges published events, until SIGTERM.

Four loops share one process. Each is woken early by a commit anywhere (the same change
notification as the event streams: PostgreSQL LISTEN/NOTIFY across processes) and otherwise
looks every WORKER_POLL_SECONDS (reminders every quarter second, so they fire within their
2 s); a loop that finds a full batch goes again at once. A failing sink or database is
retried with backoff (up to 30 s) and counted; nothing is lost meanwhile, since nothing leaves
the outbox before every sink took it. On SIGTERM each loop finishes the round it is in (a
claimed batch is published and marked, or left to the next worker), then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from todo_adapters.changes import ChangeHub, Subscription
from todo_domain.errors import SinkUnavailable, StorageUnavailable
from todo_domain.relay import EventRelay
from todo_entrypoints.settings import Settings

__all__ = ["Worker", "WorkerMetrics", "run_worker"]

log = logging.getLogger("todo.worker")

_REMINDER_POLL_SECONDS = 0.25
_PURGE_EVERY_SECONDS = 600.0
_LAG_EVERY_SECONDS = 5.0
_MAX_BACKOFF_SECONDS = 30.0


class WorkerMetrics:
    """The worker's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.lag = Gauge(
            "todo_outbox_lag_seconds",
            "age of the oldest unpublished event (0 when all are published)",
            registry=self.registry,
        )
        self.published = Counter(
            "todo_events_published", "events published", ["sink", "type"], registry=self.registry
        )
        self.failures = Counter(
            "todo_event_delivery_failures",
            "failed publishes and deliveries",
            ["sink"],
            registry=self.registry,
        )
        self.lateness = Histogram(
            "todo_reminder_lateness_seconds",
            "how long after remind_at a reminder fired",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 60, 600, 3600, 86400),
            registry=self.registry,
        )


class Worker:
    def __init__(
        self,
        relay: EventRelay,
        hub: ChangeHub,
        settings: Settings,
        metrics: WorkerMetrics | None = None,
        *,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self._relay = relay
        self._hub = hub
        self._settings = settings
        self.metrics = metrics or WorkerMetrics()
        self._sinks = [sink.name for sink in relay.sinks]
        self._stop = stopping or asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        with self._hub.follow_all() as outbox, self._hub.follow_all() as deliveries:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    self._loop("relay", self._relay_once, outbox, self._settings.worker_poll_seconds)
                )
                group.create_task(self._loop("reminders", self._remind_once, None, _REMINDER_POLL_SECONDS))
                group.create_task(
                    self._loop("webhooks", self._deliver_once, deliveries, self._settings.worker_poll_seconds)
                )
                group.create_task(self._loop("purge", self._purge_once, None, _PURGE_EVERY_SECONDS))
                group.create_task(self._loop("lag", self._lag_once, None, _LAG_EVERY_SECONDS))

    async def _loop(
        self,
        name: str,
        once: Callable[[], Awaitable[bool]],
        wake: Subscription | None,
        every: float,
    ) -> None:
        """`once()` returns True when there is more to do right away."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                more = await once()
                backoff = 0.5
            except (SinkUnavailable, StorageUnavailable) as exc:
                log.warning("%s: %s; retrying in %.1fs", name, exc, backoff)
                await self._pause(backoff, None)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if not more:
                await self._pause(every, wake)

    async def _pause(self, seconds: float, wake: Subscription | None) -> None:
        stopping = asyncio.ensure_future(self._stop.wait())
        waits: list[asyncio.Future[Any]] = [stopping]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait(seconds)))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _relay_once(self) -> bool:
        started = time.perf_counter()
        try:
            events = await self._relay.relay()
        except SinkUnavailable as exc:
            self.metrics.failures.labels(exc.sink).inc()
            raise
        if not events:
            return False
        kinds: dict[str, int] = {}
        for event in events:
            kinds[event.type.value] = kinds.get(event.type.value, 0) + 1
        for sink in self._sinks:
            for kind, count in kinds.items():
                self.metrics.published.labels(sink, kind).inc(count)
        log.info(
            "relayed %d events to %s in %.0f ms (%s)",
            len(events),
            ", ".join(self._sinks) or "no sink",
            (time.perf_counter() - started) * 1000,
            ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        )
        return len(events) >= self._settings.worker_batch_size

    async def _remind_once(self) -> bool:
        fired = await self._relay.fire_reminders()
        if not fired:
            return False
        late = 0
        for event in fired:
            assert event.remind_at is not None
            self.metrics.lateness.observe(max(0.0, (event.time - event.remind_at).total_seconds()))
            late += event.late
            self._hub.changed(event.owner)  # the owner's streams (every instance) and the relay
        log.info("fired %d reminders (%d late)", len(fired), late)
        return len(fired) >= self._settings.worker_batch_size

    async def _deliver_once(self) -> bool:
        report = await self._relay.deliver_webhooks()
        if report.retried or report.dead:
            self.metrics.failures.labels("webhook").inc(report.retried + report.dead)
        if report.delivered or report.retried or report.dead:
            log.info(
                "webhooks: %d delivered, %d to retry, %d dead letters",
                report.delivered,
                report.retried,
                report.dead,
            )
        total = report.delivered + report.retried + report.dead
        return total >= self._settings.worker_batch_size

    async def _purge_once(self) -> bool:
        purged = await self._relay.purge()
        if purged:
            log.info("purged %d published events", purged)
        return False

    async def _lag_once(self) -> bool:
        lag = await self._relay.lag()
        self.metrics.lag.set(lag or 0.0)
        return False


async def run_worker(settings: Settings) -> None:
    """The process: resolve the relay, serve metrics if asked, run until SIGTERM or SIGINT."""
    from todo_entrypoints.container import Container, provide, shut_down

    stopping = asyncio.Event()  # first: a SIGTERM during start-up is a clean stop too
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    container = Container(settings=settings)
    try:
        relay = await provide(container.event_relay)
        hub = await provide(container.change_hub)
        worker = Worker(relay, hub, settings, stopping=stopping)
        server = None
        if settings.worker_metrics_port is not None:
            server, _ = start_http_server(
                settings.worker_metrics_port,
                addr=settings.worker_metrics_host,
                registry=worker.metrics.registry,
            )
        sinks = ", ".join(s.name for s in relay.sinks) or "none"
        hooks = len(settings.webhook_urls)
        log.info("worker started: sinks %s, %d webhook endpoint(s)", sinks, hooks)
        if not relay.sinks and not hooks:
            log.warning("no sink configured: events are marked published as they come (reminders still fire)")
        try:
            await worker.run()
        finally:
            if server is not None:
                server.shutdown()
        log.info("worker stopped")
    finally:
        await shut_down(container)
