"""HS256/384/512 JWTs signed with a shared secret (Better Auth custom signers, development).

Its allow-list holds HMAC algorithms only, so a token signed with a public key as an HMAC
secret (algorithm confusion) can never reach a JWKS verifier, and vice versa.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import jwt

from todo_adapters.auth.base import InvalidToken, Principal, check_subject

__all__ = ["HMAC_ALGORITHMS", "SharedSecretVerifier", "decode_checked", "mint_token"]

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
_TIME_CLAIMS = ("exp", "nbf", "iat")


def decode_checked(
    token: str,
    key: Any,
    algorithms: tuple[str, ...],
    *,
    issuer: str | None,
    audience: str | None,
    leeway: int,
) -> Mapping[str, Any]:
    """PyJWT decode with our claim rules; every failure becomes InvalidToken with a reason."""
    try:
        claims: Mapping[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("the token is not valid yet (nbf/iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("the token's audience (aud) is not accepted") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("the token's issuer (iss) is not accepted") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"the token has no '{exc.claim}' claim") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("the token's signature is invalid") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("the token's algorithm is not accepted") from None
    except jwt.PyJWTError:
        raise InvalidToken("the token is malformed") from None
    except (OverflowError, ValueError, TypeError):  # PyJWT's int() of an exp like 1e400
        raise InvalidToken("the token's time claims (exp/nbf/iat) are not numbers") from None
    for name in _TIME_CLAIMS:
        value = claims.get(name)
        # PyJWT would take "1800000000" (a string) and True for numbers: RFC 7519 says NumericDate.
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        ):
            raise InvalidToken(f"the token's '{name}' claim is not a number")
    return claims


def check_header(header: Mapping[str, Any]) -> None:
    for name in _FORBIDDEN_HEADERS:
        if name in header:
            raise InvalidToken(f"tokens with a '{name}' header are refused")


class SharedSecretVerifier:
    def __init__(
        self,
        secret: str,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = 30,
    ) -> None:
        self._secret = secret.encode()
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        check_header(header)
        claims = decode_checked(
            token,
            self._secret,
            HMAC_ALGORITHMS,
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
        )
        return check_subject(claims.get("sub"), claims.get("exp"))


def mint_token(
    secret: str,
    subject: str,
    *,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token as the development `todo-api token` command prints it."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
