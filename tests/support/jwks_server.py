"""A real JWKS endpoint on 127.0.0.1 for tests, and a clock tests move by hand.

The server runs `http.server` in a thread on an ephemeral port. It counts the
requests it receives and can rotate keys, answer 500, hang up without an
answer, stall or trickle bytes (to prove the client's timeout bounds the
wait even when every socket read succeeds), or redirect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.support.keys import SigningKey

Mode = Literal["ok", "error", "hangup", "stall", "trickle_headers", "trickle_body", "redirect"]
JWKS_PATH = "/.well-known/jwks.json"


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fetch_threads() -> list[threading.Thread]:
    """The JWKS fetch threads running in this process now."""
    return [t for t in threading.enumerate() if t.name == "jwks-fetch"]


def settle() -> None:
    """Wait (at most 5 s) until no JWKS fetch runs: the background work has landed."""
    deadline = time.monotonic() + 5
    for thread in fetch_threads():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not fetch_threads(), "a JWKS fetch outlived its deadline"


class JWKSServer:
    """A JWKS endpoint the tests control; `requests` counts every request it received."""

    def __init__(self, port: int = 0) -> None:
        """On `port` of 127.0.0.1 (a free one by default; a given one to come back up on)."""
        self.document: Mapping[str, Any] | bytes = {"keys": []}
        self.mode: Mode = "ok"
        self.stall_seconds = 5.0
        self.requests = 0
        self.paths: list[str] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def publish(self, *keys: SigningKey, **jwk_extra: Any) -> None:
        """Serve the public JWKs of `keys` (a rotation is just another publish)."""
        self.document = {"keys": [k.public_jwk(**jwk_extra) for k in keys]}

    def serve_raw(self, body: Mapping[str, Any] | bytes) -> None:
        """Serve exactly this document or these bytes."""
        self.document = body

    def record(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.paths.append(path)

    def body(self) -> bytes:
        document = self.document
        return document if isinstance(document, bytes) else json.dumps(document).encode()

    def release(self) -> None:
        """Let every stalled or trickling handler finish now."""
        self._release.set()

    def wait_released(self, seconds: float | None = None) -> bool:
        """Wait until the test ends (or `seconds`); True once released."""
        return self._release.wait(self.stall_seconds if seconds is None else seconds)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running(*keys: SigningKey) -> Iterator[JWKSServer]:
    """A started JWKSServer publishing `keys`, stopped on exit."""
    server = JWKSServer()
    server.publish(*keys)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that gave up (timeouts) close their sockets; that is expected here."""


def _handler_for(server: JWKSServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.record(self.path)
            mode = server.mode
            body = server.body()  # as published when asked, even if the test rotates meanwhile
            if mode == "hangup":
                self.close_connection = True
                return  # no status line at all: the client sees a dropped connection
            if mode == "stall":
                server.wait_released()
            if mode == "error":
                self._send(500, b'{"error": "internal"}')
            elif mode == "redirect" and self.path == JWKS_PATH:
                self.send_response(302)
                self.send_header("Location", "/elsewhere.json")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif mode == "trickle_headers":
                self.send_response(200)
                self.flush_headers()
                self._drip(b"X-Slow: 1\r\n")
                self._finish(body)  # a complete, valid answer once released
            elif mode == "trickle_body":
                self.send_response(200)
                # Under the size cap: only a deadline stops the download.
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self._drip(b" ")
            else:
                self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self._finish(body)

        def _finish(self, body: bytes) -> None:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drip(self, chunk: bytes) -> None:
            """`chunk` every 50 ms until released: no single socket read ever times out."""
            self.close_connection = True
            deadline = time.monotonic() + server.stall_seconds
            while time.monotonic() < deadline and not server.wait_released(0.05):
                self.wfile.write(chunk)
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output is for failures."""

    return Handler
