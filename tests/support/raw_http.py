"""Raw HTTP/1.1 over a socket, for what http.client will not send: malformed framing and headers.

`exchange` writes bytes exactly as given, reads until the server closes the
connection, and parses every response it sent, so a test also sees a second
response that a server should never have written after the first.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last value of a repeated name
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every response in `data`, in order; refuses bytes that are not a whole response."""
    responses = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        assert separator, f"an incomplete response head: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        assert len(rest) >= length, f"a truncated body: {rest[:200]!r}"
        responses.append(RawResponse(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def exchange(port: int, data: bytes, half_close: bool = True, timeout: float = 10) -> bytes:
    """Send `data`, optionally end our side (SHUT_WR), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def request(port: int, data: bytes, half_close: bool = True) -> list[RawResponse]:
    """`exchange`, parsed into the responses the server sent."""
    return parse_responses(exchange(port, data, half_close))


def assert_problem(response: RawResponse, status: int, slug: str) -> dict[str, Any]:
    """A problem+json answer of ours: status, shape, security headers and a request id."""
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"https://identity-service.dev/problems/{slug}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body
