"""Webhooks signed per the Standard Webhooks spec (the `standardwebhooks` library signs):
headers `webhook-id` (the event id, the same on every retry), `webhook-timestamp`,
`webhook-signature`; the body is the CloudEvents envelope. Any 2xx is delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from todo_adapters._extras import require

require("todo_adapters.events.webhooks", "events", "standardwebhooks", "httpx")

import httpx
from standardwebhooks.webhooks import Webhook

from todo_adapters.events.envelope import CloudEvents
from todo_domain.events import Delivery

__all__ = ["StandardWebhooks", "check_secret"]


def check_secret(secret: str) -> None:
    """Raises ValueError unless `secret` is a Standard Webhooks secret (`whsec_` + base64)."""
    try:
        Webhook(secret)
    except Exception as exc:  # the library raises several kinds for a bad secret
        raise ValueError(f"not a Standard Webhooks secret (whsec_<base64>): {exc}") from None


class StandardWebhooks:
    def __init__(self, secret: str, envelopes: CloudEvents, *, timeout: float = 10.0) -> None:
        check_secret(secret)
        self._signer = Webhook(secret)
        self._envelopes = envelopes
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def send(self, delivery: Delivery) -> str | None:
        event = delivery.event
        body = self._envelopes.encode(event).decode()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/cloudevents+json",
            "webhook-id": str(event.id),
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(str(event.id), now, body),
        }
        try:
            response = await self._client.post(delivery.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def close(self) -> None:
        await self._client.aclose()
