"""Stream tickets (SPEC §15): `EventSource` cannot send an Authorization header, so a client
with a bearer token trades it for a short-lived ticket that opens event streams of that user
through `?ticket=`.

A ticket is an HS256 JWT (`sub`, `exp`, `aud: "todo-stream"`) signed with a key derived from the
configured secret (HMAC-SHA256 of a fixed label), never the secret itself: a ticket is
therefore not a bearer token on any other route, even where bearer tokens are HS256 with the
same secret. Every instance sharing the secret accepts it until it expires (60 s).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import jwt

from todo_adapters.auth.base import MAX_TOKEN_BYTES, InvalidToken, Principal, check_subject

__all__ = ["TICKET_SECONDS", "StreamTickets"]

TICKET_SECONDS = 60
_AUDIENCE = "todo-stream"
_LABEL = b"todo stream tickets v1"


class StreamTickets:
    """Issues and checks tickets with a key derived from `secret`."""

    def __init__(self, secret: str, *, ttl_seconds: int = TICKET_SECONDS) -> None:
        self._key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
        self._ttl = ttl_seconds

    def issue(self, subject: str) -> tuple[str, datetime]:
        """A ticket for `subject` and the moment it expires."""
        expires = int(time.time()) + self._ttl
        ticket = jwt.encode({"sub": subject, "exp": expires, "aud": _AUDIENCE}, self._key, algorithm="HS256")
        return ticket, datetime.fromtimestamp(expires, UTC)

    def verify(self, ticket: str) -> Principal:
        """Raises InvalidToken for a ticket that is forged, expired or not a ticket."""
        if len(ticket) > MAX_TOKEN_BYTES:
            raise InvalidToken("the ticket is too long")
        try:
            claims = jwt.decode(
                ticket,
                self._key,
                algorithms=["HS256"],
                audience=_AUDIENCE,
                options={"require": ["sub", "exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the ticket has expired; ask for a new one") from None
        except jwt.PyJWTError:
            raise InvalidToken("the ticket is not valid") from None
        return check_subject(claims.get("sub"), claims.get("exp"))
