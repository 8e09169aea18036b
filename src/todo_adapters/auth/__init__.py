"""Bearer-token verification: one verifier per token kind behind one small Protocol.

TokenVerifier.verify(token) -> Principal      or raises
    InvalidToken      the token is not acceptable (→ 401, with a description)
    AuthUnavailable   we cannot check it right now (→ 503), e.g. no JWKS key and JWKS down
"""

from todo_adapters._extras import require

require("todo_adapters.auth", "server", "jwt", "cryptography", "httpx")


from todo_adapters.auth.base import MAX_TOKEN_BYTES, AuthUnavailable, InvalidToken, Principal, TokenVerifier
from todo_adapters.auth.jwks import JwksVerifier
from todo_adapters.auth.router import TokenRouter
from todo_adapters.auth.session import SessionTable, SessionTokenVerifier
from todo_adapters.auth.shared_secret import SharedSecretVerifier, mint_token
from todo_adapters.auth.tickets import StreamTickets

__all__ = [
    "MAX_TOKEN_BYTES",
    "AuthUnavailable",
    "InvalidToken",
    "JwksVerifier",
    "Principal",
    "SessionTable",
    "SessionTokenVerifier",
    "SharedSecretVerifier",
    "StreamTickets",
    "TokenRouter",
    "TokenVerifier",
    "mint_token",
]
