"""Variants of the credential a request carries, against the real server (`identity-service serve`).

frontend.md: an `Authorization` header that is present (and not empty) decides,
and a credential the workspace cannot use is a 401 that says so, never a
fall-through to the session cookie. The header is sent on raw sockets, byte for
byte, so that gunicorn (not an HTTP client library) decides what the service
sees. What broke: a header holding only a no-break space (0xA0) or NEL (0x85).
gunicorn hands those over (they are not HTTP whitespace), and Python's
`str.strip()` made them "empty", so the valid cookie next to them minted.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from identity_service.config import INSTANCE_ENV, load_settings
from tests.support.served import Server, serving
from tests.support.service import ORIGIN, ServiceFixture, make_service
from tests.test_credentials import WORKSPACES

TOKEN_PATH = "/v1/messenger/token"
USER = {"user_id": "user-42"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServiceFixture]]:
    root = tmp_path_factory.mktemp("credential-variants")
    service = make_service(root)
    config = root / "service.toml"
    config.write_text(
        'default_workspace = "main"\n' + config.read_text() + WORKSPACES.format(origin=ORIGIN)
    )
    service.settings = load_settings(config, {INSTANCE_ENV: str(root / "instance")})
    with serving(config, root, workers=1, threads=2) as server:
        yield server, service


def send(port: int, workspace: str, headers: list[bytes]) -> tuple[int, dict[str, object]]:
    """POST the token request with exactly these header lines; the status and JSON body."""
    body = json.dumps({"workspace": workspace}).encode()
    head = [
        f"POST {TOKEN_PATH} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        f"Origin: {ORIGIN}".encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        *headers,
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload)


# Authorization header lines a workspace cannot use: each decides, and is refused.
UNUSABLE = {
    "no-break-space": [b"Authorization: \xa0"],
    "next-line": [b"Authorization: \x85"],
    "nbsp-before-bearer": [b"Authorization: \xa0Bearer x.y.z"],
    "tab-after-scheme": [b"Authorization: Bearer\tx.y.z"],
    "lower-case-bearer": [b"Authorization: bearer x.y.z"],
    "two-spaces": [b"Authorization: Bearer  x.y.z"],
    "comma-list": [b"Authorization: Bearer x.y.z, Basic dXNlcjpwYXNz"],
    "two-headers": [b"Authorization: Basic dXNlcjpwYXNz", b"Authorization: Bearer x.y.z"],
    "empty-then-bearer": [b"Authorization:", b"Authorization: Bearer x.y.z"],
    "lower-case-name": [b"authorization: Bearer x.y.z"],
}


@pytest.mark.parametrize("lines", UNUSABLE.values(), ids=UNUSABLE.keys())
@pytest.mark.parametrize("workspace", ["cookies", "main", "session_first"])
def test_an_authorization_header_decides_beside_a_valid_cookie(
    served: tuple[Server, ServiceFixture], workspace: str, lines: list[bytes]
) -> None:
    server, service = served
    cookie = f"Cookie: session={service.session_cookie(USER)}".encode()
    status, body = send(server.port, workspace, [*lines, cookie])
    assert status == 401, body.get("reason")  # never the body: it may hold a token
    assert "token" not in body
    assert body["reason"] in {"unsupported_scheme", "method_not_accepted", "malformed"}


@pytest.mark.parametrize("value", [b"\xa0", b"\x85"])
def test_a_header_of_non_http_whitespace_is_not_missing_credentials(
    served: tuple[Server, ServiceFixture], value: bytes
) -> None:
    server, _ = served
    status, body = send(server.port, "bearers", [b"Authorization: " + value])
    assert (status, body["reason"]) == (401, "unsupported_scheme")


def test_control_http_whitespace_around_a_valid_bearer_is_not_part_of_it(
    served: tuple[Server, ServiceFixture],
) -> None:
    server, service = served
    token = service.idp_token().encode()
    for line in (b"Authorization: bearer " + token, b"Authorization: \t Bearer  " + token + b" "):
        status, body = send(server.port, "main", [line])
        assert status == 200, body.get("reason")
    # Only spaces and tabs: no header at all, as HTTP strips them (the cookie decides).
    cookie = f"Cookie: session={service.session_cookie(USER)}".encode()
    assert send(server.port, "cookies", [b"Authorization: \t ", cookie])[0] == 200
