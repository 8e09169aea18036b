"""Better Auth session tokens (bearer plugin): `<token>.<base64 HMAC-SHA256(token, secret)>`.

The signature is checked in constant time before any database work; then the `session` row
(read-only; table and column names configurable, camelCase like Better Auth by default) must
exist with `expiresAt` in the future. The answer carries the session's expiry, so the
TokenRouter's cache (≤ 60 s) never outlives the session; a revoked session stops working
within a minute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from todo_adapters.auth.base import AuthUnavailable, InvalidToken, Principal, check_subject
from todo_domain.values import as_utc

__all__ = ["SessionTable", "SessionTokenVerifier"]

# What an unreachable or overloaded session database raises (not a misconfigured table: that
# stays a bug with a traceback).
_STORE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class SessionTable:
    name: str = "session"
    token: str = "token"
    user_id: str = "userId"
    expires_at: str = "expiresAt"


def _decode_signature(text: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not (clients differ); None if it is neither."""
    normalised = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _as_utc(value: object) -> datetime | None:
    """`expiresAt` as stored by Better Auth's adapters: a timestamp, epoch ms/s, or ISO text."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


class SessionTokenVerifier:
    def __init__(
        self,
        engine: AsyncEngine,
        secret: str,
        *,
        table: SessionTable = SessionTable(),
        allow_unsigned: bool = False,
    ) -> None:
        self._engine = engine
        self._secret = secret.encode()
        self._allow_unsigned = allow_unsigned
        t = sa.table(
            table.name, sa.column(table.token), sa.column(table.user_id), sa.column(table.expires_at)
        )
        self._select = sa.select(t.c[table.user_id], t.c[table.expires_at]).where(
            t.c[table.token] == sa.bindparam("token")
        )

    async def verify(self, token: str) -> Principal:
        raw = self._checked_token(unquote(token))
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(self._select, {"token": raw})).first()
        except _STORE_DOWN as exc:  # the token cannot be checked now: 503, not 401
            raise AuthUnavailable("Better Auth's session database is unreachable") from exc
        if row is None:
            raise InvalidToken("the session does not exist")
        user_id, expires_at = row
        expires = _as_utc(expires_at)
        if expires is None or expires.timestamp() <= time.time():
            raise InvalidToken("the session has expired")
        return check_subject(user_id, expires.timestamp())

    def _checked_token(self, token: str) -> str:
        raw, dot, signature = token.rpartition(".")
        if not dot:
            if self._allow_unsigned and token:
                return token
            raise InvalidToken("the session token is not signed")
        given = _decode_signature(signature)
        expected = hmac.new(self._secret, raw.encode(), hashlib.sha256).digest()
        if given is None or not raw or not hmac.compare_digest(given, expected):
            raise InvalidToken("the session token's signature is invalid")
        return raw

    async def dispose(self) -> None:
        await self._engine.dispose()
