"""SIGTERM under `identity-service serve`: stop accepting at once, finish what is in flight.

A load balancer that connects during the drain must be refused at once
(ECONNREFUSED) and retry elsewhere, not be accepted into a backlog nobody
serves and reset when the workers exit. Meanwhile an in-flight request (its
body still arriving) completes with 200, a keep-alive client asking
`/readyz` is told 503 (draining), and the server exits 0.

The in-flight request is held by its client, not by a sleep: it has sent its
headers and half its body, and sends the rest only after the test has seen
a connect refused.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from pathlib import Path

import jwt
import pytest

from identity_service.http.paths import TOKEN_PATH
from tests.support.leak_guard import LeakGuard
from tests.support.raw_http import RawResponse, parse_responses
from tests.support.served import serving
from tests.support.service import MESSENGER_SECRET, make_service

WORKERS = 2
BODY = b'{"workspace": "main"}'
REFUSED_WITHIN = 5.0  # seconds after SIGTERM; in practice a few milliseconds


def read_response(sock: socket.socket) -> RawResponse:
    """One whole response from a socket the server will close after it."""
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    [response] = parse_responses(bytes(received))
    return response


def read_one(sock: socket.socket) -> RawResponse:
    """One response on a kept-alive connection (its Content-Length says where it ends)."""
    received = bytearray()
    while True:
        head, separator, rest = bytes(received).partition(b"\r\n\r\n")
        if separator:
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) >= length:
                [response] = parse_responses(bytes(received))
                return response
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        received += chunk


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.mark.fault
def test_sigterm_refuses_new_connections_at_once_and_finishes_in_flight_requests(
    tmp_path: Path, leak_guard: LeakGuard
) -> None:
    service = make_service(tmp_path)
    token = service.idp_token()
    leak_guard.watch(token)
    with serving(tmp_path / "service.toml", tmp_path, workers=WORKERS, threads=4) as server:
        port = server.port
        server.wait_for_lines(r"Worker ready", count=WORKERS)

        # A keep-alive client that has been answered (so its connection is
        # accepted, not waiting in the backlog) and is ready before the signal.
        keepalive = connect(port)
        keepalive.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_one(keepalive).status == 200

        # The in-flight request: accepted the same way, then headers and half its body.
        flight = connect(port)
        flight.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_one(flight).status == 200
        flight.sendall(
            (
                f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
            ).encode()
            + BODY[:8]
        )

        server.process.terminate()  # SIGTERM
        server.wait_for_lines(r"Worker draining", count=WORKERS)

        # The kept-alive client learns at once that this instance is going away.
        keepalive.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        ready = read_response(keepalive)
        assert ready.status == 503 and ready.headers["connection"] == "close"
        problem = ready.json()
        assert problem["type"].endswith("/not-ready") and problem["checks"] == {
            "server": "draining"
        }

        # New connections: refused, not accepted and left in a backlog. One
        # accepted in the moment before the listeners closed is answered, as a
        # load balancer's probe would read it: at once, then close.
        accepted = 0
        deadline = time.monotonic() + REFUSED_WITHIN
        while True:
            try:
                probe = connect(port)
            except ConnectionRefusedError as refused:
                assert refused.errno == errno.ECONNREFUSED
                break
            with probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                try:
                    answered = read_response(probe)
                except OSError as error:  # reset or timed out: what the fix prevents
                    raise AssertionError(f"{error!r}\n{server.log()}") from None
                assert answered.status == 200
            accepted += 1
            assert time.monotonic() < deadline, (
                f"still accepting connections {REFUSED_WITHIN} s after SIGTERM ({accepted} taken)"
            )
            time.sleep(0.01)  # polling another process's sockets, not timing our logic
        # Refused means every copy of the listening socket is closed (the
        # master's and each worker's), each worker having said so.
        server.wait_for_lines(r"Worker stopped accepting", count=WORKERS)
        with pytest.raises(ConnectionRefusedError):
            connect(port)

        # Only now does the in-flight request finish: it is answered in full.
        flight.sendall(BODY[8:])
        # (Its headers came before the signal, so the answer may still say
        # keep-alive; the draining worker closes the connection after it.)
        minted = read_one(flight)
        assert minted.status == 200, minted.body
        answer = minted.json()
        leak_guard.watch(answer["token"])
        claims = jwt.decode(answer["token"], MESSENGER_SECRET, algorithms=["HS256"])
        assert claims["user_id"] == "user-42"
        flight.close()
        keepalive.close()

        returncode = server.process.wait(timeout=30)

    log = server.log()
    assert returncode == 0, log
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log and "SIGKILL" not in log
    assert "Shutting down: Master" in log
    access = [json.loads(x) for x in log.splitlines() if '"identity_service.access"' in x]
    assert [a["status"] for a in access if a["path"] == TOKEN_PATH] == [200]
