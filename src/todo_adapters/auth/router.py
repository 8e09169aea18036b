"""Picks the one verifier a token's own form calls for, so no token is tried against two.

A JWT whose `alg` is HMAC goes to the shared-secret verifier; an asymmetric `alg` to JWKS;
a value that is not a JWT to the session-token verifier. `none` and unknown algorithms are
refused here, before any key is touched.

Accepted tokens are remembered for at most `cache_seconds` and never past their own expiry:
a frontend sends the same token for its whole 15-minute life, and re-checking an identical
string gives the identical answer, so the signature check runs about once a minute per token.
"""

from __future__ import annotations

import time

import jwt

from todo_adapters.auth.base import MAX_TOKEN_BYTES, InvalidToken, Principal, TokenVerifier

__all__ = ["ASYMMETRIC_ALGORITHMS", "TokenRouter"]

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "Ed25519", "ES256", "ES512", "RS256", "PS256"})
_HMAC = frozenset({"HS256", "HS384", "HS512"})
MAX_CACHED_TOKENS = 50_000


class TokenRouter:
    def __init__(
        self,
        *,
        hmac: TokenVerifier | None = None,
        jwks: TokenVerifier | None = None,
        session: TokenVerifier | None = None,
        cache_seconds: float = 60.0,
    ) -> None:
        self._hmac = hmac
        self._jwks = jwks
        self._session = session
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await self._verify(token)
        until = now + self._cache_seconds
        if principal.expires_at is not None:
            until = min(until, principal.expires_at)
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[token] = (principal, until)
        return principal

    async def _verify(self, token: str) -> Principal:
        if not token:
            raise InvalidToken("the bearer token is empty")
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("the token is too large")
        if token.count(".") != 2:
            if self._session is None:
                raise InvalidToken("the token is malformed")
            return await self._session.verify(token)
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        if alg in _HMAC and self._hmac is not None:
            return await self._hmac.verify(token)
        if alg in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            return await self._jwks.verify(token)
        raise InvalidToken("the token's algorithm is not accepted")
