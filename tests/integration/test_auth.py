"""Token verification as Better Auth deployments need it (SPEC §7): JWKS with the key types
Better Auth can publish, shared secrets, session tokens, and the attack catalogue."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from todo_adapters.auth import (
    AuthUnavailable,
    InvalidToken,
    JwksVerifier,
    SessionTokenVerifier,
    SharedSecretVerifier,
    TokenRouter,
)
from todo_adapters.sql import DatabaseConfig, create_engine

from .http_support import app_for, serve

ISSUER = AUDIENCE = "http://localhost:3000"
SECRET = "a-shared-secret-of-at-least-32-bytes-" + "x" * 30
USER = "KZMw0N5rJhdi1i1JbWle6KZMw0N5rJhd"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its fetches and can be taken down."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.fetches = 0
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Keys:
    """One private key per algorithm family Better Auth's JWT plugin can use."""

    def __init__(self) -> None:
        self.private: dict[str, Any] = {
            "EdDSA": ed25519.Ed25519PrivateKey.generate(),
            "ES256": ec.generate_private_key(ec.SECP256R1()),
            "ES512": ec.generate_private_key(ec.SECP521R1()),
            "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self.private["PS256"] = self.private["RS256"]
        self.jwks = {"keys": [self.public_jwk(alg) for alg in ("EdDSA", "ES256", "ES512", "RS256")]}

    def public_jwk(self, alg: str) -> dict[str, Any]:
        public = self.private[alg].public_key()
        algorithm = {
            "EdDSA": OKPAlgorithm,
            "ES256": ECAlgorithm,
            "ES512": ECAlgorithm,
            "RS256": RSAAlgorithm,
        }[alg]
        jwk: dict[str, Any] = algorithm.to_jwk(public, as_dict=True)  # type: ignore[attr-defined]
        return {**jwk, "kid": f"kid-{alg}", "alg": alg, "use": "sig"}

    def token(self, alg: str = "EdDSA", *, kid: str | None = None, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:  # fmt: skip
        now = int(time.time())
        body = {"sub": USER, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        family = "RS256" if alg == "PS256" else alg
        header = {"kid": kid or f"kid-{family}", **(headers or {})}
        return jwt.encode(body, self.private[alg], algorithm=alg, headers=header)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer()
    server.document = keys.jwks
    yield server
    server.close()


@pytest.fixture
def verifier(jwks_server: JwksServer) -> TokenRouter:
    jwks = JwksVerifier(jwks_server.url, issuer=ISSUER, audience=AUDIENCE, timeout=2)
    return TokenRouter(hmac=SharedSecretVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE), jwks=jwks)


def _part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_part(json.dumps(header).encode())}.{_part(json.dumps(claims).encode())}."


def forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """What an attacker builds by hand (PyJWT itself refuses to sign with a public key)."""
    signing_input = f"{_part(json.dumps(header).encode())}.{_part(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_part(signature)}"


# -- accepted ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "ES512", "RS256", "PS256"])
async def test_every_better_auth_key_type_is_accepted(verifier: TokenRouter, keys: Keys, alg: str) -> None:
    assert (await verifier.verify(keys.token(alg))).subject == USER


async def test_a_shared_secret_token_is_accepted(verifier: TokenRouter) -> None:
    token = jwt.encode(
        {"sub": USER, "exp": int(time.time()) + 60, "iss": ISSUER, "aud": AUDIENCE}, SECRET, algorithm="HS384"
    )
    assert (await verifier.verify(token)).subject == USER


async def test_expiry_within_the_leeway_is_accepted(verifier: TokenRouter, keys: Keys) -> None:
    assert await verifier.verify(keys.token(exp=int(time.time()) - 10))


# -- the attack catalogue -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
async def test_alg_none_is_refused(verifier: TokenRouter, alg: str) -> None:
    token = unsigned({"alg": alg, "typ": "JWT"}, {"sub": USER, "exp": int(time.time()) + 60})
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


@pytest.mark.parametrize("form", ["pem", "jwk"])
async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenRouter, keys: Keys, form: str
) -> None:
    public = keys.private["RS256"].public_key()
    if form == "pem":
        secret: bytes = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(keys.public_jwk("RS256")).encode()
    claims = {"sub": USER, "exp": int(time.time()) + 60, "iss": ISSUER, "aud": AUDIENCE}
    token = forge_hs256({"alg": "HS256", "typ": "JWT", "kid": "kid-RS256"}, claims, secret)
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    jwks_only = TokenRouter(jwks=JwksVerifier("http://127.0.0.1:1/jwks"))
    with pytest.raises(InvalidToken):
        await jwks_only.verify(token)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "exp"),
        ({"exp": "tomorrow"}, "malformed"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"iss": None}, "iss"),
        ({"aud": "https://other.example"}, "audience"),
        ({"aud": None}, "aud"),
        ({"sub": ""}, "sub"),
        ({"sub": None}, "sub"),
        ({"sub": "x" * 256}, "sub"),
    ],
)
async def test_bad_claims_are_refused_with_a_reason(
    verifier: TokenRouter, keys: Keys, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidToken) as exc:
        await verifier.verify(keys.token(**claims))
    assert reason in exc.value.description


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk"])
async def test_key_location_headers_are_refused(verifier: TokenRouter, keys: Keys, header: str) -> None:
    value: Any = keys.public_jwk("EdDSA") if header == "jwk" else "https://evil.example/keys"
    with pytest.raises(InvalidToken):
        await verifier.verify(keys.token(headers={header: value}))


async def test_a_token_signed_by_a_different_key_is_refused(verifier: TokenRouter) -> None:
    other = Keys()
    with pytest.raises(InvalidToken):
        await verifier.verify(other.token("EdDSA"))


async def test_oversized_tokens_are_refused_before_parsing(verifier: TokenRouter) -> None:
    with pytest.raises(InvalidToken) as exc:
        await verifier.verify("a" * 9000)
    assert "too large" in exc.value.description


async def test_forged_kids_cause_at_most_one_refetch(
    verifier: TokenRouter, keys: Keys, jwks_server: JwksServer
) -> None:
    await verifier.verify(keys.token())
    before = jwks_server.fetches
    for _ in range(500):
        with pytest.raises(InvalidToken):
            await verifier.verify(keys.token(kid=uuid.uuid4().hex))
    assert jwks_server.fetches - before <= 1


async def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(
    verifier: TokenRouter, keys: Keys, jwks_server: JwksServer
) -> None:
    await verifier.verify(keys.token("ES256"))
    jwks_server.down = True
    assert (await verifier.verify(keys.token("EdDSA"))).subject == USER


async def test_no_key_and_the_endpoint_down_is_unavailable_not_unauthorized(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.down = True
    verifier = TokenRouter(jwks=JwksVerifier(jwks_server.url, issuer=ISSUER, audience=AUDIENCE))
    with pytest.raises(AuthUnavailable):
        await verifier.verify(keys.token())


async def test_a_rotated_key_is_picked_up(keys: Keys, jwks_server: JwksServer) -> None:
    jwks = JwksVerifier(jwks_server.url, issuer=ISSUER, audience=AUDIENCE, refetch_interval=0)
    await jwks.verify(keys.token())
    rotated = Keys()
    jwks_server.document = {"keys": [{**k, "kid": "new-" + k["kid"]} for k in rotated.jwks["keys"]]}
    assert (await jwks.verify(rotated.token("ES256", kid="new-kid-ES256"))).subject == USER


async def test_concurrent_cold_requests_share_one_fetch(keys: Keys, jwks_server: JwksServer) -> None:
    jwks = JwksVerifier(jwks_server.url, issuer=ISSUER, audience=AUDIENCE)
    await asyncio.gather(*(jwks.verify(keys.token()) for _ in range(50)))
    assert jwks_server.fetches == 1


# -- through HTTP ---------------------------------------------------------------------------------------


async def test_stock_better_auth_needs_only_three_settings(keys: Keys, jwks_server: JwksServer) -> None:
    app = app_for(
        auth_jwt_secret=None, auth_jwks_url=jwks_server.url, auth_issuer=ISSUER, auth_audience=AUDIENCE
    )
    async with serve(app) as client:
        headers = {"Authorization": f"Bearer {keys.token()}"}
        created = await client.post("/api/tasks", json={"title": "from Next.js"}, headers=headers)
        assert created.status_code == 201
        assert created.json()["user_id"] == USER
        refused = await client.get("/api/tasks", headers={"Authorization": f"Bearer {keys.token(aud='x')}"})
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_jwks_down_at_cold_start_is_503(keys: Keys, jwks_server: JwksServer) -> None:
    jwks_server.down = True
    app = app_for(
        auth_jwt_secret=None, auth_jwks_url=jwks_server.url, auth_issuer=ISSUER, auth_audience=AUDIENCE
    )
    async with serve(app) as client:
        response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {keys.token()}"})
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["jwks"] == "unavailable"
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1


# -- Better Auth session tokens -------------------------------------------------------------------------


def signed(token: str, secret: str = SECRET, *, urlsafe: bool = False) -> str:
    digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return f"{token}.{encode(digest).decode()}"


@pytest.fixture
def session_db(tmp_path: Path) -> str:
    path = tmp_path / "auth.db"
    with sqlite3.connect(path) as db:
        db.execute(
            'CREATE TABLE "session" (id TEXT PRIMARY KEY, token TEXT UNIQUE, "userId" TEXT, "expiresAt" TEXT,'
            ' "createdAt" TEXT, "updatedAt" TEXT, "ipAddress" TEXT, "userAgent" TEXT)'
        )
        future = (datetime.now(UTC) + timedelta(days=7)).isoformat()
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        db.execute('INSERT INTO "session" (id, token, "userId", "expiresAt") VALUES (?, ?, ?, ?)',
                   ("1", "livetoken123", USER, future))  # fmt: skip
        db.execute('INSERT INTO "session" (id, token, "userId", "expiresAt") VALUES (?, ?, ?, ?)',
                   ("2", "oldtoken456", "someone", past))  # fmt: skip
    return f"sqlite:///{path}"


@pytest.fixture
async def sessions(session_db: str) -> Any:
    verifier = SessionTokenVerifier(create_engine(DatabaseConfig(session_db)), SECRET)
    yield TokenRouter(session=verifier)
    await verifier.dispose()


@pytest.mark.parametrize("urlsafe", [False, True])
async def test_a_signed_live_session_is_accepted(sessions: TokenRouter, urlsafe: bool) -> None:
    assert (await sessions.verify(signed("livetoken123", urlsafe=urlsafe))).subject == USER


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (signed("livetoken123", "another-secret-another-secret-xx"), "signature"),
        (signed("nosuchtoken"), "does not exist"),
        (signed("oldtoken456"), "expired"),
        ("livetoken123", "not signed"),
        (signed("x' OR '1'='1"), "does not exist"),
        (signed("livetoken123' --"), "does not exist"),
    ],
)
async def test_bad_session_tokens_are_refused(sessions: TokenRouter, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as exc:
        await sessions.verify(token)
    assert reason in exc.value.description


async def test_an_unsigned_session_token_is_accepted_only_when_configured(session_db: str) -> None:
    verifier = SessionTokenVerifier(create_engine(DatabaseConfig(session_db)), SECRET, allow_unsigned=True)
    assert (await verifier.verify("livetoken123")).subject == USER
    await verifier.dispose()


async def test_session_tokens_work_through_http(session_db: str) -> None:
    app = app_for(auth_session_database_url=session_db, auth_jwt_secret=SECRET)
    async with serve(app) as client:
        response = await client.get(
            "/api/tasks", headers={"Authorization": f"Bearer {signed('livetoken123')}"}
        )
        assert response.status_code == 200
        refused = await client.get("/api/tasks", headers={"Authorization": f"Bearer {signed('oldtoken456')}"})
        assert refused.status_code == 401


async def test_a_deleted_session_is_refused_on_the_next_check(session_db: str) -> None:
    verifier = SessionTokenVerifier(create_engine(DatabaseConfig(session_db)), SECRET)
    principal = await verifier.verify(signed("livetoken123"))
    assert principal.expires_at is not None
    assert principal.expires_at > time.time()
    with sqlite3.connect(session_db.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM \"session\" WHERE token = 'livetoken123'")
    with pytest.raises(InvalidToken):
        await verifier.verify(signed("livetoken123"))
    await verifier.dispose()


async def test_an_unreachable_session_database_is_unavailable_not_unauthorized() -> None:
    """The token may be fine: the client should retry (503), not sign in again (401)."""
    unreachable = DatabaseConfig("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    verifier = SessionTokenVerifier(create_engine(unreachable), SECRET)
    try:
        with pytest.raises(AuthUnavailable, match="session database"):
            await verifier.verify(signed("livetoken123"))
    finally:
        await verifier.dispose()


async def test_mcp_answers_503_not_401_when_tokens_cannot_be_checked(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.down = True
    app = app_for(
        auth_jwt_secret=None, auth_jwks_url=jwks_server.url, auth_issuer=ISSUER, auth_audience=AUDIENCE
    )
    headers = {
        "Authorization": f"Bearer {keys.token()}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with serve(app) as client:
        unavailable = await client.post("/mcp", json=call, headers=headers)
        forged = await client.post("/mcp", json=call, headers={**headers, "Authorization": "Bearer forged"})
    assert unavailable.status_code == 503
    assert unavailable.headers["content-type"] == "application/problem+json"
    assert int(unavailable.headers["retry-after"]) >= 1
    assert unavailable.json()["status"] == 503
    assert forged.status_code == 401  # a bad token is still the SDK's 401 with its metadata
    assert "resource_metadata" in forged.headers["www-authenticate"]
