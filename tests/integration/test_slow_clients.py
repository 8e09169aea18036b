"""Slow clients cannot hold a worker's connections (SPEC §13.6): raw sockets against a real
`todo-api serve` process with short limits. Every wait here is bounded by a socket timeout."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from todo_adapters.auth import mint_token

from .servers import running_server

pytestmark = pytest.mark.slow

SECRET = "slow-clients-secret-" + "x" * 24
HEADER_SECONDS, BODY_SECONDS, MAX_CONNECTIONS = 1.0, 1.5, 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("slow")
    env = {
        "DATABASE_URL": f"sqlite:///{root / 'todo.db'}",
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_SECONDS),
        "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_SECONDS),
        "HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with running_server(env) as base:
        address = urlsplit(base)
        assert address.hostname
        assert address.port
        yield address.hostname, address.port


def _connect(server: tuple[str, int]) -> socket.socket:
    return socket.create_connection(server, timeout=10)


def _read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (≤ 10 s)."""
    started, chunks = time.monotonic(), []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object], str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), json.loads(body) if body else {}, head.decode("latin-1").lower()


def _auth() -> bytes:
    return f"Authorization: Bearer {mint_token(SECRET, 'slowpoke')}\r\n".encode()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        raw, waited = _read_all(sock)
    assert raw == b""  # nothing of a request came: nothing to answer
    assert HEADER_SECONDS - 0.2 < waited < HEADER_SECONDS + 2


def test_headers_sent_a_line_at_a_time_get_408_and_the_connection_closes(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /api/tasks HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        sock.settimeout(0.3)
        # keep trickling header lines faster than any idle timeout would notice
        try:
            for n in range(40):
                sock.sendall(f"X-Slow-{n}: y\r\n".encode())
                if sock.recv(65536, socket.MSG_PEEK):
                    break
        except TimeoutError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        try:
            raw, _ = _read_all(sock)
        except ConnectionResetError:
            raw = b""
        waited = time.monotonic() - started
    assert waited < HEADER_SECONDS + 2
    status, body, _ = _status_and_body(raw)
    assert status == 408
    assert body["code"] == "request_timeout"


def test_a_trickled_body_gets_408_with_connection_close(server: tuple[str, int]) -> None:
    payload = json.dumps({"title": "never arrives in time"}).encode()
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + _auth()
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload[:3]
        )
        started = time.monotonic()
        sock.settimeout(0.25)
        raw = b""
        for byte in payload[3:]:
            try:
                sock.sendall(bytes([byte]))
                raw = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if raw:
                break
        sock.settimeout(10)
        rest, _ = _read_all(sock)
        waited = time.monotonic() - started
    status, body, head = _status_and_body(raw + rest)
    assert status == 408, raw + rest
    assert body["code"] == "request_timeout"
    assert "1.5 seconds" in str(body["detail"])
    assert "connection: close" in head
    assert BODY_SECONDS - 0.3 < waited < BODY_SECONDS + 2


def test_a_body_nobody_reads_is_not_held_open(server: tuple[str, int]) -> None:
    """A POST to a GET route is answered 405 without reading the body; the rest of the body
    trickling in afterwards must not keep the connection open past the deadline."""
    with _connect(server) as sock:
        sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Content-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        sock.settimeout(0.3)
        received = b""
        closed = False
        while time.monotonic() - started < BODY_SECONDS + 4:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        waited = time.monotonic() - started
    assert closed, "the server still held the connection"
    assert waited < BODY_SECONDS + 3
    assert received.startswith(b"HTTP/1.1 405"), received


def test_connections_beyond_the_cap_are_answered_503_and_closed(server: tuple[str, int]) -> None:
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # the server has accepted all of them
        with _connect(server) as extra:
            raw, waited = _read_all(extra)
        status, body, head = _status_and_body(raw)
        assert status == 503
        assert body["code"] == "service_unavailable"
        assert "retry-after: 1" in head
        assert "connection: close" in head
        assert waited < 1
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    host, port = server
    assert httpx.get(f"http://{host}:{port}/health", timeout=5).status_code == 200


def test_a_patient_but_timely_client_is_served_on_one_kept_alive_connection(server: tuple[str, int]) -> None:
    payload = json.dumps({"title": "in time"}).encode()
    with _connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            time.sleep(HEADER_SECONDS / 3)
            sock.sendall(_auth() + f"Content-Length: {len(payload)}\r\n\r\n".encode())
            for part in (payload[:5], payload[5:]):
                time.sleep(BODY_SECONDS / 4)
                sock.sendall(part)
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                response += sock.recv(65536)
            assert response.startswith(b"HTTP/1.1 201"), response
            time.sleep(HEADER_SECONDS * 1.5)  # idle between requests: the keep-alive timeout (5 s) rules


def test_an_idle_kept_alive_connection_is_closed_after_five_seconds(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while not response.rstrip().endswith(b"}"):
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        rest, idle = _read_all(sock)  # no further request: the keep-alive timeout closes it
    assert rest == b""
    assert 4.5 < idle < 7
