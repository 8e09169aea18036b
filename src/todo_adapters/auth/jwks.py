"""JWTs signed by keys published as a JWKS (Better Auth's JWT plugin: EdDSA by default).

Keys are cached by `kid`. An unknown `kid` triggers a refetch at most once per
`refetch_interval` (so forged kids cannot cause a fetch storm); cached keys keep working while
the endpoint is down; with no usable key and the endpoint down we answer AuthUnavailable
(503), not 401. Fetching is async (httpx) with a short timeout, never blocking the loop.

Each key only verifies its own algorithm family (OKP → EdDSA, EC P-256 → ES256, EC P-521 →
ES512, RSA → RS256/PS256); HMAC algorithms never reach this verifier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from todo_adapters.auth.base import AuthUnavailable, InvalidToken, Principal, check_subject
from todo_adapters.auth.shared_secret import check_header, decode_checked

__all__ = ["JwksVerifier"]

log = logging.getLogger("todo.auth")

_FAMILIES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("OKP", "Ed25519"): ("EdDSA", "Ed25519"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-521"): ("ES512",),
    ("RSA", None): ("RS256", "PS256"),
}
COLD_RETRY_SECONDS = 2.0


def _algorithms_for(jwk: dict[str, Any]) -> tuple[str, ...]:
    return _FAMILIES.get((jwk.get("kty", ""), jwk.get("crv")), ())


class JwksVerifier:
    def __init__(
        self,
        url: str,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = 30,
        timeout: float = 3.0,
        refetch_interval: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._client = client
        self._keys: dict[str | None, tuple[Any, tuple[str, ...]]] = {}
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        check_header(header)
        key, algorithms = await self._key(header.get("kid"))
        if header.get("alg") not in algorithms:
            raise InvalidToken("the token's algorithm does not match its key")
        claims = decode_checked(
            token, key, algorithms, issuer=self._issuer, audience=self._audience, leeway=self._leeway
        )
        return check_subject(claims.get("sub"), claims.get("exp"))

    async def warm_up(self) -> None:
        """Fetches the keys now (at start-up), so the first request does not wait."""
        async with self._lock:
            await self._fetch()

    async def check(self) -> None:
        """For readiness: fine while any key is cached; otherwise one (throttled) fetch."""
        if not self._keys:
            async with self._lock:
                if not self._keys and self._may_fetch():
                    await self._fetch()
        if not self._keys:
            raise ConnectionError("no JWKS signing keys: the JWKS endpoint is unreachable")

    async def _key(self, kid: object) -> tuple[Any, tuple[str, ...]]:
        if not (kid is None or isinstance(kid, str)):
            raise InvalidToken("the token's key id (kid) is malformed")
        found = self._lookup(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._lookup(kid)  # another request may have fetched meanwhile
            if found is None and self._may_fetch():
                await self._fetch()
                found = self._lookup(kid)
        if found is not None:
            return found
        if not self._keys:
            raise AuthUnavailable("no signing keys: the JWKS endpoint is unreachable")
        raise InvalidToken("the token was signed by an unknown key")

    def _lookup(self, kid: str | None) -> tuple[Any, tuple[str, ...]] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        wait = self._refetch_interval if self._keys else COLD_RETRY_SECONDS
        return time.monotonic() - self._last_attempt >= wait

    async def _fetch(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            if self._client is not None:
                response = await self._client.get(self._url, timeout=self._timeout)
            else:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.get(self._url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self._url, type(exc).__name__)
            return
        fresh = dict(_usable_keys(document))
        if fresh:
            self._keys = fresh
        else:
            log.warning("JWKS at %s holds no usable signing key", self._url)


def _usable_keys(document: object) -> list[tuple[str | None, tuple[Any, tuple[str, ...]]]]:
    """The keys of a JWKS we can verify with; anything else (other types, "use": "enc") is skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    usable = []
    for data in entries if isinstance(entries, list) else []:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        algorithms = _algorithms_for(data)
        if not algorithms:
            continue
        try:
            jwk = PyJWK(data, algorithms[0])
        except jwt.PyJWTError:
            continue
        usable.append((jwk.key_id, (jwk.key, algorithms)))
    return usable
