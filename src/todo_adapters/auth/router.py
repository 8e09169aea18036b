"""Picks the one verifier a token's own form calls for, so no token is tried against two.

A JWT whose `alg` is HMAC goes to the shared-secret verifier; an asymmetric `alg` to JWKS;
a value that is not a JWT to the session-token verifier. `none` and unknown algorithms are
refused here, before any key is touched.
"""

from __future__ import annotations

import jwt

from todo_adapters.auth.base import MAX_TOKEN_BYTES, InvalidToken, Principal, TokenVerifier

__all__ = ["ASYMMETRIC_ALGORITHMS", "TokenRouter"]

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "Ed25519", "ES256", "ES512", "RS256", "PS256"})
_HMAC = frozenset({"HS256", "HS384", "HS512"})


class TokenRouter:
    def __init__(
        self,
        *,
        hmac: TokenVerifier | None = None,
        jwks: TokenVerifier | None = None,
        session: TokenVerifier | None = None,
    ) -> None:
        self._hmac = hmac
        self._jwks = jwks
        self._session = session

    async def verify(self, token: str) -> Principal:
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
