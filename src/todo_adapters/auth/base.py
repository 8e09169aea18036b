"""The verifier port, its result and its two failures, shared by every token kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from todo_domain.errors import InvalidTask
from todo_domain.values import Owner

__all__ = ["MAX_TOKEN_BYTES", "AuthUnavailable", "InvalidToken", "Principal", "TokenVerifier"]

MAX_TOKEN_BYTES = 8192


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
    try:
        Owner(subject)  # the domain's rule for user ids: 1–255 characters, no control or lone surrogate
    except InvalidTask:
        raise InvalidToken("the token's subject (sub) is not a valid user id") from None
    return Principal(subject, float(expires_at) if isinstance(expires_at, int | float) else None)
