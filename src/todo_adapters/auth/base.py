"""The verifier port, its result and its two failures, shared by every token kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["MAX_TOKEN_BYTES", "AuthUnavailable", "InvalidToken", "Principal", "TokenVerifier"]

MAX_TOKEN_BYTES = 8192
MAX_SUBJECT = 255


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the owner of every task the request touches; `expires_at` (Unix time)
    is when the credential stops being valid, if known."""

    subject: str
    expires_at: float | None = None


class InvalidToken(Exception):
    """The token is refused; `description` says why without echoing the token."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class AuthUnavailable(Exception):
    """The token cannot be checked right now (a key source is down and nothing is cached)."""


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


def check_subject(subject: object, expires_at: object = None) -> Principal:
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token has no subject (sub)")
    if len(subject) > MAX_SUBJECT or any(c < " " or c == "\x7f" for c in subject) or not _encodable(subject):
        raise InvalidToken("the token's subject (sub) is not a valid user id")
    return Principal(subject, float(expires_at) if isinstance(expires_at, int | float) else None)


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON allows "\\ud800"; UTF-8, logs and databases do not)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
